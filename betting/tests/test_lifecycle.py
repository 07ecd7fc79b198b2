"""The bet lifecycle against the simulator, in both stake modes."""

from decimal import Decimal

import pytest

from betting.models import Bet
from betting.services import bet_place, bet_resolve
from betting.tests.crashes import bet_left_at, crash_at
from betting_site.errors import ApplicationError
from wallet.ledger import stake_hold
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db

START = Decimal("100")


@pytest.fixture
def player_provider(provider, stake_mode):
    """Every test with a player runs in both stake modes."""
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return START


def ledger_matches_provider(user, provider) -> None:
    wallet = UserBalance.objects.get(user=user)
    entries = list(Transaction.objects.filter(user=user).order_by("id"))
    assert sum(e.amount for e in entries) == wallet.balance
    running = Decimal("0")
    for entry in entries:
        assert entry.balance_before == running
        running = entry.balance_after
    assert wallet.balance == provider.balance_of("9001")


@pytest.mark.parametrize("win_probability", [1.0, 0.0], ids=["win", "loss"])
def test_full_cycle_completes_and_mirrors_the_provider(
    player, provider, stake_mode, win_probability
):
    provider.configure(win_probability=win_probability)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "completed"
    assert bet.external_bet_id
    assert bet.win_amount == (Decimal("6") if win_probability else Decimal("0"))
    ledger_matches_provider(player, provider)
    wallet = UserBalance.objects.get(user=player)
    assert wallet.held == 0
    calls = provider.snapshot()["calls"]
    assert calls["POST /bet"] == 1
    assert calls["POST /win"] == 1


def test_refusal_fails_the_bet_and_releases_the_hold(player, provider):
    provider.add_fault("/bet", "error_before", method="POST", status=400)
    with pytest.raises(ApplicationError) as excinfo:
        bet_place(user=player, amount=3)
    error = excinfo.value
    assert error.code == "PROVIDER_ERROR"
    assert error.details["bet"]["status"] == "failed"
    assert error.details["status"] == 400
    assert UserBalance.objects.get(user=player).held == 0
    ledger_matches_provider(player, provider)


def test_unreachable_provider_fails_the_bet_with_nothing_sent(player, settings):
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    with pytest.raises(ApplicationError) as excinfo:
        bet_place(user=player, amount=3)
    assert excinfo.value.code == "PROVIDER_UNAVAILABLE"
    assert excinfo.value.details["bet"]["status"] == "failed"
    assert UserBalance.objects.get(user=player).held == 0


@pytest.mark.parametrize("fault", ["error_after", "drop_after", "delay_after"])
def test_bet_taken_but_answer_lost_is_unknown_then_resolved(
    player, provider, stake_mode, settings, fault
):
    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    provider.add_fault("/bet", fault, method="POST", status=500, delay=0.4)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    assert UserBalance.objects.get(user=player).held == Decimal("3")
    assert provider.snapshot()["calls"]["POST /bet"] == 1  # never re-sent
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "void"
    assert resolved.needs_attention
    assert UserBalance.objects.get(user=player).held == 0
    ledger_matches_provider(player, provider)
    assert provider.snapshot()["calls"]["POST /bet"] == 1


@pytest.mark.parametrize("fault", ["error_before", "drop_before"])
def test_bet_never_taken_with_unknown_outcome(player, provider, stake_mode, fault):
    provider.add_fault("/bet", fault, method="POST", status=500)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    resolved = bet_resolve(bet=bet)
    # debit_on_place: the unchanged balance proves it was not taken; debit_on_loss:
    # nothing can tell, so it is void with no money moved.
    assert resolved.status == ("failed" if stake_mode == "debit_on_place" else "void")
    assert UserBalance.objects.get(user=player).held == 0
    ledger_matches_provider(player, provider)


@pytest.mark.parametrize("fault", ["error_after", "drop_after", "malformed_json"])
@pytest.mark.parametrize("win_probability", [1.0, 0.0], ids=["win", "loss"])
def test_result_taken_but_answer_lost_is_resolved_by_balance(
    player, provider, stake_mode, fault, win_probability
):
    provider.configure(win_probability=win_probability)
    provider.add_fault("/win", fault, method="POST", status=500)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "pending"
    assert bet.external_bet_id
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "completed", resolved.status_reason
    assert resolved.win_amount == (Decimal("6") if win_probability else Decimal("0"))
    ledger_matches_provider(player, provider)


def test_result_not_processed_is_sent_again(player, provider, stake_mode):
    provider.add_fault("/win", "error_before", method="POST", status=500)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "pending"
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "completed"
    ledger_matches_provider(player, provider)


def test_a_new_bet_resolves_the_open_one_first(player, provider, stake_mode):
    provider.add_fault("/win", "error_after", method="POST", status=500)
    first = bet_place(user=player, amount=2).bet
    assert first.status == "pending"
    second = bet_place(user=player, amount=3).bet
    assert second.status == "completed"
    first.refresh_from_db()
    assert first.status == "completed"
    ledger_matches_provider(player, provider)


def test_a_new_bet_waits_while_the_open_one_cannot_be_resolved(
    player, provider, settings
):
    provider.add_fault("/win", "error_after", method="POST", status=500)
    bet_place(user=player, amount=2)
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    with pytest.raises(ApplicationError) as excinfo:
        bet_place(user=player, amount=3)
    assert excinfo.value.code == "BET_IN_PROGRESS"
    assert Bet.objects.filter(user=player).count() == 1


def test_interrupted_before_sending_becomes_unknown_once_the_lease_expired(
    player, provider, stake_mode
):
    bet = bet_left_at("recorded", user=player)
    resolved = bet_resolve(bet=bet)
    assert resolved.status == ("failed" if stake_mode == "debit_on_place" else "void")
    assert provider.snapshot()["calls"].get("POST /bet") is None
    assert UserBalance.objects.get(user=player).held == 0
    ledger_matches_provider(player, provider)


def test_insufficient_available_balance_is_refused_before_sending(player, provider):
    stake_hold(user_id=player.pk, amount=START - 2)
    with pytest.raises(ApplicationError) as excinfo:
        bet_place(user=player, amount=3)
    assert excinfo.value.code == "INSUFFICIENT_BALANCE"
    assert not Bet.objects.exists()


def test_a_discrepancy_after_settlement_is_booked_as_an_adjustment(player, provider):
    provider.set_balance("9001", START + 10)  # someone moved money at the provider
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "completed"
    adjustment = Transaction.objects.get(user=player, type="adjustment")
    assert adjustment.evidence["kind"] == "discrepancy"
    ledger_matches_provider(player, provider)


def test_a_refused_balance_read_leaves_the_bet_open_with_the_reason(
    player, provider, settings
):
    settings.PROVIDER_STAKE_MODE = "debit_on_place"
    provider.configure(stake_mode="debit_on_place")
    provider.add_fault("/bet", "error_after", method="POST", status=500)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    provider.add_fault("/balance", "error_before", method="POST", status=403, times=5)
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "unknown"
    assert "Not resolved yet" in resolved.status_reason
    provider.clear_faults()
    assert bet_resolve(bet=resolved).status == "void"


@pytest.mark.parametrize("win_probability", [1.0, 0.0], ids=["win", "loss"])
@pytest.mark.parametrize("fault", ["delay_before", "delay_after"])
def test_result_timing_out_before_or_after_it_took_effect(
    player, provider, stake_mode, settings, fault, win_probability
):
    import time

    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    provider.configure(win_probability=win_probability)
    provider.add_fault("/win", fault, method="POST", delay=0.4)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "pending"
    time.sleep(0.5)  # the provider finishes what it was doing
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "completed", resolved.status_reason
    assert resolved.win_amount == (Decimal("6") if win_probability else Decimal("0"))
    ledger_matches_provider(player, provider)


@pytest.mark.parametrize("refusals", [2, 3])
def test_a_refused_win_never_processed_is_not_booked_as_a_loss(
    player, provider, stake_mode, refusals
):
    """A refusal says "already settled" only after a /win that may have been
    processed; refusals of a /win never processed leave the bet open (flagged
    after two in one resolution) until the provider answers it."""
    provider.configure(win_probability=1.0)
    provider.add_fault(
        "/win", "error_before", method="POST", status=400, times=refusals
    )
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "pending"
    bet.refresh_from_db()
    assert not bet.result_in_doubt  # the refusal put the flag back
    resolved = bet_resolve(bet=bet)
    if refusals == 3:  # refused twice more in this resolution: staff are told
        assert resolved.status == "pending"
        assert resolved.needs_attention
        assert "refused twice" in resolved.status_reason
        [at_provider] = provider.snapshot()["bets"]
        assert at_provider["win"] is None  # not settled there either
        resolved = bet_resolve(bet=resolved)
    assert resolved.status == "completed", resolved.status_reason
    assert resolved.win_amount == Decimal("6")
    assert not Transaction.objects.filter(bet=bet, type="bet_loss").exists()
    ledger_matches_provider(player, provider)
    assert provider.snapshot()["calls"]["POST /win"] == refusals + 1


def test_placement_timing_out_before_the_provider_took_it(
    player, provider, stake_mode, settings
):
    import time

    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    provider.add_fault("/bet", "delay_before", method="POST", delay=0.4)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    time.sleep(0.5)  # the provider takes it after all
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "void"
    ledger_matches_provider(player, provider)
    assert provider.snapshot()["calls"]["POST /bet"] == 1


def test_killed_after_the_provider_took_the_bet_before_recording_its_id(
    player, provider, stake_mode
):
    with crash_at("placed"):
        bet_place(user=player, amount=3)
    bet = Bet.objects.get(user=player)
    assert (bet.status, bet.external_bet_id) == ("pending", None)
    resolved = bet_resolve(bet=bet)
    # Taken at the provider but its id was lost: never settleable.
    assert resolved.status == "void"
    ledger_matches_provider(player, provider)
    assert provider.snapshot()["calls"]["POST /bet"] == 1


@pytest.mark.parametrize("win_probability", [1.0, 0.0], ids=["win", "loss"])
def test_killed_after_the_provider_settled_before_booking(
    player, provider, stake_mode, win_probability
):
    provider.configure(win_probability=win_probability)

    with crash_at("result"):
        bet_place(user=player, amount=3)
    bet = Bet.objects.get(user=player)
    assert bet.status == "pending"
    assert bet.external_bet_id
    # The /win was marked in doubt before it was sent, so the balance is read
    # first: a payout (or, debit_on_loss, the stake gone) decides at once; an
    # unchanged debit_on_place balance sends /win again, and its refusal says
    # it was settled: a loss.
    assert bet.result_in_doubt
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "completed", resolved.status_reason
    assert resolved.win_amount == (Decimal("6") if win_probability else Decimal("0"))
    ledger_matches_provider(player, provider)
    resent = stake_mode == "debit_on_place" and not win_probability
    assert provider.snapshot()["calls"]["POST /win"] == (2 if resent else 1)


def test_killed_between_placing_and_asking_for_the_result(player, provider, stake_mode):
    with crash_at("placed_recorded"):
        bet_place(user=player, amount=3)
    resolved = bet_resolve(bet=Bet.objects.get(user=player))
    assert resolved.status == "completed"
    ledger_matches_provider(player, provider)
