"""``manage.py settle_pending`` against the simulator, in both stake modes."""

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from betting.lease import lease_try_claim
from betting.management.commands import settle_pending
from betting.models import Bet, ProviderLease
from betting.services import bet_place
from betting.tests.crashes import bet_left_at
from betting_site.testing import run_command as run
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db

START = Decimal("100")
DOWN = "http://127.0.0.1:9/api"


def pending_bet(provider, user, fault: str = "error_after") -> Bet:
    """A bet placed at the provider whose POST /win failed."""
    provider.add_fault("/win", fault, method="POST", status=500)
    bet = bet_place(user=user, amount=3).bet
    assert bet.status == Bet.Status.PENDING
    assert bet.external_bet_id
    return bet


def unknown_bet(provider, user, fault: str) -> Bet:
    """A bet whose POST /bet answer was lost."""
    provider.add_fault("/bet", fault, method="POST", status=500)
    bet = bet_place(user=user, amount=3).bet
    assert bet.status == Bet.Status.UNKNOWN
    return bet


def assert_ledger_mirrors_provider(user, provider) -> None:
    wallet = UserBalance.objects.get(user=user)
    external_id = user.external_accounts.get(is_active=True).external_user_id
    assert wallet.balance == provider.balance_of(external_id)
    assert wallet.balance == sum(
        Transaction.objects.filter(user=user).values_list("amount", flat=True)
    )
    assert wallet.held == 0


@pytest.mark.parametrize("fault", ["error_after", "error_before", "drop_after"])
@pytest.mark.parametrize("win_probability", [1.0, 0.0], ids=["win", "loss"])
def test_pending_bets_left_by_a_win_fault_are_completed(
    make_player, provider, stake_mode, fault, win_probability
):
    provider.configure(win_probability=win_probability)
    players = [make_player("7001"), make_player("7002")]
    bets = [pending_bet(provider, player, fault) for player in players]

    code, output = run("settle_pending")

    assert code == 0, output
    assert "Examined 2 bets: 2 completed, 0 failed, 0 void, 0 still open" in output
    for bet, player in zip(bets, players, strict=True):
        bet.refresh_from_db()
        assert bet.status == Bet.Status.COMPLETED
        assert bet.win_amount == (Decimal("6") if win_probability else Decimal("0"))
        assert_ledger_mirrors_provider(player, provider)
    assert provider.snapshot()["calls"]["POST /bet"] == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        # debit_on_place: the balance tells; debit_on_loss: nothing can, so void.
        ("error_after", {"debit_on_place": "void", "debit_on_loss": "void"}),
        ("drop_before", {"debit_on_place": "failed", "debit_on_loss": "void"}),
    ],
)
def test_unknown_bets_end_failed_or_void_and_are_never_sent_again(
    make_player, provider, stake_mode, fault, expected
):
    player = make_player("7001")
    bet = unknown_bet(provider, player, fault)

    code, output = run("settle_pending")

    assert code == 0, output
    bet.refresh_from_db()
    assert bet.status == expected[stake_mode]
    entries = list(Transaction.objects.filter(bet=bet).values_list("type", "amount"))
    taken = fault == "error_after" and stake_mode == "debit_on_place"
    assert entries == ([("bet_place", Decimal("-3.00"))] if taken else [])
    if bet.status == Bet.Status.VOID:
        assert bet.needs_attention
        assert f"Void bets, flagged for staff: {bet.pk}" in output
    assert provider.snapshot()["calls"]["POST /bet"] == 1
    assert_ledger_mirrors_provider(player, provider)


def test_a_placement_interrupted_by_a_crash_is_resolved_as_unknown(
    make_player, provider, stake_mode
):
    player = make_player("7001")
    bet = bet_left_at("recorded", user=player)

    code, output = run("settle_pending")

    assert code == 0, output
    bet.refresh_from_db()
    assert bet.status == ("failed" if stake_mode == "debit_on_place" else "void")
    assert provider.snapshot()["calls"].get("POST /bet") is None
    assert_ledger_mirrors_provider(player, provider)


def test_bets_stay_open_and_exit_1_while_the_provider_is_down(
    make_player, provider, stake_mode, settings
):
    player = make_player("7001")
    bet = pending_bet(provider, player)
    settings.EXTERNAL_API_URL = DOWN

    code, output = run("settle_pending")

    assert code == 1
    assert f"bet {bet.pk} of {player.username} (pending)" in output
    assert "the provider gave no conclusive answer" in output
    assert "1 examined bets are still open" in output
    bet.refresh_from_db()
    assert bet.status == Bet.Status.PENDING

    settings.EXTERNAL_API_URL = provider.base_url
    code, output = run("settle_pending")

    assert code == 0, output
    bet.refresh_from_db()
    assert bet.status == Bet.Status.COMPLETED
    assert_ledger_mirrors_provider(player, provider)


def test_a_lease_whose_holder_died_is_waited_for_once_and_the_bet_settled(
    make_player, provider, settings
):
    """Run straight after a crash: the dead holder's lease is past its
    ``alive_until`` soon (nobody keeps it alive), so the run waits once, says
    so, settles the bet and exits 0."""
    settings.PROVIDER_LEASE_ALIVE = 1.0
    player = make_player("7001")
    bet = pending_bet(provider, player)
    # Claimed by a process that then died: nobody keeps it alive.
    assert lease_try_claim(user_id=player.pk, operation="a dead worker") is not None

    code, output = run("settle_pending", "--wait", "0")

    assert code == 0, output
    assert "Waiting up to 2 s for the provider leases of 1 busy users" in output
    assert "The leases freed after" in output
    bet.refresh_from_db()
    assert bet.status == Bet.Status.COMPLETED
    assert_ledger_mirrors_provider(player, provider)


def test_a_lease_still_held_after_the_wait_is_reported_busy(
    make_player, provider, settings
):
    """A live holder (its lease kept alive and unexpired) outlasting the one
    wait, capped by the lease TTL: the bet is reported busy, exit 1."""
    settings.PROVIDER_LEASE_TTL = 1
    player = make_player("7001")
    bet = pending_bet(provider, player)
    lease = lease_try_claim(user_id=player.pk, operation="another worker")
    assert lease is not None
    far = timezone.now() + timedelta(hours=1)
    ProviderLease.objects.filter(user=player).update(expires_at=far, alive_until=far)

    code, output = run("settle_pending", "--wait", "0")

    assert code == 1
    assert "Waiting up to 2 s for the provider leases of 1 busy users" in output
    assert "busy: another operation of this user holds the provider lease" in output
    assert "(1 busy, 0 provider or other errors" in output
    bet.refresh_from_db()
    assert bet.status == Bet.Status.PENDING

    lease.release()
    assert run("settle_pending")[0] == 0


def test_a_provider_error_on_one_bet_does_not_stop_the_run(
    make_player, provider, settings
):
    settings.PROVIDER_STAKE_MODE = "debit_on_place"
    provider.configure(stake_mode="debit_on_place")
    first, second = make_player("7001"), make_player("7002")
    unknown = unknown_bet(provider, first, "drop_before")
    pending = pending_bet(provider, second)
    # Resolving the unknown bet reads the balance: the provider refuses that once.
    provider.add_fault("/balance", "error_before", method="POST", status=400)

    code, output = run("settle_pending")

    assert code == 1
    assert f"bet {unknown.pk} of {first.username} (unknown)" in output
    assert "Not resolved yet: ProviderRefused" in output
    assert "1 completed" in output
    pending.refresh_from_db()
    assert pending.status == Bet.Status.COMPLETED
    unknown.refresh_from_db()
    assert unknown.status == Bet.Status.UNKNOWN

    code, output = run("settle_pending")

    assert code == 0, output
    unknown.refresh_from_db()
    assert unknown.status == Bet.Status.FAILED
    assert_ledger_mirrors_provider(first, provider)
    assert_ledger_mirrors_provider(second, provider)


def test_a_balance_that_cannot_be_attributed_leaves_the_bet_for_staff(
    make_player, provider, settings
):
    settings.PROVIDER_STAKE_MODE = "debit_on_loss"
    provider.configure(stake_mode="debit_on_loss")
    player = make_player("7001")
    bet = pending_bet(provider, player, "error_before")
    # Something else moved the balance: neither the stake nor a payout.
    provider.set_balance("7001", START - 1)

    code, output = run("settle_pending")

    assert code == 1
    assert f"bet {bet.pk} of {player.username} (pending) [needs attention]" in output
    assert "Cannot attribute the provider balance 99" in output
    assert "1 need staff attention" in output
    bet.refresh_from_db()
    assert bet.status == Bet.Status.PENDING
    assert bet.needs_attention


def test_an_unexpected_error_on_one_bet_does_not_stop_the_run(
    make_player, provider, monkeypatch
):
    first, second = make_player("7001"), make_player("7002")
    broken = pending_bet(provider, first)
    fine = pending_bet(provider, second)
    real_resolve = settle_pending.bet_resolve

    def resolve(*, bet, wait=None):
        if bet.pk == broken.pk:
            raise RuntimeError("disk on fire")
        return real_resolve(bet=bet, wait=wait)

    monkeypatch.setattr(settle_pending, "bet_resolve", resolve)

    code, output = run("settle_pending")

    assert code == 1
    assert "unexpected error RuntimeError: disk on fire" in output
    fine.refresh_from_db()
    assert fine.status == Bet.Status.COMPLETED


def test_user_and_limit_select_the_bets(make_player, provider):
    players = [make_player(f"700{n}") for n in range(3)]
    bets = [pending_bet(provider, player) for player in players]

    code, output = run("settle_pending", "--user", players[2].username)

    assert code == 0, output
    assert "Examined 1 bets" in output
    statuses = [Bet.objects.get(pk=bet.pk).status for bet in bets]
    assert statuses == ["pending", "pending", "completed"]

    code, output = run("settle_pending", "--limit", "1")

    assert code == 1
    assert "1 open bets were not examined (--limit)" in output
    statuses = [Bet.objects.get(pk=bet.pk).status for bet in bets]
    assert statuses == ["completed", "pending", "completed"]  # the oldest first

    assert run("settle_pending", "--limit", "5")[0] == 0


def test_nothing_open_exits_0(make_player, provider):
    make_player("7001")
    code, output = run("settle_pending")
    assert code == 0
    assert "0 open bets" in output
    assert "No open bets left." in output


def test_long_runs_print_progress(make_player, provider, monkeypatch):
    monkeypatch.setattr(settle_pending, "PROGRESS_EVERY", 1)
    for n in range(2):
        pending_bet(provider, make_player(f"700{n}"))
    code, output = run("settle_pending")
    assert code == 0, output
    assert "... 1/2 bets examined" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--user", "nobody"), "No user named 'nobody'"),
        (("--limit", "0"), "--limit must be at least 1"),
        (("--wait", "-1"), "--wait must not be negative"),
    ],
)
def test_usage_errors_exit_2(args, message):
    code, output = run("settle_pending", *args)
    assert code == 2
    assert message in output


def test_a_malformed_option_exits_2_from_the_shell():
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    completed = subprocess.run(
        [sys.executable, str(manage), "settle_pending", "--limit", "many"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "invalid int value" in completed.stderr


def test_help_explains_each_state_and_what_it_cannot_know():
    text = settle_pending.Command().create_parser("manage.py", "settle_pending")
    help_text = text.format_help()
    for phrase in (
        "pending, with a provider bet id",
        "unknown (POST /bet may have reached the provider): never sent again",
        "debit_on_loss: nothing can tell -> void",
        "What it cannot know",
        "Exit status: 0 when no bet is left open, 1",
    ):
        assert phrase in help_text


def test_recovery_after_faults_brings_every_account_to_the_provider_balance(
    make_player, provider, stake_mode, settings
):
    """Faults on /bet and /win across several players; then settle_pending and
    reconcile --fix leave every ledger equal to the provider and check_ledger
    clean."""
    provider.configure(win_probability=0.5)
    players = [make_player(f"710{n}") for n in range(6)]
    unknown_bet(provider, players[0], "error_after")  # taken, answer lost
    unknown_bet(provider, players[1], "drop_before")  # never taken
    pending_bet(provider, players[2], "error_after")  # settled, answer lost
    pending_bet(provider, players[3], "error_before")  # not processed
    pending_bet(provider, players[4], "malformed_json")  # settled, garbled
    bet_place(user=players[5], amount=2)  # a clean bet
    provider.set_balance("7105", provider.balance_of("7105") + 7)  # moved elsewhere

    # While the provider is down nothing is decided that needs it.
    settings.EXTERNAL_API_URL = DOWN
    assert run("settle_pending")[0] == 1
    settings.EXTERNAL_API_URL = provider.base_url

    code, output = run("settle_pending")
    assert code == 0, output
    assert not Bet.objects.filter(status__in=Bet.OPEN_STATUSES).exists()

    code, output = run("reconcile", "--fix")
    assert code == 0, output
    code, output = run("reconcile")
    assert code == 0, output
    code, output = run("check_ledger")
    assert code == 0, output

    for player in players:
        assert_ledger_mirrors_provider(player, provider)
    adjustments = Transaction.objects.filter(type="adjustment")
    # Only the money moved outside the server needed an adjustment.
    assert [entry.user_id for entry in adjustments] == [players[5].pk]
    assert provider.snapshot()["calls"]["POST /bet"] == 6
