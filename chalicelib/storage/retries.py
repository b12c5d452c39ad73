"""Backoff for contention that AWS reports as an error but that says nothing about the data."""

from __future__ import annotations

import random
import time

ATTEMPTS = 8
BACKOFF_BASE = 0.02  # seconds; doubles per attempt, with full jitter, capped below
BACKOFF_CAP = 1.0


def backoff(attempt: int) -> None:
    """Full jitter, so instances that collided once do not collide again in step."""
    time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
