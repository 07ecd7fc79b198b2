"""Staff repairs from the back office: each records who acted and why.

They run under the user's provider lease, like every operation that may change
what the ledger says about the provider, so they never race a bet being placed or
resolved: the balance-based resolution rules stay sound.
"""

import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from accounts.models import ExternalApiAccount, User
from betting.exceptions import BetInProgress
from betting.lease import provider_lease
from betting.models import Bet
from betting.reconciliation import (
    ReconcileResult,
    ReconcileStatus,
    balance_reconcile,
)
from betting.services import bet_resolve, unknown_grace_left
from betting.services.transitions import bet_void
from betting_site.errors import ApplicationError, Forbidden, ValidationFailed
from betting_site.money import MoneyInvalid, money_parse
from wallet.ledger import adjustment_book, wallet_lock
from wallet.models import Transaction

logger = logging.getLogger(__name__)

REASON_MAX_LENGTH = 250  # with the username and notes it fits status_reason
STAFF_LEASE_WAIT = 2.0
RESOLVE_LEASE_WAIT = 0.5
VOID_PERMISSION = "betting.change_bet"
ADJUST_PERMISSION = "wallet.change_userbalance"
# Reading the provider balance without booking anything.
RECONCILE_CHECK_PERMISSION = "wallet.view_userbalance"


@dataclass
class ResolveSummary:
    """What a bulk resolution did: the open bets it tried (as they are now) and
    their statuses, the bets whose user was busy, the errors, and the final bets
    left alone."""

    resolved: list[Bet] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    busy: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    skipped: int = 0
    waiting: dict[int, float] = field(default_factory=dict)  # bet: grace left, s

    @property
    def attempted(self) -> int:
        return sum(self.statuses.values())

    def as_text(self) -> str:
        parts = [
            "Resolved {} open bet(s){}".format(
                self.attempted,
                ": " + ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
                if self.statuses
                else "",
            )
        ]
        if self.busy:
            parts.append(
                "busy, retry shortly: "
                + ", ".join(f"bet {pk}" for pk in sorted(self.busy))
            )
        if self.errors:
            parts.append(
                "errors: "
                + "; ".join(f"bet {pk}: {m}" for pk, m in sorted(self.errors.items()))
            )
        if self.waiting:
            parts.append(
                "a late POST /bet may still land, decided by the balance later: "
                + ", ".join(
                    f"bet {pk} in {math.ceil(left)} s"
                    for pk, left in sorted(self.waiting.items())
                )
            )
        if self.skipped:
            parts.append(f"{self.skipped} final bet(s) left unchanged")
        return "; ".join(parts) + "."


def bet_void_by_staff(
    *, bet: Bet, actor: User, reason: str, provider_debited: bool
) -> Bet:
    """Void an open bet the resolution rules cannot decide (staff's last resort).

    The stake hold is released as the resolution rules' void would; with
    ``provider_debited`` (staff saw at the provider that the stake was taken) the
    stake is booked as a ``bet_place`` entry, unless the bet already has one.
    """
    _require_staff(actor, VOID_PERMISSION)
    reason = _validated_reason(reason)
    with provider_lease(
        user_id=bet.user_id, operation="staff_void", wait=STAFF_LEASE_WAIT
    ):
        voided = bet_void(
            bet=bet, reason=reason, stake_taken=provider_debited, actor=actor
        )
    logger.warning(
        "Bet %s voided by staff %s (provider debited: %s): %s",
        voided.pk,
        actor.username,
        provider_debited,
        reason,
    )
    return voided


def adjustment_post(
    *, user: User, amount: Decimal, actor: User, reason: str
) -> Transaction:
    """Post a manual, signed ``adjustment`` to the user's ledger.

    Refused while the user has an open bet (the resolution rules attribute every
    balance difference to that bet) and when it would leave the balance negative
    or below the stakes held.
    """
    _require_staff(actor, ADJUST_PERMISSION)
    reason = _validated_reason(reason)
    amount = _validated_adjustment(amount)
    with provider_lease(
        user_id=user.pk, operation="staff_adjustment", wait=STAFF_LEASE_WAIT
    ):
        return _adjustment_post_locked(
            user=user, amount=amount, actor=actor, reason=reason
        )


@transaction.atomic
def _adjustment_post_locked(
    *, user: User, amount: Decimal, actor: User, reason: str
) -> Transaction:
    wallet_lock(user_id=user.pk)  # before the bets: the order every path uses
    open_bet = (
        Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES)
        .values_list("pk", flat=True)
        .first()
    )
    if open_bet is not None:
        raise ValidationFailed(
            f"Bet {open_bet} of this user is still open: resolve or void it first",
            details={"user": [f"Bet {open_bet} is still open"]},
        )
    entry = adjustment_book(
        user_id=user.pk,
        amount=amount,
        reason=f"Manual adjustment by {actor.username}: {reason}",
        evidence={"kind": "manual", "reason": reason, "by": actor.username},
        actor_id=actor.pk,
    )
    logger.warning(
        "Manual adjustment %s for user %s by staff %s: %s",
        amount,
        user.pk,
        actor.username,
        reason,
    )
    return entry


def bets_resolve_by_staff(
    *, bets: Iterable[Bet], actor: User, wait: float = RESOLVE_LEASE_WAIT
) -> ResolveSummary:
    """Apply the resolution rules to each open bet; final bets are left alone and
    a bet whose user is busy is reported, not waited for."""
    _require_staff(actor, VOID_PERMISSION)
    summary = ResolveSummary()
    for bet in bets:
        if bet.status not in Bet.OPEN_STATUSES:
            summary.skipped += 1
            continue
        try:
            bet = bet_resolve(bet=bet, wait=wait)
        except BetInProgress:
            summary.busy.append(bet.pk)
            continue
        except ApplicationError as exc:
            summary.errors[bet.pk] = f"{exc.code}: {exc.message}"
            continue
        summary.resolved.append(bet)
        summary.statuses[bet.status] += 1
        if (left := unknown_grace_left(bet)) > 0:
            summary.waiting[bet.pk] = left
    logger.info("Staff %s resolved bets: %s", actor.username, summary.as_text())
    return summary


@dataclass
class ReconcileSummary:
    """What a bulk reconciliation did: one result per user with an active
    provider account, in user order, and the users without one."""

    results: list[ReconcileResult] = field(default_factory=list)
    unlinked: list[User] = field(default_factory=list)

    @property
    def statuses(self) -> Counter[ReconcileStatus]:
        return Counter(result.status for result in self.results)


def balances_reconcile_by_staff(
    *, users: Iterable[User], actor: User, fix: bool
) -> ReconcileSummary:
    """``balance_reconcile`` for each user's active provider account, on behalf of
    ``actor``: with ``fix``, drift is booked as an ``adjustment`` created by the
    actor (its evidence holds both figures and who asked), which needs the
    adjustment permission; a check only records the provider's figure. Users with
    open bets or a busy lease are reported and skipped, as by ``manage.py
    reconcile``; a provider failure is a result, never raised."""
    _require_staff(actor, ADJUST_PERMISSION if fix else RECONCILE_CHECK_PERMISSION)
    users = sorted(users, key=lambda user: user.pk)
    accounts = {
        account.user_id: account
        for account in ExternalApiAccount.objects.filter(
            user__in=[user.pk for user in users], is_active=True
        ).select_related("user")
    }
    summary = ReconcileSummary()
    for user in users:
        account = accounts.get(user.pk)
        if account is None:
            summary.unlinked.append(user)
            continue
        summary.results.append(balance_reconcile(account=account, fix=fix, actor=actor))
    logger.info(
        "Staff %s reconciled %s balances (fix: %s): %s, %s without a provider link",
        actor.username,
        len(summary.results),
        fix,
        dict(summary.statuses),
        len(summary.unlinked),
    )
    return summary


# --- checks ----------------------------------------------------------------------


def staff_can(actor: User | AnonymousUser, permission: str) -> bool:
    """Whether ``actor`` is active staff holding ``permission`` (the admin's
    read-only ``has_change_permission`` does not decide who may repair)."""
    return bool(
        actor.is_authenticated
        and actor.is_active
        and actor.is_staff
        and actor.has_perm(permission)
    )


def _require_staff(actor: User, permission: str) -> None:
    if not staff_can(actor, permission):
        raise Forbidden(f"Staff permission {permission} is required")


def _validated_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "A reason is required", details={"reason": ["A reason is required"]}
        )
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationFailed(
            details={
                "reason": [f"At most {REASON_MAX_LENGTH} characters, please"],
            }
        )
    return reason


def _validated_adjustment(amount: object) -> Decimal:
    try:
        return money_parse(amount, allow_zero=False)
    except MoneyInvalid as exc:
        raise ValidationFailed(details={"amount": [str(exc)]}) from None
