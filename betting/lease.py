"""The per-user provider lease: one provider operation of a user at a time.

Any change of a user's provider balance must be attributable to the one operation
in flight, across worker processes and machines. A process-local lock cannot do
that and a row lock cannot be held over a network call, so the lease is an expiring
row claimed by one conditional upsert. It is renewed before a provider call once a
sixth of its TTL has passed since it was claimed or last renewed, so at least five
sixths of the TTL remain for the call (the default 60 s outlives the client's worst
case of three 13 s attempts).

A holder that dies must not block its user for the TTL. Its process's keeper
thread (``betting.keeper``) moves the lease's ``alive_until`` forward every
second while it is held; a lease whose ``alive_until`` has passed (its holder
stopped showing life ``PROVIDER_LEASE_ALIVE``, 4 s, ago) may be taken like an
expired one. Two guards keep a living holder's lease from being taken:

- before each provider call the holder checks it still has at least half of
  ``PROVIDER_LEASE_ALIVE`` left, and writes it itself if the keeper is late, so
  it never sends a call while its lease could be taken;
- on PostgreSQL, no lease is taken for being past ``alive_until`` in the first
  ``PROVIDER_LEASE_ALIVE`` seconds after the server started: a restart stopped
  every keeper, and each gets that long to show life again.

A holder that cannot release its lease because the database is unreachable
owes the release to the keeper, which frees it as soon as the database answers.
"""

import functools
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from betting import keeper
from betting.exceptions import BetInProgress
from betting.models import ProviderLease
from betting_site.database import UNREACHABLE
from betting_site.sql import quoted_column, quoted_table

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


class LeaseLost(Exception):
    """The lease expired and another holder took it: stop before the next call."""


class Lease:
    def __init__(self, *, user_id: int, holder: str) -> None:
        self.user_id = user_id
        self.holder = holder
        self._renewed_at = time.monotonic()
        # When alive_until was last written (claim, renew, keeper) and whether the
        # keeper found the row taken: read and written by the keeper thread too.
        self.alive_written = self._renewed_at
        self.lost = False
        self._released = False

    def renew(self, *, force: bool = False) -> None:
        """Extend the lease before a provider call; LeaseLost if it was taken.

        A lease claimed or renewed less than a sixth of its TTL ago, and shown
        alive less than half of ``PROVIDER_LEASE_ALIVE`` ago (the keeper does it
        every second), still has most of both left and cannot have been taken, so
        it is not written again: a bet's provider calls usually cost no renewal
        at all."""
        if self.lost:
            raise LeaseLost(f"the provider lease of user {self.user_id} was lost")
        now = time.monotonic()
        if (
            not force
            and now - self._renewed_at < settings.PROVIDER_LEASE_TTL / 6
            and now - self.alive_written < settings.PROVIDER_LEASE_ALIVE / 2
        ):
            return
        updated = ProviderLease.objects.filter(
            user_id=self.user_id, holder=self.holder
        ).update(expires_at=_expiry(), alive_until=_alive_until())
        if not updated:
            self.lost = True
            raise LeaseLost(f"the provider lease of user {self.user_id} was lost")
        self._renewed_at = self.alive_written = now

    def keep_alive(self) -> bool:
        """The keeper's write: ``alive_until`` moved on; False if it was taken."""
        written = time.monotonic()
        updated = ProviderLease.objects.filter(
            user_id=self.user_id, holder=self.holder
        ).update(alive_until=_alive_until())
        if updated:
            self.alive_written = written
        return bool(updated)

    def release(self) -> None:
        """Free the lease (once: the holder's last write may have freed it).

        The database unreachable: the release is owed to the keeper, which frees
        the lease as soon as the database answers (meanwhile nobody else can
        take it either)."""
        if self._released:
            return
        self._released = True
        keeper.drop(self)
        try:
            self.release_in_transaction()
        except UNREACHABLE:
            keeper.owe(
                f"release the provider lease of user {self.user_id}",
                self._release_now,
            )

    def _release_now(self) -> None:
        with transaction.atomic():
            self.release_in_transaction()

    def release_in_transaction(self) -> None:
        """Free the lease inside the caller's transaction, so that it goes with
        that transaction's last write (one commit less). The caller calls
        ``released`` once the transaction has committed; if it rolls back, the
        lease is still held and ``release`` frees it as usual."""
        ProviderLease.objects.filter(user_id=self.user_id, holder=self.holder).update(
            holder="", expires_at=None, operation=""
        )

    def release_sql(self) -> tuple[str, list[str | int]]:
        """``release_in_transaction`` as SQL and its parameters, for a caller that
        composes it into its own statement (adding conditions with ``AND``); the
        caller calls ``released`` once that statement's transaction commits."""
        holder = quoted_column(ProviderLease, "holder")
        sql = (
            f"UPDATE {quoted_table(ProviderLease)} SET {holder} = '', "  # noqa: S608
            f"{quoted_column(ProviderLease, 'expires_at')} = NULL, "
            f"{quoted_column(ProviderLease, 'operation')} = '' "
            f"WHERE {quoted_column(ProviderLease, 'user')} = %s AND {holder} = %s"
        )
        return sql, [self.user_id, self.holder]

    def released(self) -> None:
        self._released = True
        keeper.drop(self)


def _expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.PROVIDER_LEASE_TTL)


def _alive_until() -> datetime:
    return timezone.now() + timedelta(seconds=settings.PROVIDER_LEASE_ALIVE)


# Free, expired, or its holder dead. On PostgreSQL "dead" also needs the server to
# have run for PROVIDER_LEASE_ALIVE: after a restart, keepers get that long to
# show life again (see the module). The first test is the usual one (a free
# lease), so the others are rarely evaluated.
_CLAIM_SQL = """
    INSERT INTO {table} (user_id, holder, expires_at, alive_until, operation)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (user_id) DO UPDATE
    SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
        alive_until = EXCLUDED.alive_until, operation = EXCLUDED.operation
    WHERE {table}.holder = '' OR {table}.expires_at IS NULL
       OR {table}.expires_at < %s
       OR ({table}.alive_until < %s{restart_guard})
    RETURNING holder
"""
_RESTART_GUARD = " AND pg_postmaster_start_time() < %s"


def lease_claim_statement(
    *, user_id: int, operation: str
) -> tuple[str, list[Any], Lease]:
    """The claim as SQL, its parameters, and the lease it makes if it answers a
    row: for ``lease_try_claim`` and for a caller that composes it with its own
    rows in one statement (a ``WITH`` clause)."""
    holder = uuid.uuid4().hex
    adapt = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    alive = timedelta(seconds=settings.PROVIDER_LEASE_ALIVE)
    params: list[Any] = [
        user_id,
        holder,
        adapt(now + timedelta(seconds=settings.PROVIDER_LEASE_TTL)),
        adapt(now + alive),
        operation[:100],
        adapt(now),
        adapt(now),
    ]
    guarded = connection.vendor == "postgresql"
    if guarded:
        params.append(adapt(now - alive))
    lease = Lease(user_id=user_id, holder=holder)
    return _claim_sql(guarded), params, lease


@functools.cache
def _claim_sql(guarded: bool) -> str:
    table = connection.ops.quote_name(ProviderLease._meta.db_table)
    return _CLAIM_SQL.format(
        table=table, restart_guard=_RESTART_GUARD if guarded else ""
    )


def lease_try_claim(*, user_id: int, operation: str) -> Lease | None:
    """Claim the user's lease if it is free or expired; None if someone holds it.

    One statement: an upsert whose update only applies to a free or expired lease
    (PostgreSQL and SQLite both speak ``ON CONFLICT ... DO UPDATE ... WHERE``)."""
    sql, params, lease = lease_claim_statement(user_id=user_id, operation=operation)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return lease if row else None


def lease_is_held(*, user_id: int) -> bool:
    """Whether someone holds the user's lease and may still be using it: claimed,
    not expired, its holder alive. (A read: the answer may change at once.)"""
    now = timezone.now()
    row = (
        ProviderLease.objects.filter(user_id=user_id)
        .values_list("holder", "expires_at", "alive_until")
        .first()
    )
    if row is None:
        return False
    holder, expires_at, alive_until = row
    return bool(
        holder
        and expires_at is not None
        and expires_at > now
        and (alive_until is None or alive_until > now)
    )


@contextmanager
def provider_lease(
    *, user_id: int, operation: str, wait: float | None = None
) -> Iterator[Lease]:
    """Hold the user's lease for the block, waiting up to ``wait`` seconds
    (``BET_LOCK_WAIT`` by default) before 409 ``BET_IN_PROGRESS``."""
    wait = settings.BET_LOCK_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        lease = lease_try_claim(user_id=user_id, operation=operation)
        if lease is not None:
            break
        if time.monotonic() >= deadline:
            raise BetInProgress(retry_after=1)
        time.sleep(_POLL_SECONDS)
    with lease_held(lease):
        yield lease


@contextmanager
def lease_held(lease: Lease) -> Iterator[Lease]:
    """Hold a lease already claimed (``lease_try_claim``, committed) for the
    block, kept alive by this process's keeper; released at its end unless its
    holder's last write released it."""
    keeper.hold(lease)
    try:
        yield lease
    finally:
        lease.release()
