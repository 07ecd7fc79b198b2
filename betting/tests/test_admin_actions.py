"""Staff repairs in the admin: void, adjustment, resolution; who and why recorded."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.tests.factories import UserFactory
from betting import staff as staff_services
from betting.lease import lease_try_claim
from betting.models import Bet
from betting.services import bet_place
from betting.tests.factories import BetFactory
from betting_site.errors import Forbidden, ValidationFailed
from wallet.ledger import stake_hold
from wallet.models import Transaction, UserBalance
from wallet.tests.factories import EntryFactory

pytestmark = pytest.mark.django_db

START = Decimal("100")


@pytest.fixture
def player_provider():
    """The player is linked in the database only: no simulator."""
    return None


@pytest.fixture
def player_balance() -> Decimal:
    return START


def open_bet(
    player,
    *,
    status: str = "unknown",
    stake_mode: str = "debit_on_loss",
    external_bet_id: str | None = None,
    needs_attention: bool = True,
) -> Bet:
    """An open bet as the lifecycle leaves it, its stake held when it holds one,
    else booked (the provider took it)."""
    bet = BetFactory(
        account=player.external_accounts.get(is_active=True),
        status=status,
        stake_mode=stake_mode,
        external_bet_id=external_bet_id,
        needs_attention=needs_attention,
        status_reason="Cannot attribute the provider balance",
    )
    if not bet.holds_stake:
        EntryFactory(bet=bet, type="bet_place", amount=-bet.amount, description="Stake")
    return bet


def void_url(bet: Bet) -> str:
    return reverse("admin:betting_bet_void", args=[bet.pk])


def adjust_url(player) -> str:
    wallet = UserBalance.objects.get(user=player)
    return reverse("admin:wallet_userbalance_adjust", args=[wallet.pk])


def wallet_of(player) -> UserBalance:
    return UserBalance.objects.get(user=player)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- void -------------------------------------------------------------------------


def test_void_page_and_bet_pages_render(client, boss, player):
    bet = open_bet(player)
    page = client.get(void_url(bet))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="reason"' in html
    assert 'name="provider_debited"' in html
    change = client.get(reverse("admin:betting_bet_change", args=[bet.pk]))
    assert change.status_code == 200
    assert void_url(bet) in change.content.decode()
    assert "Result in doubt" in change.content.decode()
    changelist = client.get(reverse("admin:betting_bet_changelist"))
    assert changelist.status_code == 200
    assert "resolve_with_provider" in changelist.content.decode()


def test_void_action_leads_to_the_confirmation_page(client, boss, player):
    bet = open_bet(player)
    response = client.post(
        reverse("admin:betting_bet_changelist"),
        {"action": "void_selected", "_selected_action": [bet.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == void_url(bet)


def test_void_records_who_and_why_and_releases_the_hold(client, boss, player):
    bet = open_bet(player)
    assert wallet_of(player).held == Decimal("3")
    response = client.post(void_url(bet), {"reason": "provider support: no record"})
    assert response.status_code == 302
    bet.refresh_from_db()
    assert bet.status == "void"
    assert bet.needs_attention
    assert "boss" in bet.status_reason
    assert "provider support: no record" in bet.status_reason
    wallet = wallet_of(player)
    assert wallet.held == 0
    assert wallet.balance == START  # nothing moved
    assert not Transaction.objects.filter(bet=bet).exists()
    entry = LogEntry.objects.get(object_id=str(bet.pk))
    assert entry.user == boss
    assert "provider support" in entry.get_change_message()


def test_void_when_the_provider_took_the_stake_books_it_with_who_and_why(
    client, boss, player
):
    bet = open_bet(player, stake_mode="debit_on_place")
    response = client.post(
        void_url(bet), {"reason": "stake seen at provider", "provider_debited": "on"}
    )
    assert response.status_code == 302
    bet.refresh_from_db()
    assert bet.status == "void"
    entry = Transaction.objects.get(bet=bet)
    assert entry.type == "bet_place"
    assert entry.amount == Decimal("-3")
    assert entry.created_by == boss
    assert entry.evidence["reason"] == "stake seen at provider"
    assert entry.evidence["by"] == "boss"
    wallet = wallet_of(player)
    assert wallet.held == 0
    assert wallet.balance == START - 3
    assert wallet.available == START - 3


def test_void_never_books_the_stake_twice(client, boss, player):
    bet = open_bet(
        player, status="pending", stake_mode="debit_on_place", external_bet_id="77"
    )
    assert wallet_of(player).balance == START - 3
    response = client.post(
        void_url(bet), {"reason": "provider lost the bet", "provider_debited": "on"}
    )
    assert response.status_code == 302
    bet.refresh_from_db()
    assert bet.status == "void"
    assert Transaction.objects.filter(bet=bet).count() == 1
    assert "already booked" in bet.status_reason
    wallet = wallet_of(player)
    assert wallet.balance == START - 3
    assert wallet.held == 0


def test_void_refuses_a_completed_bet(client, boss, player):
    bet = BetFactory(
        account=player.external_accounts.get(is_active=True),
        amount=Decimal("2"),
        completed=True,
        win_amount=Decimal("4"),
        external_bet_id="91",
    )
    EntryFactory(bet=bet, type="bet_win", amount=Decimal("4"))
    before = (bet.status, bet.status_reason, wallet_of(player).balance)

    page = client.get(void_url(bet))
    assert page.status_code == 302
    assert any("only a pending or unknown" in m for m in messages_of(page))
    change = client.get(reverse("admin:betting_bet_change", args=[bet.pk]))
    assert void_url(bet) not in change.content.decode()

    response = client.post(void_url(bet), {"reason": "try anyway"})
    assert response.status_code == 200
    assert "is already completed" in response.content.decode()
    bet.refresh_from_db()
    assert (bet.status, bet.status_reason, wallet_of(player).balance) == before
    assert Transaction.objects.filter(bet=bet).count() == 1


def test_void_requires_a_reason(client, boss, player):
    bet = open_bet(player)
    response = client.post(void_url(bet), {"reason": "   ", "provider_debited": "on"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    bet.refresh_from_db()
    assert bet.status == "unknown"
    assert wallet_of(player).held == Decimal("3")
    assert not Transaction.objects.filter(bet=bet).exists()


def test_void_waits_for_a_running_operation_of_the_user(
    client, boss, player, monkeypatch
):
    monkeypatch.setattr(staff_services, "STAFF_LEASE_WAIT", 0)
    bet = open_bet(player)
    assert lease_try_claim(user_id=player.pk, operation="bet_resolve") is not None
    response = client.post(void_url(bet), {"reason": "stuck"})
    assert response.status_code == 200
    assert "in progress" in response.content.decode()
    bet.refresh_from_db()
    assert bet.status == "unknown"


# --- adjustment -------------------------------------------------------------------


def test_balance_pages_render_with_available_and_the_adjust_tool(client, boss, player):
    wallet = wallet_of(player)
    change = client.get(reverse("admin:wallet_userbalance_change", args=[wallet.pk]))
    assert change.status_code == 200
    assert adjust_url(player) in change.content.decode()
    assert "Available" in change.content.decode()
    changelist = client.get(reverse("admin:wallet_userbalance_changelist"))
    assert changelist.status_code == 200
    assert "Available" in changelist.content.decode()
    page = client.get(adjust_url(player))
    assert page.status_code == 200
    assert 'name="amount"' in page.content.decode()


def test_adjustment_posts_a_signed_entry_with_who_and_why(client, boss, player):
    response = client.post(
        adjust_url(player), {"amount": "-12.50", "reason": "duplicate bonus"}
    )
    assert response.status_code == 302
    entry = Transaction.objects.get(user=player, type="adjustment")
    assert entry.amount == Decimal("-12.50")
    assert entry.created_by == boss
    assert entry.evidence == {
        "kind": "manual",
        "reason": "duplicate bonus",
        "by": "boss",
    }
    assert entry.balance_before == START
    assert entry.balance_after == Decimal("87.50")
    assert wallet_of(player).balance == Decimal("87.50")
    assert any("87.50" in m for m in messages_of(response))

    client.post(adjust_url(player), {"amount": "2.5", "reason": "goodwill"})
    assert wallet_of(player).balance == Decimal("90.00")
    assert Transaction.objects.filter(user=player, type="adjustment").count() == 2


@pytest.mark.parametrize(
    ("amount", "reason", "error"),
    [
        ("-100.01", "too much", "cannot go below 0 (it would be -0.01)"),
        ("5", "", "This field is required"),
        ("5", "   ", "This field is required"),
        ("0", "nothing", "cannot be zero"),
        ("1.005", "cents", "decimal places"),
        ("abc", "words", "Enter a number"),
    ],
)
def test_adjustment_is_refused_and_nothing_changes(
    client, boss, player, amount, reason, error
):
    response = client.post(adjust_url(player), {"amount": amount, "reason": reason})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Transaction.objects.filter(user=player, type="adjustment").exists()
    assert wallet_of(player).balance == START


def test_adjustment_cannot_take_the_balance_to_zero_minus_one_cent_but_to_zero(
    client, boss, player
):
    response = client.post(adjust_url(player), {"amount": "-100", "reason": "close"})
    assert response.status_code == 302
    assert wallet_of(player).balance == 0


def test_adjustment_is_refused_while_a_bet_is_open(client, boss, player):
    open_bet(player)
    response = client.post(adjust_url(player), {"amount": "5", "reason": "bonus"})
    assert response.status_code == 200
    assert "resolve or void it first" in response.content.decode()
    assert wallet_of(player).balance == START


def test_adjustment_below_the_held_stakes_is_refused(player, boss):
    stake_hold(user_id=player.pk, amount=Decimal("50"))
    with pytest.raises(ValidationFailed) as excinfo:
        staff_services.adjustment_post(
            user=player, amount=Decimal("-60"), actor=boss, reason="x"
        )
    assert "held" in excinfo.value.message
    assert wallet_of(player).balance == START


def test_services_refuse_an_actor_without_the_permission(player):
    clerk = UserFactory(username="clerk", is_staff=True)
    with pytest.raises(Forbidden):
        staff_services.adjustment_post(
            user=player, amount=Decimal("1"), actor=clerk, reason="x"
        )
    with pytest.raises(Forbidden):
        staff_services.bet_void_by_staff(
            bet=open_bet(player), actor=clerk, reason="x", provider_debited=False
        )


# --- resolution -------------------------------------------------------------------


def test_resolve_action_completes_a_pending_bet(
    client, boss, user, provider, make_player, settings
):
    settings.PROVIDER_STAKE_MODE = "debit_on_loss"
    provider.configure(stake_mode="debit_on_loss", win_probability=1.0)
    make_player("9001", balance=START, user=user)
    provider.add_fault("/win", "error_after", method="POST", status=500)
    bet = bet_place(user=user, amount=3).bet
    assert bet.status == "pending"

    response = client.post(
        reverse("admin:betting_bet_changelist"),
        {"action": "resolve_with_provider", "_selected_action": [bet.pk]},
    )
    assert response.status_code == 302
    bet.refresh_from_db()
    assert bet.status == "completed", bet.status_reason
    assert bet.win_amount == Decimal("6")
    assert wallet_of(user).balance == provider.balance_of("9001")
    assert wallet_of(user).held == 0
    assert any("1 completed" in m for m in messages_of(response))
    assert LogEntry.objects.get(object_id=str(bet.pk)).user == boss


def test_bulk_resolution_reports_busy_users_and_skips_final_bets(player, boss):
    bet = open_bet(player)
    done = BetFactory(status="failed", amount=Decimal("1"))
    assert lease_try_claim(user_id=player.pk, operation="bet_place") is not None
    summary = staff_services.bets_resolve_by_staff(bets=[bet, done], actor=boss, wait=0)
    assert summary.busy == [bet.pk]
    assert summary.skipped == 1
    assert f"bet {bet.pk}" in summary.as_text()
    bet.refresh_from_db()
    assert bet.status == "unknown"


# --- permissions ------------------------------------------------------------------


@pytest.fixture
def clerk(client):
    """Staff who may look at bets and balances but not repair them."""
    user = UserFactory(username="clerk", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_bet", "view_userbalance", "view_transaction"]
        )
    )
    client.force_login(user)
    return user


def test_staff_without_the_permission_cannot_act(client, clerk, player):
    bet = open_bet(player)
    changelist = client.get(reverse("admin:betting_bet_changelist"))
    assert changelist.status_code == 200
    assert "resolve_with_provider" not in changelist.content.decode()
    change = client.get(reverse("admin:betting_bet_change", args=[bet.pk]))
    assert change.status_code == 200
    assert void_url(bet) not in change.content.decode()

    assert client.get(void_url(bet)).status_code == 403
    assert client.post(void_url(bet), {"reason": "x"}).status_code == 403
    assert client.get(adjust_url(player)).status_code == 403
    response = client.post(adjust_url(player), {"amount": "5", "reason": "x"})
    assert response.status_code == 403
    for action in ("resolve_with_provider", "void_selected"):
        response = client.post(
            reverse("admin:betting_bet_changelist"),
            {"action": action, "_selected_action": [bet.pk]},
        )
        assert response.status_code in (200, 302)

    bet.refresh_from_db()
    assert bet.status == "unknown"
    assert wallet_of(player).held == Decimal("3")
    assert wallet_of(player).balance == START
    assert not Transaction.objects.filter(user=player, type="adjustment").exists()


def test_staff_with_the_change_permission_may_act(client, player):
    manager = UserFactory(username="manager", is_staff=True)
    manager.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_bet", "change_bet", "change_userbalance"]
        )
    )
    client.force_login(manager)
    bet = open_bet(player)
    assert client.post(void_url(bet), {"reason": "checked"}).status_code == 302
    bet.refresh_from_db()
    assert bet.status == "void"
    assert "manager" in bet.status_reason
    assert (
        client.post(adjust_url(player), {"amount": "1", "reason": "r"}).status_code
        == 302
    )
    entry = Transaction.objects.get(user=player, type="adjustment")
    assert entry.created_by == manager
