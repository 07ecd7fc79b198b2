"""Readiness of the server and what it depends on, for GET /api/health."""

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from betting_site import __version__
from betting_site.api.envelope import iso_now

logger = logging.getLogger(__name__)

OK, DOWN = "ok", "down"
# A load balancer may poll often: one provider probe per this many seconds at most.
PROVIDER_PROBE_CACHE_SECONDS = 10
_PROBE_KEY = "health:external_api"


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("Health: the database is down", exc_info=True)
        return DOWN
    return OK


def _cache() -> str:
    key = f"health:probe:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=5)
        healthy = cache.get(key) == "1"
        cache.delete(key)
    except Exception:
        logger.warning("Health: the cache is down", exc_info=True)
        return DOWN
    return OK if healthy else DOWN


def _external_api() -> str:
    """Down while the breaker is open (nothing is sent); otherwise a cheap probe of
    the provider's ``GET /health`` with no retries, remembered for a few seconds."""
    from provider.breaker import breaker_state
    from provider.client import ProviderClient
    from provider.exceptions import ProviderError
    from provider.policy import RetryPolicy

    if breaker_state() == "open":
        return DOWN
    try:
        remembered = cache.get(_PROBE_KEY)
    except Exception:
        remembered = None
    if remembered in (OK, DOWN):
        return remembered
    no_retries = RetryPolicy(
        read_retries=0,
        write_retries=0,
        backoff_base=0,
        backoff_max=0,
        retry_after_max=0,
    )
    try:
        ProviderClient(retry_policy=no_retries).health()
        status = OK
    except ProviderError:
        status = DOWN
    try:
        cache.set(_PROBE_KEY, status, timeout=PROVIDER_PROBE_CACHE_SECONDS)
    except Exception:
        logger.debug("Health: could not remember the provider probe", exc_info=True)
    return status


def health_report() -> tuple[dict, int]:
    """The health body and its HTTP status: 503 only when the database is down."""
    services = {
        "api": OK,
        "database": _database(),
        "cache": _cache(),
        "external_api": _external_api(),
    }
    if services["database"] == DOWN:
        status = "down"
    elif DOWN in services.values():
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        "timestamp": iso_now(),
        "version": settings.VERSION or __version__,
        "services": services,
    }
    return body, 503 if status == "down" else 200
