from django.db.models import Exists, F, OuterRef, QuerySet

from accounts.models import ExternalApiAccount, User
from betting.models import Bet
from wallet.models import Transaction, UserBalance


def transactions_of(*, user: User, entry_type: str | None = None) -> QuerySet:
    """The user's ledger, newest first."""
    entries = Transaction.objects.filter(user=user).order_by("-id")
    if entry_type:
        entries = entries.filter(type=entry_type)
    return entries


def balances_with_discrepancy() -> QuerySet:
    """Balances whose last provider figure differs from the ledger, as
    ``manage.py reconcile`` would report them: only users with an active provider
    account and no open bet (an open bet's balance is in motion, not drifting)."""
    return (
        UserBalance.objects.filter(external_balance__isnull=False)
        .exclude(external_balance=F("balance"))
        .filter(
            Exists(
                ExternalApiAccount.objects.filter(
                    user_id=OuterRef("user_id"), is_active=True
                )
            )
        )
        .exclude(
            Exists(
                Bet.objects.filter(
                    user_id=OuterRef("user_id"), status__in=Bet.OPEN_STATUSES
                )
            )
        )
    )
