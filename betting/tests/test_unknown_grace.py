"""An unknown bet is decided from the balance only when a late POST /bet can no
longer land (BET_UNKNOWN_GRACE): the race the soak run found in debit_on_place.

The provider answers POST /bet after our read timeout but processes it anyway. A
balance read before it lands shows "unchanged" and would book the bet failed while
the provider then takes the stake; within the grace nothing is decided.
"""

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import F

from betting import staff as staff_services
from betting.models import Bet
from betting.services import bet_place, bet_resolve, unknown_grace_left
from betting.tests.crashes import bet_left_at
from betting.tests.test_lifecycle import ledger_matches_provider
from betting_site.errors import ApplicationError
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db

START = Decimal("100")
GRACE = 30.0


@pytest.fixture
def player_provider(provider, settings):
    """The tests with a player run with the grace (the provider fixture sets none)."""
    settings.BET_UNKNOWN_GRACE = GRACE
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return START


@pytest.fixture
def on_place(settings, provider):
    settings.PROVIDER_STAKE_MODE = "debit_on_place"
    provider.configure(stake_mode="debit_on_place")


def _late_post_bet(provider, settings, *, delay: float = 0.5) -> None:
    """The next POST /bet times out, and the provider takes it ``delay`` s later."""
    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    provider.add_fault("/bet", "delay_before", method="POST", delay=delay)


def _age(bet: Bet, seconds: float = GRACE) -> None:
    Bet.objects.filter(pk=bet.pk).update(
        unknown_since=F("unknown_since") - timedelta(seconds=seconds)
    )


def test_a_late_post_bet_is_waited_for_then_booked_as_taken(
    player, provider, settings, on_place
):
    _late_post_bet(provider, settings)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    assert 0 < unknown_grace_left(bet) <= GRACE

    # The player's next bet comes before the late request lands: nothing is
    # decided (no balance is read), the new bet waits with a Retry-After.
    with pytest.raises(ApplicationError) as excinfo:
        bet_place(user=player, amount=2)
    error = excinfo.value
    assert error.code == "BET_IN_PROGRESS"
    assert 1 <= int(error.headers["Retry-After"]) <= GRACE
    assert "may yet reach the provider" in error.message
    assert error.details["bet"]["id"] == bet.pk
    assert "POST /balance" not in provider.snapshot()["calls"]
    bet.refresh_from_db()
    assert bet.status == "unknown"

    time.sleep(0.6)  # the provider takes the stake of the late request
    assert provider.balance_of("9001") == START - 3
    _age(bet)
    second = bet_place(user=player, amount=2).bet
    bet.refresh_from_db()
    # Without the grace this bet was booked "failed" and the stake the provider
    # took became an unexplained adjustment later.
    assert bet.status == "void"
    assert second.status == "completed"
    assert Transaction.objects.filter(bet=bet, type="bet_place").count() == 1
    assert not Transaction.objects.filter(type="adjustment").exists()
    ledger_matches_provider(player, provider)
    assert provider.snapshot()["calls"]["POST /bet"] == 2


def test_a_timed_out_post_bet_that_never_lands_fails_after_the_grace(
    player, provider, settings, on_place
):
    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    provider.add_fault("/bet", "drop_before", method="POST")
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    assert bet_resolve(bet=bet).status == "unknown"  # within the grace
    _age(bet)
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "failed"
    assert UserBalance.objects.get(user=player).held == 0
    ledger_matches_provider(player, provider)


def test_the_api_answers_409_with_retry_after_during_the_grace(
    player, provider, settings, on_place, auth_client
):
    _late_post_bet(provider, settings)
    first = auth_client.post("/api/bets", {"amount": 3}, format="json")
    assert first.status_code == 201
    assert first.json()["status"] == "unknown"
    second = auth_client.post("/api/bets", {"amount": 2}, format="json")
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "BET_IN_PROGRESS"
    assert error["details"]["bet"]["status"] == "unknown"
    assert 1 <= int(second["Retry-After"]) <= GRACE
    # The result endpoint shows it unknown without deciding it.
    result = auth_client.get(f"/api/bets/result/{error['details']['bet']['id']}")
    assert result.status_code == 200
    assert result.json()["status"] == "unknown"


def test_debit_on_loss_has_no_grace_nothing_is_read_from_the_balance(
    player, provider, settings
):
    settings.PROVIDER_STAKE_MODE = "debit_on_loss"
    provider.configure(stake_mode="debit_on_loss")
    _late_post_bet(provider, settings)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    assert unknown_grace_left(bet) == 0
    assert bet_resolve(bet=bet).status == "void"
    time.sleep(0.6)
    ledger_matches_provider(player, provider)  # no money moves for it


def test_a_crashed_placement_waits_the_grace_too(player, provider, on_place):
    bet = bet_left_at("recorded", user=player)
    resolved = bet_resolve(bet=bet)
    assert resolved.status == "unknown"
    assert resolved.unknown_since is not None
    assert unknown_grace_left(resolved) > 0
    _age(resolved)
    assert bet_resolve(bet=resolved).status == "failed"
    ledger_matches_provider(player, provider)


def test_settle_pending_waits_out_the_grace_and_decides(
    player, provider, settings, on_place, capsys
):
    settings.BET_UNKNOWN_GRACE = 1.0
    _late_post_bet(provider, settings, delay=0.4)
    bet = bet_place(user=player, amount=3).bet
    assert bet.status == "unknown"
    call_command("settle_pending")  # exit 0: no bet left open
    out = capsys.readouterr().out
    assert "still unknown; a late POST /bet may land" in out
    # At most the grace (less what the first pass took: a loaded machine shows 0.9).
    assert re.search(
        r"Waiting [01]\.\d s for late POST /bet requests of 1 unknown bets", out
    )
    bet.refresh_from_db()
    assert bet.status == "void"  # the late request landed during the wait
    ledger_matches_provider(player, provider)


def test_settle_pending_waits_once_for_crashed_placements(
    provider, settings, make_player, capsys
):
    """Placements interrupted by a crash become unknown when found, so their
    grace starts then: one wait at the end covers all of them."""
    settings.BET_UNKNOWN_GRACE = 1.0
    settings.PROVIDER_STAKE_MODE = "debit_on_place"
    provider.configure(stake_mode="debit_on_place")
    bets = []
    for number in range(3):
        player = make_player(f"95{number:02d}")
        bets.append(bet_left_at("recorded", user=player, amount=2))
    call_command("settle_pending")  # exit 0: no bet left open
    out = capsys.readouterr().out
    assert out.count("Waiting ") == 1  # one wait, not three
    assert "of 3 unknown bets" in out
    for bet in bets:
        bet.refresh_from_db()
        assert bet.status == "failed"  # never sent: the balance is unchanged
        assert UserBalance.objects.get(user=bet.user).held == 0


def test_the_admin_resolve_summary_says_when_a_bet_will_be_decided(
    player, provider, settings, on_place, boss
):
    _late_post_bet(provider, settings)
    bet = bet_place(user=player, amount=3).bet
    summary = staff_services.bets_resolve_by_staff(bets=[bet], actor=boss, wait=0)
    assert list(summary.waiting) == [bet.pk]
    assert f"bet {bet.pk} in " in summary.as_text()
    assert "a late POST /bet may still land" in summary.as_text()
    time.sleep(0.6)
