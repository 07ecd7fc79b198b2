"""Logging pieces: the request context on every line, redaction, JSON output."""

import contextvars
import logging
from datetime import UTC, datetime
from typing import Any, cast

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from betting_site.redaction import redact, redact_text

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="-"
)
user_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "user_id", default=None
)


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id and user id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        return True


class UnreachableDatabaseFilter(logging.Filter):
    """A record about the database being unreachable (Django's "Internal Server
    Error" for an admin page while PostgreSQL restarts, say) becomes one warning
    line without its traceback: it is an outage to see, not a bug to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        from betting_site.database import first_line, is_unreachable

        if record.exc_info and is_unreachable(record.exc_info[1]):
            try:
                message = record.getMessage()
            except Exception:
                message = str(record.msg)
            record.msg = (
                f"{message}: the database is unreachable: "
                f"{first_line(record.exc_info[1])}"  # type: ignore[arg-type]
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class RedactingFilter(logging.Filter):
    """Mask secrets in the message, its arguments and structured extras.

    The message is rendered first so that a secret passed as an argument is caught
    whatever its position; exception text is masked by the formatters below.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRS or key in ("request_id", "user_id"):
                continue
            record.__dict__[key] = redact({key: value})[key]
        return True


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object a line: timestamp, level, logger, message, request context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "fmt", "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
        )
        kwargs.setdefault(
            "rename_fields", {"asctime": "timestamp", "levelname": "level"}
        )
        kwargs.setdefault("timestamp", False)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        # A str: exc_info_as_array, which would make it a list, is never set here.
        return redact_text(cast(str, super().formatException(ei)))
