"""Prometheus metrics: every domain metric is defined here, once, with the
``GET /metrics`` view that exposes them next to django-prometheus's request metrics.

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

import hmac
import logging
import os
from collections.abc import Callable, Iterator
from functools import partial

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from betting_site.api.envelope import error_response
from provider.breaker import CLOSED, HALF_OPEN, OPEN, breaker_state

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


# --- shared state, read when scraped ---------------------------------------------

BREAKER_STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class SharedStateCollector(Collector):
    """Figures shared by every process, read at each scrape: the breaker state from
    the cache and two aggregate queries on the database."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._breaker()
        yield from self._database()

    @staticmethod
    def _breaker() -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "betting_provider_breaker_state",
            "The provider circuit breaker, shared by every worker: 0 closed, "
            "1 half-open (one probe allowed), 2 open (nothing is sent).",
        )
        try:
            state = breaker_state()
        except Exception:
            logger.warning(
                "Metrics: the breaker state could not be read", exc_info=True
            )
            state = CLOSED  # as the breaker itself does when the cache fails
        gauge.add_metric([], BREAKER_STATE_VALUES.get(state, 0))
        return gauge

    @staticmethod
    def _database() -> Iterator[GaugeMetricFamily]:
        # Imported here: the models' apps import this module (services, client).
        from betting.selectors import open_bet_counts
        from wallet.selectors import balances_with_discrepancy

        up = GaugeMetricFamily(
            "betting_metrics_database_up",
            "1 when the database figures (betting_bets_open, "
            "betting_balance_discrepancies) were read at this scrape, 0 when the "
            "database could not be read and they are missing.",
        )
        try:
            open_bets = open_bet_counts()
            discrepancies = balances_with_discrepancy().count()
        except Exception:
            logger.warning("Metrics: the database could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauge = GaugeMetricFamily(
            "betting_bets_open",
            "Bets open right now, over every user: pending (awaiting their result) "
            "and unknown (POST /bet outcome unknown, stake held).",
            labels=["status"],
        )
        for status, total in sorted(open_bets.items()):
            gauge.add_metric([status], total)
        yield gauge
        yield GaugeMetricFamily(
            "betting_balance_discrepancies",
            "Users whose last provider balance differs from the ledger while they "
            "have no open bet (what manage.py reconcile reports as drift).",
            value=discrepancies,
        )


_SHARED_STATE = CollectorRegistry(auto_describe=False)
_SHARED_STATE.register(SharedStateCollector())


def metrics_exposition() -> bytes:
    """One scrape in the Prometheus text format: the event metrics (this process's,
    or every worker's in multiprocess mode), then the shared state read now."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(_SHARED_STATE)


# --- the view -------------------------------------------------------------------


def _authorized(request: HttpRequest) -> bool:
    """No ``METRICS_TOKEN``: open. Otherwise its bearer credential, compared in
    constant time. The token is never logged or echoed."""
    expected = getattr(settings, "METRICS_TOKEN", None)
    if not expected:
        return True
    keyword, _, credential = request.headers.get("Authorization", "").partition(" ")
    if keyword.lower() != "bearer" or not credential.strip():
        return False
    return hmac.compare_digest(
        credential.strip().encode("utf-8"), expected.encode("utf-8")
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: 401 in the error envelope without the right token."""
    if request.method not in ("GET", "HEAD"):
        return error_response(request, status=405, headers={"Allow": "GET, HEAD"})
    if not _authorized(request):
        return error_response(
            request,
            status=401,
            message="A valid metrics token is required",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
