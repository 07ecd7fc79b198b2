"""Human durations such as ``15m`` or ``7d``, used by settings and commands."""

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")


def parse_duration(value: str | int) -> timedelta:
    """Parse ``90``, ``90s``, ``15m``, ``12h``, ``7d`` or ``2w`` into a timedelta.

    A bare number is seconds. Zero and negative values are refused: every duration in
    this project is a lifetime or an age, and zero of either is a configuration mistake.
    """
    match = _PATTERN.match(str(value))
    if not match:
        raise ValueError(
            f"invalid duration {value!r}: use a whole number with an optional unit "
            "s, m, h, d or w (for example 15m or 7d)"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: it must be positive")
    return timedelta(seconds=seconds)
