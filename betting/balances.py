"""The player's balance as ``GET /api/balance`` answers it."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from accounts.selectors import account_active_for
from betting_site.money import to_money
from provider.client import ProviderClient
from provider.exceptions import ProviderError
from wallet.ledger import provider_balance_record, wallet_ensure
from wallet.models import UserBalance

logger = logging.getLogger(__name__)


def balance_sync(*, user: User) -> tuple[UserBalance, bool]:
    """The user's balance, re-reading the provider when the last read is older than
    ``BALANCE_SYNC_TTL``. Returns the wallet and whether the provider answered (or
    was read recently). A read moves no money, so it needs no lease; it only
    records the provider's figure, never changes the ledger."""
    wallet = wallet_ensure(user_id=user.pk)
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
    provider_balance_record(user_id=user.pk, provider_balance=provider_balance)
    wallet.refresh_from_db()
    return wallet, True
