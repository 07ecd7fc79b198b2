"""DRF's exception handler: every exception raised in a view becomes the envelope."""

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf
from rest_framework.views import set_rollback

from betting_site.api.envelope import application_error_response, error_response
from betting_site.database import DatabaseUnavailable, first_line, is_unreachable
from betting_site.errors import ApplicationError

logger = logging.getLogger(__name__)

_DRF_CODES = [
    # (DRF exception, code, fixed message or None to keep DRF's)
    (drf.ParseError, "VALIDATION_ERROR", None),
    (
        drf.NotAuthenticated,
        "UNAUTHORIZED",
        "Authentication credentials were not provided",
    ),
    (drf.AuthenticationFailed, "UNAUTHORIZED", None),
    (drf.PermissionDenied, "FORBIDDEN", None),
    (drf.NotFound, "NOT_FOUND", "Not found"),
    (drf.MethodNotAllowed, "METHOD_NOT_ALLOWED", None),
    (drf.NotAcceptable, "NOT_ACCEPTABLE", None),
    (drf.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", None),
    (drf.Throttled, "RATE_LIMITED", "Too many requests"),
]


def validation_details(detail) -> dict:
    """``{field: [messages]}``, with field-less errors under ``non_field_errors``."""
    if isinstance(detail, dict):
        return {
            str(key): value if isinstance(value, list | dict) else [value]
            for key, value in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    request = context.get("request")
    set_rollback()
    if not isinstance(exc, ApplicationError) and is_unreachable(exc):
        # Not a bug of ours: one line, no traceback, and 503 with what the request
        # had committed (a bet's last state) so that the client can find it.
        logger.warning(
            "The database is unreachable in %s %s: %s",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            first_line(exc),
        )
        exc = DatabaseUnavailable()
    if isinstance(exc, ApplicationError):
        headers = dict(exc.headers)
        if exc.http_status == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
        return application_error_response(request, exc, headers=headers)
    if isinstance(exc, drf.ValidationError):
        return error_response(
            request,
            status=400,
            code="VALIDATION_ERROR",
            message="The request is not valid",
            details=validation_details(exc.detail),
        )
    if isinstance(exc, Ratelimited):  # the library's 403-style error is a 429 here
        return error_response(request, status=429, headers={"Retry-After": "60"})
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return error_response(request, status=413)
    if isinstance(exc, drf.APIException):
        headers = {}
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(math.ceil(wait))
        code, message = None, None
        for exc_class, mapped_code, fixed_message in _DRF_CODES:
            if isinstance(exc, exc_class):
                code, message = mapped_code, fixed_message
                break
        if message is None and isinstance(exc.detail, str):
            message = str(exc.detail)
        return error_response(
            request, status=exc.status_code, code=code, message=message, headers=headers
        )
    # Anything else is a bug: log it with its traceback, answer without it.
    logger.error(
        "Unhandled error in %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc_info=exc,
    )
    response = error_response(request, status=500)
    # Logged above, with the traceback. (Django's own marker: django-stubs lacks it.)
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
