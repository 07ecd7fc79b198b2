"""Fault injection: rules that make the simulator misbehave on demand.

A rule targets one endpoint (a path relative to ``/api``, and a method or any
method) and fires at most ``times`` times (``None``: unlimited), each time with
``probability``. At most one rule fires per request: the first one added that
matches, has firings left and passes its probability roll. A roll that fails does
not use up a firing.
"""

import random
import threading
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    ERROR_BEFORE = "error_before"  # answer `status` without acting
    ERROR_AFTER = "error_after"  # act, then answer `status`
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After, without acting
    DELAY_BEFORE = "delay_before"  # sleep, then act and answer normally
    DELAY_AFTER = "delay_after"  # act, then sleep before answering
    MALFORMED_JSON = "malformed_json"  # act, then answer 200 with broken JSON
    DROP_BEFORE = "drop_before"  # close the connection without acting
    DROP_AFTER = "drop_after"  # act, then close the connection without answering
    NUMERIC_BET_ID = "numeric_bet_id"  # answer bet_id as a JSON number


DEFAULT_STATUS = {FaultKind.RATE_LIMIT: 429}
DEFAULT_ERROR_STATUS = 500
DEFAULT_DELAY = 1.0
MAX_DELAY = 3600.0
DEFAULT_RETRY_AFTER = 1


def normalize_path(path: str) -> str:
    """``bet``, ``/bet/`` and ``/api/bet`` all name the endpoint ``/bet``."""
    path = "/" + path.strip().strip("/")
    if path.startswith("/api/"):
        path = path[len("/api") :]
    return path


@dataclass
class FaultRule:
    id: int
    path: str
    method: str | None  # None: any method
    kind: FaultKind
    status: int
    times: int | None  # None: unlimited
    probability: float
    delay: float
    retry_after: int | None  # None: a 429 without Retry-After
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        return self.path == path and (self.method is None or self.method == method)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "method": self.method,
            "kind": str(self.kind),
            "status": self.status,
            "times": self.times,
            "probability": self.probability,
            "delay": self.delay,
            "retry_after": self.retry_after,
            "fired": self.fired,
        }


def _number(value: Any, name: str, *, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if not number >= 0 or (maximum is not None and number > maximum):
        limit = f" and at most {maximum:g}" if maximum is not None else ""
        raise ValueError(f"{name} must be at least 0{limit}")
    return number


def _integer(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, Decimal) and value.is_finite() and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}")
    return value


class FaultTable:
    """The active rules, shared by every request thread."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._rng = random.Random(None if seed is None else f"faults:{seed}")  # noqa: S311

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self._rng = random.Random(None if seed is None else f"faults:{seed}")  # noqa: S311

    def add(
        self,
        path: str,
        kind: FaultKind | str,
        *,
        method: str | None = None,
        status: int | None = None,
        times: int | None = 1,
        probability: float = 1.0,
        delay: float = DEFAULT_DELAY,
        retry_after: int | None = DEFAULT_RETRY_AFTER,
    ) -> FaultRule:
        """Add a rule; raises ``ValueError`` for an invalid one."""
        if not isinstance(path, str) or not path.strip("/ "):
            raise ValueError("path must name an endpoint, like /bet")
        try:
            kind = FaultKind(kind)
        except ValueError:
            known = ", ".join(kind.value for kind in FaultKind)
            raise ValueError(f"kind must be one of: {known}") from None
        if method is not None and (not isinstance(method, str) or not method):
            raise ValueError("method must be an HTTP method or null for any")
        if status is None:
            status = DEFAULT_STATUS.get(kind, DEFAULT_ERROR_STATUS)
        status = _integer(status, "status", minimum=100)
        if status > 599:
            raise ValueError("status must be an HTTP status (100-599)")
        rule_times = None if times is None else _integer(times, "times", minimum=1)
        if retry_after is not None:
            retry_after = _integer(retry_after, "retry_after", minimum=0)
        with self._lock:
            rule = FaultRule(
                id=self._next_id,
                path=normalize_path(path),
                method=None if method in (None, "*") else method.upper(),
                kind=kind,
                status=status,
                times=rule_times,
                probability=_number(probability, "probability", maximum=1.0),
                delay=_number(delay, "delay", maximum=MAX_DELAY),
                retry_after=retry_after,
            )
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self) -> int:
        """Remove every rule; answers how many there were."""
        with self._lock:
            count = len(self._rules)
            self._rules.clear()
        return count

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (counting the firing)."""
        if not self._rules:  # the common case, without taking the lock
            return None
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(method, path):
                    continue
                if rule.probability < 1 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.describe() for rule in self._rules]
