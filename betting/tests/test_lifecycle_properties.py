"""Property-based, stateful tests of the bet lifecycle against the provider simulator.

Hypothesis drives random sequences of operations on two players through the real
services and the bundled simulator on a real socket, in both stake modes: placing
bets (valid, invalid, too large, while another is open), resolving the open bet,
``settle_pending`` (as it is, or after the provider came back), and the staff
repairs (void, adjustment). Placing and resolving may first inject a provider fault
for the calls that follow: every kind the simulator has (5xx before or after acting,
a refusal, 429, a dropped connection before or after acting, a read timeout before
or after acting, broken JSON, a numeric bet id) on ``/bet``, ``/win``, ``/balance``
or ``/auth``, or the provider down (connection refused) for a few operations.

The model is the simulator itself, the independent truth of what the provider
did, plus what the test saw happen: which provider bet each local bet created (the
provider bets that appeared while it was being placed), the staff adjustments
(each booked together with the same movement at the provider, as if staff had
recorded money moved there), and every status each bet was seen in. From those,
after every step:

- the ledger balance and held stakes of each player are the ones the model computes
  from each bet's status and the provider's record of it; when a player has no
  open bet the ledger equals the provider's balance (contract section 6, items 1
  and 3; item 5 after ``settle_pending`` with the provider up);
- every provider bet belongs to exactly one local bet, created while placing it: no
  bet is placed twice; a completed bet has the provider's win; a failed bet never
  reached the provider; a void bet's stake is booked exactly when the provider took
  it; no automatic adjustment ever papers over a difference (item 2);
- at most one open bet per player; every bet moved only along the lifecycle's
  transitions; ``ledger_check`` finds nothing.

The simulator finishes each request before the next operation starts (the test
waits for it): a request the provider processes after the client gave up *and*
after the next resolution read the balance is outside what the contract's balance
rules can attribute. When a machine too loaded to answer within the read timeout
makes an operation time out without an injected fault, the checks of what a
healthy provider must lead to are skipped for that step (the invariants are not).

Budget: the hypothesis profile (``HYPOTHESIS_PROFILE``, see ``conftest.py``).
"""

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings
from hypothesis import event
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import User
from accounts.tests.factories import ExternalApiAccountFactory
from betting.checks import ledger_check
from betting.models import Bet
from betting.services import bet_place, bet_resolve
from betting.staff import adjustment_post, bet_void_by_staff
from betting_site.errors import ApplicationError
from betting_site.money import ZERO
from betting_site.testing import run_command
from provider.breaker import CircuitBreaker
from provider.simulator import ProviderSimulator
from provider.simulator.server import API_PREFIX, SimulatorRequestHandler
from provider.testing import ScriptedTransport
from provider.transport import default_transport, transport_installed
from wallet.models import Transaction, UserBalance
from wallet.tests.factories import fund

pytestmark = pytest.mark.django_db

PLAYERS = ("8101", "8102")
DOWN = "http://127.0.0.1:9/api"  # nothing listens: connection refused
READ_TIMEOUT = 0.5
DELAY = 0.6  # a delayed provider answers (or acts) after the client gave up
DOL = Bet.StakeMode.DEBIT_ON_LOSS
DOP = Bet.StakeMode.DEBIT_ON_PLACE
_serial = itertools.count()

# (path, method) x (kind, status): every fault the simulator can inject.
ENDPOINTS = [
    ("/bet", "POST"),
    ("/win", "POST"),
    ("/balance", "POST"),
    ("/auth", "POST"),
]
FAULTS = [
    ("error_before", 500),  # 5xx, nothing done
    ("error_after", 500),  # done, then 5xx
    ("error_before", 400),  # a definite refusal
    ("error_before", 403),
    ("rate_limit", 429),  # throttled before acting
    ("drop_before", None),  # connection closed, nothing done
    ("drop_after", None),  # done, connection closed without an answer
    ("delay_before", None),  # read timeout; the provider acts after it
    ("delay_after", None),  # done; the answer comes after the read timeout
    ("malformed_json", None),  # done, answered with broken JSON
    ("numeric_bet_id", None),  # bet_id as a JSON number
    ("down", None),  # nothing listens, for the next `times` operations
]

faults = st.none() | st.builds(
    lambda endpoint, fault, times: (*endpoint, *fault, times),
    st.sampled_from(ENDPOINTS),
    st.sampled_from(FAULTS),
    st.integers(1, 3),
)
# Mostly valid stakes; the rest must be refused before anything is recorded.
stakes = st.sampled_from(
    [1, 2, 3, 4, 5] * 3
    + [0, -1, 6, 100, Decimal("2.5"), Decimal("3.0"), True, "3", None, 3.0]
)
starting_balances = st.sampled_from(
    [Decimal("4"), Decimal("12"), Decimal("20.50"), Decimal("100.10")]
)
adjustments = st.one_of(
    st.decimals(min_value=-30, max_value=30, places=2),
    st.just(ZERO),
    st.sampled_from([Decimal("0.001"), Decimal("-1.005")]),
)

# What a bet may become between two observations: status, "@" when it has the
# provider's bet id.
TRANSITIONS = {
    "pending": {"pending", "pending@", "unknown", "failed", "void"},
    "pending@": {"pending@", "completed@", "void@"},
    "unknown": {"unknown", "failed", "void"},
}
FIRST_SEEN = {"pending@", "unknown", "failed", "completed@"}  # after bet_place


def _shape(bet: Bet) -> str:
    return bet.status + ("@" if bet.external_bet_id else "")


class InFlight:
    """Waits until the simulator has received every request the client sent to
    it and finished serving them, so that a late effect (a request processed after
    the client gave up) lands before the next operation.

    The client's side is counted by ``transport``, which records every request and
    passes it on to the real one (installed through the transport seam); the
    simulator's by ``handler``, its request handler class with each ``GET`` and
    ``POST`` under the API counted while it is served."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.received = self.serving = 0
        self.condition = threading.Condition()
        self.transport = ScriptedTransport(passthrough=default_transport())

    @property
    def sent(self) -> int:
        return sum(call.url.startswith(self.base_url) for call in self.transport.calls)

    def handler(self) -> type[SimulatorRequestHandler]:
        counter = self

        class Counted(SimulatorRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                counter._served(self.path, super().do_GET)

            def do_POST(self) -> None:  # noqa: N802
                counter._served(self.path, super().do_POST)

        return Counted

    def _served(self, path: str, serve: Callable[[], None]) -> None:
        if not path.startswith(API_PREFIX + "/"):
            serve()
            return
        with self.condition:
            self.received += 1
            self.serving += 1
        try:
            serve()
        finally:
            with self.condition:
                self.serving -= 1
                self.condition.notify_all()

    def wait_idle(self) -> None:
        with self.condition:
            # A request lost before the simulator read it is never received: give
            # up on it after a while, not on one still being served.
            self.condition.wait_for(
                lambda: self.received >= self.sent and not self.serving, 3
            )
            idle = self.condition.wait_for(lambda: not self.serving, 10)
        assert idle, "the simulator is still serving a request"


class BetMachine(RuleBasedStateMachine):
    # Set by the test: the simulator, the stake mode and the in-flight counter.
    provider = mode = inflight = None

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        # One settings layer per example, changed in place (every assignment to
        # pytest-django's ``settings`` stacks another layer).
        self._override = override_settings(
            PROVIDER_STAKE_MODE=self.mode, EXTERNAL_API_URL=self.provider.base_url
        )
        self._override.enable()
        self.settings = django_settings
        self.provider.reset()
        self.provider.configure(stake_mode=self.mode, win_probability=0.5)
        cache.clear()  # provider sessions, the breaker
        self.staff = User.objects.create(
            username=f"staff-{next(_serial)}", is_staff=True, is_superuser=True
        )
        self.players: list[tuple[User, str]] = []
        self.initial: dict[int, Decimal] = {}
        self.adjusted: dict[int, Decimal] = {}
        self.staff_entries = 0
        self.sim_of: dict[int, str | None] = {}  # local bet -> provider bet it made
        self.seen: dict[int, str] = {}  # local bet -> shape last seen
        self.down_for = 0  # operations left while the provider is down

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)
        self._override.disable()
        self.provider.clear_faults()

    # --- helpers ----------------------------------------------------------------------

    def _sim(self) -> dict:
        self.inflight.wait_idle()
        return self.provider.snapshot()

    def _sim_bets(self) -> dict[str, dict]:
        return {bet["id"]: bet for bet in self._sim()["bets"]}

    def _faults_armed(self) -> bool:
        return any(
            rule["times"] is None or rule["fired"] < rule["times"]
            for rule in self.provider.snapshot()["faults"]
        )

    def _provider_healthy(self) -> bool:
        return (
            self.provider.base_url == self.settings.EXTERNAL_API_URL
            and not self._faults_armed()
            and CircuitBreaker.for_url().state() == "closed"
        )

    @staticmethod
    def _slow(started: float) -> bool:
        """Whether an operation took a read timeout: with no fault injected that
        means the machine was too loaded to answer in time (a real "outcome
        unknown"), so what must happen when the provider is healthy is moot."""
        slow = time.monotonic() - started >= READ_TIMEOUT
        if slow:
            event("inconclusive: a read timeout without a fault")
        return slow

    def _operated(self) -> None:
        """One operation that talks to the provider is over."""
        if self.down_for:
            self.down_for -= 1
            if not self.down_for:
                self.settings.EXTERNAL_API_URL = self.provider.base_url

    def _open_bet(self, user: User) -> Bet | None:
        return Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES).first()

    def _provider_available(self, external_id: str) -> Decimal:
        """What the provider lets this account stake now."""
        snapshot = self._sim()
        balance = next(
            a["balance"] for a in snapshot["accounts"] if a["user_id"] == external_id
        )
        held = sum(
            (
                b["stake"]
                for b in snapshot["bets"]
                if b["user_id"] == external_id
                and b["status"] == "open"
                and b["stake_mode"] == DOL
            ),
            ZERO,
        )
        return balance - held

    def _state(self):
        """Everything a refused operation must leave as it was."""
        return (
            sorted(Bet.objects.values_list("id", "status", "external_bet_id")),
            sorted(UserBalance.objects.values_list("user_id", "balance", "held")),
            Transaction.objects.count(),
            sorted(self._sim_bets()),
        )

    # --- set-up -----------------------------------------------------------------------

    @initialize(balances=st.tuples(starting_balances, starting_balances))
    def start(self, balances):
        for external_id, balance in zip(PLAYERS, balances, strict=True):
            user = User.objects.create(username=f"bettor-{next(_serial)}")
            secret = f"secret-{external_id}"
            self.provider.add_account(external_id, secret, balance=balance)
            ExternalApiAccountFactory(
                user=user, external_user_id=external_id, secret=secret
            )
            fund(user, balance)
            self.players.append((user, external_id))
            self.initial[user.pk] = balance
            self.adjusted[user.pk] = ZERO

    # --- rules ----------------------------------------------------------------------

    @rule(index=st.integers(0, 1), amount=stakes, wins=st.booleans(), fault=faults)
    def place_bet(self, index, amount, wins, fault):
        """Place a bet, the provider failing from now on as ``fault`` says."""
        user, external_id = self.players[index]
        self.provider.configure(win_probability=1.0 if wins else 0.0)
        valid = (
            not isinstance(amount, bool)
            and isinstance(amount, int | Decimal)
            and amount == int(amount)
            and 1 <= amount <= 5
        )
        self._inject(fault)
        wallet = UserBalance.objects.get(user=user)
        expect_completed = (
            valid
            and self._provider_healthy()
            and self._open_bet(user) is None
            and wallet.available >= amount
            and self._provider_available(external_id) >= amount
        )
        sim_before = self._sim_bets()
        last_bet = Bet.objects.order_by("-id").values_list("id", flat=True).first()
        started = time.monotonic()
        try:
            placed = bet_place(user=user, amount=amount)
        except ApplicationError as exc:
            error, bet = exc, None
        else:
            error, bet = None, placed.bet
        expect_completed = expect_completed and not self._slow(started)
        self._operated()
        new_bets = list(Bet.objects.filter(id__gt=last_bet or 0))
        new_sim = set(self._sim_bets()) - set(sim_before)
        event("place: " + (error.code if error else _shape(bet)))

        assert len(new_bets) <= 1, new_bets
        assert len(new_sim) <= 1, f"one placement made provider bets {new_sim}"
        if new_sim:
            assert new_bets, f"provider bet {new_sim} has no local bet"
        if new_bets:
            new = new_bets[0]
            self.sim_of[new.pk] = next(iter(new_sim), None)
            shape = _shape(new)
            assert shape in FIRST_SEEN, shape
            self.seen[new.pk] = shape
        if not valid:
            assert error is not None
            assert error.code == "VALIDATION_ERROR"
            assert not new_bets
            return
        if expect_completed:
            assert error is None, f"{error.code}: {error.message}"
            assert bet.status == Bet.Status.COMPLETED, bet.status_reason
            assert bet.win_amount == (2 * bet.amount if wins else ZERO)
        if error is None:
            assert new_bets
            assert bet.pk == new_bets[0].pk
            assert bet.status in ("completed", "pending", "unknown")
        elif error.code == "INSUFFICIENT_BALANCE":
            assert not new_bets
            assert UserBalance.objects.get(user=user).available < amount
        elif error.code == "BET_IN_PROGRESS":
            assert not new_bets
            assert self._open_bet(user) is not None
        elif error.code in ("PROVIDER_UNAVAILABLE", "PROVIDER_ERROR"):
            assert new_bets
            assert new_bets[0].status == Bet.Status.FAILED
            assert error.details["bet"]["id"] == new_bets[0].pk
        else:
            raise AssertionError(f"unexpected {error.code}: {error.message}")

    def _inject(self, fault) -> None:
        """Make the provider misbehave from the next call on (``fault`` None: no)."""
        if fault is None:
            return
        path, method, kind, status, times = fault
        if kind == "down":
            self.settings.EXTERNAL_API_URL = DOWN
            self.down_for = times
            return
        if kind.startswith("delay"):
            times = 1  # each costs a read timeout; retried reads would cost three
        self.provider.add_fault(
            path,
            kind,
            method=method,
            status=status,
            times=times,
            delay=DELAY,
            retry_after=0,
        )

    @precondition(lambda self: self.sim_of)
    @rule(
        index=st.integers(0, 1),
        wins=st.booleans(),
        how=st.sampled_from(["bet_resolve", "settle_pending", "settle_pending_up"]),
        fault=faults,
    )
    def resolve(self, index, wins, how, fault):
        """Resolve a player's open bet (or a final one, which must not change),
        or run ``settle_pending`` as it is, or after the provider came back
        (which clears ``fault``)."""
        self.provider.configure(win_probability=1.0 if wins else 0.0)
        self._inject(fault)
        if how == "bet_resolve":
            self._resolve_one(self.players[index][0])
        else:
            self._settle_pending(provider_up=how == "settle_pending_up")
        self._operated()

    def _resolve_one(self, user: User) -> None:
        bet = self._open_bet(user) or Bet.objects.filter(user=user).last()
        if bet is None:
            return
        healthy = self._provider_healthy()
        was_open = bet.status in Bet.OPEN_STATUSES
        calls_before = self._sim()["calls"]
        sim_before = self._sim_bets()
        started = time.monotonic()
        resolved = bet_resolve(bet=bet, wait=0)
        healthy = healthy and not self._slow(started)
        event(f"resolve: {self.seen[bet.pk]} -> {_shape(resolved)}")
        assert set(self._sim_bets()) == set(sim_before), "resolving placed a bet"
        if not was_open:
            assert _shape(resolved) == self.seen[bet.pk]
            assert self._sim()["calls"] == calls_before, "a final bet went out"
        elif healthy:
            assert resolved.status not in Bet.OPEN_STATUSES, resolved.status_reason

    def _settle_pending(self, *, provider_up: bool) -> None:
        if provider_up:
            self.provider.clear_faults()
            self.settings.EXTERNAL_API_URL = self.provider.base_url
            self.down_for = 0
            CircuitBreaker.for_url().reset()
        sim_before = self._sim_bets()
        started = time.monotonic()
        code, output = run_command("settle_pending", "--wait", "0")
        provider_up = provider_up and not self._slow(started)
        event(f"settle_pending (provider up: {provider_up}): exit {code}")
        assert set(self._sim_bets()) == set(sim_before), "settling placed a bet"
        if provider_up:  # contract section 6, item 5
            assert code == 0, output
            assert not Bet.objects.filter(status__in=Bet.OPEN_STATUSES).exists()

    @precondition(lambda self: self.sim_of)
    @rule(index=st.integers(0, 1), with_reason=st.booleans())
    def staff_void(self, index, with_reason):
        user, _ = self.players[index]
        bet = self._open_bet(user)
        if bet is None:
            bet = Bet.objects.filter(user=user).last()
            if bet is None:
                return
        sim = self._sim_bets().get(self.sim_of.get(bet.pk) or "")
        if sim is not None and sim["status"] != "open":
            return  # settled at the provider: staff would resolve it, not void it
        # Staff look at the provider: it took the stake only in debit_on_place.
        debited = sim is not None and sim["stake_mode"] == DOP
        must_refuse = not with_reason or bet.status not in Bet.OPEN_STATUSES
        before = self._state()
        try:
            voided = bet_void_by_staff(
                bet=bet,
                actor=self.staff,
                reason="checked at the provider" if with_reason else " ",
                provider_debited=debited,
            )
        except ApplicationError as exc:
            refused = exc
        else:
            refused = None
        if refused is not None:
            assert must_refuse, f"{refused.code}: {refused.message}"
            assert refused.code == "VALIDATION_ERROR"
            assert self._state() == before
            return
        assert not must_refuse
        assert voided.status == Bet.Status.VOID
        assert voided.needs_attention

    @rule(index=st.integers(0, 1), amount=adjustments)
    def staff_adjust(self, index, amount):
        """Money moved at the provider outside this server, booked by staff."""
        user, external_id = self.players[index]
        wallet = UserBalance.objects.get(user=user)
        must_refuse = (
            self._open_bet(user) is not None
            or amount == 0
            or amount != amount.quantize(Decimal("0.01"))
            or wallet.balance + amount < wallet.held
        )
        before = self._state()
        try:
            adjustment_post(user=user, amount=amount, actor=self.staff, reason="fix")
        except ApplicationError as exc:
            refused = exc
        else:
            refused = None
        if refused is not None:
            assert must_refuse, f"{refused.code}: {refused.message}"
            assert refused.code == "VALIDATION_ERROR"
            assert self._state() == before
            return
        assert not must_refuse, f"adjustment {amount} accepted"
        provider_balance = self.provider.balance_of(external_id)
        self.provider.set_balance(external_id, provider_balance + amount)
        self.adjusted[user.pk] += amount
        self.staff_entries += 1

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def ledger_mirrors_the_provider(self):
        sim_bets = self._sim_bets()
        sim_balances = {a["user_id"]: a["balance"] for a in self._sim()["accounts"]}
        wallets = {w.user_id: w for w in UserBalance.objects.all()}
        bets = list(Bet.objects.order_by("id"))
        local_of = {b.external_bet_id: b.pk for b in bets if b.external_bet_id}
        # Every provider bet belongs to exactly one local bet.
        owners = [pk for pk, sim_id in self.sim_of.items() if sim_id]
        assert sorted(self.sim_of[pk] for pk in owners) == sorted(sim_bets)
        for user, external_id in self.players:
            balance = self.initial[user.pk] + self.adjusted[user.pk]
            held = ZERO
            open_bets = 0
            for bet in (b for b in bets if b.user_id == user.pk):
                sim = sim_bets.get(self.sim_of.get(bet.pk) or "")
                booked, holds = self._expected_money(bet, sim)
                balance += booked
                held += holds
                open_bets += bet.status in Bet.OPEN_STATUSES
                if bet.external_bet_id:
                    assert local_of[bet.external_bet_id] == bet.pk
                    assert sim is not None
                    assert sim["id"] == bet.external_bet_id
                    assert sim["user_id"] == external_id
                if sim is not None:
                    assert (sim["stake"], sim["stake_mode"]) == (
                        bet.amount,
                        bet.stake_mode,
                    )
            wallet = wallets[user.pk]
            assert open_bets <= 1
            assert (wallet.balance, wallet.held) == (balance, held)
            if not open_bets:
                assert wallet.balance == sim_balances[external_id]
        automatic = Transaction.objects.filter(type="adjustment", created_by=None)
        assert not automatic.exists(), list(automatic.values("amount", "evidence"))
        assert Transaction.objects.filter(type="adjustment").count() == (
            self.staff_entries
        )

    def _expected_money(self, bet: Bet, sim: dict | None) -> tuple[Decimal, Decimal]:
        """What the bet must have booked on the ledger and what it must hold,
        given what the provider did with it."""
        stake, status = bet.amount, bet.status
        if status == Bet.Status.COMPLETED:
            assert sim is not None
            assert sim["status"] in ("won", "lost")
            assert bet.win_amount == sim["win"], (bet.win_amount, sim)
        elif status == Bet.Status.FAILED:
            assert sim is None, f"failed bet {bet.pk} was taken by the provider"
        elif status == Bet.Status.VOID or status == Bet.Status.UNKNOWN:
            assert sim is None or sim["status"] == "open"
        if bet.stake_mode == DOL:
            if status == Bet.Status.COMPLETED:
                return (bet.win_amount if bet.win_amount > 0 else -stake), ZERO
            if status == Bet.Status.PENDING or status == Bet.Status.UNKNOWN:
                return ZERO, stake
            return ZERO, ZERO
        taken = -stake if sim is not None else ZERO
        if status == Bet.Status.COMPLETED:
            return taken + bet.win_amount, ZERO
        if status == Bet.Status.VOID:
            return taken, ZERO
        if status == Bet.Status.PENDING and bet.external_bet_id:
            return taken, ZERO
        if status in Bet.OPEN_STATUSES:
            return ZERO, stake
        return ZERO, ZERO

    @invariant()
    def bets_move_only_along_the_lifecycle(self):
        for bet in Bet.objects.all():
            shape = _shape(bet)
            previous = self.seen.get(bet.pk)
            assert previous is not None, f"bet {bet.pk} appeared outside bet_place"
            assert shape in TRANSITIONS.get(previous, {previous}), (previous, shape)
            self.seen[bet.pk] = shape
            if bet.status == Bet.Status.UNKNOWN:
                assert not bet.external_bet_id

    @invariant()
    def ledger_check_finds_nothing(self):
        assert ledger_check() == []


@pytest.fixture
def inflight(provider: ProviderSimulator) -> Iterator[InFlight]:
    counter = InFlight(provider.base_url)
    # This test's own simulator: its handler class is socketserver's public
    # ``RequestHandlerClass``, read for every connection it accepts from now on.
    provider.RequestHandlerClass = counter.handler()
    with transport_installed(counter.transport):
        yield counter
    # Both sides were counted: the waits above waited for something.
    assert counter.sent
    assert counter.received


def test_bet_lifecycle_keeps_the_invariants_under_faults(
    provider, settings, stake_mode, inflight
):
    settings.EXTERNAL_API_READ_TIMEOUT = READ_TIMEOUT
    machine = type(
        "BetMachine",
        (BetMachine,),
        {"provider": provider, "mode": stake_mode, "inflight": inflight},
    )
    run_state_machine_as_test(
        machine, settings=hypothesis_settings(parent=hypothesis_settings.default)
    )


# --- regressions ------------------------------------------------------------------


def test_a_staff_adjustment_past_what_the_balance_column_holds_is_refused():
    """Found with the ledger machine's overflow case: the admin form accepts any
    amount of 14 digits, so 999999999999.99 on a balance of 100 reached the ledger:
    PostgreSQL then raised a DataError (a 500 in the admin) and SQLite wrote a
    balance that no query could read back."""
    user = User.objects.create(username="rich")
    staff = User.objects.create(username="boss", is_staff=True, is_superuser=True)
    fund(user, Decimal("100"))
    with pytest.raises(ApplicationError) as excinfo:
        adjustment_post(
            user=user, amount=Decimal("999999999999.99"), actor=staff, reason="typo"
        )
    assert excinfo.value.code == "VALIDATION_ERROR"
    assert UserBalance.objects.get(user=user).balance == Decimal("100")
    assert Transaction.objects.filter(user=user).count() == 1
