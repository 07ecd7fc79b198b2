"""Writing and pruning API log rows.

Every body goes through ``betting_site.redaction`` here, in one place, with the
call's known secrets (the provider secret and the signature) masked as well. A log
that cannot be written never fails the request it describes.
"""

import logging
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from auditlog.models import ApiLog
from betting_site.logging import request_id_var
from betting_site.redaction import redact, redact_text

logger = logging.getLogger(__name__)

MAX_TEXT_BODY = 2000  # characters of a non-JSON body kept in the log
MAX_ERROR = 500  # ApiLog.error's length

# What PostgreSQL cannot store in text or jsonb: NUL, and lone UTF-16 surrogates
# (a JSON body may carry "\u0000" or "\ud800"). Kept visible as U+FFFD.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _storable(text: str) -> str:
    return _UNSTORABLE.sub(REPLACEMENT, text)


def _jsonable(value: Any) -> Any:
    """What the JSON column can store: Decimals as numbers, tuples as lists."""
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        # Display only: the shortest float repr gives back the same digits for
        # any amount this project handles; nothing reads money from the log.
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, Mapping):
        return {_storable(str(key)): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, str):
        return _storable(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _storable(str(value))


def loggable_body(value: Any, *, secrets: tuple[str, ...] = ()) -> Any:
    """A request or response body as it may be stored: redacted, JSON, bounded."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return _storable(redact_text(value, secrets=secrets)[:MAX_TEXT_BODY])
    return _jsonable(redact(value, secrets=secrets))


def _user_id(user: Any) -> int | None:
    if user is None or isinstance(user, bool):
        return None
    if isinstance(user, int):
        return user
    if getattr(user, "is_authenticated", False):
        return getattr(user, "pk", None)
    return None


def api_log_record(
    *,
    direction: str,
    endpoint: str,
    method: str,
    request_body: Any = None,
    response_body: Any = None,
    status_code: int | None = None,
    duration_ms: int | float = 0,
    attempt: int = 1,
    outcome: str = "",
    error: str = "",
    user: Any = None,
    ip_address: str | None = None,
    request_id: str | None = None,
    secrets: tuple[str, ...] = (),
) -> ApiLog | None:
    """Write one API log row; on any failure log a warning and return None.

    ``user`` is a user, a user id or None. ``secrets`` are values masked wherever
    they appear in the bodies and the error text.
    """
    secrets = tuple(str(secret) for secret in secrets if secret)
    if request_id is None:
        request_id = request_id_var.get()
    try:
        # A savepoint: a failed insert must not poison the caller's transaction.
        with transaction.atomic():
            return ApiLog.objects.create(
                direction=direction,
                endpoint=_storable(endpoint[:255]),
                method=method.upper()[:10],
                request_body=loggable_body(request_body, secrets=secrets),
                response_body=loggable_body(response_body, secrets=secrets),
                status_code=status_code,
                duration_ms=max(0, round(duration_ms)),
                attempt=attempt,
                outcome=outcome,
                error=_storable(redact_text(error, secrets=secrets)[:MAX_ERROR]),
                user_id=_user_id(user),
                ip_address=ip_address,
                request_id=(
                    "" if request_id in (None, "-") else _storable(request_id[:128])
                ),
            )
    except Exception:
        logger.warning(
            "Could not write the API log row of %s %s", method, endpoint, exc_info=True
        )
        return None


def delete_in_batches(
    queryset: models.QuerySet,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the rows of ``queryset`` a batch at a time; returns how many.

    Small batches keep each transaction and lock short on a large table. Only the
    queryset's own rows are counted, not the rows deleted with them by cascade.
    """
    label = queryset.model._meta.label
    deleted = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        _, per_model = queryset.model._default_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(label, 0)
        if progress is not None:
            progress(deleted)


def api_log_prune(
    *,
    older_than: timedelta,
    batch_size: int = 1000,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete API log rows older than ``older_than``; returns how many (or would)."""
    stale = ApiLog.objects.filter(created_at__lt=timezone.now() - older_than)
    if dry_run:
        return stale.count()
    return delete_in_batches(stale, batch_size=batch_size, progress=progress)
