"""The bulk reconcile actions of the back office, against the simulator."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.tests.factories import UserFactory
from betting.admin import balances as wallet_admin
from betting.lease import lease_try_claim
from betting.reconciliation import ReconcileStatus
from betting.staff import balances_reconcile_by_staff
from betting.tests.factories import BetFactory
from betting_site.errors import Forbidden
from wallet.models import Transaction, UserBalance
from wallet.tests.factories import fund

pytestmark = pytest.mark.django_db

START = Decimal("100")
BALANCES = reverse("admin:wallet_userbalance_changelist")
USERS = reverse("admin:accounts_user_changelist")


def wallet_of(user) -> UserBalance:
    return UserBalance.objects.get(user=user)


def run_action(client, action: str, users, changelist: str = BALANCES) -> list[str]:
    if changelist == BALANCES:
        selected = [wallet_of(user).pk for user in users]
    else:
        selected = [user.pk for user in users]
    response = client.post(changelist, {"action": action, "_selected_action": selected})
    assert response.status_code == 302, response.content.decode()[:2000]
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_reconcile_books_drift_with_the_staff_member_and_reports_every_account(
    client, boss, make_player, provider
):
    drifted = make_player("8001")
    in_sync = make_player("8002")
    busy_with_a_bet = make_player("8003")
    unlinked = UserFactory(username="unlinked")
    fund(unlinked, START)
    unknown_at_provider = make_player("8004", at_provider=False)
    provider.set_balance("8001", Decimal("107.50"))
    provider.set_balance("8003", START + 1)
    open_bet = BetFactory(
        account=busy_with_a_bet.external_accounts.get(),
        amount=Decimal("1"),
        unknown=True,
    )

    found = run_action(
        client,
        "reconcile_selected",
        [drifted, in_sync, busy_with_a_bet, unlinked, unknown_at_provider],
    )

    entry = Transaction.objects.get(type="adjustment")
    assert entry.user == drifted
    assert entry.amount == Decimal("7.50")
    assert entry.created_by == boss
    assert entry.evidence["by"] == "staff boss"
    assert entry.evidence["provider_balance"] == "107.50"
    assert wallet_of(drifted).balance == Decimal("107.50")
    assert wallet_of(busy_with_a_bet).balance == START  # skipped
    assert wallet_of(in_sync).last_checked_at is not None
    assert (
        f"Fixed, drift booked as adjustment (1): {drifted.username} (ledger 100.00, "
        f"provider 107.50, difference +7.50; adjustment {entry.pk} posted)."
    ) in found
    assert f"In sync (1): {in_sync.username} (100.00)." in found
    assert (
        f"Skipped, open bets: settle or void them first (1): "
        f"{busy_with_a_bet.username} (open bets {open_bet.pk})."
    ) in found
    assert "Skipped, no active provider account (1): unlinked." in found
    [error] = [m for m in found if m.startswith("Not reconciled")]
    assert f"{unknown_at_provider.username} (PROVIDER_ERROR" in error
    log = LogEntry.objects.get(object_id=str(wallet_of(drifted).pk))
    assert log.user == boss
    assert f"adjustment +7.50 ({entry.pk})" in log.get_change_message()


def test_check_reports_drift_and_books_nothing(client, boss, make_player, provider):
    drifted = make_player("8001")
    provider.set_balance("8001", START - 2)

    found = run_action(client, "check_selected", [drifted])

    assert not Transaction.objects.filter(type="adjustment").exists()
    wallet = wallet_of(drifted)
    assert wallet.balance == START
    assert wallet.external_balance == START - 2
    assert any(
        m.startswith("Drift found, not booked")
        and "books it) (1): " in m
        and "difference -2.00" in m
        for m in found
    )


def test_a_provider_that_is_down_is_reported_and_nothing_changes(
    client, boss, make_player, settings
):
    player = make_player("8001")
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"

    found = run_action(client, "reconcile_selected", [player])

    assert any(
        m.startswith("Not reconciled, provider unreachable or error (1)")
        and "PROVIDER_UNAVAILABLE" in m
        for m in found
    )
    assert wallet_of(player).last_checked_at is None
    assert not Transaction.objects.filter(type="adjustment").exists()


def test_a_busy_user_is_reported_and_skipped(client, boss, make_player, provider):
    player = make_player("8001")
    provider.set_balance("8001", START + 3)
    assert lease_try_claim(user_id=player.pk, operation="bet_place") is not None

    found = run_action(client, "reconcile_selected", [player])

    assert any(m.startswith("Skipped, busy: retry shortly (1)") for m in found)
    assert wallet_of(player).balance == START


def test_the_users_admin_reconciles_too(client, boss, make_player, provider):
    player = make_player("8001")
    provider.set_balance("8001", START + 1)

    found = run_action(client, "reconcile_selected", [player], changelist=USERS)

    assert wallet_of(player).balance == START + 1
    assert any(m.startswith("Fixed, drift booked as adjustment (1)") for m in found)
    assert LogEntry.objects.get(object_id=str(player.pk)).user == boss


def test_too_large_a_selection_is_refused(
    client, boss, make_player, provider, monkeypatch
):
    monkeypatch.setattr(wallet_admin, "RECONCILE_ACTION_MAX", 1)
    players = [make_player("8001"), make_player("8002")]
    provider.set_balance("8001", START + 1)

    found = run_action(client, "reconcile_selected", players)

    assert any("Select at most 1 at a time" in m for m in found)
    assert wallet_of(players[0]).balance == START


def test_staff_who_may_only_view_can_check_but_not_book(client, make_player, provider):
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_userbalance", "view_user"])
    )
    client.force_login(clerk)
    player = make_player("8001")
    provider.set_balance("8001", START + 1)

    page = client.get(BALANCES).content.decode()
    assert 'value="check_selected"' in page
    assert 'value="reconcile_selected"' not in page
    response = client.post(
        BALANCES,
        {"action": "reconcile_selected", "_selected_action": [wallet_of(player).pk]},
    )
    assert response.status_code in (200, 302)
    assert wallet_of(player).balance == START
    assert not Transaction.objects.filter(type="adjustment").exists()

    found = run_action(client, "check_selected", [player])
    assert any(m.startswith("Drift found") for m in found)
    assert wallet_of(player).external_balance == START + 1


def test_the_service_refuses_staff_without_the_permission(make_player, provider):
    player = make_player("8001")
    clerk = UserFactory(username="clerk", is_staff=True)
    with pytest.raises(Forbidden):
        balances_reconcile_by_staff(users=[player], actor=clerk, fix=True)
    with pytest.raises(Forbidden):
        balances_reconcile_by_staff(users=[player], actor=clerk, fix=False)
    clerk.user_permissions.add(Permission.objects.get(codename="view_userbalance"))
    clerk = type(clerk).objects.get(pk=clerk.pk)  # drop the permission cache
    summary = balances_reconcile_by_staff(users=[player], actor=clerk, fix=False)
    assert summary.statuses == {ReconcileStatus.IN_SYNC: 1}
