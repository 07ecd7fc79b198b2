"""Prometheus metrics: every domain metric is defined here, once; the ``GET
/metrics`` view that exposes them (``betting_site.metrics_view``) sits on top of
the apps, which record through this module.

Two kinds of figures:

- Events (bets reaching a state, provider requests and their latency) are counted
  by the process they happen in. Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (an
  environment variable read by prometheus_client itself) makes every worker write
  them to that directory, and a scrape of any worker sums them all; without it (the
  test suite, ``runserver``) the process's own registry is exposed.
- Shared state (the circuit breaker in the cache, open bets and balance
  discrepancies in the database) is the same for every worker and replica, so it
  is read when scraped (``SharedStateCollector``), never kept per process.

Recording a metric never fails the operation being counted.
"""

import logging
from collections.abc import Callable
from functools import partial

from django.db import transaction
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# --- bets ------------------------------------------------------------------------

BET_PLACED = "placed"  # the provider took it (it has a provider bet id)
BET_WON = "won"
BET_LOST = "lost"
BET_FAILED = "failed"  # certainly not taken: refused, unreachable, or by balance
BET_UNKNOWN = "unknown"  # may have been taken: held, never sent again
BET_VOID = "void"  # cannot be settled (resolution rules or staff)
BET_OUTCOMES = (BET_PLACED, BET_WON, BET_LOST, BET_FAILED, BET_UNKNOWN, BET_VOID)

BETS = Counter(
    "betting_bets",
    "Bets reaching a state, counted when the transition commits: placed (taken by "
    "the provider), won, lost, failed, unknown, void. One bet counts once per state "
    "it reaches (placed, then won or lost).",
    ["outcome"],
)
for _outcome in BET_OUTCOMES:  # every series exists from the start, at 0
    BETS.labels(outcome=_outcome)

# --- provider requests ----------------------------------------------------------

# The provider client's attempt outcomes (provider.policy.Outcome values), and the
# call the breaker refused without sending it, as metric labels.
PROVIDER_OUTCOMES = {
    "ok": "ok",
    "refused": "refused",
    "unknown": "outcome_unknown",
    "unreachable": "unreachable",
    "breaker_open": "breaker_open",
}

PROVIDER_REQUESTS = Counter(
    "betting_provider_requests",
    "Requests to the provider, every attempt (retries included), by method, "
    "endpoint (the path template) and outcome: ok, refused (4xx), outcome_unknown "
    "(timeout, reset, 5xx, malformed answer), unreachable (never sent, or 429), "
    "breaker_open (refused by the open circuit breaker, nothing sent).",
    ["method", "endpoint", "outcome"],
)
PROVIDER_REQUEST_SECONDS = Histogram(
    "betting_provider_request_duration_seconds",
    "Time of one request to the provider, from sending to the parsed answer or "
    "the transport error.",
    ["method", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
)

# --- recording ------------------------------------------------------------------


def _safely(name: str, record: Callable[[], object]) -> None:
    try:
        record()
    except Exception:  # a metric must never fail what it measures
        logger.warning("Metric %s not recorded", name, exc_info=True)


def bet_outcome_record(*, outcome: str) -> None:
    """Count a bet reaching ``outcome`` once the current transaction commits (at
    once outside a transaction): a rolled-back transition is never counted."""
    if outcome not in BET_OUTCOMES:
        raise ValueError(f"not a bet outcome: {outcome!r}")

    def record() -> None:
        BETS.labels(outcome=outcome).inc()

    transaction.on_commit(partial(_safely, "betting_bets", record))


def provider_request_record(
    *, method: str, endpoint: str, outcome: str, seconds: float | None = None
) -> None:
    """Count one provider request (``seconds`` None: nothing was sent).

    ``endpoint`` is the call's path template (``/bet``, ``/win``...), never a value
    that varies per user.
    """

    def record() -> None:
        label = PROVIDER_OUTCOMES[outcome]
        PROVIDER_REQUESTS.labels(method=method, endpoint=endpoint, outcome=label).inc()
        if seconds is not None:
            PROVIDER_REQUEST_SECONDS.labels(method=method, endpoint=endpoint).observe(
                seconds
            )

    _safely("betting_provider_requests", record)
