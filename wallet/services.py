"""Writes to the wallet: balances and the append-only ledger."""

import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from betting_site.money import to_money
from wallet.models import Transaction, UserBalance

logger = logging.getLogger(__name__)


def wallet_ensure(*, user: User) -> UserBalance:
    """The user's balance row, created empty on first use (one per user, enforced
    by the one-to-one column)."""
    wallet, _ = UserBalance.objects.get_or_create(user=user)
    return wallet


def wallet_lock(*, user: User) -> UserBalance:
    """The user's balance row, locked until the end of the current transaction."""
    wallet_ensure(user=user)
    return UserBalance.objects.select_for_update().get(user=user)


@transaction.atomic
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
) -> Transaction:
    """Append one entry and move the cached balance with it, under the row lock.

    ``balance_before`` is read under the lock, so entries chain in id order. The
    database refuses a second entry for the same bet event, a second initial
    balance, a broken chain and a negative balance. ``external_balance``, when the
    provider's figure is known at this moment, is stored alongside.
    """
    amount = to_money(amount)
    wallet = wallet_lock(user=user)
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
