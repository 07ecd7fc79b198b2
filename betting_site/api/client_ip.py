"""The client's IP address, for API logs and per-IP rate limits."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(candidate: str) -> str | None:
    """The normalised address, or None; tolerates ``[v6]:port`` and ``v4:port``."""
    candidate = candidate.strip().strip('"')
    if candidate.startswith("["):
        candidate = candidate[1:].split("]", 1)[0]
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR``, or, behind a trusted proxy (``TRUST_PROXY_HEADERS``), the
    last address of ``X-Forwarded-For``: the one our load balancer appended.

    The entries before it are whatever the client sent and can be forged, so the
    first one is never trusted (a client could dodge per-IP limits with it).
    """
    if settings.TRUST_PROXY_HEADERS:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        address = _valid(forwarded.rsplit(",", 1)[-1]) if forwarded else None
        if address is not None:
            return address
    return _valid(request.META.get("REMOTE_ADDR", "") or "")
