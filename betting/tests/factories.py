"""Bets for tests, as the lifecycle leaves them.

``BetFactory()`` is a pending ``debit_on_loss`` bet of 3 not yet sent (no provider
id) on a new linked account; pass ``account=`` to bet for a given player (the user
follows the account). Traits:

- ``placed=True``: pending with a provider bet id (the provider took it);
- ``completed=True``: completed with a provider id, a win of 0 (a loss: pass
  ``win_amount``) and ``completed_at`` now;
- ``unknown=True``: unknown, no provider id, ``unknown_since`` not set (as a
  crashed placement leaves it: the grace starts when it is found).

The stake: a bet that holds one (``Bet.holds_stake``) has it held through
``wallet.ledger.stake_hold``, so the user needs the available balance (fund the
user first: ``wallet.tests.factories.fund``) or ``InsufficientBalance`` is raised.
``hold=False`` skips it; the ledger checks then find the hold missing. The factory
posts no entries: a stake the provider took in ``debit_on_place``
(``bet_place``) and a result (``bet_win``/``bet_loss``) are posted by the test,
with ``wallet.tests.factories.EntryFactory(bet=bet, ...)``.
"""

from decimal import Decimal

import factory
from django.utils import timezone

from accounts.tests.factories import ExternalApiAccountFactory
from betting.models import Bet
from wallet.ledger import stake_hold


class BetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bet
        skip_postgeneration_save = True

    account = factory.SubFactory(ExternalApiAccountFactory)
    user = factory.SelfAttribute("account.user")
    amount = Decimal("3")
    status = Bet.Status.PENDING
    stake_mode = Bet.StakeMode.DEBIT_ON_LOSS
    external_bet_id = None

    class Params:
        placed = factory.Trait(
            external_bet_id=factory.Sequence(lambda n: f"bet-{n}"),
        )
        completed = factory.Trait(
            status=Bet.Status.COMPLETED,
            external_bet_id=factory.Sequence(lambda n: f"bet-{n}"),
            win_amount=Decimal("0"),
            completed_at=factory.LazyFunction(timezone.now),
        )
        unknown = factory.Trait(status=Bet.Status.UNKNOWN, external_bet_id=None)

    @factory.post_generation
    def hold(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        """Holds the stake when the bet holds one (``hold=False``: never)."""
        if not create:
            return
        if extracted if extracted is not None else self.holds_stake:
            stake_hold(user_id=self.user_id, amount=self.amount)
