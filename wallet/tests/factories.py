"""Ledger entries for tests, posted the one way money is written.

``EntryFactory`` never creates a ``Transaction`` row itself: ``_create`` calls
``wallet.ledger.ledger_post``, so every entry chains from the balance before it,
moves the cached balance (creating the balance row on first use) and meets the
database's refusals like any other post. It creates only (no ``build``).

``EntryFactory(user=user, amount=100)`` is the user's initial balance (``fund``
says it shorter); ``type=...`` for an adjustment, or with ``bet=bet`` for a bet
entry (the user follows the bet). ``provider_balance`` and ``release_hold`` are
passed through to ``ledger_post``.
"""

from decimal import Decimal
from typing import Any

import factory

from accounts.models import User
from accounts.tests.factories import UserFactory
from wallet.ledger import ledger_post
from wallet.models import Transaction


class EntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Transaction

    bet = None
    user = factory.Maybe(
        "bet",
        yes_declaration=factory.SelfAttribute("bet.user"),
        no_declaration=factory.SubFactory(UserFactory),
    )
    type = Transaction.Type.INITIAL_BALANCE  # the field: shadows the builtin here
    amount = Decimal("100")
    description = ""
    evidence = None
    created_by = None
    provider_balance = None
    release_hold = None

    @classmethod
    def _build(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Ledger entries exist only posted: use EntryFactory.create")

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Transaction:
        bet = kwargs.pop("bet")
        created_by = kwargs.pop("created_by")
        return ledger_post(
            user_id=kwargs.pop("user").pk,
            entry_type=kwargs.pop("type"),
            bet_id=None if bet is None else bet.pk,
            actor_id=None if created_by is None else created_by.pk,
            **kwargs,
        )


def fund(user: User, amount: Decimal | int | str) -> Transaction:
    """Posts ``amount`` as the user's initial balance (one per user)."""
    return EntryFactory(user=user, amount=Decimal(amount))
