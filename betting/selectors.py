from datetime import UTC, datetime
from decimal import Decimal
from typing import TypedDict

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncHour

from accounts.exceptions import AccountNotLinked
from accounts.models import ExternalApiAccount, User
from accounts.selectors import account_active_for
from betting.models import Bet
from betting_site.errors import NotFound
from wallet.models import UserBalance


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


# --- back-office figures --------------------------------------------------------


class HourlyBets(TypedDict):
    """One row of ``bets_per_hour``."""

    hour: datetime
    count: int
    today: int
    today_volume: Decimal | None  # None: no bet since today_start in that hour


def bets_per_hour(*, since: datetime, today_start: datetime) -> list[HourlyBets]:
    """Bets created since ``since`` per hour (UTC hour buckets with at least one
    bet, oldest first): ``hour``, ``count``, and how many of them, with what stake
    volume, were created since ``today_start`` (``today``, ``today_volume``)."""
    created_today = Q(created_at__gte=today_start)
    return list(
        Bet.objects.filter(created_at__gte=since)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour")
        .annotate(
            count=Count("id"),
            today=Count("id", filter=created_today),
            today_volume=Sum("amount", filter=created_today),
        )
        .order_by("hour")
    )


def bets_settled_since(*, since: datetime) -> dict[str, int]:
    """How many bets were settled (completed) since then, and how many of them
    won (a payout above 0)."""
    return Bet.objects.filter(
        status=Bet.Status.COMPLETED, completed_at__gte=since
    ).aggregate(
        settled=Count("id"),
        won=Count("id", filter=Q(win_amount__gt=0)),
    )


def open_bet_counts() -> dict[str, int]:
    """How many bets are ``pending`` and ``unknown`` right now, over every user
    (one aggregate query on the status index; metrics and the dashboard)."""
    return Bet.objects.filter(status__in=Bet.OPEN_STATUSES).aggregate(
        pending=Count("id", filter=Q(status=Bet.Status.PENDING)),
        unknown=Count("id", filter=Q(status=Bet.Status.UNKNOWN)),
    )


def balances_with_discrepancy() -> QuerySet[UserBalance]:
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
