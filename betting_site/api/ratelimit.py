"""The contract's rate limits (section 3), counted by django-ratelimit.

Three limits, each ``N/<duration>`` in settings (``0`` disables it), read per request
so that a changed setting applies at once:

- ``RATE_LIMIT_GLOBAL``: every ``/api/`` request per client IP (health probes exempt);
- ``RATE_LIMIT_AUTH``: ``POST /api/auth/login`` per client IP and, separately, per
  username (case-folded and stripped; it only ever appears hashed in a cache key);
- ``RATE_LIMIT_BETS``: ``POST /api/bets`` per authenticated user (per IP without one).

Counts live in Django's cache (``RATELIMIT_USE_CACHE``), which is Redis when
``REDIS_URL`` is set, so every worker shares them. django-ratelimit's windows are
fixed; ``get_usage`` tells how many seconds the current one has left, which becomes
``Retry-After``. A limit is always answered 429 ``RATE_LIMITED`` in the envelope,
never the library's 403 ``Ratelimited``.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage
from django_ratelimit.exceptions import Ratelimited

from betting_site.api.client_ip import client_ip
from betting_site.api.envelope import error_response, is_api_path
from betting_site.durations import parse_duration

logger = logging.getLogger(__name__)

RATE_SETTINGS = ("RATE_LIMIT_GLOBAL", "RATE_LIMIT_AUTH", "RATE_LIMIT_BETS")

# Load-balancer probes are never limited.
EXEMPT_PATHS = frozenset(
    {"/api/health", "/api/health/", "/api/health/live", "/api/health/live/"}
)
LOGIN_PATHS = frozenset({"/api/auth/login", "/api/auth/login/"})
BET_PATHS = frozenset({"/api/bets", "/api/bets/"})

# Used only if a library-raised ``Ratelimited`` reaches us: it carries no window.
FALLBACK_RETRY_AFTER = 60


def rate_limit(name: str) -> tuple[int, int] | None:
    """The setting ``name`` as ``(requests, window_seconds)``, or None when it is 0.

    Accepts ``N/<duration>`` with a positive ``N`` and a duration understood by
    :func:`betting_site.durations.parse_duration` (``90``, ``30s``, ``15m``, ``1h``,
    ``1d``...). Anything else raises ImproperlyConfigured naming the setting.
    """
    raw = getattr(settings, name, None)
    value = str(raw if raw is not None else "").strip()
    if value == "0":
        return None
    count_text, slash, window_text = value.partition("/")
    count_text = count_text.strip()
    if not slash or not count_text.isdigit() or int(count_text) <= 0:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate limit: use N/<duration> with a positive "
            "N (for example 100/15m or 20/1m), or 0 to disable it"
        )
    try:
        window = parse_duration(window_text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r}: {exc}") from None
    return int(count_text), int(window.total_seconds())


def normalise_username(username: object) -> str | None:
    """The key a login attempt counts against: case-folded and stripped."""
    if not isinstance(username, str):
        return None
    normalised = username.strip().casefold()
    return normalised or None


@dataclass(frozen=True)
class _Check:
    group: str
    setting: str
    key: str


class RateLimitMiddleware:
    """Enforce the rate limits on ``/api/``; sits right inside the envelope
    middleware, so oversized bodies are refused before anything here reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # Fail at startup on a bad value, not at the first request.
        for name in RATE_SETTINGS:
            rate_limit(name)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if is_api_path(path) and path not in EXEMPT_PATHS:
            refusal = self._enforce(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if isinstance(exception, Ratelimited) and is_api_path(request.path_info):
            return _too_many(request, FALLBACK_RETRY_AFTER)
        return None

    # --- the checks -------------------------------------------------------------

    def _enforce(self, request: HttpRequest) -> HttpResponse | None:
        path = request.path_info
        ip_key = "ip:" + (client_ip(request) or "unknown")
        checks = [_Check("api-global", "RATE_LIMIT_GLOBAL", ip_key)]
        # The body and the token are only looked at when their limit is on.
        is_post = request.method == "POST"
        if is_post and path in LOGIN_PATHS and rate_limit("RATE_LIMIT_AUTH"):
            checks.append(_Check("auth-login-ip", "RATE_LIMIT_AUTH", ip_key))
            username = _login_username(request)
            if username is not None:
                checks.append(
                    _Check("auth-login-user", "RATE_LIMIT_AUTH", "user:" + username)
                )
        elif is_post and path in BET_PATHS and rate_limit("RATE_LIMIT_BETS"):
            checks.append(
                _Check("bets", "RATE_LIMIT_BETS", _bettor_key(request, ip_key))
            )

        retry_after = 0
        for check in checks:
            rate = rate_limit(check.setting)
            if rate is None:
                continue
            seconds = self._count(request, check, rate)
            if seconds is None:
                continue
            logger.warning("Rate limit %s exceeded", check.group)
            retry_after = max(retry_after, seconds)
            if check.group == "api-global":
                # Over the global limit: the endpoint limits are not charged.
                break
        if retry_after:
            return _too_many(request, retry_after)
        return None

    @staticmethod
    def _count(
        request: HttpRequest, check: _Check, rate: tuple[int, int]
    ) -> int | None:
        """Count this request; the seconds until the window resets if over the limit."""
        try:
            usage = get_usage(
                request,
                group=check.group,
                key=lambda _group, _request: check.key,
                rate=rate,
                increment=True,
            )
        except Exception:
            # The cache is down: stay available rather than refuse every request.
            logger.warning("Rate limit %s not counted: cache error", check.group)
            return None
        if usage is None or not usage["should_limit"]:
            return None
        time_left = usage["time_left"]
        if time_left < 0:
            # The library could not count (cache failure, RATELIMIT_FAIL_OPEN off).
            time_left = rate[1]
        return min(max(int(time_left), 1), rate[1])


def _too_many(request: HttpRequest, retry_after: int) -> HttpResponse:
    return error_response(
        request,
        status=429,
        code="RATE_LIMITED",
        headers={"Retry-After": str(retry_after)},
    )


def _login_username(request: HttpRequest) -> str | None:
    """The normalised username of a JSON login body, or None; never raises."""
    if request.content_type != "application/json":
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= settings.API_MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(request.body)
    except Exception:
        return None
    if not isinstance(data, dict):
        return None
    return normalise_username(data.get("username"))


def _bettor_key(request: HttpRequest, ip_key: str) -> str:
    """``user:<pk>`` for a valid bearer token, else the IP key; never raises.

    DRF authenticates later, inside the view; this is the same authentication run
    early, and any failure here is left for the view to answer.
    """
    from accounts.authentication import JWTAuthentication

    try:
        result = JWTAuthentication().authenticate(request)
    except Exception:
        return ip_key
    if result is None:
        return ip_key
    return "user:" + str(result[0].pk)
