"""The hot path's one-statement steps and the careful paths they fall back to:
whatever the fast step cannot decide is rolled back whole and decided (and
explained) by the locked path."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import ExternalApiAccountFactory
from betting.lease import lease_try_claim
from betting.models import Bet, ProviderLease
from betting.services import bet_place, settlement
from betting.services.settlement import _bet_complete, bet_complete
from betting.tests.factories import BetFactory
from betting.tests.test_lifecycle import ledger_matches_provider
from betting_site.errors import ValidationFailed
from betting_site.money import MONEY_MAX
from wallet.ledger import ledger_post
from wallet.models import Transaction, UserBalance
from wallet.tests.factories import fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def player_provider(provider, stake_mode):
    """Every test with a player runs in both stake modes."""
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("5")


def test_a_result_booked_twice_moves_money_once(player, provider, stake_mode):
    provider.configure(win_probability=1.0)
    bet = bet_place(user=player, amount=3, settle=False).bet
    assert bet.status == "pending"
    first = bet_complete(bet=bet, win=Decimal("6"), evidence={"win": "6"})
    again = bet_complete(bet=bet, win=Decimal("6"), evidence={"win": "6"})
    assert first.status == again.status == "completed"
    assert Transaction.objects.filter(bet=bet, type="bet_win").count() == 1
    expected = Decimal("8") if stake_mode == "debit_on_place" else Decimal("11")
    wallet = UserBalance.objects.get(user=player)
    assert (wallet.balance, wallet.held) == (expected, 0)


def test_an_open_bet_holding_the_stake_is_resolved_before_a_balance_refusal(
    player, provider, stake_mode
):
    provider.add_fault("/bet", "drop_before", method="POST")  # never taken
    stuck = bet_place(user=player, amount=5).bet
    assert stuck.status == "unknown"
    assert UserBalance.objects.get(user=player).held == 5  # nothing available
    bet = bet_place(user=player, amount=5).bet
    assert bet.status == "completed"
    stuck.refresh_from_db()
    assert stuck.status == ("failed" if stake_mode == "debit_on_place" else "void")
    ledger_matches_provider(player, provider)


def test_a_provider_bet_id_already_in_use_is_rolled_back_and_flagged(
    player, provider, stake_mode
):
    first = bet_place(user=player, amount=1).bet
    assert first.status == "completed"
    # The provider's next id is first's + 1: make it collide.
    Bet.objects.filter(pk=first.pk).update(
        external_bet_id=str(int(first.external_bet_id) + 1)
    )
    balance_before = UserBalance.objects.get(user=player).balance
    bet = bet_place(user=player, amount=2).bet
    assert bet.status == "unknown"
    assert bet.needs_attention
    assert "already in use" in bet.status_reason
    assert not bet.result_in_doubt
    assert not Transaction.objects.filter(bet=bet).exists()  # the fast step undone
    wallet = UserBalance.objects.get(user=player)
    assert (wallet.balance, wallet.held) == (balance_before, 2)


def test_a_win_past_the_column_range_is_refused_with_nothing_written(user):
    account = ExternalApiAccountFactory(user=user)
    fund(user, MONEY_MAX - 1)
    bet = BetFactory(
        account=account,
        amount=Decimal("1"),
        stake_mode=Bet.StakeMode.DEBIT_ON_PLACE,
        external_bet_id="overflow-1",
    )
    with pytest.raises(ValidationFailed) as excinfo:
        bet_complete(bet=bet, win=Decimal("6"), evidence={})
    assert "cannot exceed" in str(excinfo.value.details)
    bet.refresh_from_db()
    assert bet.status == "pending"
    assert not Transaction.objects.filter(bet=bet).exists()
    assert UserBalance.objects.get(user=user).balance == MONEY_MAX - 1


def test_a_ledger_post_creates_the_balance_row_and_chains_exactly(user):
    first = ledger_post(
        user_id=user.pk, entry_type="initial_balance", amount=Decimal("0.10")
    )
    assert (first.balance_before, first.balance_after) == (0, Decimal("0.10"))
    entry = ledger_post(
        user_id=user.pk, entry_type="adjustment", amount=Decimal("0.20")
    )
    assert (entry.balance_before, entry.balance_after) == (
        Decimal("0.10"),
        Decimal("0.30"),
    )
    assert UserBalance.objects.get(user=user).balance == Decimal("0.30")


# --- the result booked in one statement (PostgreSQL; SQLite books it in four) ----


def _expected_balance(stake_mode: str) -> Decimal:
    """5 funded, a bet of 3 that wins 6."""
    return Decimal("8") if stake_mode == "debit_on_place" else Decimal("11")


@pytest.fixture
def careful(monkeypatch) -> list[int]:
    """The bets the locked path was asked to book, in order."""
    asked: list[int] = []
    locked = settlement._bet_complete_careful

    def spy(**kwargs):
        asked.append(kwargs["bet"].pk)
        return locked(**kwargs)

    monkeypatch.setattr(settlement, "_bet_complete_careful", spy)
    return asked


def test_a_result_booked_again_goes_careful_and_moves_no_money(
    player, provider, stake_mode, careful
):
    bet = bet_place(user=player, amount=3, settle=False).bet
    first = bet_complete(bet=bet, win=Decimal("6"), evidence={"win": "6"})
    assert first.status == "completed"
    assert careful == []  # booked by the fast path
    entry = Transaction.objects.get(bet=bet, type="bet_win")
    assert (entry.balance_before, entry.balance_after) == (
        _expected_balance(stake_mode) - 6,
        _expected_balance(stake_mode),
    )
    assert entry.evidence == {"win": "6"}
    stale = Bet.objects.get(pk=bet.pk)
    stale.status = Bet.Status.PENDING  # as a second booker read it, before the first
    # A loss this time: not the same ledger event, so only the bet's status
    # guard stops it.
    again = bet_complete(bet=stale, win=Decimal("0"), evidence={"win": "0"})
    assert careful == [bet.pk]
    assert (again.status, again.win_amount) == ("completed", 6)
    assert list(Transaction.objects.filter(bet=bet).exclude(type="bet_place")) == [
        entry
    ]
    wallet = UserBalance.objects.get(user=player)
    assert (wallet.balance, wallet.held) == (_expected_balance(stake_mode), 0)


def test_a_bet_no_longer_pending_leaves_no_entry_and_the_balance_as_it_was(
    player, provider, stake_mode, careful
):
    bet = bet_place(user=player, amount=3, settle=False).bet
    before = UserBalance.objects.get(user=player)
    entries_before = Transaction.objects.count()
    Bet.objects.filter(pk=bet.pk).update(status=Bet.Status.VOID)  # by another path
    with CaptureQueriesContext(connection) as queries:
        answered = bet_complete(bet=bet, win=Decimal("6"), evidence={"win": "6"})
    assert careful == [bet.pk]
    if connection.vendor == "postgresql":
        assert any(q["sql"].startswith("WITH ") for q in queries.captured_queries)
    assert answered.status == "void"
    assert Transaction.objects.count() == entries_before
    assert not Transaction.objects.filter(bet=bet).exclude(type="bet_place").exists()
    wallet = UserBalance.objects.get(user=player)
    assert (wallet.balance, wallet.held, wallet.external_balance) == (
        before.balance,
        before.held,
        before.external_balance,
    )


@pytest.mark.parametrize(
    "difference", [Decimal("0"), Decimal("1")], ids=["agree", "differ"]
)
def test_the_lease_is_released_with_the_result_only_when_the_balances_agree(
    player, provider, stake_mode, difference
):
    bet = bet_place(user=player, amount=3, settle=False).bet
    lease = lease_try_claim(user_id=player.pk, operation="bet_settle")
    assert lease is not None
    provider_balance = _expected_balance(stake_mode) + difference
    completed, agreed = _bet_complete(
        bet=bet,
        win=Decimal("6"),
        evidence={"win": "6"},
        provider_balance=provider_balance,
        lease=lease,
    )
    assert completed.status == "completed"
    assert agreed is (difference == 0)
    row = ProviderLease.objects.get(user_id=player.pk)
    assert row.holder == ("" if agreed else lease.holder)
    assert lease._released is agreed
    wallet = UserBalance.objects.get(user=player)
    assert (wallet.balance, wallet.held) == (_expected_balance(stake_mode), 0)
    assert wallet.external_balance == provider_balance
    assert wallet.last_checked_at is not None
    lease.release()
    assert ProviderLease.objects.get(user_id=player.pk).holder == ""


def test_without_a_lease_the_balances_agree_and_no_lease_is_touched(
    player, provider, stake_mode
):
    bet = bet_place(user=player, amount=3, settle=False).bet
    other = lease_try_claim(user_id=player.pk, operation="bet_resolve")
    assert other is not None
    _, agreed = _bet_complete(
        bet=bet,
        win=Decimal("0"),
        evidence={"win": "0"},
        provider_balance=Decimal("2") if stake_mode == "debit_on_place" else None,
    )
    assert agreed is (stake_mode == "debit_on_place")
    assert ProviderLease.objects.get(user_id=player.pk).holder == other.holder
    entry = Transaction.objects.get(bet=bet, type="bet_loss")
    expected = Decimal("0") if stake_mode == "debit_on_place" else Decimal("-3")
    assert entry.amount == expected
    wallet = UserBalance.objects.get(user=player)
    assert (wallet.balance, wallet.held) == (Decimal("2"), 0)


def test_a_result_for_a_user_without_a_balance_row_creates_it(user):
    account = ExternalApiAccountFactory(user=user)
    bet = BetFactory(
        account=account,
        amount=Decimal("1"),
        stake_mode=Bet.StakeMode.DEBIT_ON_PLACE,
        external_bet_id="no-row-1",
    )
    assert not UserBalance.objects.filter(user=user).exists()
    assert bet_complete(bet=bet, win=Decimal("6"), evidence={}).status == "completed"
    assert UserBalance.objects.get(user=user).balance == 6
    entry = Transaction.objects.get(bet=bet)
    assert (entry.type, entry.balance_before, entry.balance_after) == ("bet_win", 0, 6)
