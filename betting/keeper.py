"""A process's keeper: it keeps its leases alive and pays what it owes the database.

One daemon thread per process (started with the first lease it holds, again
after a fork), waking every ``LEASE_KEEPER_INTERVAL`` (1 s):

- **Leases held.** Every lease this process holds for longer than a beat gets
  its ``alive_until`` moved to ``PROVIDER_LEASE_ALIVE`` (4 s) from now. While the
  process lives, its leases stay alive, through provider calls of any length;
  once it dies (SIGKILL, OOM, a wedged worker killed by gunicorn) nobody moves
  them and they may be taken ``PROVIDER_LEASE_ALIVE`` later, not
  ``PROVIDER_LEASE_TTL`` (60 s) later. A bet of a few hundred milliseconds is
  never written by the keeper: its claim already wrote ``alive_until``.
- **Debts.** Writes that failed because the database was unreachable and that
  must still happen once it answers: the release of a lease whose holder is
  done, a key to unlock. Each is retried every beat until it succeeds, so an
  alive holder frees what it held as soon as the database is back.

Why a thread and rows, not PostgreSQL session advisory locks (the issue asked
to evaluate them): see docs/decisions.md. In short: rows work behind PgBouncer in
transaction pooling and on SQLite, stay transactional (a lease is released in
the same statement that books the result), and cost the hot path nothing.

``beat()`` is one round; the thread only calls it in a loop. Tests call it
directly (``LEASE_KEEPER_THREAD`` off).
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.db import connections

from betting_site.database import (
    first_line,
    is_unreachable,
    replace_broken_connections,
)

logger = logging.getLogger(__name__)


class Kept(Protocol):
    """What the keeper needs of a lease (``betting.lease.Lease``)."""

    user_id: int
    holder: str
    alive_written: float  # time.monotonic() of the last write of alive_until
    lost: bool

    def keep_alive(self) -> bool: ...  # True while the row is still ours


@dataclass(eq=False)  # each debt is itself: removed by identity
class _Debt:
    what: str
    pay: Callable[[], None]
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0


_lock = threading.Lock()
_held: dict[int, Kept] = {}  # id(lease) -> lease
_debts: list[_Debt] = []
_thread_pid: int | None = None
_wake = threading.Event()


def hold(lease: Kept) -> None:
    """Keep ``lease`` alive while this process holds it."""
    with _lock:
        _held[id(lease)] = lease
    _ensure_thread()


def drop(lease: Kept) -> None:
    with _lock:
        _held.pop(id(lease), None)


def owe(what: str, pay: Callable[[], None]) -> None:
    """``pay`` failed because the database was unreachable: retry it every beat
    until it succeeds. ``pay`` must be idempotent."""
    logger.warning("Owed to the database, retried once it answers: %s", what)
    with _lock:
        _debts.append(_Debt(what=what, pay=pay))
    _ensure_thread()
    _wake.set()


def owed() -> list[str]:
    with _lock:
        return [debt.what for debt in _debts]


def held_count() -> int:
    with _lock:
        return len(_held)


def beat() -> None:
    """One round: pay the debts, then keep the leases held for more than a beat
    alive. Never raises."""
    _pay_debts()
    _keep_alive()


def _pay_debts() -> None:
    with _lock:
        debts = list(_debts)
    for debt in debts:
        debt.attempts += 1
        try:
            debt.pay()
        except Exception as exc:
            if is_unreachable(exc):
                continue  # still down: next beat
            logger.exception("Dropped a debt to the database: %s", debt.what)
        else:
            logger.info(
                "Paid to the database after %.1f s: %s",
                time.monotonic() - debt.since,
                debt.what,
            )
        with _lock:
            if debt in _debts:
                _debts.remove(debt)


def _keep_alive() -> None:
    interval = settings.LEASE_KEEPER_INTERVAL
    now = time.monotonic()
    with _lock:
        due = [
            lease for lease in _held.values() if now - lease.alive_written >= interval
        ]
    for lease in due:
        try:
            if not lease.keep_alive():
                lease.lost = True
                drop(lease)
                logger.error(
                    "The provider lease of user %s was taken while held", lease.user_id
                )
        except Exception as exc:
            # Unreachable: the lease cannot be taken meanwhile either (see
            # lease.py on restarts); anything else is logged and tried next beat.
            log = logger.warning if is_unreachable(exc) else logger.exception
            log(
                "Could not keep the provider lease of user %s alive: %s",
                lease.user_id,
                first_line(exc),
            )


def _ensure_thread() -> None:
    global _thread_pid
    if not settings.LEASE_KEEPER_THREAD:
        return
    pid = os.getpid()
    if _thread_pid == pid:
        return
    with _lock:
        if _thread_pid == pid:
            return
        _thread_pid = pid  # a forked child starts its own
        thread = threading.Thread(target=_run, name="lease-keeper", daemon=True)
        thread.start()


def reset() -> None:
    """Forget every lease and debt (tests, between two)."""
    with _lock:
        _held.clear()
        _debts.clear()


def _run() -> None:
    global _thread_pid
    interval = settings.LEASE_KEEPER_INTERVAL
    while True:
        _wake.wait(interval)
        _wake.clear()
        if not settings.LEASE_KEEPER_THREAD:  # switched off (tests): stop
            with _lock:
                _thread_pid = None
            connections.close_all()
            return
        # A connection the database dropped (a restart) is replaced, not reused.
        replace_broken_connections()
        try:
            beat()
        finally:
            with _lock:
                idle = not _held and not _debts
            if idle:
                # This thread's own connection: not kept open while there is
                # nothing to keep.
                connections.close_all()
