"""Shared pieces of the OpenAPI document (drf-spectacular).

Nothing here changes how a request is handled: the serializers only describe
shapes, the extensions only name the authentication schemes, and the hooks only
rename the documented paths and add the answers of the layers around the views.

- ``ErrorEnvelopeSerializer`` (component ``ErrorEnvelope``): the one error shape of
  every layer under ``/api/``; ``error_responses(...)`` maps status codes to it.
- ``api_headers(...)``: the ``X-Request-ID`` response header on every answer,
  ``Retry-After`` on 409/429/503, ``Idempotent-Replayed`` on replayable answers and
  the optional ``Idempotency-Key`` request header.
- ``JWTScheme`` / ``AdminTokenScheme``: the bearer schemes of
  ``accounts.authentication.JWTAuthentication`` and
  ``provider.permissions.AdminTokenAuthentication``.
- ``strip_trailing_slashes``: a postprocessing hook; the URL patterns accept an
  optional trailing slash and the contract's paths have none.
- ``add_common_error_responses``: a postprocessing hook documenting, on every
  operation, the errors that layers outside the view can answer (405, 406, 413,
  429, 500), so that the views list only their own.
"""

from collections.abc import Iterable
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    inline_serializer,
)
from rest_framework import serializers

from betting_site.api import ratelimit
from betting_site.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

JWT_SCHEME = "jwtAuth"
ADMIN_TOKEN_SCHEME = "adminToken"  # noqa: S105 (a scheme name, not a token)

# The security requirement of the user endpoints and of the internal ones.
# drf-spectacular annotates extend_schema(auth=) as a list of str, but uses it as
# these security requirement objects (its own get_auth() answers them): Any, so
# that its wrong annotation does not refuse them.
USER_AUTH: Any = [{JWT_SCHEME: []}]
INTERNAL_AUTH: Any = [{ADMIN_TOKEN_SCHEME: []}, {JWT_SCHEME: []}]

TAG_AUTH = "auth"
TAG_BETS = "bets"
TAG_WALLET = "wallet"
TAG_INTERNAL = "internal"
TAG_OPERATIONS = "operations"

REQUEST_ID_HEADER_DESCRIPTION = "The request id (also error.requestId in the envelope)."
RETRY_AFTER_DESCRIPTION = "Seconds to wait before retrying."
_HTTP_METHODS = frozenset(
    {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
)


class JWTScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.JWTAuthentication"
    name = JWT_SCHEME

    def get_security_definition(self, auto_schema: Any) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/auth/login.",
        }


class AdminTokenScheme(OpenApiAuthenticationExtension):
    target_class = "provider.permissions.AdminTokenAuthentication"
    name = ADMIN_TOKEN_SCHEME

    def get_security_definition(self, auto_schema: Any) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The static ADMIN_TOKEN (internal endpoints only).",
        }


def strip_trailing_slashes(result: dict, **kwargs: Any) -> dict:
    """Document each path as the contract writes it: without a trailing slash."""
    result["paths"] = {
        (path.rstrip("/") or "/"): item for path, item in result["paths"].items()
    }
    return result


def money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        coerce_to_string=False,
        **kwargs,
    )


# --- The error envelope ------------------------------------------------------------


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="VALIDATION_ERROR, INSUFFICIENT_BALANCE, INVALID_CREDENTIALS, "
        "UNAUTHORIZED, FORBIDDEN, ACCOUNT_NOT_LINKED, NOT_FOUND, METHOD_NOT_ALLOWED, "
        "NOT_ACCEPTABLE, BET_IN_PROGRESS, IDEMPOTENCY_KEY_IN_USE, PAYLOAD_TOO_LARGE, "
        "UNSUPPORTED_MEDIA_TYPE, IDEMPOTENCY_KEY_MISMATCH, RATE_LIMITED, "
        "INTERNAL_ERROR, PROVIDER_ERROR or PROVIDER_UNAVAILABLE."
    )
    message = serializers.CharField()
    details = serializers.DictField(
        allow_null=True,
        help_text="Validation errors as {field: [messages]}; a provider error's "
        "status and body; for POST /api/bets a 502/503 carries the recorded bet "
        "as details.bet.",
    )
    timestamp = serializers.DateTimeField()
    requestId = serializers.CharField(  # noqa: N815 (the contract's name)
        help_text="The same id as X-Request-ID."
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    400: "VALIDATION_ERROR (details: {field: [messages]})",
    401: "UNAUTHORIZED: missing, expired, revoked or malformed token",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED: the Allow header lists the methods of this path",
    406: "NOT_ACCEPTABLE: the Accept header excludes application/json",
    409: "Conflict; retry after Retry-After seconds",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE (JSON only)",
    422: "IDEMPOTENCY_KEY_MISMATCH: the key was used with another body",
    429: "RATE_LIMITED; retry after Retry-After seconds",
    500: "INTERNAL_ERROR",
    502: "PROVIDER_ERROR: the provider refused or answered badly",
    503: "PROVIDER_UNAVAILABLE; retry after Retry-After seconds",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """``{code: ErrorEnvelope}`` for each code; ``descriptions`` override the
    default text by ``e<code>`` (``e403="ACCOUNT_NOT_LINKED"``)."""
    return {
        code: OpenApiResponse(
            ErrorEnvelopeSerializer,
            description=descriptions.get(f"e{code}", ERROR_DESCRIPTIONS[code]),
        )
        for code in codes
    }


def _error_response(code: int) -> dict:
    headers = {
        "X-Request-ID": {
            "schema": {"type": "string"},
            "description": REQUEST_ID_HEADER_DESCRIPTION,
        }
    }
    if code == 405:
        headers["Allow"] = {
            "schema": {"type": "string"},
            "description": "The methods this path accepts.",
        }
    if code in (409, 429, 503):
        headers["Retry-After"] = {
            "schema": {"type": "integer"},
            "description": RETRY_AFTER_DESCRIPTION,
        }
    return {
        "headers": headers,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorEnvelope"}
            }
        },
        "description": ERROR_DESCRIPTIONS[code],
    }


def add_common_error_responses(result: dict, **kwargs: Any) -> dict:
    """Document on every operation the errors answered before or around its view:
    405 (another method), 406 (an Accept without JSON) and 500 everywhere, 413
    where there is a body, 429 wherever the global rate limit applies. A view's
    own description of one of these codes is kept."""
    for path, item in result["paths"].items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            codes = [405, 406, 500]
            if "requestBody" in operation:
                codes.append(413)
            if path not in ratelimit.EXEMPT_PATHS:
                codes.append(429)
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses.setdefault(str(code), _error_response(code))
            operation["responses"] = dict(
                sorted(responses.items(), key=lambda entry: entry[0])
            )
    return result


# Codes any caller of an authenticated endpoint may see (rate limits, crashes).
AUTHED = (401, 429, 500)
# Codes any JSON body may add: validation, too large, not JSON.
BODY = (400, 413, 415)
# Codes of the idempotent POSTs.
IDEMPOTENT = (409, 422)
# Codes of a provider call.
PROVIDER = (502, 503)


# --- Headers -----------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Optional, 8-255 visible ASCII characters, scoped to the caller. "
    "The same key with the same body replays the first answer (status and body) "
    "with Idempotent-Replayed: true; with another body 422; while the first is "
    "still running 409 IDEMPOTENCY_KEY_IN_USE. Keys live at least 24 hours.",
)


def api_headers(
    codes: Iterable[int], replayable: Iterable[int] = ()
) -> list[OpenApiParameter]:
    """The response headers of an operation answering ``codes``."""
    codes = list(codes)
    headers = [
        OpenApiParameter(
            name="X-Request-ID",
            type=str,
            location=OpenApiParameter.HEADER,
            response=True,
            description=REQUEST_ID_HEADER_DESCRIPTION,
        )
    ]
    retry = [code for code in codes if code in (409, 429, 503)]
    if retry:
        headers.append(
            OpenApiParameter(
                name="Retry-After",
                type=int,
                location=OpenApiParameter.HEADER,
                response=retry,
                description=RETRY_AFTER_DESCRIPTION,
            )
        )
    replayable = list(replayable)
    if replayable:
        headers.append(
            OpenApiParameter(
                name="Idempotent-Replayed",
                type=str,
                location=OpenApiParameter.HEADER,
                response=replayable,
                description="'true' when this is the stored answer of an earlier "
                "request with the same Idempotency-Key.",
            )
        )
    return headers


def idempotent_headers(
    codes: Iterable[int], replayable: Iterable[int]
) -> list[OpenApiParameter]:
    return [IDEMPOTENCY_KEY, *api_headers(codes, replayable)]


# --- Query parameters --------------------------------------------------------------

PAGINATION_PARAMETERS = [
    OpenApiParameter(
        name="page",
        type=int,
        location=OpenApiParameter.QUERY,
        required=False,
        description="A positive integer (default 1); anything else is 400.",
    ),
    OpenApiParameter(
        name="limit",
        type=int,
        location=OpenApiParameter.QUERY,
        required=False,
        description="A positive integer (default 10); above 100 is treated as 100; "
        "anything else is 400.",
    ),
    OpenApiParameter(
        name="cursor",
        type=str,
        location=OpenApiParameter.QUERY,
        required=False,
        description="Keyset pagination instead of page numbers: empty for the "
        "first page, then a `next_cursor` or `prev_cursor` of an answer. The "
        "answer's `pagination` is then `{limit, next_cursor, prev_cursor}`, with "
        "no total; every page costs the same however deep. With `page`, or a "
        "value that is not such a cursor: 400.",
    ),
]

USER_ID_QUERY = OpenApiParameter(
    name="user_id",
    type=str,
    location=OpenApiParameter.QUERY,
    required=True,
    description="The provider's external user id of a linked account.",
)


def bet_id_path(description: str = "The bet's id.") -> OpenApiParameter:
    return OpenApiParameter(
        name="bet_id",
        type=OpenApiTypes.INT,
        location=OpenApiParameter.PATH,
        description=description,
    )


# --- Shared bodies -----------------------------------------------------------------


class PaginationSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    pages = serializers.IntegerField()


class CursorPaginationSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    next_cursor = serializers.CharField(
        allow_null=True, help_text="The older rows' page; null at the end."
    )
    prev_cursor = serializers.CharField(
        allow_null=True, help_text="The newer rows' page; null at the start."
    )


def list_pagination() -> PolymorphicProxySerializer:
    """A list's ``pagination``: by page number, or by cursor with ``?cursor=``."""
    return PolymorphicProxySerializer(
        component_name="ListPagination",
        serializers=[PaginationSerializer, CursorPaginationSerializer],
        resource_type_field_name=None,
    )


class TokenPairSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The access token (a JWT).")
    refresh = serializers.CharField(help_text="The refresh token.")
    expiresIn = serializers.IntegerField(  # noqa: N815
        help_text="The access token's life, seconds."
    )
    tokenType = serializers.CharField(  # noqa: N815
        help_text='Always "Bearer".'
    )


class InternalAnswerSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always true.")
    external_response = serializers.JSONField(help_text="The provider's JSON.")
    note = serializers.CharField(
        required=False,
        help_text="Present when the provider was not called or did not take "
        "the request as asked.",
    )


HEALTH_BODY = inline_serializer(
    name="Health",
    fields={
        "status": serializers.CharField(help_text='"ok", "degraded" or "down".'),
        "timestamp": serializers.DateTimeField(),
        "version": serializers.CharField(),
        "services": inline_serializer(
            name="HealthServices",
            fields={
                name: serializers.CharField(help_text='"ok" or "down".')
                for name in ("api", "database", "cache", "external_api")
            },
        ),
    },
)
