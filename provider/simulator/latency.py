"""Answer latency: every request under ``/api`` waits ``latency_ms`` give or take a
uniform ``jitter_ms`` before it is handled, as a provider across a network would.

The wait happens in the request's own thread (the server runs one per connection)
and holds no lock, so other requests go on meanwhile. Control endpoints never wait.
"""

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_LATENCY_MS = 60_000.0


def _milliseconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number of milliseconds")
    number = float(value)
    if not 0 <= number <= MAX_LATENCY_MS:
        raise ValueError(f"{name} must be from 0 to {MAX_LATENCY_MS:g}")
    return number


@dataclass(frozen=True)
class Latency:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # each wait is latency_ms + uniform(-jitter_ms, jitter_ms)

    def validated(self) -> "Latency":
        """A copy with numbers coerced and checked; raises ``ValueError``."""
        latency = _milliseconds(self.latency_ms, "latency_ms")
        jitter = _milliseconds(self.jitter_ms, "jitter_ms")
        if jitter > latency:
            raise ValueError("jitter_ms must not exceed latency_ms")
        return Latency(latency, jitter)

    @property
    def active(self) -> bool:
        return self.latency_ms > 0

    def seconds(self, rng: random.Random) -> float:
        """One request's wait in seconds (never negative: the jitter is at most the
        latency)."""
        if not self.jitter_ms:
            return self.latency_ms / 1000
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms)
        return max(0.0, self.latency_ms + jitter) / 1000

    def describe(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms}
