"""Writing and pruning API log rows.

Every body goes through ``betting_site.redaction`` here, in one place, with the
call's known secrets (the provider secret and the signature) masked as well. A log
that cannot be written never fails the request it describes. During an ``/api/``
request the rows are buffered and written in one INSERT at its end
(``api_log_batch``).
"""

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import DataError, IntegrityError, connections, models, transaction
from django.utils import timezone

from auditlog.models import ApiLog
from betting_site.database import is_unreachable
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


MAX_BUFFERED_ROWS = 100  # a request's buffer is written early when it holds this many

# The rows of the request being served, while ``api_log_batch`` is open; None
# otherwise (rows are then written at once).
_buffer: ContextVar[list[ApiLog] | None] = ContextVar("api_log_buffer", default=None)


@contextmanager
def api_log_batch() -> Iterator[None]:
    """Buffer the API log rows recorded inside, and write them in one INSERT at the end.

    ``InboundApiLogMiddleware`` opens one around every ``/api/`` request, so one
    ``POST /api/bets`` (its inbound row and its three provider calls) costs one
    ``bulk_create`` instead of four INSERT-and-COMMIT round trips. The rows are
    written when the block ends, also when it ends with an exception, and early
    whenever ``MAX_BUFFERED_ROWS`` are waiting, so no request grows the buffer
    without bound. A write that fails is logged as a warning and never raised.

    The trade-off, chosen on purpose: a process killed in the middle of a request
    loses that request's buffered rows. Money is not affected (the bet's state is
    committed before every provider call, and the ledger is not in this table);
    the application log still has a warning for every failed provider attempt,
    but nothing for a successful one.

    Nested blocks share the outermost one's buffer. Outside a block (management
    commands, ``settle_pending``, the scheduler, tests calling services) every
    row is written at once, as before.
    """
    if _buffer.get() is not None:
        yield
        return
    rows: list[ApiLog] = []
    token = _buffer.set(rows)
    try:
        yield
    finally:
        _buffer.reset(token)
        _flush(rows)


def _flush(rows: list[ApiLog]) -> None:
    """Write and empty ``rows``: one INSERT; never raises."""
    if not rows:
        return
    batch = rows[:]
    rows.clear()
    try:
        _insert(batch)
    except (IntegrityError, DataError):
        # A row the database refuses must not lose the others: each alone.
        if len(batch) == 1:
            _flush_failed(batch, exc_info=True)
            return
        lost = []
        for row in batch:
            try:
                _insert([row])
            except Exception:
                lost.append(row)
        if lost:
            _flush_failed(lost, exc_info=False)
    except Exception as exc:
        # The database unreachable is no bug: one line, not a traceback each time.
        _flush_failed(batch, exc_info=not is_unreachable(exc))


def _insert(rows: list[ApiLog]) -> None:
    # Outside a transaction this is the one transaction bulk_create opens anyway;
    # inside one (a request's last, a test's, a caller's) it is a savepoint, so a
    # failed insert never poisons that transaction.
    connection = connections[ApiLog.objects.db]
    with transaction.atomic(using=connection.alias):
        if connection.vendor != "postgresql":
            ApiLog.objects.bulk_create(rows)
            return
        fields, head = _insert_sql(connection.alias)
        one = "(" + ", ".join("%s" for _ in fields) + ")"
        params = [
            field.get_db_prep_save(getattr(row, field.attname), connection)
            for row in rows
            for field in fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                head + ", ".join(one for _ in rows) + " RETURNING id", params
            )
            for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
                row.pk = pk
                row._state.adding = False
                row._state.db = connection.alias


@functools.cache
def _insert_sql(alias: str) -> tuple[list[Any], str]:
    """The fields of an API log row and the head of its INSERT, built once: the
    rows are plain values (no default or ``auto_now`` to apply), and bulk_create
    building the same statement for every request cost about 5% of the server's
    CPU per bet. PostgreSQL only; SQLite keeps bulk_create."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = [f for f in ApiLog._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(str(f.column)) for f in fields)
    table = quote(ApiLog._meta.db_table)
    return fields, f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608


def _flush_failed(rows: list[ApiLog], *, exc_info: bool) -> None:
    logger.warning(
        "Could not write %d API log row(s): %s",
        len(rows),
        ", ".join(f"{row.method} {row.endpoint}" for row in rows[:10]),
        exc_info=exc_info,
    )


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
    """Record one API log row; on any failure log a warning and return None.

    ``user`` is a user, a user id or None. ``secrets`` are values masked wherever
    they appear in the bodies and the error text.

    Inside ``api_log_batch`` (every ``/api/`` request) the prepared, redacted row
    is appended to the request's buffer and returned unsaved: its ``pk`` is None
    until the buffer is written (``bulk_create`` sets it then). ``created_at`` is
    the time of this call either way. Outside a batch the row is written at once
    and returned saved. No caller needs the primary key at once; one that does
    must record outside a batch.
    """
    secrets = tuple(str(secret) for secret in secrets if secret)
    if request_id is None:
        request_id = request_id_var.get()
    try:
        fields = {
            "direction": direction,
            "endpoint": _storable(endpoint[:255]),
            "method": method.upper()[:10],
            "request_body": loggable_body(request_body, secrets=secrets),
            "response_body": loggable_body(response_body, secrets=secrets),
            "status_code": status_code,
            "duration_ms": max(0, round(duration_ms)),
            "attempt": attempt,
            "outcome": outcome,
            "error": _storable(redact_text(error, secrets=secrets)[:MAX_ERROR]),
            "user_id": _user_id(user),
            "ip_address": ip_address,
            "request_id": (
                "" if request_id in (None, "-") else _storable(request_id[:128])
            ),
        }  # created_at: the model's default, now, the time of the call
        buffer = _buffer.get()
        if buffer is None:
            # A savepoint: a failed insert must not poison the caller's transaction.
            with transaction.atomic():
                return ApiLog.objects.create(**fields)
        row = ApiLog(**fields)
        buffer.append(row)
        if len(buffer) >= MAX_BUFFERED_ROWS:
            _flush(buffer)
        return row
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
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    pause: float = 0.0,
) -> int:
    """Delete API log rows older than ``older_than``; returns how many (or would).

    Walks ``created_at`` (indexed) forward from the oldest row, one window of
    about ``batch_size`` rows per statement and transaction: each reads only its
    own rows through the index, never the dead rows of the batches before it nor
    the newer rows, so the last batch costs what the first did and no lock is
    held for long. The window is resized after each batch to the rows it found.
    ``pause`` seconds between batches leave the disk to the live traffic.
    """
    cutoff = timezone.now() - older_than
    stale = ApiLog.objects.filter(created_at__lt=cutoff)
    if dry_run:
        return stale.count()
    start = stale.order_by("created_at").values_list("created_at", flat=True).first()
    window = timedelta(seconds=1)
    deleted = 0
    while start is not None and start < cutoff:
        end = min(start + window, cutoff)
        count, _ = ApiLog.objects.filter(
            created_at__gte=start, created_at__lt=end
        ).delete()
        deleted += count
        if progress is not None and count:
            progress(deleted)
        # Aim the next window at batch_size rows, growing or shrinking it by at
        # most 4 times: an empty window (a quiet night) quadruples it.
        factor = batch_size / count if count else 4.0
        window = max(window * min(max(factor, 0.25), 4.0), timedelta(microseconds=1))
        start = end
        if pause and count:
            time.sleep(pause)
    return deleted
