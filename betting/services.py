"""The bet lifecycle: a state machine persisted before every side effect.

Every provider operation of a user runs under that user's lease (``betting.lease``)
and a user has at most one open (``pending`` or ``unknown``) bet, enforced by the
database. So whenever the provider balance moves, the move belongs to the one open
bet, and the resolution rules of the contract can attribute it exactly. No database
transaction stays open across a provider call: each step commits its state first.

    pending (stake held, nothing sent)
      -- POST /bet refused or never sent --> failed (hold released)
      -- POST /bet outcome unknown --------> unknown (hold kept) --> failed | void
           (debit_on_place: decided by the balance only after BET_UNKNOWN_GRACE,
           when a late POST /bet can no longer land)
      -- POST /bet answered --------------> pending with external id
           (debit_on_place: bet_place entry, hold released)
           -- POST /win answered / balance shows the result --> completed
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import ExternalApiAccount, User
from betting.exceptions import BetInProgress, InsufficientBalance
from betting.lease import Lease, LeaseLost, provider_lease
from betting.models import Bet
from betting.selectors import account_for_betting
from betting.serializers import bet_as_dict
from betting_site.api.errors import ApplicationError, ValidationFailed
from betting_site.metrics import (
    BET_FAILED,
    BET_LOST,
    BET_PLACED,
    BET_UNKNOWN,
    BET_VOID,
    BET_WON,
    bet_outcome_record,
)
from betting_site.money import ZERO, to_money
from provider.client import ProviderClient
from provider.exceptions import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRefused,
)
from provider.types import BetResult
from wallet.models import Transaction, UserBalance
from wallet.services import (
    LedgerFastPathUnavailable,
    ledger_post,
    ledger_post_moving,
    wallet_lock,
)

logger = logging.getLogger(__name__)

DEBIT_ON_LOSS = Bet.StakeMode.DEBIT_ON_LOSS
DEBIT_ON_PLACE = Bet.StakeMode.DEBIT_ON_PLACE


@dataclass(frozen=True)
class Placed:
    bet: Bet
    provider_response: dict[str, Any] | None  # POST /bet's JSON, when it answered


# --- entry points ------------------------------------------------------------------


def bet_place(
    *,
    user: User,
    amount: int,
    settle: bool = True,
    on_open: Callable[[Bet], None] | None = None,
) -> Placed:
    """Place a bet at the provider and, with ``settle``, fetch its result.

    Answers the bet in whatever state the provider left it (``completed``,
    ``pending`` or ``unknown``). Raises before anything is sent (validation,
    insufficient balance, no linked account, a busy or unresolvable previous bet,
    provider unreachable) and for a definite refusal, the error carrying the bet it
    recorded as ``details.bet``. ``on_open`` gets the bet just before it is
    inserted, inside that transaction, and may set its fields (the idempotency key
    links itself to it there, in the same insert).
    """
    amount = _validated_amount(amount)
    account = account_for_betting(user=user)
    with provider_lease(user_id=user.pk, operation="bet_place") as lease:
        client = ProviderClient(account=account)
        opening = {"user": user, "account": account, "amount": amount}
        try:  # the usual case: no open bet, and the database says so on insert
            bet = _bet_open(**opening, on_open=on_open)
        except _OpenBetExists:
            _resolve_open_bets(user=user, client=client, lease=lease)
            try:
                bet = _bet_open(**opening, on_open=on_open)
            except _OpenBetExists:  # the lease makes this a bug, not a race
                raise BetInProgress(
                    "A previous bet of this user is still open"
                ) from None
        try:
            lease.renew()
            placed = client.bet_place(amount)
        except ProviderOutcomeUnknown as exc:
            bet = _bet_mark_unknown(bet=bet, reason=_why(exc))
            return Placed(bet=bet, provider_response=None)
        except ProviderError as exc:  # unreachable or refused: it never took effect
            bet = _bet_fail(bet=bet, reason=_why(exc))
            raise _with_bet(exc, bet) from None
        bet = _bet_record_placed(
            bet=bet, external_bet_id=placed.bet_id, win_next=settle
        )
        if settle and bet.status == Bet.Status.PENDING:
            bet = _bet_fetch_result(bet=bet, client=client, lease=lease)
        return Placed(bet=bet, provider_response=placed.raw_dict())


def bet_resolve(*, bet: Bet, wait: float | None = None) -> Bet:
    """Try to bring an open bet to a final state by the contract's resolution rules.

    A final bet is returned unchanged. Raises ``BetInProgress`` when the user's
    lease stays busy for ``wait`` seconds.
    """
    if bet.status not in Bet.OPEN_STATUSES:
        return bet
    with provider_lease(
        user_id=bet.user_id, operation="bet_resolve", wait=wait
    ) as lease:
        bet.refresh_from_db()
        client = ProviderClient(account=bet.account)
        return _resolve(bet=bet, client=client, lease=lease)


def bet_settle_by_external_id(
    *, account: ExternalApiAccount, external_bet_id: str
) -> tuple[Bet, dict[str, Any] | None]:
    """``POST /win`` for a bet placed through this server (the internal endpoint):
    the same settlement and ledger rules; returns the bet and the provider's JSON."""
    bet = Bet.objects.filter(account=account, external_bet_id=external_bet_id).first()
    if bet is None:
        raise ValidationFailed(
            details={"bet_id": ["No bet of this account has this provider bet id"]}
        )
    if bet.status != Bet.Status.PENDING:
        return bet, None
    with provider_lease(user_id=bet.user_id, operation="bet_settle") as lease:
        bet.refresh_from_db()
        client = ProviderClient(account=bet.account)
        if bet.status != Bet.Status.PENDING:
            return bet, None
        result = _win_send(bet=bet, client=client, lease=lease)
        bet = _bet_complete(bet=bet, win=result.win, evidence={"win": str(result.win)})
        _balance_verify(user_id=bet.user_id, client=client, lease=lease)
        return bet, result.raw_dict()


# --- steps, each committed before the next provider call ---------------------------


def _validated_amount(amount: Any) -> Decimal:
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise ValidationFailed(details={"amount": ["A whole number is required"]})
    value = Decimal(amount)
    if value != value.to_integral_value():
        raise ValidationFailed(details={"amount": ["A whole number is required"]})
    low, high = settings.BET_MIN_AMOUNT, settings.BET_MAX_AMOUNT
    if not low <= value <= high:
        raise ValidationFailed(
            details={"amount": [f"The amount must be between {low} and {high}"]}
        )
    return to_money(value)


class _OpenBetExists(Exception):
    """The user has an open bet: resolve it before recording a new one."""


# Holds the stake when the available balance covers it: one statement that also
# locks the balance row until the bet is recorded.
_HOLD_SQL = (
    "UPDATE user_balances SET held = held + %s, updated_at = %s "
    "WHERE user_id = %s AND balance - held >= %s"
)


@transaction.atomic
def _bet_open(
    *,
    user: User,
    account: ExternalApiAccount,
    amount: Decimal,
    on_open: Callable[[Bet], None] | None = None,
) -> Bet:
    """Record the bet and hold its stake, before anything is sent. Raises
    ``_OpenBetExists`` (everything rolled back) when the user has an open bet:
    the one-open-bet index refuses the insert, or the balance falls short while
    an open bet may still give its stake back."""
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(_HOLD_SQL, [amount, timezone.now(), user.pk, amount])
        held = cursor.rowcount == 1
    if not held:
        _hold_slow(user=user, amount=amount)
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


def _hold_slow(*, user: User, amount: Decimal) -> None:
    """The stake is not covered (or there is no balance row yet): under the row
    lock, hold it anyway if a concurrent change made room, else refuse."""
    wallet = wallet_lock(user=user)
    available = wallet.balance - wallet.held
    if available < amount:
        if Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES).exists():
            raise _OpenBetExists  # its resolution may release a hold
        raise InsufficientBalance(details={"available": available, "amount": amount})
    wallet.held += amount
    wallet.save(update_fields=["held", "updated_at"])


@transaction.atomic
def _bet_fail(*, bet: Bet, reason: str) -> Bet:
    """It certainly never took effect: release the hold."""
    wallet = wallet_lock(user=_owner(bet))
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if bet.status not in Bet.OPEN_STATUSES:
        return bet
    if bet.external_bet_id is None or bet.stake_mode == DEBIT_ON_LOSS:
        wallet.held = max(ZERO, wallet.held - bet.amount)
        wallet.save(update_fields=["held", "updated_at"])
    bet.status = Bet.Status.FAILED
    bet.status_reason = reason[:500]
    bet.save(update_fields=["status", "status_reason", "updated_at"])
    bet_outcome_record(outcome=BET_FAILED)
    logger.info("Bet %s failed: %s", bet.pk, reason)
    return bet


def _bet_mark_unknown(*, bet: Bet, reason: str) -> Bet:
    """It may have reached the provider: keep the stake held, never send it again."""
    _bet_update(
        bet,
        status=Bet.Status.UNKNOWN,
        status_reason=reason[:500],
        unknown_since=timezone.now(),
    )
    bet_outcome_record(outcome=BET_UNKNOWN)
    logger.warning("Bet %s outcome unknown: %s", bet.pk, reason)
    return bet


def _bet_record_placed(*, bet: Bet, external_bet_id: str, win_next: bool) -> Bet:
    """The provider took it: save its id (debit_on_place: post the stake). With
    ``win_next`` the same write marks the result in doubt for the POST /win that
    follows (see ``_win_send``)."""
    if bet.stake_mode == DEBIT_ON_PLACE:
        try:
            return _bet_record_placed_debited_fast(
                bet=bet, external_bet_id=external_bet_id, win_next=win_next
            )
        except (_NotFast, LedgerFastPathUnavailable, IntegrityError, DataError):
            return _bet_record_placed_and_debited(  # decides, and explains
                bet=bet, external_bet_id=external_bet_id, win_next=win_next
            )
    # debit_on_loss: no money moves yet, so one conditional write is enough (the
    # lease keeps every other writer of this bet away).
    try:
        with transaction.atomic():
            saved = Bet.objects.filter(
                pk=bet.pk, status=Bet.Status.PENDING, external_bet_id__isnull=True
            ).update(
                external_bet_id=external_bet_id,
                result_in_doubt=win_next,
                updated_at=timezone.now(),
            )
    except IntegrityError:
        saved = 0
    if not saved:  # a duplicate id, or the bet moved on: the careful path decides
        return _bet_record_placed_and_debited(
            bet=bet, external_bet_id=external_bet_id, win_next=win_next
        )
    bet.external_bet_id = external_bet_id
    bet.result_in_doubt = win_next
    bet_outcome_record(outcome=BET_PLACED)
    return bet


@transaction.atomic
def _bet_record_placed_debited_fast(
    *, bet: Bet, external_bet_id: str, win_next: bool
) -> Bet:
    """debit_on_place in three statements: the stake posted (the balance row moved
    and locked, the hold released), the id saved only if the bet is still pending
    without one, the entry. Raises to be rolled back (a duplicate id included)."""
    # The balance row first: every path locks it before the bet.
    ledger_post_moving(user_id=bet.user_id, **_stake_entry(bet, external_bet_id))
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
        "bet": bet,
        "description": f"Stake of bet {bet.pk}",
        "evidence": {"external_bet_id": external_bet_id},
        "release_hold": bet.amount,
    }


@transaction.atomic
def _bet_record_placed_and_debited(
    *, bet: Bet, external_bet_id: str, win_next: bool
) -> Bet:
    """Save the provider's id under the locks and, debit_on_place, post the stake
    (also the careful path for an id that is already in use)."""
    wallet = wallet_lock(user=_owner(bet))
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
        bet.needs_attention = True
        bet.result_in_doubt = False  # no POST /win is ever sent for it
        bet.status = Bet.Status.UNKNOWN
        bet.unknown_since = timezone.now()
        bet.status_reason = (
            f"The provider answered a bet id already in use ({external_bet_id})"
        )
        bet.save(
            update_fields=[
                "needs_attention",
                "status",
                "status_reason",
                "unknown_since",
                "result_in_doubt",
                "updated_at",
            ]
        )
        bet_outcome_record(outcome=BET_UNKNOWN)
        logger.error("Bet %s: duplicate provider bet id %s", bet.pk, external_bet_id)
        return bet
    if bet.stake_mode == DEBIT_ON_PLACE:
        ledger_post(
            user=_owner(bet), wallet=wallet, **_stake_entry(bet, external_bet_id)
        )
    bet_outcome_record(outcome=BET_PLACED)
    return bet


def _bet_complete(*, bet: Bet, win: Decimal, evidence: dict) -> Bet:
    """Book the result exactly once: the ledger entry, the hold, the status."""
    win = to_money(win)
    try:
        bet = _bet_complete_fast(bet=bet, win=win, evidence=evidence)
    except (_NotFast, LedgerFastPathUnavailable, IntegrityError, DataError):
        # Settled already (its entry exists), or a refusal to explain: the
        # careful path decides under both locks.
        bet = _bet_complete_careful(bet=bet, win=win, evidence=evidence)
    return bet


class _NotFast(Exception):
    """The fast path's premise did not hold: roll it back, take the careful one."""


def _result_entry(bet: Bet, win: Decimal) -> dict[str, Any]:
    """The ledger entry of a result. debit_on_loss held the stake until now:
    released in the same write."""
    release = bet.amount if bet.stake_mode == DEBIT_ON_LOSS else None
    if win > 0:
        return {
            "entry_type": Transaction.Type.BET_WIN,
            "amount": win,
            "description": f"Win of bet {bet.pk}",
            "release_hold": release,
        }
    return {
        "entry_type": Transaction.Type.BET_LOSS,
        "amount": -bet.amount if bet.stake_mode == DEBIT_ON_LOSS else ZERO,
        "description": f"Loss of bet {bet.pk}",
        "release_hold": release,
    }


@transaction.atomic
def _bet_complete_fast(*, bet: Bet, win: Decimal, evidence: dict) -> Bet:
    """Three statements: the balance moved and locked, the bet completed only if
    still pending (the exactly-once guard), the entry. Raises to be rolled back."""
    entry = ledger_post_moving(
        user_id=bet.user_id, bet=bet, evidence=evidence, **_result_entry(bet, win)
    )
    now = timezone.now()
    completed = Bet.objects.filter(pk=bet.pk, status=Bet.Status.PENDING).update(
        status=Bet.Status.COMPLETED,
        win_amount=win,
        completed_at=now,
        result_in_doubt=False,
        updated_at=now,
    )
    if not completed:
        raise _NotFast(f"bet {bet.pk} is no longer pending")
    bet.status, bet.win_amount, bet.completed_at = Bet.Status.COMPLETED, win, now
    bet.result_in_doubt, bet.updated_at = False, now
    _bet_completed(bet, entry)
    return bet


@transaction.atomic
def _bet_complete_careful(*, bet: Bet, win: Decimal, evidence: dict) -> Bet:
    """Under both row locks; answers an already settled bet as it is."""
    wallet = wallet_lock(user=_owner(bet))
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if bet.status != Bet.Status.PENDING:
        return bet  # settled already: money never moves twice
    entry = ledger_post(
        user=_owner(bet),
        bet=bet,
        evidence=evidence,
        wallet=wallet,
        **_result_entry(bet, win),
    )
    bet.status = Bet.Status.COMPLETED
    bet.win_amount = win
    bet.completed_at = timezone.now()
    bet.result_in_doubt = False
    bet.save(
        update_fields=[
            "status",
            "win_amount",
            "completed_at",
            "result_in_doubt",
            "updated_at",
        ]
    )
    _bet_completed(bet, entry)
    return bet


def _bet_completed(bet: Bet, entry: Transaction) -> None:
    win = bet.win_amount
    bet_outcome_record(outcome=BET_WON if win > 0 else BET_LOST)
    logger.info("Bet %s completed: win %s (entry %s)", bet.pk, win, entry.pk)


@transaction.atomic
def _bet_void(*, bet: Bet, reason: str, debited: bool) -> Bet:
    """It reached the provider, or may have, but can never be settled. With
    ``debited`` the provider's balance shows the stake was taken: post it."""
    wallet = wallet_lock(user=_owner(bet))
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if bet.status not in Bet.OPEN_STATUSES:
        return bet
    if debited:
        ledger_post(
            user=_owner(bet),
            entry_type=Transaction.Type.BET_PLACE,
            amount=-bet.amount,
            bet=bet,
            description=f"Stake of void bet {bet.pk}, taken by the provider",
            evidence={"reason": reason},
            wallet=wallet,
        )
    if bet.external_bet_id is None or bet.stake_mode == DEBIT_ON_LOSS:
        wallet.held = max(ZERO, wallet.held - bet.amount)
        wallet.save(update_fields=["held", "updated_at"])
    bet.status = Bet.Status.VOID
    bet.needs_attention = True
    bet.status_reason = reason[:500]
    bet.save(update_fields=["status", "needs_attention", "status_reason", "updated_at"])
    bet_outcome_record(outcome=BET_VOID)
    logger.warning("Bet %s void: %s", bet.pk, reason)
    return bet


def _bet_update(bet: Bet, **fields) -> None:
    for name, value in fields.items():
        setattr(bet, name, value)
    Bet.objects.filter(pk=bet.pk).update(**fields, updated_at=timezone.now())


# --- results and resolution ---------------------------------------------------


def _bet_fetch_result(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    """``POST /win`` right after placing (the bet was marked in doubt when its id
    was saved). A failure leaves the bet pending, in doubt when the call may have
    been processed, for the resolution rules."""
    try:
        result = _win_send(bet=bet, client=client, lease=lease, marked=True)
    except ProviderError as exc:
        _bet_update(bet, status_reason=_why(exc)[:500])
        return bet
    bet = _bet_complete(bet=bet, win=result.win, evidence={"win": str(result.win)})
    _balance_verify(user_id=bet.user_id, client=client, lease=lease)
    return bet


def _resolve_open_bets(*, user: User, client: ProviderClient, lease: Lease) -> None:
    """Before a new bet: resolve the user's open bet, or refuse the new one (its
    balance changes could not be told apart)."""
    for bet in Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES):
        bet = _resolve(bet=bet, client=client, lease=lease)
        if bet.status not in Bet.OPEN_STATUSES:
            continue
        retry_after = 5
        message = (
            f"Bet {bet.pk} is still {bet.status} at the provider; a new bet waits "
            "until it is resolved"
        )
        if (grace := math.ceil(unknown_grace_left(bet))) > 0:
            retry_after = grace
            message = (
                f"Bet {bet.pk} is still unknown: its POST /bet may yet reach the "
                f"provider, so it is decided from the balance in {grace} s; a new "
                "bet waits until then"
            )
        raise BetInProgress(
            message, retry_after=retry_after, details={"bet": bet_as_dict(bet)}
        )


def _resolve(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    """The contract's resolution rules, under the user's lease."""
    try:
        if bet.status == Bet.Status.PENDING and bet.external_bet_id is None:
            # Left by a crash between recording and placing: we hold the lease, so
            # nobody is placing it now, and it may or may not have been sent.
            bet = _bet_mark_unknown(
                bet=bet, reason="Interrupted before the provider answered"
            )
        if bet.status == Bet.Status.UNKNOWN:
            return _resolve_unknown(bet=bet, client=client, lease=lease)
        if bet.status == Bet.Status.PENDING:
            return _resolve_pending(bet=bet, client=client, lease=lease)
    except (ProviderError, LeaseLost) as exc:
        # Unreachable, unknown, or a refused read: the bet stays open, saying why.
        logger.info("Bet %s not resolved yet: %s", bet.pk, _why(exc))
        bet.refresh_from_db()
        if bet.status in Bet.OPEN_STATUSES:
            _bet_update(bet, status_reason=f"Not resolved yet: {_why(exc)}"[:500])
    return bet


def _resolve_unknown(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    if bet.stake_mode == DEBIT_ON_LOSS:
        # Placing moves no money in this mode, so no balance can tell; it is never
        # sent again and no money will move for it.
        return _bet_void(
            bet=bet,
            reason="Outcome of POST /bet unknown; debit_on_loss: nothing can tell",
            debited=False,
        )
    if unknown_grace_left(bet) > 0:
        # A POST /bet the provider received but answered after our timeout may
        # still be processed: the balance is evidence only once it cannot land.
        return bet
    provider_balance, ledger_balance = _balances(bet=bet, client=client, lease=lease)
    if provider_balance == ledger_balance - bet.amount:
        return _bet_void(
            bet=bet,
            reason="The provider balance fell by the stake: the bet was taken",
            debited=True,
        )
    if provider_balance == ledger_balance:
        return _bet_fail(
            bet=bet, reason="The provider balance is unchanged: the bet was not taken"
        )
    return _flag(
        bet,
        f"Cannot attribute the provider balance {provider_balance} "
        f"(ledger {ledger_balance}, stake {bet.amount})",
    )


def _resolve_pending(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    """``POST /win``; while an earlier one may have been processed, the balance
    decides first (at most two sends per resolution)."""
    refusals = 0
    for _ in range(2):
        if bet.result_in_doubt:
            decided = _settle_by_balance(bet=bet, client=client, lease=lease)
            if decided is not None:
                return decided
        in_doubt_before = bet.result_in_doubt
        try:
            result = _win_send(bet=bet, client=client, lease=lease)
        except ProviderOutcomeUnknown:
            continue  # in doubt now: the balance decides first next time
        except ProviderRefused as exc:
            if in_doubt_before:
                # The contract's rule: refused after a /win that may have been
                # processed; the balance says whether it paid, else it was a loss.
                return _settle_by_balance(
                    bet=bet, client=client, lease=lease, refused=True
                )
            # Nothing of this bet was processed: a refusal says nothing about
            # its result. Once more, then staff decide.
            refusals += 1
            if refusals == 2:
                return _flag(bet, f"POST /win refused twice: {_why(exc)}")
            continue
        bet = _bet_complete(bet=bet, win=result.win, evidence={"win": str(result.win)})
        _balance_verify(user_id=bet.user_id, client=client, lease=lease)
        return bet
    bet.refresh_from_db()
    return bet


def _settle_by_balance(
    *, bet: Bet, client: ProviderClient, lease: Lease, refused: bool = False
) -> Bet | None:
    """Settle from the provider balance while a POST /win of the bet may have been
    processed. None means "not processed yet: send POST /win (again)"; with
    ``refused`` (a /win refused after one that may have been processed) the
    answer is never None."""
    provider_balance, ledger_balance = _balances(bet=bet, client=client, lease=lease)
    delta = provider_balance - ledger_balance
    evidence = {
        "resolved_by": "balance",
        "provider_balance": str(provider_balance),
        "ledger_balance": str(ledger_balance),
        "win_refused": refused,
    }
    if bet.stake_mode == DEBIT_ON_LOSS:
        if delta == -bet.amount:
            return _bet_complete(bet=bet, win=ZERO, evidence=evidence)
        if delta > 0:
            return _bet_complete(bet=bet, win=delta, evidence=evidence)
        if delta == 0 and not refused:
            return None
    else:
        if delta > 0:
            return _bet_complete(bet=bet, win=delta, evidence=evidence)
        if delta == 0:
            # Unchanged is a loss or not processed: a refusal after a /win that
            # may have been processed says it was settled, so a loss.
            if refused:
                return _bet_complete(bet=bet, win=ZERO, evidence=evidence)
            return None
    return _flag(
        bet,
        f"Cannot attribute the provider balance {provider_balance} "
        f"(ledger {ledger_balance}, stake {bet.amount}, win refused: {refused})",
    )


def _win_send(
    *, bet: Bet, client: ProviderClient, lease: Lease, marked: bool = False
) -> BetResult:
    """``POST /win`` with ``result_in_doubt`` committed before it is sent, so a
    crash during the call leaves the bet in doubt (no flag is lost with the
    process). ``marked``: the caller set the flag in the write that saved the
    provider's bet id, and nothing was in doubt before. A definite refusal, or a
    failure before anything was sent, puts back what was known before; an unknown
    outcome leaves the flag set."""
    in_doubt_before = False if marked else bet.result_in_doubt
    try:
        lease.renew()
        if not bet.result_in_doubt:
            _bet_update(bet, result_in_doubt=True)
        return client.bet_result(bet.external_bet_id)
    except ProviderOutcomeUnknown:
        raise
    except (ProviderError, LeaseLost):
        if bet.result_in_doubt and not in_doubt_before:
            _bet_update(bet, result_in_doubt=False)
        raise


def _balances(
    *, bet: Bet, client: ProviderClient, lease: Lease
) -> tuple[Decimal, Decimal]:
    lease.renew()
    provider_balance = to_money(client.balance_read().balance)
    ledger_balance = (
        UserBalance.objects.filter(user_id=bet.user_id)
        .values_list("balance", flat=True)
        .first()
    )
    return provider_balance, ledger_balance or ZERO


def _flag(bet: Bet, reason: str) -> Bet:
    """Leave the bet open for staff: the evidence does not decide it."""
    _bet_update(bet, needs_attention=True, status_reason=reason[:500])
    logger.warning("Bet %s needs attention: %s", bet.pk, reason)
    return bet


def _balance_verify(*, user_id: int, client: ProviderClient, lease: Lease) -> None:
    """After a settlement, compare the ledger with the provider. A difference is
    booked as an adjustment with its evidence, never silently overwritten."""
    try:
        lease.renew()
        provider_balance = to_money(client.balance_read().balance)
    except (ProviderError, LeaseLost) as exc:
        logger.info("Balance check after settlement skipped: %s", _why(exc))
        return
    now = timezone.now()
    # The usual case, in one statement: the ledger agrees with the provider.
    if UserBalance.objects.filter(user_id=user_id, balance=provider_balance).update(
        external_balance=provider_balance, last_checked_at=now, updated_at=now
    ):
        return
    with transaction.atomic():
        wallet = wallet_lock(user=User(pk=user_id))
        open_bets = Bet.objects.filter(
            user_id=user_id, status__in=Bet.OPEN_STATUSES
        ).exists()
        difference = provider_balance - wallet.balance
        if difference and not open_bets:
            ledger_post(
                user=User(pk=user_id),
                entry_type=Transaction.Type.ADJUSTMENT,
                amount=difference,
                description="Provider balance differs from the ledger after settlement",
                evidence={
                    "kind": "discrepancy",
                    "provider_balance": str(provider_balance),
                    "ledger_balance": str(wallet.balance),
                },
                external_balance=provider_balance,
            )
            logger.warning(
                "Balance discrepancy for user %s: provider %s, ledger %s; adjusted",
                user_id,
                provider_balance,
                wallet.balance,
            )
            return
        wallet.external_balance = provider_balance
        wallet.last_checked_at = timezone.now()
        wallet.save(update_fields=["external_balance", "last_checked_at", "updated_at"])


# --- helpers ------------------------------------------------------------------


def unknown_grace_left(bet: Bet) -> float:
    """Seconds before the balance may decide this ``unknown`` bet (debit_on_place
    only: in debit_on_loss nothing is read from the balance); 0 when it may now."""
    if (
        bet.status != Bet.Status.UNKNOWN
        or bet.stake_mode != DEBIT_ON_PLACE
        or bet.unknown_since is None
    ):
        return 0.0
    elapsed = (timezone.now() - bet.unknown_since).total_seconds()
    return max(0.0, settings.BET_UNKNOWN_GRACE - elapsed)


def _owner(bet: Bet) -> User:
    """The bet's user as a key only: no query to load it."""
    return User(pk=bet.user_id)


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'message', str(exc))}"


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
