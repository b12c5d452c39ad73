"""Numbers in requests are plain ASCII decimal digits: Python's isdigit() and int() accept far more."""

from __future__ import annotations

# Enough for any size or count a registry handles (a signed 64-bit integer), and far below the
# 4300 digits at which int() itself raises.
MAX_DIGITS = 18
_DIGITS = frozenset("0123456789")
_OWS = " \t"


def ascii_int(raw: str | None) -> int | None:
    """The value of 1 to MAX_DIGITS ASCII digits (optional spaces or tabs around them), else None.

    isdigit() accepts '²' and int() then fails; int() accepts '٣', '+1', '1_0'. Neither is a number
    on the wire, so every caller maps None to its own 400-class spec error instead of a 500.
    """
    if raw is None:
        return None
    digits = raw.strip(_OWS)
    if not digits or len(digits) > MAX_DIGITS or not _DIGITS.issuperset(digits):
        return None
    return int(digits)
