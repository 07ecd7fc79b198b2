"""Property-based, stateful tests of the ledger (``ledger_post``) against a model.

Hypothesis drives random sequences of posts, of every entry type, for a few users:
valid ones and ones the ledger must refuse (a negative balance, more than two
decimal places, a wrong sign for the type, a second initial balance or a second
entry for one bet event, an amount or balance that does not fit the column, a
float, NaN). The model is each user's balance and the list of entries it expects.
After every step: the cached balance equals the sum of the entries and the model,
the entries chain from 0 in id order exactly as the model says, a refused post
left no row behind, and ``ledger_check`` reports nothing.

Budget: the hypothesis profile (``HYPOTHESIS_PROFILE``, see ``conftest.py``).
"""

import itertools
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import User
from accounts.tests.factories import ExternalApiAccountFactory
from betting.checks import BetCheck, ledger_check
from betting.models import Bet
from betting.tests.factories import BetFactory
from betting_site.errors import ApplicationError
from betting_site.money import CENT, MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, ZERO
from wallet.ledger import ledger_post
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db

USERS = 3
_serial = itertools.count()
# The largest amount the money column holds: 999999999999.99.
MONEY_LIMIT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES) - CENT
ENTRY_TYPES = [choice for choice, _ in Transaction.Type.choices]
DEBITS = (Transaction.Type.BET_PLACE, Transaction.Type.BET_LOSS)
CREDITS = (Transaction.Type.BET_WIN, Transaction.Type.INITIAL_BALANCE)

everyday = st.decimals(
    min_value=-1000, max_value=1000, places=2, allow_nan=False, allow_infinity=False
)
cents = st.integers(min_value=-99, max_value=99).map(lambda n: Decimal(n) / 100)
too_precise = st.decimals(
    min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False
).filter(lambda d: d != d.quantize(CENT))
huge = st.one_of(
    st.sampled_from(
        [MONEY_LIMIT, MONEY_LIMIT + CENT, -MONEY_LIMIT, -MONEY_LIMIT - CENT]
    ),
    st.decimals(min_value=MONEY_LIMIT - 100, max_value=Decimal("1e16"), places=2),
)
amounts = st.one_of(
    everyday,
    cents,
    st.just(ZERO),
    too_precise,
    huge,
    huge.map(lambda d: -d),
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("1E+2")]),
)


@dataclass(frozen=True)
class Entry:
    type: str
    amount: Decimal
    balance_before: Decimal
    balance_after: Decimal
    bet_id: int | None


class LedgerMachine(RuleBasedStateMachine):
    """The model: per user, the balance and the entries in the order posted."""

    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint of the test's transaction, rolled back
        # in teardown, so every example starts from the same empty ledger.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.users = []
        self.accounts = {}
        for _ in range(USERS):
            # No password: hashing one costs more than the whole example.
            user = User.objects.create(username=f"ledger-{next(_serial)}")
            self.users.append(user)
            self.accounts[user.pk] = ExternalApiAccountFactory(user=user)
        self.balance = {user.pk: ZERO for user in self.users}
        self.entries: dict[int, list[Entry]] = {user.pk: [] for user in self.users}
        self.bet_events: list[tuple[int, int, str]] = []  # (user, bet, type) posted

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- what the ledger must do ------------------------------------------------

    def refusal(self, user_id: int, entry_type: str, amount: Decimal) -> str | None:
        """Why the ledger must refuse this post, or None if it must accept it."""
        if not amount.is_finite():
            return "not a number"
        if amount != amount.quantize(CENT):
            return "more than two decimal places"
        if abs(amount) > MONEY_LIMIT:
            return "the amount does not fit the column"
        after = self.balance[user_id] + amount
        if after > MONEY_LIMIT:
            return "the balance would not fit the column"
        if after < 0:
            return "the balance would go below zero"
        if entry_type in DEBITS and amount > 0:
            return "a debit type with a positive amount"
        if entry_type in CREDITS and amount < 0:
            return "a credit type with a negative amount"
        if entry_type == Transaction.Type.INITIAL_BALANCE and any(
            e.type == entry_type for e in self.entries[user_id]
        ):
            return "a second initial balance"
        return None

    def post(self, user, entry_type: str, amount, *, bet=None, expected=None) -> None:
        """Post through the service and compare with the model's verdict."""
        expected = expected or self.refusal(user.pk, entry_type, Decimal(amount))
        before = self._snapshot()
        try:
            with transaction.atomic():  # a refusal aborts only this post
                entry = ledger_post(
                    user_id=user.pk,
                    entry_type=entry_type,
                    amount=amount,
                    bet_id=bet.pk if bet is not None else None,
                )
        except (ApplicationError, ValueError, TypeError, DatabaseError) as exc:
            entry, refused = None, exc
        else:
            refused = None
        if refused is not None:
            assert expected is not None, (
                f"a valid post of {entry_type} {amount} (balance "
                f"{self.balance[user.pk]}) was refused: {refused!r}"
            )
            assert self._snapshot() == before, "a refused post changed the ledger"
            return
        assert expected is None, (
            f"a post of {entry_type} {amount} was accepted, but must be refused: "
            f"{expected}"
        )
        old = self.balance[user.pk]
        self.balance[user.pk] = old + entry.amount
        self.entries[user.pk].append(
            Entry(entry_type, entry.amount, old, old + entry.amount, entry.bet_id)
        )
        if bet is not None:
            self.bet_events.append((user.pk, bet.pk, entry_type))

    def _snapshot(self):
        return (
            sorted(UserBalance.objects.values_list("user_id", "balance", "held")),
            Transaction.objects.count(),
        )

    def _placeholder_bet(self, user) -> Bet:
        """A bet row for a bet entry to point at (the ledger does not look at it;
        the bet machine in betting/tests checks the bet bookkeeping)."""
        return BetFactory(
            account=self.accounts[user.pk],
            amount=Decimal(1),
            status=Bet.Status.VOID,
            stake_mode=Bet.StakeMode.DEBIT_ON_PLACE,
        )

    # --- rules --------------------------------------------------------------------

    @rule(
        index=st.integers(0, USERS - 1),
        entry_type=st.sampled_from(
            [Transaction.Type.INITIAL_BALANCE, Transaction.Type.ADJUSTMENT]
        ),
        amount=amounts,
    )
    def post_without_bet(self, index, entry_type, amount):
        self.post(self.users[index], entry_type, amount)

    @rule(
        index=st.integers(0, USERS - 1),
        entry_type=st.sampled_from(Transaction.BET_TYPES),
        amount=amounts,
    )
    def post_bet_entry(self, index, entry_type, amount):
        user = self.users[index]
        bet = self._placeholder_bet(user)
        self.post(user, entry_type, amount, bet=bet)

    @precondition(lambda self: self.bet_events)
    @rule(data=st.data(), amount=everyday)
    def post_the_same_bet_event_again(self, data, amount):
        user_id, bet_id, entry_type = data.draw(st.sampled_from(self.bet_events))
        user = next(u for u in self.users if u.pk == user_id)
        bet = Bet.objects.get(pk=bet_id)
        self.post(
            user, entry_type, amount, bet=bet, expected="a second entry for a bet event"
        )

    @rule(index=st.integers(0, USERS - 1), entry_type=st.sampled_from(ENTRY_TYPES))
    def post_a_bet_entry_without_its_bet(self, index, entry_type):
        if entry_type not in Transaction.BET_TYPES:
            return
        self.post(
            self.users[index], entry_type, ZERO, expected="a bet entry without a bet"
        )

    @rule(
        index=st.integers(0, USERS - 1),
        value=st.floats(min_value=0, max_value=100, allow_nan=False),
    )
    def post_a_float(self, index, value):
        self.post(
            self.users[index],
            Transaction.Type.ADJUSTMENT,
            value,
            expected="money is never a float",
        )

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def balances_chain_and_match_the_model(self):
        """The cached balance is the sum of the entries and the model's; the entries
        are the model's, chained from 0 in id order (two queries for all users)."""
        wallets = {
            user_id: (balance, held)
            for user_id, balance, held in UserBalance.objects.values_list(
                "user_id", "balance", "held"
            )
        }
        stored: dict[int, list[Entry]] = {user.pk: [] for user in self.users}
        rows = Transaction.objects.order_by("user_id", "id").values_list(
            "user_id", "type", "amount", "balance_before", "balance_after", "bet"
        )
        for user_id, *fields in rows:
            stored[user_id].append(Entry(*fields))
        for user in self.users:
            entries = stored[user.pk]
            balance, held = wallets.get(user.pk, (ZERO, ZERO))
            assert balance == sum((e.amount for e in entries), ZERO)
            assert balance == self.balance[user.pk]
            assert held == ZERO
            assert entries == self.entries[user.pk]
            running = ZERO
            for entry in entries:
                assert entry.balance_before == running
                assert entry.balance_before + entry.amount == entry.balance_after
                running = entry.balance_after

    @invariant()
    def ledger_check_finds_nothing(self):
        # The placeholder bets do not follow the bet lifecycle: their per-bet
        # bookkeeping (checks e and g) is the bet machine's business.
        ignored = (BetCheck.BET_ENTRIES, BetCheck.COMPLETED)
        violations = [v for v in ledger_check() if v.check not in ignored]
        assert violations == []


def test_ledger_matches_its_model_under_random_posts():
    run_state_machine_as_test(
        LedgerMachine,
        settings=hypothesis_settings(parent=hypothesis_settings.default),
    )


# --- regressions found by the machine -----------------------------------------------


def test_cents_chain_exactly_on_every_database():
    """SQLite stores the money columns as binary floats, and evaluated the chain
    constraint (``balance_after = balance_before + amount``) on them: 0.10 + 0.20
    is not 0.30 there, so a valid entry was refused with an IntegrityError."""
    user = User.objects.create(username="cents")
    ledger_post(user_id=user.pk, entry_type="initial_balance", amount=Decimal("0.10"))
    entry = ledger_post(
        user_id=user.pk, entry_type="adjustment", amount=Decimal("0.20")
    )
    assert entry.balance_after == Decimal("0.30")
    assert UserBalance.objects.get(user=user).balance == Decimal("0.30")
    assert ledger_check(user_ids=[user.pk]) == []


def test_a_balance_that_does_not_fit_the_column_is_refused_and_changes_nothing():
    """On SQLite an entry taking the balance past 999999999999.99 was written, and
    every later read of that balance raised ``decimal.InvalidOperation``; on
    PostgreSQL it was a DataError. It is a validation error now."""
    user = User.objects.create(username="overflow")
    ledger_post(user_id=user.pk, entry_type="initial_balance", amount=Decimal("100"))
    with pytest.raises(ApplicationError), transaction.atomic():
        ledger_post(user_id=user.pk, entry_type="adjustment", amount=MONEY_LIMIT)
    assert UserBalance.objects.get(user=user).balance == Decimal("100")
    assert Transaction.objects.filter(user=user).count() == 1
