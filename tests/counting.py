"""AWS calls by operation, counted with botocore's event hooks: the unit tests' and benchmarks' one counter."""

from __future__ import annotations

from collections import Counter
from typing import Any


class CallCounter:
    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def take(self) -> dict[str, int]:
        taken = dict(sorted(self.calls.items()))
        self.calls.clear()
        return taken
