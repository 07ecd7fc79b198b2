import logging
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.tests.factories import UserFactory
from betting_site.money import MONEY_MAX
from wallet.ledger import ENTRY, ledger_post, ledger_post_ctes
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


# --- ledger_post_ctes: the same post inside a caller's statement (PostgreSQL) -------


def _post_in_one_statement(**kwargs):
    """``WITH moved, entry SELECT ...``: what a caller composes, with nothing of
    its own; None when nothing was moved."""
    ctes = ledger_post_ctes(**kwargs)
    with connection.cursor() as cursor:
        sql = f"WITH {ctes.sql} SELECT {ctes.returning} FROM {ENTRY}"  # noqa: S608
        cursor.execute(sql, ctes.params)
        row = cursor.fetchone()
    return None if row is None else ctes.posted(row)


@pytest.mark.postgres
def test_a_post_in_one_statement_is_the_entry_ledger_post_writes(caplog):
    user = UserFactory()
    ledger_post(user_id=user.pk, entry_type="initial_balance", amount=Decimal("10"))
    with caplog.at_level(logging.INFO, logger="wallet.ledger"):
        entry = _post_in_one_statement(
            user_id=user.pk,
            entry_type="adjustment",
            amount=Decimal("-3.50"),
            description="x" * 600,
            evidence={"kind": "test", "figure": "6.50"},
            provider_balance=Decimal("6.50"),
        )
    assert entry is not None
    assert not entry._state.adding
    assert entry._state.db == "default"
    stored = Transaction.objects.get(pk=entry.pk)
    fields = [f.attname for f in Transaction._meta.concrete_fields]
    assert [getattr(entry, f) for f in fields] == [getattr(stored, f) for f in fields]
    assert (stored.balance_before, stored.balance_after) == (
        Decimal("10"),
        Decimal("6.50"),
    )
    assert stored.evidence == {"kind": "test", "figure": "6.50"}
    assert len(stored.description) == 500
    assert stored.created_at is not None
    wallet = UserBalance.objects.get(user=user)
    assert wallet.balance == Decimal("6.50") == wallet.external_balance
    assert "Ledger adjustment -3.50 for user" in caplog.text
    assert "balance 10.00 -> 6.50" in caplog.text


@pytest.mark.postgres
def test_a_post_in_one_statement_releases_the_hold_and_meets_the_refusals():
    user = UserFactory()
    ledger_post(user_id=user.pk, entry_type="initial_balance", amount=Decimal("10"))
    UserBalance.objects.filter(user=user).update(held=Decimal("2"))
    entry = _post_in_one_statement(
        user_id=user.pk,
        entry_type="adjustment",
        amount=Decimal("-1"),
        release_hold=Decimal("5"),
    )
    assert entry is not None
    wallet = UserBalance.objects.get(user=user)
    assert (wallet.balance, wallet.held) == (Decimal("9"), 0)  # never below zero
    with pytest.raises(IntegrityError), transaction.atomic():
        _post_in_one_statement(
            user_id=user.pk, entry_type="adjustment", amount=Decimal("-10")
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        _post_in_one_statement(
            user_id=user.pk, entry_type="initial_balance", amount=Decimal("1")
        )
    assert Transaction.objects.filter(user=user).count() == 2
    assert UserBalance.objects.get(user=user).balance == Decimal("9")


@pytest.mark.postgres
def test_a_post_in_one_statement_moves_nothing_without_a_row_or_past_the_range():
    user = UserFactory()
    assert (
        _post_in_one_statement(
            user_id=user.pk, entry_type="initial_balance", amount=Decimal("1")
        )
        is None
    )
    ledger_post(user_id=user.pk, entry_type="initial_balance", amount=MONEY_MAX)
    assert (
        _post_in_one_statement(
            user_id=user.pk, entry_type="adjustment", amount=Decimal("1")
        )
        is None
    )
    assert Transaction.objects.filter(user=user).count() == 1
    assert UserBalance.objects.get(user=user).balance == MONEY_MAX


def test_a_post_in_one_statement_needs_postgresql(user):
    if connection.vendor == "postgresql":
        pytest.skip("SQLite only")
    with pytest.raises(NotImplementedError):
        ledger_post_ctes(user_id=user.pk, entry_type="adjustment", amount=1)
