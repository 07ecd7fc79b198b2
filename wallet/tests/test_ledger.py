from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.tests.factories import UserFactory
from wallet.ledger import ledger_post
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db


def test_entries_chain_and_move_the_cached_balance():
    user = UserFactory()
    first = ledger_post(
        user_id=user.pk, entry_type="initial_balance", amount=Decimal("1000")
    )
    second = ledger_post(
        user_id=user.pk,
        entry_type="adjustment",
        amount=Decimal("-3.50"),
        description="test",
        provider_balance=Decimal("996.50"),
    )
    assert (first.balance_before, first.balance_after) == (
        Decimal("0"),
        Decimal("1000"),
    )
    assert (second.balance_before, second.balance_after) == (
        Decimal("1000"),
        Decimal("996.50"),
    )
    wallet = UserBalance.objects.get(user=user)
    assert wallet.balance == Decimal("996.50") == wallet.external_balance
    assert wallet.last_checked_at is not None


def test_a_second_initial_balance_is_refused_by_the_database():
    user = UserFactory()
    ledger_post(user_id=user.pk, entry_type="initial_balance", amount=Decimal("10"))
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger_post(user_id=user.pk, entry_type="initial_balance", amount=Decimal("10"))
    assert Transaction.objects.filter(user=user).count() == 1
    assert UserBalance.objects.get(user=user).balance == Decimal("10")


def test_the_balance_can_never_go_negative():
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger_post(user_id=user.pk, entry_type="adjustment", amount=Decimal("-1"))
    assert not Transaction.objects.filter(user=user).exists()


def test_a_broken_chain_is_refused_by_the_database():
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(
            user=user,
            type="adjustment",
            amount=Decimal("5"),
            balance_before=Decimal("0"),
            balance_after=Decimal("6"),
        )


@pytest.mark.parametrize(
    ("before", "amount", "after"),
    [
        ("10.00", "5.00", "15.01"),
        ("10.00", "5.00", "14.99"),
        ("0.10", "0.20", "0.31"),  # inexact in floating point (SQLite)
        ("0.90", "-0.70", "0.19"),
    ],
)
def test_a_chain_off_by_a_cent_is_refused_by_the_database(before, amount, after):
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(
            user=user,
            type="adjustment",
            amount=Decimal(amount),
            balance_before=Decimal(before),
            balance_after=Decimal(after),
        )


@pytest.mark.parametrize(
    ("before", "amount", "after"),
    [("0.10", "0.20", "0.30"), ("0.90", "-0.70", "0.20"), ("1.28", "0.10", "1.38")],
)
def test_a_chain_inexact_in_floating_point_is_accepted(before, amount, after):
    """On SQLite money is stored as floating point, where 0.10 + 0.20 != 0.30: the
    constraint compares after rounding to cents."""
    user = UserFactory()
    Transaction.objects.create(
        user=user,
        type="adjustment",
        amount=Decimal(amount),
        balance_before=Decimal(before),
        balance_after=Decimal(after),
    )
    entry = Transaction.objects.get(user=user)
    assert entry.balance_after == Decimal(after)


def test_amounts_with_more_than_two_places_are_refused():
    user = UserFactory()
    with pytest.raises(ValueError, match="two decimal places"):
        ledger_post(user_id=user.pk, entry_type="adjustment", amount=Decimal("0.001"))
