"""Settlement: POST /win, the result booked exactly once, the balance checked.

``result_in_doubt`` is committed before every POST /win, so that a process that
dies during the call leaves the bet for the balance to decide (see
``resolution``). After a settlement the ledger is compared with the provider; a
difference is booked as an adjustment with its evidence, never overwritten.
"""

import logging
from decimal import Decimal
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import ExternalApiAccount
from betting.lease import Lease, LeaseLost, provider_lease
from betting.models import Bet
from betting.services import checkpoints
from betting.services.transitions import bet_update, why
from betting_site.errors import ValidationFailed
from betting_site.metrics import BET_LOST, BET_WON, bet_outcome_record
from betting_site.money import ZERO, to_money
from provider.client import ProviderClient
from provider.exceptions import ProviderError, ProviderOutcomeUnknown
from provider.types import BetResult
from wallet.ledger import (
    adjustment_book,
    ledger_post,
    provider_balance_record,
    wallet_lock,
)
from wallet.models import Transaction

logger = logging.getLogger(__name__)


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
        result = win_send(bet=bet, client=client, lease=lease)
        checkpoints.reached("result")
        bet = bet_complete(bet=bet, win=result.win, evidence={"win": str(result.win)})
        balance_verify(user_id=bet.user_id, client=client, lease=lease)
        return bet, result.raw_dict()


def result_fetch(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    """``POST /win`` right after placing (the bet was marked in doubt when its id
    was saved). A failure leaves the bet pending, in doubt when the call may have
    been processed, for the resolution rules."""
    try:
        result = win_send(bet=bet, client=client, lease=lease, marked=True)
    except ProviderError as exc:
        bet_update(bet, status_reason=why(exc)[:500])
        return bet
    checkpoints.reached("result")
    bet = bet_complete(bet=bet, win=result.win, evidence={"win": str(result.win)})
    balance_verify(user_id=bet.user_id, client=client, lease=lease)
    return bet


def win_send(
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
            bet_update(bet, result_in_doubt=True)
        return client.bet_result(bet.external_bet_id or "")
    except ProviderOutcomeUnknown:
        raise
    except (ProviderError, LeaseLost):
        if bet.result_in_doubt and not in_doubt_before:
            bet_update(bet, result_in_doubt=False)
        raise


# --- booking the result -------------------------------------------------------------


def bet_complete(*, bet: Bet, win: Decimal, evidence: dict[str, Any]) -> Bet:
    """Book the result exactly once: the ledger entry, the hold, the status."""
    win = to_money(win)
    try:
        return _bet_complete_fast(bet=bet, win=win, evidence=evidence)
    except (_NotPending, IntegrityError, DataError):
        # Settled already (its entry exists), or a refusal to explain: the
        # careful path decides under both locks.
        return _bet_complete_careful(bet=bet, win=win, evidence=evidence)


class _NotPending(Exception):
    """The bet is no longer pending: roll the fast path back."""


def _result_entry(bet: Bet, win: Decimal) -> dict[str, Any]:
    """The ledger entry of a result. debit_on_loss held the stake until now:
    released in the same write."""
    on_loss = bet.stake_mode == Bet.StakeMode.DEBIT_ON_LOSS
    release = bet.amount if on_loss else None
    if win > 0:
        return {
            "entry_type": Transaction.Type.BET_WIN,
            "amount": win,
            "description": f"Win of bet {bet.pk}",
            "release_hold": release,
        }
    return {
        "entry_type": Transaction.Type.BET_LOSS,
        "amount": -bet.amount if on_loss else ZERO,
        "description": f"Loss of bet {bet.pk}",
        "release_hold": release,
    }


@transaction.atomic
def _bet_complete_fast(*, bet: Bet, win: Decimal, evidence: dict[str, Any]) -> Bet:
    """Three statements: the balance moved and locked, the bet completed only if
    still pending (the exactly-once guard), the entry. Raises to be rolled back."""
    entry = ledger_post(
        user_id=bet.user_id, bet_id=bet.pk, evidence=evidence, **_result_entry(bet, win)
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
        raise _NotPending(f"bet {bet.pk} is no longer pending")
    bet.status, bet.win_amount, bet.completed_at = Bet.Status.COMPLETED, win, now
    bet.result_in_doubt, bet.updated_at = False, now
    _bet_completed(bet, entry)
    return bet


@transaction.atomic
def _bet_complete_careful(*, bet: Bet, win: Decimal, evidence: dict[str, Any]) -> Bet:
    """Under both row locks; answers an already settled bet as it is."""
    wallet_lock(user_id=bet.user_id)
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if bet.status != Bet.Status.PENDING:
        return bet  # settled already: money never moves twice
    entry = ledger_post(
        user_id=bet.user_id, bet_id=bet.pk, evidence=evidence, **_result_entry(bet, win)
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
    win = bet.win_amount or ZERO
    bet_outcome_record(outcome=BET_WON if win > 0 else BET_LOST)
    logger.info("Bet %s completed: win %s (entry %s)", bet.pk, win, entry.pk)


# --- the balance check after a settlement -------------------------------------------


def balance_verify(*, user_id: int, client: ProviderClient, lease: Lease) -> None:
    """After a settlement, compare the ledger with the provider. A difference is
    booked as an adjustment with its evidence, never silently overwritten."""
    try:
        lease.renew()
        provider_balance = to_money(client.balance_read().balance)
    except (ProviderError, LeaseLost) as exc:
        logger.info("Balance check after settlement skipped: %s", why(exc))
        return
    # The usual case, in one statement: the ledger agrees with the provider.
    if provider_balance_record(
        user_id=user_id, provider_balance=provider_balance, only_if_equal=True
    ):
        return
    with transaction.atomic():
        wallet = wallet_lock(user_id=user_id)
        open_bets = Bet.objects.filter(
            user_id=user_id, status__in=Bet.OPEN_STATUSES
        ).exists()
        difference = provider_balance - wallet.balance
        if difference and not open_bets and provider_balance >= wallet.held:
            adjustment_book(
                user_id=user_id,
                amount=difference,
                reason="Provider balance differs from the ledger after settlement",
                evidence={
                    "kind": "discrepancy",
                    "provider_balance": str(provider_balance),
                    "ledger_balance": str(wallet.balance),
                },
                provider_balance=provider_balance,
            )
            logger.warning(
                "Balance discrepancy for user %s: provider %s, ledger %s; adjusted",
                user_id,
                provider_balance,
                wallet.balance,
            )
            return
        provider_balance_record(user_id=user_id, provider_balance=provider_balance)
