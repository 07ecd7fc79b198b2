"""A circuit breaker per provider host, its state in the shared cache.

Closed: calls go through; transport failures and 5xx are counted (a 4xx is an
answer, a 429 is neither). After ``PROVIDER_BREAKER_THRESHOLD`` consecutive failures
it opens: calls fail fast, nothing is sent, for ``PROVIDER_BREAKER_RESET`` seconds.
Then it is half-open: one probe call is let through (claimed with ``cache.add``, so
one worker wins); its success closes the breaker, its failure re-opens it.

The state lives in Django's cache (Redis in production), so every worker shares it.
When the cache itself fails, the breaker fails open: the call is allowed.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_FAILURES_TTL = 24 * 3600  # a failure streak older than this is forgotten


class BreakerOpen(Exception):
    """The breaker refuses the call; nothing was sent."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"circuit open, retry in {retry_after}s")


@dataclass(frozen=True)
class Permit:
    """Leave to make one request; ``probe`` when it is the half-open probe;
    ``streak`` when a failure streak was counted (a success then resets it)."""

    probe: bool = False
    streak: bool = True


def provider_host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class CircuitBreaker:
    def __init__(self, host: str, *, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.clock = clock
        prefix = f"provider:breaker:{host}"
        self._failures_key = f"{prefix}:failures"
        self._open_key = f"{prefix}:open_until"
        self._probe_key = f"{prefix}:probe"

    @classmethod
    def for_url(
        cls, url: str | None = None, *, clock: Callable[[], float] = time.time
    ) -> "CircuitBreaker":
        """The breaker of ``url``'s host, by default ``EXTERNAL_API_URL``'s."""
        return cls(provider_host(url or settings.EXTERNAL_API_URL), clock=clock)

    # --- reading --------------------------------------------------------------------

    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (``closed`` if the cache fails)."""
        try:
            open_until = cache.get(self._open_key)
        except Exception as exc:  # the cache is down: calls are allowed
            self._cache_failed("state", exc)
            return CLOSED
        if open_until is None:
            return CLOSED
        return OPEN if self.clock() < open_until else HALF_OPEN

    def retry_after(self) -> int | None:
        """Seconds until the breaker lets a call through again, or None if closed."""
        try:
            open_until = cache.get(self._open_key)
        except Exception as exc:
            self._cache_failed("retry_after", exc)
            return None
        if open_until is None:
            return None
        return max(1, math.ceil(open_until - self.clock()))

    # --- around one request ---------------------------------------------------------

    def acquire(self) -> Permit:
        """Leave to send one request, or ``BreakerOpen``."""
        try:
            # One round trip for both: a success resets the streak only if one
            # was counted, so the usual call costs the cache this read alone.
            found = cache.get_many([self._open_key, self._failures_key])
            open_until = found.get(self._open_key)
            if open_until is None:
                return Permit(streak=bool(found.get(self._failures_key)))
            now = self.clock()
            if now < open_until:
                raise BreakerOpen(max(1, math.ceil(open_until - now)))
            if cache.add(self._probe_key, now, timeout=self._probe_ttl()):
                logger.info("Provider circuit for %s half-open: probing", self.host)
                return Permit(probe=True)
            raise BreakerOpen(1)  # another worker's probe is in flight
        except BreakerOpen:
            raise
        except Exception as exc:
            self._cache_failed("acquire", exc)
            return Permit()

    def record(self, permit: Permit, *, status: int | None) -> None:
        """Count one request's result: ``status`` None means no HTTP answer."""
        if status is None or status >= 500:
            self.record_failure(permit)
        elif status == 429:
            self.release(permit)
        else:
            self.record_success(permit)

    def record_success(self, permit: Permit) -> None:
        try:
            if permit.probe:
                cache.delete_many([self._open_key, self._probe_key, self._failures_key])
                logger.info("Provider circuit for %s closed", self.host)
            elif permit.streak:
                cache.delete(self._failures_key)
        except Exception as exc:
            self._cache_failed("record_success", exc)

    def record_failure(self, permit: Permit) -> None:
        try:
            reset = float(settings.PROVIDER_BREAKER_RESET)
            if permit.probe:
                cache.set(self._open_key, self.clock() + reset, timeout=None)
                cache.delete(self._probe_key)
                logger.warning(
                    "Provider circuit for %s re-opened: the probe failed", self.host
                )
                return
            failures = self._count_failure()
            threshold = int(settings.PROVIDER_BREAKER_THRESHOLD)
            # add(): of the workers that see the threshold crossed, one opens it,
            # and failures of calls still in flight do not prolong it.
            if failures >= threshold and cache.add(
                self._open_key, self.clock() + reset, timeout=None
            ):
                logger.warning(
                    "Provider circuit for %s opened for %ss after %s consecutive "
                    "failures",
                    self.host,
                    reset,
                    failures,
                )
        except Exception as exc:
            self._cache_failed("record_failure", exc)

    def release(self, permit: Permit) -> None:
        """Neither success nor failure (a 429): a probe gives its turn back."""
        if not permit.probe:
            return
        try:
            cache.delete(self._probe_key)
        except Exception as exc:
            self._cache_failed("release", exc)

    def reset(self) -> None:
        """Close the breaker and forget the failure streak (operators, tests)."""
        cache.delete_many([self._open_key, self._probe_key, self._failures_key])

    # --- internals ------------------------------------------------------------------

    def _count_failure(self) -> int:
        cache.add(self._failures_key, 0, timeout=_FAILURES_TTL)
        try:
            return cache.incr(self._failures_key)
        except ValueError:  # expired between add and incr
            cache.set(self._failures_key, 1, timeout=_FAILURES_TTL)
            return 1

    @staticmethod
    def _probe_ttl() -> float:
        # A probe whose worker died must not block the next one for long.
        return (
            float(settings.EXTERNAL_API_CONNECT_TIMEOUT)
            + float(settings.EXTERNAL_API_READ_TIMEOUT)
            + 5
        )

    def _cache_failed(self, operation: str, exc: Exception) -> None:
        logger.warning(
            "Provider circuit breaker cache unavailable during %s (%s): failing open",
            operation,
            type(exc).__name__,
        )


def breaker_state(url: str | None = None) -> str:
    """The breaker state of the provider host, for health checks and metrics."""
    return CircuitBreaker.for_url(url).state()
