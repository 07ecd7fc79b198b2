"""Recording of every mutating request under ``/api/`` in the API log, and one
write of all the request's API log rows at its end."""

import json
import logging
import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from auditlog.models import ApiLog
from auditlog.services import api_log_batch, api_log_record
from betting_site.api.client_ip import client_ip
from betting_site.api.envelope import (
    application_error_response,
    is_api_path,
    request_id_of,
)
from betting_site.database import committed_scope
from betting_site.last_commit import LastCommitFailed, request_last_commit

logger = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json_or_text(content: bytes, content_type: str) -> Any:
    if not content:
        return None
    if "json" in content_type.lower():
        try:
            return json.loads(content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            pass
    return f"<{len(content)} bytes of {content_type or 'unknown type'}>"


class InboundApiLogMiddleware:
    """Write one API log row per POST, PUT, PATCH or DELETE under ``/api/``.

    Bodies are stored redacted (passwords, tokens). The user is read after the
    response, once DRF has authenticated the request. A log that cannot be
    written never fails the request.

    Every ``/api/`` request, reads included (they may call the provider), runs
    inside ``api_log_batch``: the rows of its provider calls and its own inbound
    row are written together, in one INSERT, when it ends (also when the view
    raises). See ``api_log_batch`` for what that trades.

    Outside the batch, ``request_last_commit``: the transaction of a service's
    last writes (a bet's result) is committed with those rows, one commit for
    both (``betting_site.last_commit``); if that commit fails the answer is 503
    ``SERVICE_UNAVAILABLE``, not the response that described the lost writes.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        with committed_scope():
            try:
                with request_last_commit():
                    return self._logged(request)
            except LastCommitFailed as exc:
                return application_error_response(request, exc)

    def _logged(self, request: HttpRequest) -> HttpResponse:
        with api_log_batch():
            if request.method not in MUTATING_METHODS:
                return self.get_response(request)
            started = time.monotonic()
            request_body = self._request_body(request)
            response = self.get_response(request)
            try:
                self._record(request, response, request_body, started)
            except Exception:  # never fail the request because of its log
                logger.warning(
                    "Could not record the inbound request %s %s",
                    request.method,
                    request.path,
                    exc_info=True,
                )
            return response

    @staticmethod
    def _request_body(request: HttpRequest) -> Any:
        """The body, read now (the view consumes the stream) unless it is too big."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        limit = getattr(settings, "API_MAX_BODY_BYTES", 64 * 1024)
        if length <= 0:
            return None
        if length > limit:
            return f"<{length} bytes, not recorded>"
        try:
            content = request.body
        except Exception:  # a broken or oversized upload is the view's to refuse
            return None
        return _json_or_text(content, request.META.get("CONTENT_TYPE", ""))

    @staticmethod
    def _record(
        request: HttpRequest,
        response: HttpResponse,
        request_body: Any,
        started: float,
    ) -> None:
        if getattr(response, "streaming", False):
            response_body = None
        else:
            response_body = _json_or_text(
                response.content, response.get("Content-Type", "")
            )
        api_log_record(
            direction=ApiLog.Direction.INBOUND,
            endpoint=request.path,
            method=request.method or "",
            request_body=request_body,
            response_body=response_body,
            status_code=response.status_code,
            duration_ms=(time.monotonic() - started) * 1000,
            # A 401's caller was not authenticated, whatever its token said.
            user=None
            if response.status_code == 401
            else getattr(request, "user", None),
            ip_address=client_ip(request),
            request_id=request_id_of(request),
        )
