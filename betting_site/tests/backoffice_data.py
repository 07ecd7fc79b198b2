"""A small, known back-office data set: bets, balances and API log rows at fixed
times relative to ``now`` (the dashboard and browser tests share it)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from accounts.models import User
from accounts.tests.factories import ExternalApiAccountFactory
from auditlog.models import ApiLog
from betting.models import Bet
from betting.tests.factories import BetFactory
from wallet.models import UserBalance
from wallet.tests.factories import fund

START = Decimal("100")


@dataclass
class BackofficeData:
    now: datetime
    players: dict[str, User]
    bets: dict[str, Bet]
    logs: dict[str, ApiLog]


def at(now: datetime, *, days: int = 0, hours: int = 0, minutes: int = 0):
    """``now`` moved back to that day and time of day (``days`` before today)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=days) + timedelta(hours=hours, minutes=minutes)


def player(username: str) -> User:
    # No usable password: players never log in here, and hashing one is slow.
    user = User.objects.create_user(username=username, email=f"{username}@x.test")
    ExternalApiAccountFactory(user=user)
    fund(user, START)
    return user


def bet(
    user: User,
    *,
    amount: str,
    created_at: datetime,
    status: str = "completed",
    win: str | None = None,
    completed_at: datetime | None = None,
    external_bet_id: str | None = None,
) -> Bet:
    # An open bet holds its stake (carol's and dave's); no entries are posted.
    row = BetFactory(
        account=user.external_accounts.get(is_active=True),
        amount=Decimal(amount),
        status=status,
        win_amount=None if win is None else Decimal(win),
        completed_at=completed_at,
        external_bet_id=external_bet_id,
    )
    Bet.objects.filter(pk=row.pk).update(created_at=created_at)
    row.refresh_from_db()
    return row


def provider_call(
    *,
    created_at: datetime,
    duration_ms: int,
    outcome: str = "ok",
    status_code: int | None = 200,
    direction: str = "outbound",
    endpoint: str = "/balance",
) -> ApiLog:
    row = ApiLog.objects.create(
        direction=direction,
        endpoint=endpoint,
        method="POST",
        status_code=status_code,
        duration_ms=duration_ms,
        outcome=outcome if direction == "outbound" else "",
        request_body={"user_id": "5001", "signature": "[redacted]"},
        response_body={"balance": 100},
    )
    ApiLog.objects.filter(pk=row.pk).update(created_at=created_at)
    row.refresh_from_db()
    return row


def make_backoffice_data(now: datetime) -> BackofficeData:
    """For a ``now`` between 11:00 and 23:00 UTC: today 3 bets placed (3 + 2 +
    1.50), 3 settled of which 2 won; 1 pending and 1 unknown bet; one
    balance whose provider figure differs from the ledger (and one that differs
    but has an open bet, so it is not a discrepancy). Provider calls: 5 in the last
    hour (1 failed), 7 in the last 24 hours (2 failed)."""
    names = ("alice", "bob", "carol", "dave", "erin")
    players = {name: player(name) for name in names}
    alice, bob, carol, dave = (players[name] for name in names[:4])
    bets = {
        "won_today": bet(
            alice,
            amount="3",
            created_at=at(now, hours=9, minutes=10),
            win="6",
            completed_at=at(now, hours=9, minutes=11),
            external_bet_id="ext-1",
        ),
        "lost_today": bet(
            alice,
            amount="2",
            created_at=at(now, hours=8, minutes=5),
            win="0",
            completed_at=at(now, hours=8, minutes=6),
            external_bet_id="ext-2",
        ),
        "won_from_yesterday": bet(
            bob,
            amount="4",
            created_at=at(now, days=1, hours=23, minutes=30),
            win="8",
            completed_at=at(now, minutes=10),
            external_bet_id="ext-3",
        ),
        "old": bet(
            bob,
            amount="5",
            created_at=at(now, days=2, hours=12),
            win="10",
            completed_at=at(now, days=2, hours=12, minutes=1),
            external_bet_id="ext-4",
        ),
        "pending": bet(
            carol,
            amount="1.50",
            created_at=at(now, hours=now.hour, minutes=0),
            status="pending",
            external_bet_id="ext-5",
        ),
        "unknown": bet(
            dave,
            amount="2",
            # Yesterday, within the last 24 hours, whatever the time of day
            # (20 hours ago alone is today after 20:00 UTC).
            created_at=min(now - timedelta(hours=20), at(now) - timedelta(minutes=1)),
            status="unknown",
        ),
    }
    # The wallets: alice's provider figure differs (a discrepancy), carol's too
    # but she has an open bet, bob's matches, dave's and erin's were never read.
    UserBalance.objects.filter(user=alice).update(external_balance=START + 5)
    UserBalance.objects.filter(user=carol).update(external_balance=START - 1)
    UserBalance.objects.filter(user=bob).update(external_balance=START)

    minute = timedelta(minutes=1)
    logs = {}
    for n, duration in enumerate((10, 20, 30, 40), start=1):
        logs[f"ok_{n}"] = provider_call(
            created_at=now - n * 5 * minute, duration_ms=duration
        )
    logs["unknown"] = provider_call(
        created_at=now - 30 * minute,
        duration_ms=1000,
        outcome="unknown",
        status_code=None,
        endpoint="/win",
    )
    logs["ok_earlier"] = provider_call(created_at=now - 3 * 60 * minute, duration_ms=50)
    logs["refused"] = provider_call(
        created_at=now - 5 * 60 * minute,
        duration_ms=60,
        outcome="refused",
        status_code=400,
        endpoint="/bet",
    )
    logs["old"] = provider_call(created_at=now - 3 * 24 * 60 * minute, duration_ms=9)
    logs["inbound"] = provider_call(
        created_at=now - minute,
        duration_ms=5,
        direction="inbound",
        status_code=500,
        endpoint="/api/bets",
    )
    return BackofficeData(now=now, players=players, bets=bets, logs=logs)
