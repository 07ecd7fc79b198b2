"""The hot path's one-statement steps and the careful paths they fall back to:
whatever the fast step cannot decide is rolled back whole and decided (and
explained) by the locked path."""

from decimal import Decimal

import pytest

from accounts.tests.factories import ExternalApiAccountFactory
from betting.models import Bet
from betting.services import bet_place
from betting.services.settlement import bet_complete
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
