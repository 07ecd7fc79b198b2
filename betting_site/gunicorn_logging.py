"""gunicorn's logs as JSON lines, like the application's own (``LOG_FORMAT=json``).

``gunicorn.conf.py`` names :class:`JsonLogger` as its ``logger_class``: every access
line on stdout is one JSON object (time, method, path, status, duration, the request
id the server put in ``X-Request-ID``, remote address), and gunicorn's own messages
on stderr are JSON objects too. Values are encoded by :func:`json.dumps`, so a path
or header with quotes in it can never break a line.
"""

import contextlib
import json
import logging
from datetime import UTC, datetime

from gunicorn import glogging


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonErrorFormatter(logging.Formatter):
    """gunicorn's own messages (start, worker boot, timeouts) as JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc_now(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _header(headers, name: str) -> str | None:
    """The first value of header ``name`` in a gunicorn header list or mapping."""
    if hasattr(headers, "items"):
        headers = headers.items()
    for key, value in headers or ():
        if key.lower() == name:
            return value
    return None


def _content_length(headers) -> int | None:
    value = _header(headers, "content-length")
    return int(value) if value and value.isdigit() else None


class JsonLogger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.setFormatter(JsonErrorFormatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(
                "%s", self.access_line(resp, req, environ, request_time)
            )
        except Exception:  # a log line must never fail the request
            self.exception("could not write the access log line")

    @staticmethod
    def access_line(resp, req, environ, request_time) -> str:
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        with contextlib.suppress(TypeError, ValueError):
            status = int(status)
        headers = getattr(resp, "headers", None)
        entry = {
            "time": _utc_now(),
            "type": "access",
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            # A file sent with sendfile (whitenoise) is not counted in ``sent``.
            "bytes": getattr(resp, "sent", None) or _content_length(headers),
            "request_id": _header(headers, "x-request-id"),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        return json.dumps(entry, ensure_ascii=False)
