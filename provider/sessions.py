"""Which provider accounts authenticated recently (``POST /auth``), in the cache.

A successful ``POST /auth`` is trusted for ``PROVIDER_SESSION_TTL`` seconds, so the
signed calls do not each start with one. A 401 from the provider forgets it. The
cache failing only costs an extra ``POST /auth``.
"""

import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _key(host: str, external_user_id: str) -> str:
    return f"provider:session:{host}:{external_user_id}"


def session_is_fresh(*, host: str, external_user_id: str) -> bool:
    try:
        return bool(cache.get(_key(host, external_user_id)))
    except Exception as exc:
        logger.warning(
            "Provider session cache unavailable (%s): authenticating again",
            type(exc).__name__,
        )
        return False


def session_mark(*, host: str, external_user_id: str) -> None:
    ttl = int(settings.PROVIDER_SESSION_TTL)
    if ttl <= 0:
        return
    try:
        cache.set(_key(host, external_user_id), True, timeout=ttl)
    except Exception as exc:
        logger.warning(
            "Provider session cache unavailable (%s): session not remembered",
            type(exc).__name__,
        )


def session_clear(*, host: str, external_user_id: str) -> None:
    try:
        cache.delete(_key(host, external_user_id))
    except Exception as exc:
        logger.warning(
            "Provider session cache unavailable (%s): session not cleared",
            type(exc).__name__,
        )
