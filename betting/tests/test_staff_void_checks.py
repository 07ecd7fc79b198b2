"""A bet staff voided with the stake taken at the provider keeps check_ledger clean,
in both stake modes: staff book the stake, and the ledger check accepts it."""

import pytest

from accounts.tests.factories import UserFactory
from betting.checks import ledger_check
from betting.staff import bet_void_by_staff
from betting.tests.crashes import bet_left_at
from wallet.models import Transaction

pytestmark = pytest.mark.django_db


def test_a_stake_staff_booked_on_void_is_no_violation(make_player, stake_mode):
    player = make_player("9701")
    clerk = UserFactory(is_staff=True, is_superuser=True)
    bet = bet_left_at("recorded", user=player)  # open, its stake held
    voided = bet_void_by_staff(
        bet=bet, actor=clerk, reason="stake seen at provider", provider_debited=True
    )
    assert voided.status == "void"
    assert Transaction.objects.filter(bet=bet, type="bet_place").count() == 1
    assert ledger_check(user_ids=[player.pk]) == []
