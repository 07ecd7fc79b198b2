"""The one place that writes money: ``user_balances`` and ``transactions``.

Every change of a user's balance, held stake or ledger goes through a function
here; no other module assigns ``balance`` or ``held`` or writes these tables
(``wallet/tests/test_boundaries.py`` checks it).

- ``stake_hold`` / ``stake_release``: the stake held for a bet the provider has
  not debited (invariant 3: available = balance - held never goes below zero).
- ``ledger_post``: one append-only entry and the cached balance moved with it
  (invariant 1: the balance is the sum of the entries, chained in id order).
  ``ledger_post_ctes``: the same as SQL a caller composes into one statement
  with its own rows (PostgreSQL).
- ``adjustment_book``: a signed correction, with who booked it and why
  (invariant 6).
- ``provider_balance_record``: the provider's figure, as last read; moves no
  money.

Locks: a function that changes a balance row locks it until the end of the
caller's transaction. Callers that also lock a bet lock the balance row first
(``wallet_lock``), so that no two paths wait on each other in opposite orders.
The SQL is written by hand where one statement replaces a read and a write on
the bet hot path; table and column names come from the models' ``_meta``.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from betting_site.errors import ValidationFailed
from betting_site.money import MONEY_MAX, ZERO, round_money, to_money
from betting_site.sql import quoted_column, quoted_table
from wallet.exceptions import InsufficientBalance
from wallet.models import Transaction, UserBalance

logger = logging.getLogger(__name__)


def _table() -> str:
    return connection.ops.quote_name(UserBalance._meta.db_table)


def hold_sql(*, returning: bool = False, only_if: str = "") -> str:
    """Holds a stake when the available balance covers it, locking the row: one
    ``UPDATE`` with the parameters (amount, now, user id, amount), with
    ``returning`` answering the user id of a row it held. Exposed for a caller
    that composes it with its own rows in one statement (a ``WITH`` clause);
    ``only_if``, a condition of the caller's, is checked before the row is
    touched (its lock is not taken when it fails).
    (The ``CAST``: SQLite, for development, compares a decimal parameter as text
    otherwise.)"""
    return (
        f"UPDATE {_table()} SET held = held + %s, updated_at = %s "  # noqa: S608
        "WHERE user_id = %s AND balance - held >= CAST(%s AS NUMERIC)"
        + (f" AND ({only_if})" if only_if else "")
        + (" RETURNING user_id" if returning else "")
    )


def _move_sql(*, record_provider: bool) -> str:
    """Moves the balance (never out of the column's range) and lowers the hold
    (never below zero) in one write that locks the row, returning the new
    balance. Parameters: amount, release, release, now, [provider balance, now,]
    user id, amount, the range limit."""
    recorded = (
        ", external_balance = %s, last_checked_at = %s" if record_provider else ""
    )
    return (
        f"UPDATE {_table()} SET balance = balance + %s, "  # noqa: S608
        "held = CASE WHEN held < %s THEN 0 ELSE held - %s END, "
        f"updated_at = %s{recorded} "
        "WHERE user_id = %s AND ABS(balance + %s) <= CAST(%s AS NUMERIC) "
        "RETURNING balance"
    )


# --- the balance row -------------------------------------------------------------


def wallet_ensure(*, user_id: int) -> UserBalance:
    """The user's balance row, created empty on first use (one per user, enforced
    by the one-to-one column)."""
    wallet, _ = UserBalance.objects.get_or_create(user_id=user_id)
    return wallet


def wallet_lock(*, user_id: int) -> UserBalance:
    """The user's balance row, locked until the end of the current transaction
    (one statement once the row exists)."""
    wallet = UserBalance.objects.select_for_update().filter(user_id=user_id).first()
    if wallet is None:
        wallet_ensure(user_id=user_id)
        wallet = UserBalance.objects.select_for_update().get(user_id=user_id)
    return wallet


# --- stakes ----------------------------------------------------------------------


def stake_hold(*, user_id: int, amount: Decimal) -> None:
    """Hold ``amount`` of the available balance until the bet is settled or
    released; the row stays locked until the caller's transaction ends.

    Raises ``InsufficientBalance`` (with the available amount) when the balance
    does not cover it; nothing is held then, and the row is still locked, so the
    caller can decide under the lock what the refusal means.
    """
    with connection.cursor() as cursor:
        cursor.execute(hold_sql(), [amount, timezone.now(), user_id, amount])
        if cursor.rowcount == 1:
            return
    # Not covered, or no balance row yet: decide under the row lock.
    wallet = wallet_lock(user_id=user_id)
    available = wallet.balance - wallet.held
    if available < amount:
        raise InsufficientBalance(details={"available": available, "amount": amount})
    wallet.held += amount
    wallet.save(update_fields=["held", "updated_at"])


def stake_release(*, user_id: int, amount: Decimal) -> None:
    """Give a held stake back to the available balance (never below zero held)."""
    UserBalance.objects.filter(user_id=user_id).update(
        held=_held_less(amount), updated_at=timezone.now()
    )


def _held_less(amount: Decimal) -> Case:
    return Case(When(held__lt=amount, then=Value(ZERO)), default=F("held") - amount)


# --- entries ---------------------------------------------------------------------


def ledger_post(
    *,
    user_id: int,
    entry_type: str,
    amount: Decimal | int,
    bet_id: int | None = None,
    description: str = "",
    evidence: dict[str, Any] | None = None,
    actor_id: int | None = None,
    provider_balance: Decimal | None = None,
    release_hold: Decimal | None = None,
) -> Transaction:
    """Append one entry and move the cached balance with it: two statements.

    One ``UPDATE ... RETURNING`` moves the balance under its row lock (lowering
    the hold by ``release_hold`` in the same write) and the entry is chained from
    what it returns: ``balance_before`` is the new balance less the amount, exact
    in decimal. The database refuses a second entry for the same bet event, a
    second initial balance, a broken chain and a negative balance; a balance out
    of the column's range is refused here, as ``VALIDATION_ERROR``.
    ``provider_balance``, when the provider's figure is known at this moment, is
    recorded in the same write.

    Runs in the caller's transaction without a savepoint: a refusal aborts it. A
    caller that wants to catch the refusal and go on opens a savepoint itself.
    """
    amount = to_money(amount)
    with transaction.atomic(savepoint=False):
        params = _move_params(
            user_id=user_id,
            amount=amount,
            release_hold=release_hold,
            provider_balance=provider_balance,
        )
        sql = _move_sql(record_provider=provider_balance is not None)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            if row is None:  # no balance row yet, or out of range: explain
                wallet = wallet_lock(user_id=user_id)
                if abs(wallet.balance + amount) > MONEY_MAX:
                    raise ValidationFailed(
                        details={"amount": [f"The balance cannot exceed {MONEY_MAX}"]}
                    )
                cursor.execute(sql, params)
                row = cursor.fetchone()
        balance_after = round_money(row[0])  # a float on SQLite
        entry = Transaction.objects.create(
            user_id=user_id,
            bet_id=bet_id,
            type=entry_type,
            amount=amount,
            balance_before=balance_after - amount,
            balance_after=balance_after,
            description=description[:500],
            evidence=evidence or {},
            created_by_id=actor_id,
        )
    _posted_log(entry)
    return entry


def _move_params(
    *,
    user_id: int,
    amount: Decimal,
    release_hold: Decimal | None,
    provider_balance: Decimal | None,
) -> list[Decimal | datetime | int]:
    """The parameters of ``_move_sql``, in its order."""
    release = to_money(release_hold) if release_hold is not None else ZERO
    now = timezone.now()
    recorded: list[Decimal | datetime] = (
        [] if provider_balance is None else [provider_balance, now]
    )
    return [amount, release, release, now, *recorded, user_id, amount, MONEY_MAX]


def _posted_log(entry: Transaction) -> None:
    logger.info(
        "Ledger %s %s for user %s: balance %s -> %s",
        entry.type,
        entry.amount,
        entry.user_id,
        entry.balance_before,
        entry.balance_after,
    )


# --- an entry posted inside a caller's statement (PostgreSQL) ----------------------

MOVED, ENTRY = "moved", "entry"  # the names of the two expressions
_NEW_BALANCE = f"{MOVED}.balance"  # what ``_move_sql`` returns, read from ``moved``


@dataclass(frozen=True)
class LedgerPostCtes:
    """``ledger_post`` as two common table expressions, for a caller that books
    its own rows in the same statement (``WITH {sql}, ... SELECT {returning}
    FROM entry``). On PostgreSQL only: data-modifying ``WITH`` queries.

    - ``moved``: the balance moved and its row locked, ``RETURNING balance`` (the
      new balance); no row when the balance row is missing or the move would
      leave the column's range (nothing else acts then: the caller falls back to
      ``ledger_post``, which explains or creates the row).
    - ``entry``: the entry inserted from ``moved``'s row, chained from it.

    ``sql`` is the two expressions joined by a comma, ``params`` their
    parameters in order. A caller acts only after them by naming them:
    ``EXISTS (SELECT 1 FROM entry)`` (the entry was written) or ``EXISTS (SELECT 1
    FROM moved WHERE {balance} = %s)`` (the balance is now that figure;
    ``balance`` is the new balance as ``moved`` returns it). The final ``SELECT``
    reads ``returning`` (columns of ``entry``) and hands them, in order, to
    ``posted``, which completes ``entry`` (built, not yet saved) from them."""

    sql: str
    params: list[Any]
    returning: str
    entry: Transaction
    balance: str = _NEW_BALANCE

    def posted(self, values: Sequence[Any]) -> Transaction:
        """The entry as the statement wrote it (``values``: the ``returning``
        columns of its row), a saved instance without reading it again."""
        pk, created_at, balance_before, balance_after = values
        entry = self.entry
        entry.pk = pk
        entry.created_at = created_at
        entry.balance_before = round_money(balance_before)
        entry.balance_after = round_money(balance_after)
        entry._state.adding = False
        entry._state.db = connection.alias
        _posted_log(entry)
        return entry


def ledger_post_ctes(
    *,
    user_id: int,
    entry_type: str,
    amount: Decimal | int,
    bet_id: int | None = None,
    description: str = "",
    evidence: dict[str, Any] | None = None,
    actor_id: int | None = None,
    provider_balance: Decimal | None = None,
    release_hold: Decimal | None = None,
) -> LedgerPostCtes:
    """``ledger_post`` (the same arguments, the same rules and refusals) as SQL a
    caller composes into one statement: see ``LedgerPostCtes``. The database's
    constraints (the chain, a non-negative balance, one entry per bet event) act
    on the ``INSERT`` as on any other; a refusal aborts the caller's
    transaction."""
    if connection.vendor != "postgresql":
        raise NotImplementedError("data-modifying WITH queries need PostgreSQL")
    amount = to_money(amount)
    move = _move_params(
        user_id=user_id,
        amount=amount,
        release_hold=release_hold,
        provider_balance=provider_balance,
    )
    entry = Transaction(
        user_id=user_id,
        bet_id=bet_id,
        type=entry_type,
        amount=amount,
        description=description[:500],
        evidence=evidence or {},
        created_by_id=actor_id,
    )
    # The chain comes from the moved row; every other value is Django's own
    # (defaults, auto_now_add, the JSON adaptation).
    chained = {
        "balance_before": (f"{_NEW_BALANCE} - CAST(%s AS NUMERIC)", [amount]),
        "balance_after": (_NEW_BALANCE, []),
    }
    columns: list[str] = []
    values: list[str] = []
    insert_params: list[Any] = []
    for field in Transaction._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quoted_column(Transaction, field.name))
        if field.name in chained:
            expression, field_params = chained[field.name]
            values.append(expression)
            insert_params.extend(field_params)
        else:
            values.append("%s")
            insert_params.append(
                field.get_db_prep_save(field.pre_save(entry, True), connection)
            )
    returned = [
        quoted_column(Transaction, name)
        for name in ("pk", "created_at", "balance_before", "balance_after")
    ]
    moved_sql = _move_sql(record_provider=provider_balance is not None)
    entry_sql = (
        f"INSERT INTO {quoted_table(Transaction)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM {MOVED} "
        f"RETURNING {', '.join(returned)}"
    )
    return LedgerPostCtes(
        sql=f"{MOVED} AS ({moved_sql}), {ENTRY} AS ({entry_sql})",
        params=[*move, *insert_params],
        returning=", ".join(f"{ENTRY}.{column}" for column in returned),
        entry=entry,
    )


def adjustment_book(
    *,
    user_id: int,
    amount: Decimal,
    reason: str,
    evidence: dict[str, Any],
    actor_id: int | None = None,
    provider_balance: Decimal | None = None,
) -> Transaction:
    """Book a signed ``adjustment``: ``reason`` says why (the entry's
    description), ``actor_id`` is the staff member who booked it, or None for an
    automatic one, whose ``evidence["by"]`` names the process.

    Refused when it would leave the balance negative, out of range or below the
    stakes held (the available balance never goes below zero).
    """
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required"]})
    if "kind" not in evidence:
        raise ValueError("an adjustment's evidence says what kind it is")
    amount = to_money(amount)
    if amount == 0:
        raise ValidationFailed(details={"amount": ["The amount cannot be zero"]})
    with transaction.atomic(savepoint=False):
        wallet = wallet_lock(user_id=user_id)
        _check_adjusted_balance(wallet, amount)
        return ledger_post(
            user_id=user_id,
            entry_type=Transaction.Type.ADJUSTMENT,
            amount=amount,
            description=reason,
            evidence=evidence,
            actor_id=actor_id,
            provider_balance=provider_balance,
        )


def _check_adjusted_balance(wallet: UserBalance, amount: Decimal) -> None:
    new_balance = wallet.balance + amount
    if new_balance < 0:
        raise ValidationFailed(
            f"The balance would become {new_balance}: it cannot be negative",
            details={
                "amount": [
                    f"The balance {wallet.balance} cannot go below 0 "
                    f"(it would be {new_balance})"
                ]
            },
        )
    if new_balance > MONEY_MAX:
        raise ValidationFailed(
            f"The balance would become {new_balance}, more than the ledger holds",
            details={"amount": [f"The balance cannot exceed {MONEY_MAX}"]},
        )
    if new_balance < wallet.held:
        raise ValidationFailed(
            f"The balance would become {new_balance}, below the held stakes "
            f"{wallet.held}",
            details={
                "amount": [
                    f"The balance cannot go below the held stakes {wallet.held} "
                    f"(it would be {new_balance})"
                ]
            },
        )


# --- the provider's figure ---------------------------------------------------------


def provider_balance_record(
    *, user_id: int, provider_balance: Decimal, only_if_equal: bool = False
) -> bool:
    """Record the provider's balance as last read (moves no money). With
    ``only_if_equal`` only when it equals the ledger's, in the same statement.
    Returns whether a row was written."""
    now = timezone.now()
    rows = UserBalance.objects.filter(user_id=user_id)
    if only_if_equal:
        rows = rows.filter(balance=provider_balance)
    return bool(
        rows.update(
            external_balance=to_money(provider_balance),
            last_checked_at=now,
            updated_at=now,
        )
    )
