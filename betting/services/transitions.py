"""The transitions every stage shares: fail, mark unknown, void, flag.

Each one is a committed write. The ones that give money back lock the balance row
before the bet row (the order every path uses) and change the stake hold only
through ``wallet.ledger``.
"""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from betting.models import Bet
from betting_site.errors import ValidationFailed
from betting_site.metrics import BET_FAILED, BET_UNKNOWN, BET_VOID, bet_outcome_record
from wallet.ledger import ledger_post, stake_release, wallet_lock
from wallet.models import Transaction

logger = logging.getLogger(__name__)

REASON_MAX = 500  # Bet.status_reason


def bet_update(bet: Bet, **fields: Any) -> None:
    """Write ``fields`` of the bet (and set them on the instance): one statement."""
    for name, value in fields.items():
        setattr(bet, name, value)
    Bet.objects.filter(pk=bet.pk).update(**fields, updated_at=timezone.now())


@transaction.atomic
def bet_fail(*, bet: Bet, reason: str) -> Bet:
    """It certainly never took effect: release the hold. A final bet is returned
    as it is."""
    wallet_lock(user_id=bet.user_id)
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if not bet.is_open:
        return bet
    if bet.holds_stake:
        stake_release(user_id=bet.user_id, amount=bet.amount)
    bet.status = Bet.Status.FAILED
    bet.status_reason = reason[:REASON_MAX]
    bet.save(update_fields=["status", "status_reason", "updated_at"])
    bet_outcome_record(outcome=BET_FAILED)
    logger.info("Bet %s failed: %s", bet.pk, reason)
    return bet


def bet_mark_unknown(*, bet: Bet, reason: str) -> Bet:
    """It may have reached the provider: keep the stake held, never send it again."""
    bet_update(
        bet,
        status=Bet.Status.UNKNOWN,
        status_reason=reason[:REASON_MAX],
        unknown_since=timezone.now(),
    )
    bet_outcome_record(outcome=BET_UNKNOWN)
    logger.warning("Bet %s outcome unknown: %s", bet.pk, reason)
    return bet


@transaction.atomic
def bet_void(
    *, bet: Bet, reason: str, stake_taken: bool, actor: User | None = None
) -> Bet:
    """It reached the provider, or may have, but can never be settled: release the
    hold and, with ``stake_taken`` (the provider's balance, or staff at the
    provider, shows the stake was taken), book the stake unless it is booked.

    The resolution rules call it without ``actor`` and get a final bet back as it
    is; staff (``actor``) are told when the bet is no longer open.
    """
    wallet = wallet_lock(user_id=bet.user_id)
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if not bet.is_open:
        if actor is None:
            return bet
        raise ValidationFailed(
            f"Bet {bet.pk} is {bet.status}: only a pending or unknown bet can be "
            "voided",
            details={"bet": [f"Bet {bet.pk} is already {bet.status}"]},
        )
    notes = []
    if stake_taken:
        if Transaction.objects.filter(
            bet_id=bet.pk, type=Transaction.Type.BET_PLACE
        ).exists():
            notes.append("stake already booked")
        else:
            if wallet.balance < bet.amount:
                problem = (
                    f"The balance {wallet.balance} cannot cover the stake {bet.amount}"
                )
                raise ValidationFailed(problem, details={"provider_debited": [problem]})
            ledger_post(user_id=bet.user_id, **_void_stake_entry(bet, reason, actor))
            notes.append("stake taken by the provider, booked")
    if bet.holds_stake:
        stake_release(user_id=bet.user_id, amount=bet.amount)
    if actor is not None:
        note = f" ({'; '.join(notes)})" if notes else ""
        previous = f"was {bet.status}" + (
            f": {bet.status_reason}" if bet.status_reason else ""
        )
        reason = f"Voided by staff {actor.username}: {reason}{note} [{previous}]"
    bet.status = Bet.Status.VOID
    bet.needs_attention = True
    bet.status_reason = reason[:REASON_MAX]
    bet.save(update_fields=["status", "needs_attention", "status_reason", "updated_at"])
    bet_outcome_record(outcome=BET_VOID)
    logger.warning("Bet %s void: %s", bet.pk, bet.status_reason)
    return bet


def _void_stake_entry(bet: Bet, reason: str, actor: User | None) -> dict[str, Any]:
    if actor is None:
        return {
            "entry_type": Transaction.Type.BET_PLACE,
            "amount": -bet.amount,
            "bet_id": bet.pk,
            "description": f"Stake of void bet {bet.pk}, taken by the provider",
            "evidence": {"reason": reason},
        }
    return {
        "entry_type": Transaction.Type.BET_PLACE,
        "amount": -bet.amount,
        "bet_id": bet.pk,
        "description": f"Stake of bet {bet.pk}, voided by staff",
        "evidence": {
            "kind": "manual",
            "reason": reason,
            "by": actor.username,
            "provider_debited": True,
        },
        "actor_id": actor.pk,
    }


def bet_flag(bet: Bet, reason: str) -> Bet:
    """Leave the bet open for staff: the evidence does not decide it."""
    bet_update(bet, needs_attention=True, status_reason=reason[:REASON_MAX])
    logger.warning("Bet %s needs attention: %s", bet.pk, reason)
    return bet


def why(exc: Exception) -> str:
    """An error as a status reason: its kind and message."""
    return f"{type(exc).__name__}: {getattr(exc, 'message', str(exc))}"
