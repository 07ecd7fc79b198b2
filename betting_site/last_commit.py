"""A request's last commit: its last writes and the rows it writes about itself.

A bet's request ends with the result booked (the entry, the balance, the bet, the
lease released), then the key's stored answer and the API log row. Each of those
was a commit of its own; PostgreSQL pays for commits (a WAL flush each) more than
for statements. Here they share one:

- ``request_last_commit()`` wraps a request (``InboundApiLogMiddleware`` opens it
  around every ``/api/`` request, outside the API log's batch).
- ``last_transaction()`` opens the transaction of a service's last writes. Inside
  ``request_last_commit`` it is left open when its block ends well: what the
  request writes after it (the key's stored answer, the API log rows) joins it,
  and ``request_last_commit`` commits it when the request is done. Elsewhere
  (commands, the admin, the scheduler, a caller's own transaction) it is an
  ordinary ``transaction.atomic()``.
- ``commit_before_call()``: the state is committed before each provider call.
  The provider client calls it, so a transaction left open is committed before
  anything is sent, whoever sends it.

If the last commit fails (the database went away), ``request_last_commit`` raises
``LastCommitFailed`` and the middleware answers 503 ``SERVICE_UNAVAILABLE``
instead of the response that described the lost writes. Nothing is lost that
was promised: the bet was committed, in doubt, before ``POST /win``; its result
was not booked and its lease expires, so the resolution rules finish it, as
after a crash at the same point.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.transaction import Atomic

from betting_site.database import DatabaseUnavailable

logger = logging.getLogger(__name__)


class LastCommitFailed(DatabaseUnavailable):
    """The request's last transaction could not be committed: its writes are lost
    (the bet they described is left for the resolution rules; ``details.bet`` is
    its state as last committed)."""

    message = (
        "The database did not save the end of this request; any bet it placed is "
        "recorded and will be resolved: list your bets to see it"
    )


@dataclass
class _Request:
    # Atomic blocks already open when the request began (a test's transaction):
    # a last transaction is left open only directly inside them.
    depth: int
    open: Atomic | None = None
    # Run if the last commit fails (``if_lost``).
    on_lost: list[Callable[[], None]] = field(default_factory=list)


_request: ContextVar[_Request | None] = ContextVar("last_commit", default=None)


def _depth() -> int:
    return len(connections[DEFAULT_DB_ALIAS].atomic_blocks)


@contextmanager
def request_last_commit() -> Iterator[None]:
    """Commit the transaction a service left open, once the request is done (also
    when it ends with an exception: the writes it holds were completed). Raises
    ``LastCommitFailed`` when that commit fails."""
    if _request.get() is not None:  # nested: the outermost one commits
        yield
        return
    state = _Request(depth=_depth())
    token = _request.set(state)
    try:
        yield
    finally:
        _request.reset(token)
        if state.open is not None:
            _close(state.open, state.on_lost)


def _close(atomic: Atomic, on_lost: list[Callable[[], None]]) -> None:
    try:
        # Commits, or rolls back if a statement inside failed (needs_rollback).
        atomic.__exit__(None, None, None)
    except DatabaseError as exc:
        logger.error("The request's last commit failed: its writes are lost: %s", exc)
        for callback in on_lost:
            try:
                callback()
            except Exception:
                logger.exception("A callback for the lost last commit failed")
        raise LastCommitFailed() from exc


def if_lost(callback: Callable[[], None]) -> None:
    """Run ``callback`` if the open last transaction fails to commit (what was
    just written into it is then lost and must be made good another way).
    Nothing is registered when no last transaction is open."""
    state = _request.get()
    if state is not None and state.open is not None:
        state.on_lost.append(callback)


def pending() -> bool:
    """Whether a last transaction is open, waiting for the end of the request."""
    state = _request.get()
    return state is not None and state.open is not None


@contextmanager
def last_transaction() -> Iterator[None]:
    """The transaction of a service's last writes in this request (see the module).

    The block's writes are committed by the end of the request, not by the end of
    the block, when it runs directly inside ``request_last_commit`` (no caller's
    transaction around it); a block that raises is rolled back at once, as an
    ``atomic`` block would be."""
    state = _request.get()
    if state is None or state.open is not None or _depth() != state.depth:
        with transaction.atomic():
            yield
        return
    atomic = transaction.atomic()
    atomic.__enter__()
    try:
        yield
    except BaseException as exc:
        atomic.__exit__(type(exc), exc, exc.__traceback__)
        raise
    state.open = atomic


def commit_before_call() -> None:
    """Commit the open last transaction now: nothing is sent to the provider while
    a write that precedes it is uncommitted. Called by the provider client."""
    state = _request.get()
    if state is None or state.open is None:
        return
    if _depth() != state.depth + 1:
        # A block opened inside the last transaction is still open: a provider
        # call from inside a transaction is a bug wherever it happens.
        raise RuntimeError("a provider call inside an open transaction")
    atomic, state.open = state.open, None
    on_lost, state.on_lost = state.on_lost, []
    _close(atomic, on_lost)
