"""Writes to the wallet: balances and the append-only ledger."""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from betting_site.api.errors import ValidationFailed
from betting_site.money import MONEY_MAX, to_money
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
    logger.info(
        "Ledger %s %s for user %s: balance %s -> %s",
        entry_type,
        amount,
        user.pk,
        entry.balance_before,
        entry.balance_after,
    )
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
