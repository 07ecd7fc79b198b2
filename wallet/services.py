"""Writes to the wallet: balances and the append-only ledger."""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from betting_site.api.errors import ValidationFailed
from betting_site.money import MONEY_MAX, round_money, to_money
from wallet.models import Transaction, UserBalance

logger = logging.getLogger(__name__)


def wallet_ensure(*, user: User) -> UserBalance:
    """The user's balance row, created empty on first use (one per user, enforced
    by the one-to-one column)."""
    wallet, _ = UserBalance.objects.get_or_create(user=user)
    return wallet


def wallet_lock(*, user: User) -> UserBalance:
    """The user's balance row, locked until the end of the current transaction
    (one statement once the row exists)."""
    wallet = UserBalance.objects.select_for_update().filter(user_id=user.pk).first()
    if wallet is None:
        wallet_ensure(user=user)
        wallet = UserBalance.objects.select_for_update().get(user_id=user.pk)
    return wallet


def ledger_post(
    *,
    user: User,
    entry_type: str,
    amount: Decimal,
    bet=None,
    description: str = "",
    evidence: dict | None = None,
    actor: User | None = None,
    external_balance: Decimal | None = None,
    wallet: UserBalance | None = None,
    release_hold: Decimal | None = None,
) -> Transaction:
    """Append one entry and move the cached balance with it, under the row lock.

    ``balance_before`` is read under the lock, so entries chain in id order. The
    database refuses a second entry for the same bet event, a second initial
    balance, a broken chain and a negative balance. ``external_balance``, when the
    provider's figure is known at this moment, is stored alongside. A caller that
    already holds the row lock passes its ``wallet`` (it is updated in place), and
    ``release_hold`` lowers ``held`` in the same write.
    """
    # A caller passing its locked wallet is inside its own transaction and lets
    # any error abort it: no savepoint needed. Otherwise a savepoint, so that a
    # caller may catch the database's refusal and go on.
    with transaction.atomic(savepoint=wallet is None):
        return _ledger_post(
            user=user,
            entry_type=entry_type,
            amount=to_money(amount),
            bet=bet,
            description=description,
            evidence=evidence,
            actor=actor,
            external_balance=external_balance,
            wallet=wallet or wallet_lock(user=user),
            release_hold=release_hold,
        )


def _ledger_post(
    *,
    user: User,
    entry_type: str,
    amount: Decimal,
    bet,
    description: str,
    evidence: dict | None,
    actor: User | None,
    external_balance: Decimal | None,
    wallet: UserBalance,
    release_hold: Decimal | None,
) -> Transaction:
    if abs(wallet.balance + amount) > MONEY_MAX:  # the column would overflow
        raise ValidationFailed(
            details={"amount": [f"The balance cannot exceed {MONEY_MAX}"]}
        )
    entry = Transaction.objects.create(
        user=user,
        bet=bet,
        type=entry_type,
        amount=amount,
        balance_before=wallet.balance,
        balance_after=wallet.balance + amount,
        description=description[:500],
        evidence=evidence or {},
        created_by=actor,
    )
    wallet.balance = entry.balance_after
    fields = ["balance", "updated_at"]
    if external_balance is not None:
        wallet.external_balance = to_money(external_balance)
        wallet.last_checked_at = timezone.now()
        fields += ["external_balance", "last_checked_at"]
    if release_hold is not None:
        wallet.held = max(Decimal(0), wallet.held - release_hold)
        fields.append("held")
    wallet.save(update_fields=fields)
    _log_entry(entry)
    return entry


def _log_entry(entry: Transaction) -> None:
    logger.info(
        "Ledger %s %s for user %s: balance %s -> %s",
        entry.type,
        entry.amount,
        entry.user_id,
        entry.balance_before,
        entry.balance_after,
    )


class LedgerFastPathUnavailable(Exception):
    """``ledger_post_moving`` could not post: the caller's transaction must be
    rolled back and ``ledger_post`` used instead."""


# Moves and locks the balance row in one statement, returning the new balance; the
# hold is lowered in the same write (never below zero). Portable SQL (PostgreSQL,
# and SQLite 3.35+ for local development).
_MOVE_SQL = (
    "UPDATE user_balances SET balance = balance + %s, "
    "held = CASE WHEN held < %s THEN 0 ELSE held - %s END, updated_at = %s "
    "WHERE user_id = %s RETURNING balance"
)


def ledger_post_moving(
    *,
    user_id: int,
    entry_type: str,
    amount: Decimal,
    bet=None,
    description: str = "",
    evidence: dict | None = None,
    release_hold: Decimal | None = None,
) -> Transaction:
    """``ledger_post`` in two statements, for the bet hot path: one ``UPDATE ...
    RETURNING`` moves the balance under its row lock and the entry is chained from
    what it returns (``balance_before`` = new balance - amount, exact in decimal).

    Must run inside the caller's transaction. Raises ``LedgerFastPathUnavailable``
    when the user has no balance row or the balance would leave the column's range
    (PostgreSQL raises ``DataError`` itself): the caller rolls back and takes
    ``ledger_post``, which explains the refusal. The database's constraints (one
    entry per bet event, the chain, a non-negative balance) hold here as there.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_post_moving must run inside a transaction")
    amount = to_money(amount)
    release = to_money(release_hold) if release_hold is not None else Decimal("0")
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(_MOVE_SQL, [amount, release, release, timezone.now(), user_id])
        row = cursor.fetchone()
    if row is None:
        raise LedgerFastPathUnavailable(f"user {user_id} has no balance row")
    balance_after = round_money(row[0])  # a float on SQLite
    if abs(balance_after) > MONEY_MAX:
        raise LedgerFastPathUnavailable("the balance would leave the column's range")
    entry = Transaction.objects.create(
        user_id=user_id,
        bet=bet,
        type=entry_type,
        amount=amount,
        balance_before=balance_after - amount,
        balance_after=balance_after,
        description=description[:500],
        evidence=evidence or {},
    )
    _log_entry(entry)
    return entry


def balance_sync(*, user: User) -> tuple[UserBalance, bool]:
    """The user's balance, re-reading the provider when the last read is older than
    ``BALANCE_SYNC_TTL``. Returns the wallet and whether the provider answered (or
    was read recently). A read moves no money, so it needs no lease; it only
    records the provider's figure, never changes the ledger."""
    from accounts.selectors import account_active_for
    from provider.client import ProviderClient
    from provider.exceptions import ProviderError

    wallet = wallet_ensure(user=user)
    account = account_active_for(user=user)
    if account is None:
        return wallet, False
    fresh_after = timezone.now() - timedelta(seconds=settings.BALANCE_SYNC_TTL)
    if wallet.last_checked_at is not None and wallet.last_checked_at >= fresh_after:
        return wallet, True
    try:
        provider_balance = to_money(
            ProviderClient(account=account).balance_read().balance
        )
    except ProviderError as exc:
        logger.info("Balance of user %s not re-read: %s", user.pk, exc.code)
        return wallet, False
    UserBalance.objects.filter(pk=wallet.pk).update(
        external_balance=provider_balance, last_checked_at=timezone.now()
    )
    wallet.refresh_from_db()
    return wallet, True
