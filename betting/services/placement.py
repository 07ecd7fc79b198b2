"""Placement: record the bet and hold its stake, send POST /bet, save its answer.

The bet is committed before POST /bet is sent and the provider's answer is
committed before anything else happens, so a process that dies in between leaves
a bet the resolution rules can finish (see ``checkpoints``).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.callers import caller_verified
from accounts.models import ExternalApiAccount, User
from betting.exceptions import BetInProgress, InsufficientBalance
from betting.lease import Lease, lease_held, lease_try_claim, provider_lease
from betting.models import Bet
from betting.selectors import account_for_betting
from betting.services import checkpoints
from betting.services.opening import bet_open_in_one_statement
from betting.services.resolution import open_bets_resolve
from betting.services.settlement import result_fetch
from betting.services.transitions import (
    bet_fail,
    bet_mark_unknown,
    bet_update,
    why,
)
from betting.wire import bet_as_dict
from betting_site.database import remember_committed
from betting_site.errors import ApplicationError, ValidationFailed
from betting_site.metrics import BET_PLACED, BET_UNKNOWN, bet_outcome_record
from betting_site.money import MoneyInvalid, money_parse
from provider.client import ProviderClient
from provider.exceptions import ProviderError, ProviderOutcomeUnknown
from provider.policy import AUTH, BALANCE_READ, BET_PLACE, BET_RESULT, call_longest
from wallet.ledger import ledger_post, stake_hold, wallet_lock
from wallet.models import Transaction

logger = logging.getLogger(__name__)

# The provider calls of one bet: a session when the cached one ran out (once at
# most, a bet being far shorter than a session), the bet, its result, and the
# balance read to compare after it.
BET_CALLS = (AUTH, BET_PLACE, BET_RESULT, BALANCE_READ)


class _Opening(TypedDict):
    """``_bet_open``'s arguments, tried twice by ``bet_place``."""

    user: User
    account: ExternalApiAccount
    amount: Decimal


@dataclass(frozen=True)
class Placed:
    bet: Bet
    provider_response: dict[str, Any] | None  # POST /bet's JSON, when it answered


def bet_place(
    *,
    user: User,
    amount: Any,
    settle: bool = True,
    on_open: Callable[[Bet], None] | None = None,
) -> Placed:
    """Place a bet at the provider and, with ``settle``, fetch its result.

    Answers the bet in whatever state the provider left it (``completed``,
    ``pending`` or ``unknown``). ``user`` may be a caller whose session is still
    to be checked (``accounts.callers``): it is, before anything else is written,
    401 if refused. Raises before anything is sent (validation,
    insufficient balance, no linked account, a busy or unresolvable previous bet,
    provider unreachable) and for a definite refusal, the error carrying the bet it
    recorded as ``details.bet``. ``on_open`` gets the bet just before it is
    inserted, inside that transaction, and may set its fields (the idempotency key
    links itself to it there, in the same insert).
    """
    stake = bet_amount_validate(amount)
    if connection.vendor != "postgresql":  # PostgreSQL checks it in the opening
        user = caller_verified(user)
    opened = _bet_open_with_lease(user=user, amount=stake, on_open=on_open)
    if opened is not None:  # the usual case: one transaction, one commit
        bet, account, lease = opened
        _committed(bet)
        with lease_held(lease):
            return _bet_send(bet=bet, account=account, lease=lease, settle=settle)
    user = caller_verified(user)  # its row read and its session checked (once)
    account = account_for_betting(user=user)
    with provider_lease(user_id=user.pk, operation="bet_place") as lease:
        client = ProviderClient(account=account)
        opening: _Opening = {"user": user, "account": account, "amount": stake}
        try:
            bet = _bet_open(**opening, on_open=on_open)
        except _OpenBetExists:
            open_bets_resolve(user=user, client=client, lease=lease)
            try:
                bet = _bet_open(**opening, on_open=on_open)
            except _OpenBetExists:  # the lease makes this a bug, not a race
                raise BetInProgress(
                    "A previous bet of this user is still open"
                ) from None
        _committed(bet)
        return _bet_send(
            bet=bet, account=account, lease=lease, settle=settle, client=client
        )


def _bet_open_with_lease(
    *, user: User, amount: Decimal, on_open: Callable[[Bet], None] | None
) -> tuple[Bet, ExternalApiAccount, Lease] | None:
    """Before POST /bet, in one transaction: the provider account, the lease
    claimed, the stake held and the bet recorded. None when the lease is busy or
    an open bet is in the way: everything is rolled back, the lease included, and
    the caller takes the careful way (wait for the lease, resolve the open bet).
    A refusal (no linked account, insufficient balance) is raised as it is.
    On PostgreSQL one statement that also checks the caller (``opening``)."""
    if connection.vendor == "postgresql":
        return bet_open_in_one_statement(user=user, amount=amount, on_open=on_open)
    try:
        with transaction.atomic():
            account = account_for_betting(user=user)
            lease = lease_try_claim(user_id=user.pk, operation="bet_place")
            if lease is None:
                raise _LeaseBusy
            bet = _bet_record(
                user=user, account=account, amount=amount, on_open=on_open
            )
    except (_LeaseBusy, _OpenBetExists):
        return None
    return bet, account, lease


def _bet_send(
    *,
    bet: Bet,
    account: ExternalApiAccount,
    lease: Lease,
    settle: bool,
    client: ProviderClient | None = None,
) -> Placed:
    """POST /bet for the recorded bet, its answer saved, and with ``settle`` the
    result fetched, under the lease the caller holds."""
    client = client or ProviderClient(account=account)
    stake = bet.amount
    checkpoints.reached("recorded")
    try:
        lease.renew()
        placed = client.bet_place(stake)
    except ProviderOutcomeUnknown as exc:
        bet = bet_mark_unknown(bet=bet, reason=why(exc))
        _committed(bet)
        return Placed(bet=bet, provider_response=None)
    except ProviderError as exc:  # unreachable or refused: it never took effect
        bet = bet_fail(bet=bet, reason=why(exc))
        raise _with_bet(exc, bet) from None
    checkpoints.reached("placed")
    bet = _bet_record_placed(bet=bet, external_bet_id=placed.bet_id, win_next=settle)
    _committed(bet)
    checkpoints.reached("placed_recorded")
    if settle and bet.status == Bet.Status.PENDING:
        bet = result_fetch(bet=bet, client=client, lease=lease)
    return Placed(bet=bet, provider_response=placed.raw_dict())


def bet_longest() -> float:
    """The longest one bet can take, in seconds: the wait for the user's lease,
    then every provider call of the bet at its slowest, retries included. A
    graceful shutdown must wait at least this long, or a deploy cuts bets between
    sending them and booking their answer (``betting_site.checks``).

    A bet that first settles the user's earlier open bet (left by a crash) adds
    that settlement's calls (``open_bets_resolve``); it is not counted here."""
    lock_wait = float(settings.BET_LOCK_WAIT)
    return lock_wait + sum(call_longest(call) for call in BET_CALLS)


def _committed(bet: Bet) -> None:
    """The bet as just committed: what a 503 says if the database goes away
    before the request ends (``details.bet``), so that the client can find it.
    Taken now (about 7 µs), because the booking changes the bet in memory before
    its commit."""
    details = {"bet": bet_as_dict(bet)}
    remember_committed(lambda: details)


def bet_amount_validate(amount: Any) -> Decimal:
    """A stake: a whole number between ``BET_MIN_AMOUNT`` and ``BET_MAX_AMOUNT``."""
    try:
        return money_parse(
            amount,
            whole=True,
            low=settings.BET_MIN_AMOUNT,
            high=settings.BET_MAX_AMOUNT,
        )
    except MoneyInvalid as exc:
        raise ValidationFailed(details={"amount": [str(exc)]}) from None


class _OpenBetExists(Exception):
    """The user has an open bet: resolve it before recording a new one."""


class _LeaseBusy(Exception):
    """Another operation of the user holds the lease: wait for it."""


@transaction.atomic
def _bet_open(
    *,
    user: User,
    account: ExternalApiAccount,
    amount: Decimal,
    on_open: Callable[[Bet], None] | None = None,
) -> Bet:
    """``_bet_record`` in a transaction of its own (the lease already held)."""
    return _bet_record(user=user, account=account, amount=amount, on_open=on_open)


def _bet_record(
    *,
    user: User,
    account: ExternalApiAccount,
    amount: Decimal,
    on_open: Callable[[Bet], None] | None = None,
) -> Bet:
    """Record the bet and hold its stake, before anything is sent, in the
    caller's transaction. Raises ``_OpenBetExists`` (the caller rolls back) when
    the user has an open bet: the one-open-bet index refuses the insert, or the
    balance falls short while an open bet may still give its stake back."""
    try:
        stake_hold(user_id=user.pk, amount=amount)
    except InsufficientBalance:
        # Still under the balance row lock: an open bet's resolution may give
        # a stake back, so resolve it first rather than refuse.
        if Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES).exists():
            raise _OpenBetExists from None
        raise
    bet = Bet(
        user=user,
        account=account,
        amount=amount,
        status=Bet.Status.PENDING,
        stake_mode=settings.PROVIDER_STAKE_MODE,
    )
    if on_open is not None:
        on_open(bet)  # may set fields: the idempotency key links itself here
    try:  # no savepoint: the refusal aborts this whole transaction anyway
        bet.save(force_insert=True)
    except IntegrityError:
        raise _OpenBetExists from None
    return bet


class _NotFast(Exception):
    """A fast path's premise did not hold: roll it back, take the careful one."""


def _bet_record_placed(*, bet: Bet, external_bet_id: str, win_next: bool) -> Bet:
    """The provider took it: save its id (debit_on_place: post the stake). With
    ``win_next`` the same write marks the result in doubt for the POST /win that
    follows (see ``settlement.win_send``)."""
    try:
        return _bet_record_placed_fast(
            bet=bet, external_bet_id=external_bet_id, win_next=win_next
        )
    except (_NotFast, IntegrityError, DataError):
        # A duplicate id, the bet moved on, or the balance refused the stake:
        # the careful path decides under the locks, and explains.
        return _bet_record_placed_careful(
            bet=bet, external_bet_id=external_bet_id, win_next=win_next
        )


@transaction.atomic
def _bet_record_placed_fast(*, bet: Bet, external_bet_id: str, win_next: bool) -> Bet:
    """debit_on_loss: one conditional write (no money moves yet, and the lease
    keeps every other writer of this bet away). debit_on_place: the stake posted
    first (its balance row moved and locked, the hold released), then the same
    write. Raises to be rolled back."""
    if bet.stake_mode == Bet.StakeMode.DEBIT_ON_PLACE:
        ledger_post(user_id=bet.user_id, **_stake_entry(bet, external_bet_id))
    now = timezone.now()
    saved = Bet.objects.filter(
        pk=bet.pk, status=Bet.Status.PENDING, external_bet_id__isnull=True
    ).update(external_bet_id=external_bet_id, result_in_doubt=win_next, updated_at=now)
    if not saved:
        raise _NotFast(f"bet {bet.pk} is no longer pending without an id")
    bet.external_bet_id = external_bet_id
    bet.result_in_doubt = win_next
    bet.updated_at = now
    bet_outcome_record(outcome=BET_PLACED)
    return bet


def _stake_entry(bet: Bet, external_bet_id: str) -> dict[str, Any]:
    """The ledger entry of a stake the provider took (debit_on_place), releasing
    its hold in the same write."""
    return {
        "entry_type": Transaction.Type.BET_PLACE,
        "amount": -bet.amount,
        "bet_id": bet.pk,
        "description": f"Stake of bet {bet.pk}",
        "evidence": {"external_bet_id": external_bet_id},
        "release_hold": bet.amount,
    }


@transaction.atomic
def _bet_record_placed_careful(
    *, bet: Bet, external_bet_id: str, win_next: bool
) -> Bet:
    """Save the provider's id under the locks and, debit_on_place, post the stake
    (also the path for an id that is already in use)."""
    wallet_lock(user_id=bet.user_id)
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    try:
        with transaction.atomic():
            bet.external_bet_id = external_bet_id
            bet.result_in_doubt = win_next
            bet.save(update_fields=["external_bet_id", "result_in_doubt", "updated_at"])
    except IntegrityError:
        # The provider answered an id another bet already has: the answer cannot be
        # trusted, so this bet is treated as possibly taken.
        bet.refresh_from_db()
        bet_update(
            bet,
            needs_attention=True,
            result_in_doubt=False,  # no POST /win is ever sent for it
            status=Bet.Status.UNKNOWN,
            unknown_since=timezone.now(),
            status_reason=(
                f"The provider answered a bet id already in use ({external_bet_id})"
            ),
        )
        bet_outcome_record(outcome=BET_UNKNOWN)
        logger.error("Bet %s: duplicate provider bet id %s", bet.pk, external_bet_id)
        return bet
    if bet.stake_mode == Bet.StakeMode.DEBIT_ON_PLACE:
        ledger_post(user_id=bet.user_id, **_stake_entry(bet, external_bet_id))
    bet_outcome_record(outcome=BET_PLACED)
    return bet


def _with_bet(exc: ApplicationError, bet: Bet) -> ApplicationError:
    """The provider error, with the failed bet as ``details.bet``."""
    details = dict(exc.details) if isinstance(exc.details, dict) else {}
    details["bet"] = bet_as_dict(bet)
    return ApplicationError(
        exc.message,
        code=exc.code,
        http_status=exc.http_status,
        details=details,
        headers=exc.headers,
    )
