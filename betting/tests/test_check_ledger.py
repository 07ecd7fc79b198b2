"""``ledger_check`` and ``manage.py check_ledger``: clean after real bets, and each
kind of corruption that can be written directly is found."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import ExternalApiAccountFactory, UserFactory
from betting.checks import BetCheck, _bet_problems, ledger_check
from betting.models import Bet
from betting.services import bet_place, bet_resolve
from betting.tests.factories import BetFactory
from betting_site.errors import ApplicationError
from betting_site.testing import run_command as run
from wallet.checks import Check
from wallet.ledger import ledger_post
from wallet.models import Transaction, UserBalance
from wallet.tests.factories import EntryFactory, fund

pytestmark = pytest.mark.django_db

START = Decimal("100")


@pytest.fixture
def played(make_player, provider, stake_mode):
    """A player after a win, a loss and a refused bet."""
    player = make_player("9101")
    provider.configure(win_probability=1.0)
    assert bet_place(user=player, amount=3).bet.status == "completed"
    provider.configure(win_probability=0.0)
    assert bet_place(user=player, amount=4).bet.status == "completed"
    provider.add_fault("/bet", "error_before", method="POST", status=400)
    with pytest.raises(ApplicationError):
        bet_place(user=player, amount=2)
    assert ledger_check() == []
    return player


def checks_of(violations) -> set[Check]:
    return {violation.check for violation in violations}


def test_clean_after_a_series_of_real_bets_and_faults(
    make_player, provider, stake_mode
):
    players = [make_player(f"920{n}") for n in range(4)]
    provider.configure(win_probability=0.5)
    for _ in range(4):  # wins and losses
        bet_place(user=players[0], amount=2)
    provider.add_fault("/bet", "error_before", method="POST", status=400)
    with pytest.raises(ApplicationError):  # refused: failed
        bet_place(user=players[0], amount=1)
    for fault in ("error_after", "drop_before"):  # unknown, then resolved
        provider.add_fault("/bet", fault, method="POST", status=500)
        bet = bet_place(user=players[1], amount=3).bet
        assert bet.status == "unknown"
        assert bet_resolve(bet=bet).status in ("void", "failed")
    provider.add_fault("/win", "error_after", method="POST", status=500)
    bet = bet_place(user=players[2], amount=5).bet
    assert bet_resolve(bet=bet).status == "completed"
    # Left open on purpose: an unknown bet and a pending one hold their stakes.
    provider.add_fault("/bet", "drop_after", method="POST")
    assert bet_place(user=players[3], amount=2).bet.status == "unknown"
    provider.add_fault("/win", "error_before", method="POST", status=500)
    assert bet_place(user=players[2], amount=1).bet.status == "pending"
    assert Bet.objects.values("status").distinct().count() >= 4

    assert ledger_check() == []
    code, output = run("check_ledger")
    assert code == 0, output
    assert "Checking balances of 4 users" in output
    assert "Ledger clean: no violations." in output


def test_clean_after_amounts_inexact_in_floating_point():
    """On SQLite money is stored as floating point: the entries' SUM comes back as
    0.999999999999999 or 2.8e-17 instead of 1.00 or 0.00, and is rounded to cents
    before it is compared."""
    spent, earned = UserFactory(), UserFactory()
    ledger_post(user_id=spent.pk, entry_type="initial_balance", amount=Decimal("1.00"))
    for amount in ("-0.10", "-0.70", "-0.20"):
        ledger_post(user_id=spent.pk, entry_type="adjustment", amount=Decimal(amount))
    ledger_post(user_id=earned.pk, entry_type="initial_balance", amount=Decimal("0.10"))
    for amount in ("0.20", "0.70"):
        ledger_post(user_id=earned.pk, entry_type="adjustment", amount=Decimal(amount))

    assert UserBalance.objects.get(user=spent).balance == Decimal("0.00")
    assert UserBalance.objects.get(user=earned).balance == Decimal("1.00")
    assert ledger_check() == []
    UserBalance.objects.filter(user=spent).update(balance=Decimal("0.01"))
    (violation,) = ledger_check()
    assert (violation.user_id, violation.check) == (spent.pk, Check.BALANCE)
    assert violation.detail == (
        "balance 0.01 but the entries sum to 0.00 (difference 0.01)"
    )


CORRUPTIONS = {
    # The cached balance no longer equals the sum of the entries.
    "wrong cached balance": (
        lambda user: UserBalance.objects.filter(user=user).update(
            balance=F("balance") + 1
        ),
        {Check.BALANCE},
    ),
    # The last entry no longer starts where the previous one ended.
    "chain broken between entries": (
        lambda user: Transaction.objects.filter(
            pk=Transaction.objects.filter(user=user).latest("id").pk
        ).update(
            balance_before=F("balance_before") + 1,
            balance_after=F("balance_after") + 1,
        ),
        {Check.CHAIN},
    ),
    # The first entry does not start at zero.
    "chain not starting at zero": (
        lambda user: Transaction.objects.filter(user=user).update(
            balance_before=F("balance_before") + 5,
            balance_after=F("balance_after") + 5,
        ),
        {Check.CHAIN},
    ),
    "balance row missing": (
        lambda user: UserBalance.objects.filter(user=user).delete(),
        {Check.BALANCE},
    ),
    "wrong held": (
        lambda user: UserBalance.objects.filter(user=user).update(held=2),
        {Check.HELD},
    ),
    "held beyond the balance": (
        lambda user: UserBalance.objects.filter(user=user).update(
            held=F("balance") + 1
        ),
        {Check.HELD, Check.AVAILABLE},
    ),
    # A completed bet's result entry turned into something else.
    "completed bet missing its result entry": (
        lambda user: Transaction.objects.filter(
            user=user, type__in=["bet_win", "bet_loss"]
        ).update(type="adjustment"),
        {BetCheck.BET_ENTRIES},
    ),
    # A failed bet carrying an entry that moved money.
    "failed bet with an entry": (
        lambda user: Transaction.objects.filter(user=user, type="bet_win").update(
            bet=Bet.objects.get(user=user, status="failed")
        ),
        {BetCheck.BET_ENTRIES},
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_each_corruption_is_found(played, corruption):
    corrupt, expected = CORRUPTIONS[corruption]
    corrupt(played)

    violations = ledger_check()

    assert checks_of(violations) == expected
    assert {v.user_id for v in violations} == {played.pk}
    code, output = run("check_ledger")
    assert code == 1
    assert f"VIOLATION user {played.username} (id {played.pk})" in output
    for check in expected:
        assert f"[{check}]" in output
    summary = output.splitlines()[-1]
    assert summary.startswith(f"{len(violations)} violations for 1 users (")
    for check in expected:
        assert f"{check} " in summary


def test_a_completed_bet_missing_its_result_is_named(played):
    bet = Bet.objects.filter(user=played, status="completed").first()
    Transaction.objects.filter(bet=bet, type__in=["bet_win", "bet_loss"]).update(
        type="adjustment"
    )
    details = [v.detail for v in ledger_check() if v.bet_id == bet.pk]
    assert any("0 result entries (bet_win or bet_loss), not one" in d for d in details)


def test_a_broken_chain_names_the_entry(played):
    last = Transaction.objects.filter(user=played).latest("id")
    Transaction.objects.filter(pk=last.pk).update(
        balance_before=F("balance_before") + 1, balance_after=F("balance_after") + 1
    )
    (violation,) = ledger_check()
    assert violation.detail == (
        f"entry {last.pk} starts at {last.balance_before + 1} but the previous "
        f"entry ended at {last.balance_before}"
    )


def test_user_limits_the_check(played, make_player):
    other = make_player("9102")
    UserBalance.objects.filter(user=played).update(balance=F("balance") + 1)
    assert run("check_ledger", "--user", other.username)[0] == 0
    assert run("check_ledger", "--user", played.username)[0] == 1
    assert ledger_check(user_ids=[other.pk]) == []


def test_an_unknown_user_is_a_usage_error():
    code, output = run("check_ledger", "--user", "nobody")
    assert code == 2
    assert "No user named 'nobody'" in output


def _ledger_without_provider(users: int) -> None:
    """Users with entries and settled bets, written directly (no provider)."""
    for _ in range(users):
        account = ExternalApiAccountFactory()
        fund(account.user, START)
        for n in range(3):
            bet = BetFactory(
                account=account,
                amount=Decimal("2"),
                completed=True,
                external_bet_id=f"{account.external_user_id}-{n}",
            )
            EntryFactory(bet=bet, type="bet_loss", amount=Decimal("-2"))


def test_queries_do_not_grow_with_the_number_of_users():
    _ledger_without_provider(2)
    with CaptureQueriesContext(connection) as few:
        assert ledger_check() == []
    _ledger_without_provider(8)
    with CaptureQueriesContext(connection) as many:
        assert ledger_check() == []
    assert len(many) == len(few) <= 6


def test_progress_is_reported(played):
    messages: list[str] = []
    ledger_check(progress=messages.append, progress_every=2)
    assert "Checking balances of 1 users" in messages
    assert "  chain: 2 entries checked" in messages
    assert any(m.startswith("Checked the entries of 3 bets") for m in messages)


def _bet(**fields) -> dict:
    """One row of the bet check: a settled debit_on_loss loss, unless changed."""
    row = {
        "id": 1,
        "status": "completed",
        "stake_mode": "debit_on_loss",
        "amount": Decimal("3"),
        "external_bet_id": "x1",
        "win_amount": Decimal("0"),
        "completed_at": timezone.now(),
        "n_bet_place": 0,
        "n_bet_win": 0,
        "n_bet_loss": 1,
        "s_bet_place": None,
        "s_bet_win": None,
        "s_bet_loss": Decimal("-3"),
        "n_other": 0,
        "n_foreign": 0,
    }
    return row | fields


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (_bet(), None),
        (_bet(n_bet_loss=2, s_bet_loss=Decimal("-6")), "2 bet_loss entries"),
        (_bet(n_foreign=1), "1 entries belong to another user"),
        (_bet(s_bet_loss=Decimal("-2")), "bet_loss of -2, not -3"),
        (_bet(win_amount=Decimal("6")), "a bet_loss entry, but win_amount 6"),
        (_bet(completed_at=None), "no win_amount or completed_at"),
        (
            _bet(n_bet_place=1, s_bet_place=Decimal("-3")),
            "a bet_place entry, though debit_on_loss stakes are not posted",
        ),
        (_bet(stake_mode="debit_on_place"), "0 bet_place entries, not one"),
        (
            _bet(
                n_bet_loss=0,
                n_bet_win=1,
                s_bet_win=Decimal("5"),
                win_amount=Decimal("6"),
            ),
            "bet_win of 5, but win_amount 6",
        ),
        (
            _bet(n_bet_place=1, s_bet_place=Decimal("-1")),
            "bet_place of -1, not -3",
        ),
        (
            _bet(status="void", stake_mode="debit_on_loss", n_bet_loss=1),
            "a result entry, though a void bet is never settled",
        ),
        (  # booked by staff who saw the stake taken at the provider
            _bet(status="void", n_bet_loss=0, n_bet_place=1, s_bet_place=-3),
            None,
        ),
        (
            _bet(
                status="void",
                stake_mode="debit_on_place",
                n_bet_loss=0,
                n_bet_place=1,
                s_bet_place=Decimal("-3"),
            ),
            None,
        ),
        (
            _bet(status="pending", n_bet_loss=1),
            "a result entry, though the bet is still open",
        ),
        (
            _bet(status="pending", stake_mode="debit_on_place", n_bet_loss=0),
            "0 bet_place entries, not one (placed, debit_on_place)",
        ),
        (
            _bet(
                status="unknown",
                external_bet_id=None,
                n_bet_loss=0,
                n_bet_place=1,
                s_bet_place=Decimal("-3"),
            ),
            "a bet_place entry before the provider took the stake",
        ),
        (_bet(status="pending", n_bet_loss=0), None),
    ],
)
def test_bet_entries_must_fit_the_state(row, problem):
    problems = [detail for _, detail in _bet_problems(row)]
    if problem is None:
        assert problems == []
    else:
        assert any(problem in detail for detail in problems), problems
