"""Writes to the wallet: balances and the ledger."""

from accounts.models import User
from wallet.models import UserBalance


def wallet_ensure(*, user: User) -> UserBalance:
    """The user's balance row, created empty on first use (one per user, enforced
    by the one-to-one column)."""
    wallet, _ = UserBalance.objects.get_or_create(user=user)
    return wallet
