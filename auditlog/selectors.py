"""Reads of the API log."""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, Q

from auditlog.models import ApiLog

PROVIDER_OK = "ok"
PROVIDER_FAILURES = ("refused", "unknown", "unreachable")


@dataclass(frozen=True)
class ProviderCallStats:
    """Outbound provider attempts in a window: how many, how many failed (any
    outcome but ``ok``, or a status outside 2xx) and how long they took."""

    calls: int
    failed: int
    by_outcome: dict[str, int]
    avg_ms: float | None
    p50_ms: int | None
    p95_ms: int | None

    @property
    def error_rate(self) -> float | None:
        """Failed share in percent; None without calls."""
        return 100 * self.failed / self.calls if self.calls else None

    @property
    def failures_text(self) -> str:
        """The failures by outcome, e.g. ``1 refused, 2 unknown``."""
        return ", ".join(f"{n} {name}" for name, n in self.by_outcome.items() if n)


def provider_call_failed() -> Q:
    """An outbound attempt that did not get a 2xx ``ok`` answer."""
    return ~Q(outcome=PROVIDER_OK) | ~Q(status_code__gte=200, status_code__lt=300)


def provider_call_stats(*, since: datetime) -> ProviderCallStats:
    """Stats of the provider attempts logged since then, in at most three queries
    (the totals, then the median and the 95th percentile by nearest rank)."""
    calls = ApiLog.objects.filter(
        direction=ApiLog.Direction.OUTBOUND, created_at__gte=since
    )
    totals = calls.aggregate(
        calls=Count("id"),
        failed=Count("id", filter=provider_call_failed()),
        avg_ms=Avg("duration_ms"),
        **{name: Count("id", filter=Q(outcome=name)) for name in PROVIDER_FAILURES},
    )
    count = totals["calls"]
    durations = calls.order_by("duration_ms").values_list("duration_ms", flat=True)

    def percentile(share: float) -> int | None:
        if not count:
            return None
        rank = max(1, math.ceil(share * count))
        return durations[rank - 1]

    return ProviderCallStats(
        calls=count,
        failed=totals["failed"],
        by_outcome={name: totals[name] for name in PROVIDER_FAILURES},
        avg_ms=totals["avg_ms"],
        p50_ms=percentile(0.50),
        p95_ms=percentile(0.95),
    )


# The endpoints outbound calls are logged under, as the app that makes the calls
# declares them (the provider, at start-up): the admin offers them as filter
# choices without reading the (large, append-only) table for its distinct values.
_outbound_endpoints: set[str] = set()


def outbound_endpoints_register(paths: Iterable[str]) -> None:
    _outbound_endpoints.update(paths)


def outbound_endpoints() -> list[str]:
    return sorted(_outbound_endpoints)
