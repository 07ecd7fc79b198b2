"""Middleware that runs before anything else can fail."""

import logging
import re
import time
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from betting_site.api.envelope import (
    KEPT_HEADERS,
    application_error_response,
    error_response,
    is_api_path,
)
from betting_site.database import (
    RETRY_AFTER_SECONDS,
    DatabaseUnavailable,
    committed_details,
    marked_unreachable,
)
from betting_site.logging import request_id_var, user_id_var

request_logger = logging.getLogger("betting_site.requests")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


class RequestIdMiddleware:
    """Keep a sane incoming ``X-Request-ID`` or make one; echo it on every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)
        response["X-Request-ID"] = request_id
        return response


class ApiErrorEnvelopeMiddleware:
    """Make every error under ``/api/`` the envelope, whichever layer produced it.

    DRF views already answer the envelope through the exception handler. This catches
    the rest: unknown URLs, Django's own 400/404/500 pages (technical ones included,
    with DEBUG on), and errors raised by middleware further in. It also refuses
    oversized bodies before anything reads them.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path_info):
            return self.get_response(request)
        refusal = self._refuse_body(request)
        if refusal is not None:
            return refusal
        response = self.get_response(request)
        if marked_unreachable(request) and response.status_code == 500:
            return unavailable_response(request)
        if (
            response.status_code >= 400
            and not getattr(response, "is_error_envelope", False)
            and not getattr(response, "envelope_exempt", False)
        ):
            kept = {name: response[name] for name in KEPT_HEADERS if name in response}
            logged = getattr(response, "_has_been_logged", False)
            response = error_response(
                request, status=response.status_code, headers=kept
            )
            # Django logged the original (with its traceback); not a second time.
            # (Django's own marker, which django-stubs does not declare.)
            response._has_been_logged = logged  # type: ignore[attr-defined]
        return response

    @staticmethod
    def _refuse_body(request):
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return error_response(
                request, status=400, message="Content-Length is not a number"
            )
        if length > settings.API_MAX_BODY_BYTES:
            return error_response(
                request,
                status=413,
                message=f"The request body exceeds {settings.API_MAX_BODY_BYTES} bytes",
            )
        return None


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 for a request the unreachable database cut short: the envelope under
    ``/api/`` (with what it had committed), a plain page elsewhere (the admin).
    The page is a static template: rendering it touches no database."""
    if is_api_path(request.path_info):
        return application_error_response(
            request, DatabaseUnavailable(details=committed_details())
        )
    response = HttpResponse(
        render_to_string("503.html", {"retry_after": RETRY_AFTER_SECONDS}),
        status=503,
        content_type="text/html; charset=utf-8",
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Answer 503, not 500, when the database is unreachable, whichever layer hit
    it (see ``betting_site.database``). Outside every middleware that reads the
    database (the API log, the request log's user, sessions, the admin), inside
    the request id, CORS and CSP ones, so that the 503 still carries their
    headers. Under ``/api/`` the envelope middleware already answers it for the
    layers inside it; this catches the rest, and the admin's pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if marked_unreachable(request) and response.status_code == 500:
            return unavailable_response(request)
        return response


class RequestLogMiddleware:
    """One log line per request with its method, path, status, duration and user;
    a warning when it took longer than ``SLOW_REQUEST_SECONDS`` (1 s)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        try:
            user: Any = getattr(request, "user", None)
            user_id = user.pk if getattr(user, "is_authenticated", False) else None
        except Exception:  # a session user the database cannot load now
            user_id = None
        slow = duration_ms >= settings.SLOW_REQUEST_SECONDS * 1000
        request_logger.log(
            logging.WARNING if slow else logging.INFO,
            "%s %s %s in %sms%s",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            " (slow)" if slow else "",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": user_id,
            },
        )
        return response
