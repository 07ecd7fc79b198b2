from django.db.models import QuerySet

from accounts.models import User
from wallet.models import Transaction


def transactions_of(
    *, user: User, entry_type: str | None = None
) -> QuerySet[Transaction]:
    """The user's ledger, newest first."""
    entries = Transaction.objects.filter(user=user).order_by("-id")
    if entry_type:
        entries = entries.filter(type=entry_type)
    return entries
