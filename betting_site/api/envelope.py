"""The error envelope of the contract, built in one place."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from betting_site.api.renderers import json_dumps
from betting_site.errors import ApplicationError
from betting_site.logging import request_id_var

STATUS_CODES = {
    400: ("VALIDATION_ERROR", "The request is not valid"),
    401: ("UNAUTHORIZED", "Authentication credentials are missing or invalid"),
    403: ("FORBIDDEN", "You do not have permission to perform this action"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    406: ("NOT_ACCEPTABLE", "The requested response format is not available"),
    409: ("CONFLICT", "The request conflicts with the current state"),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json"),
    429: ("RATE_LIMITED", "Too many requests"),
    500: ("INTERNAL_ERROR", "Internal server error"),
    502: ("PROVIDER_ERROR", "The betting provider answered with an error"),
    503: ("PROVIDER_UNAVAILABLE", "The betting provider is unavailable"),
}

# Headers of an original error response that the envelope keeps.
KEPT_HEADERS = ("Retry-After", "Allow", "WWW-Authenticate")


def iso_now() -> str:
    return timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_id_of(request: HttpRequest | None) -> str:
    return getattr(request, "request_id", None) or request_id_var.get()


def error_response(
    request: HttpRequest | None,
    *,
    status: int,
    code: str | None = None,
    message: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    default_code, default_message = STATUS_CODES.get(
        status,
        ("INTERNAL_ERROR", "Internal server error")
        if status >= 500
        else ("VALIDATION_ERROR", "The request could not be processed"),
    )
    body = {
        "success": False,
        "error": {
            "code": code or default_code,
            "message": message or default_message,
            "details": details,
            "timestamp": iso_now(),
            "requestId": request_id_of(request),
        },
    }
    response = HttpResponse(
        json_dumps(body), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response[name] = value
    # A marker read back with getattr(); HttpResponse declares no such attribute.
    response.is_error_envelope = True  # type: ignore[attr-defined]
    return response


def application_error_response(
    request: HttpRequest | None,
    error: ApplicationError,
    *,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """The envelope of one of the project's errors (its own headers unless
    ``headers`` replaces them)."""
    return error_response(
        request,
        status=error.http_status,
        code=error.code,
        message=error.message,
        details=error.details,
        headers=error.headers if headers is None else headers,
    )


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")
