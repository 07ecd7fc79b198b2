from django.db.models import QuerySet

from accounts.exceptions import AccountNotLinked
from accounts.models import ExternalApiAccount, User
from accounts.selectors import account_active_for
from betting.models import Bet
from betting_site.api.errors import NotFound


def account_for_betting(*, user: User) -> ExternalApiAccount:
    """The user's active provider account, or 403 ACCOUNT_NOT_LINKED."""
    account = account_active_for(user=user)
    if account is None:
        raise AccountNotLinked()
    return account


def bets_of(*, user: User, status: str | None = None) -> QuerySet[Bet]:
    """The user's bets, newest first."""
    bets = Bet.objects.filter(user=user).order_by("-id")
    if status:
        bets = bets.filter(status=status)
    return bets


def bet_of(*, user: User, bet_id: int) -> Bet:
    """One of the user's bets; someone else's is as missing as a missing one."""
    bet = Bet.objects.filter(user=user, pk=bet_id).first()
    if bet is None:
        raise NotFound(f"Bet {bet_id} not found")
    return bet
