"""The database unreachable: what a request, a page and a command answer then.

While PostgreSQL is down (stopped, restarting, crashed, or the network to it is
cut) every statement raises one of ``UNREACHABLE``. That is no bug of ours, so it
is never a 500:

- a DRF view's error becomes 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``
  (``betting_site.api.exceptions``), with what the request had committed before
  the database went away (``remember_committed``: a bet's last committed state,
  as ``details.bet``);
- an error from anywhere else (a middleware, the admin) is marked on the request
  when Django turns it into a 500 (``got_request_exception``), and
  ``DatabaseUnavailableMiddleware`` answers 503 in its place: the envelope under
  ``/api/``, a plain page elsewhere;
- ``manage.py`` prints one line naming the database and exits 1
  (``describe_database``).

Other database errors (an integrity or programming error) are bugs and stay 500.
"""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

from betting_site.errors import ApplicationError

# psycopg's connection refused / terminated / lost and server-side aborts (a
# restart's "terminating connection due to administrator command") all land here.
UNREACHABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable(ApplicationError):
    """The database did not answer: nothing this request needs can be done now."""

    code = "SERVICE_UNAVAILABLE"
    http_status = 503
    message = "The database is unreachable; try again in a few seconds"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(
            message,
            details=details if details is not None else committed_details(),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def is_unreachable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the database is
    unreachable."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (*UNREACHABLE, DatabaseUnavailable)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# --- What a request committed before the database went away -----------------------

_committed: ContextVar[Callable[[], dict[str, Any]] | None] = ContextVar(
    "committed", default=None
)


@contextmanager
def committed_scope() -> Iterator[None]:
    """A request's scope for ``remember_committed`` (the API log middleware opens
    it around every ``/api/`` request)."""
    token = _committed.set(None)
    try:
        yield
    finally:
        _committed.reset(token)


def remember_committed(describe: Callable[[], dict[str, Any]]) -> None:
    """Record what the request has committed so far (called after each commit a
    client must hear about: a bet recorded, its provider id saved). ``describe``
    is only called if a 503 has to say it, so it costs nothing otherwise."""
    _committed.set(describe)


def committed_details() -> dict[str, Any] | None:
    describe = _committed.get()
    return describe() if describe is not None else None


# --- Errors Django turned into a 500 -----------------------------------------------

_MARK = "_database_unreachable"


def mark_if_unreachable(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """``got_request_exception`` receiver: Django sends it inside its ``except``
    block, so the exception is the one being handled."""
    if request is not None and is_unreachable(sys.exc_info()[1]):
        setattr(request, _MARK, True)


def marked_unreachable(request: Any) -> bool:
    return bool(getattr(request, _MARK, False))


# --- Operator commands ------------------------------------------------------------


def describe_database(alias: str = DEFAULT_DB_ALIAS) -> str:
    """``PostgreSQL database 'betting' at 127.0.0.1:5432``: no user, no password."""
    return describe_config(settings.DATABASES[alias])


def describe_config(config: dict[str, Any]) -> str:
    engine = config.get("ENGINE", "")
    if "postgresql" not in engine:
        return f"{engine.rsplit('.', 1)[-1]} database {str(config.get('NAME'))!r}"
    where = config.get("HOST") or "localhost"
    if config.get("PORT"):
        where = f"{where}:{config['PORT']}"
    return f"PostgreSQL database {config.get('NAME')!r} at {where}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def replace_broken_connections() -> None:
    """Django's between-requests cleanup, for a long-lived loop outside requests
    (the keeper thread, the scheduler): a connection the database dropped (a
    restart) is closed, so the next statement opens a new one instead of failing
    on the dead one forever. A connection inside a transaction is left alone."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()
