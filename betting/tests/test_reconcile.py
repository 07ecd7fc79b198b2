"""``balance_reconcile`` and ``manage.py reconcile`` against the simulator."""

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from betting.lease import lease_try_claim
from betting.models import Bet
from betting.reconciliation import ReconcileStatus, balance_reconcile
from betting.services import bet_place
from betting_site.errors import ValidationFailed
from betting_site.testing import run_command as run
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db

START = Decimal("100")


def ledger_balance(user) -> Decimal:
    return UserBalance.objects.get(user=user).balance


@pytest.mark.parametrize("moved", [Decimal("7.50"), Decimal("-12")])
def test_drift_is_reported_then_fixed_once(make_player, provider, stake_mode, moved):
    player = make_player("8001")
    bet_place(user=player, amount=3)  # real money movement first
    before = ledger_balance(player)
    provider.set_balance("8001", provider.balance_of("8001") + moved)
    provider_balance = before + moved

    code, output = run("reconcile")

    assert code == 1
    assert (
        f"DRIFT {player.username} (provider user 8001): ledger {before}, "
        f"provider {provider_balance}, difference {moved:+}"
    ) in output
    assert "1 drift found, 0 fixed" in output
    assert "run with --fix" in output
    assert not Transaction.objects.filter(type="adjustment").exists()
    wallet = UserBalance.objects.get(user=player)
    assert wallet.balance == before
    assert wallet.external_balance == provider_balance
    assert wallet.last_checked_at is not None

    code, output = run("reconcile", "--fix")

    assert code == 0, output
    assert "1 drift found, 1 fixed" in output
    adjustment = Transaction.objects.get(type="adjustment")
    assert adjustment.user == player
    assert adjustment.amount == moved
    assert adjustment.created_by is None
    assert "manage.py reconcile" in adjustment.description
    assert adjustment.evidence == {
        "kind": "reconcile",
        "provider_balance": str(provider_balance),
        "ledger_balance": str(before),
        "external_user_id": "8001",
        "by": "manage.py reconcile",
    }
    assert ledger_balance(player) == provider.balance_of("8001")

    code, output = run("reconcile", "--fix")

    assert code == 0, output
    assert "1 in sync, 0 drift found" in output
    assert Transaction.objects.filter(type="adjustment").count() == 1


def test_accounts_in_sync_exit_0_and_record_the_check(make_player, provider):
    player = make_player("8001")
    code, output = run("reconcile")
    assert code == 0, output
    assert "Checked 1 of 1 accounts: 1 in sync" in output
    wallet = UserBalance.objects.get(user=player)
    assert wallet.external_balance == START
    assert wallet.last_checked_at <= timezone.now()


def test_accounts_with_open_bets_are_skipped(make_player, provider, stake_mode):
    busy, idle = make_player("8001"), make_player("8002")
    provider.add_fault("/win", "error_after", method="POST", status=500)
    bet = bet_place(user=busy, amount=3).bet
    assert bet.status == Bet.Status.PENDING
    provider.set_balance("8002", START + 5)

    code, output = run("reconcile", "--fix")

    assert code == 0, output
    assert f"SKIPPED {busy.username} (provider user 8001): open bets {bet.pk}" in output
    assert "1 skipped with open bets" in output
    assert not Transaction.objects.filter(user=busy, type="adjustment").exists()
    assert ledger_balance(idle) == START + 5
    # The ledger of the skipped user is untouched, though the provider has moved.
    assert ledger_balance(busy) == START - (3 if stake_mode == "debit_on_place" else 0)


def test_user_limits_the_run_to_one_account(make_player, provider):
    first, second = make_player("8001"), make_player("8002")
    provider.set_balance("8001", START + 1)
    provider.set_balance("8002", START + 2)

    code, output = run("reconcile", "--user", first.username, "--fix")

    assert code == 0, output
    assert "Reconciling 1 active provider accounts" in output
    assert ledger_balance(first) == START + 1
    assert ledger_balance(second) == START
    assert run("reconcile", "--user", second.username)[0] == 1


def test_a_provider_failure_for_one_account_is_reported_and_the_run_goes_on(
    make_player, provider
):
    unknown = make_player("8001", at_provider=False)  # the provider refuses it
    known = make_player("8002")
    provider.set_balance("8002", START + 3)

    code, output = run("reconcile", "--fix")

    assert code == 1
    assert f"ERROR {unknown.username} (provider user 8001): PROVIDER_ERROR" in output
    assert "1 accounts could not be checked" in output
    assert ledger_balance(known) == START + 3


def test_provider_down_is_reported_for_every_account(make_player, settings):
    players = [make_player("8001"), make_player("8002")]
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"

    code, output = run("reconcile", "--fix")

    assert code == 1
    assert "2 errors (0 busy, 2 provider or other errors)" in output
    assert "PROVIDER_UNAVAILABLE" in output
    assert not Transaction.objects.filter(type="adjustment").exists()
    for player in players:
        assert UserBalance.objects.get(user=player).last_checked_at is None


def test_a_busy_lease_is_reported_and_skipped(make_player, provider, settings):
    player = make_player("8001")
    provider.set_balance("8001", START + 3)
    lease = lease_try_claim(user_id=player.pk, operation="another worker")

    code, output = run("reconcile", "--fix")

    assert code == 1
    assert f"BUSY {player.username}" in output
    assert ledger_balance(player) == START
    lease.release()
    assert run("reconcile", "--fix")[0] == 0
    assert ledger_balance(player) == START + 3


def test_inactive_accounts_are_not_reconciled(make_player, provider):
    player = make_player("8001")
    player.external_accounts.update(is_active=False, deactivated_at=timezone.now())
    provider.set_balance("8001", START + 3)
    code, output = run("reconcile", "--fix")
    assert code == 0, output
    assert "Reconciling 0 active provider accounts" in output
    assert ledger_balance(player) == START


def test_usage_errors_exit_2(make_player, provider):
    player = make_player("8001")
    player.external_accounts.update(is_active=False, deactivated_at=timezone.now())
    assert run("reconcile", "--user", "nobody")[0] == 2
    code, output = run("reconcile", "--user", player.username)
    assert code == 2
    assert "has no active provider account" in output


def test_the_service_answers_each_outcome(make_player, provider, settings):
    staff = UserFactory(is_staff=True)
    player = make_player("8001")
    account = player.external_accounts.get()

    assert balance_reconcile(account=account, fix=False).status == "in_sync"
    provider.set_balance("8001", START + 4)
    drift = balance_reconcile(account=account, fix=False)
    assert drift.status == ReconcileStatus.DRIFT
    assert drift.difference == Decimal("4")
    assert drift.checked

    fixed = balance_reconcile(account=account, fix=True, actor=staff)
    assert fixed.status == ReconcileStatus.FIXED
    assert fixed.adjustment.created_by == staff
    assert fixed.adjustment.evidence["by"] == f"staff {staff.username}"

    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    error = balance_reconcile(account=account, fix=True)
    assert error.status == ReconcileStatus.ERROR
    assert not error.checked
    assert error.difference is None

    account.is_active = False
    with pytest.raises(ValidationFailed):
        balance_reconcile(account=account, fix=True)


def test_after_fix_every_active_account_without_open_bets_matches_the_provider(
    make_player, provider, stake_mode
):
    """Contract invariant 4."""
    players = [make_player(f"800{n}") for n in range(4)]
    bet_place(user=players[0], amount=2)
    bet_place(user=players[1], amount=5)
    provider.set_balance("8002", START - 9)
    provider.set_balance("8003", START + Decimal("0.50"))
    provider.add_fault("/win", "error_after", method="POST", status=500)
    open_bet = bet_place(user=players[1], amount=1).bet
    assert open_bet.status == Bet.Status.PENDING

    assert run("reconcile", "--fix")[0] == 0

    for player in players:
        account = player.external_accounts.get()
        if Bet.objects.filter(user=player, status__in=Bet.OPEN_STATUSES).exists():
            continue
        assert ledger_balance(player) == provider.balance_of(account.external_user_id)
