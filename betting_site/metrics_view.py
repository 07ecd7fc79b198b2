"""``GET /metrics``: the metrics of ``betting_site.metrics`` next to
django-prometheus's request metrics, and the shared state read at each scrape."""

import hmac
import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from betting.selectors import balances_with_discrepancy, open_bet_counts
from betting_site.api.envelope import error_response
from betting_site.metrics import MULTIPROC_DIR_ENV
from provider.breaker import CLOSED, HALF_OPEN, OPEN, breaker_state

logger = logging.getLogger(__name__)

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
