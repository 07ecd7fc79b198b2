"""Reconciliation with the provider: ``manage.py reconcile`` and the admin actions.

``balance_reconcile`` compares one account's ledger balance with the provider's
under the user's provider lease, so that no bet of that user moves money while the
provider is read. A user with an open bet is skipped: its balance is in motion.
A difference found is reported, or with ``fix`` booked as an adjustment.
"""

import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from django.db import transaction

from accounts.models import ExternalApiAccount, User
from betting.exceptions import BetInProgress
from betting.lease import LeaseLost, provider_lease
from betting.models import Bet
from betting_site.errors import ValidationFailed
from betting_site.money import to_money
from provider.client import ProviderClient
from provider.exceptions import ProviderError
from wallet.ledger import adjustment_book, provider_balance_record, wallet_lock
from wallet.models import Transaction

logger = logging.getLogger(__name__)

RECONCILE_LEASE_WAIT = 2.0
COMMAND_NAME = "manage.py reconcile"


class ReconcileStatus(StrEnum):
    IN_SYNC = "in_sync"  # ledger == provider
    DRIFT = "drift"  # they differ; reported, not fixed
    FIXED = "fixed"  # they differed; an adjustment was posted
    OPEN_BETS = "open_bets"  # skipped: a pending or unknown bet moves the balance
    BUSY = "busy"  # skipped: another operation holds the user's lease
    ERROR = "error"  # the provider could not be read


CHECKED_STATUSES = (
    ReconcileStatus.IN_SYNC,
    ReconcileStatus.DRIFT,
    ReconcileStatus.FIXED,
)


@dataclass(frozen=True)
class ReconcileResult:
    account: ExternalApiAccount
    status: ReconcileStatus
    ledger_balance: Decimal | None = None
    provider_balance: Decimal | None = None
    detail: str = ""
    open_bet_ids: tuple[int, ...] = ()
    adjustment: Transaction | None = None

    @property
    def difference(self) -> Decimal | None:
        """Provider minus ledger: what an adjustment has to post."""
        if self.ledger_balance is None or self.provider_balance is None:
            return None
        return self.provider_balance - self.ledger_balance

    @property
    def checked(self) -> bool:
        """The provider's balance was read and compared."""
        return self.status in CHECKED_STATUSES


def balance_reconcile(
    *,
    account: ExternalApiAccount,
    fix: bool,
    actor: User | None = None,
    by: str | None = None,
) -> ReconcileResult:
    """Compare the account's ledger balance with the provider's; with ``fix``, post
    the difference as an ``adjustment``.

    Skips a user with open bets (their balance is in motion) or whose lease stays
    busy; a provider failure is answered as an ``ERROR`` result, never raised. The
    provider's figure is always recorded on the balance row. ``by`` names who asked
    in the evidence (default: the staff ``actor``, else the reconcile command).
    """
    if not account.is_active:
        raise ValidationFailed("Only an active provider account can be reconciled")
    user_id = account.user_id
    open_bets = _open_bet_ids(user_id=user_id)
    if open_bets:
        return _skipped_for_open_bets(account, open_bets)
    try:
        with provider_lease(
            user_id=user_id, operation="reconcile", wait=RECONCILE_LEASE_WAIT
        ) as lease:
            # Checked again under the lease: nothing can open a bet now.
            open_bets = _open_bet_ids(user_id=user_id)
            if open_bets:
                return _skipped_for_open_bets(account, open_bets)
            try:
                lease.renew()
                provider_balance = to_money(
                    ProviderClient(account=account).balance_read().balance
                )
            except ProviderError as exc:
                return ReconcileResult(
                    account=account,
                    status=ReconcileStatus.ERROR,
                    detail=f"{exc.code}: {exc.message}",
                )
            except ValueError as exc:  # more than two places: not an amount
                return ReconcileResult(
                    account=account,
                    status=ReconcileStatus.ERROR,
                    detail=f"The provider balance is not an amount: {exc}",
                )
            return _compare(
                account=account,
                provider_balance=provider_balance,
                fix=fix,
                actor=actor,
                by=by or (f"staff {actor.username}" if actor else COMMAND_NAME),
            )
    except BetInProgress:
        return ReconcileResult(
            account=account,
            status=ReconcileStatus.BUSY,
            detail="Another operation of this user holds the provider lease",
        )
    except LeaseLost as exc:
        return ReconcileResult(
            account=account, status=ReconcileStatus.ERROR, detail=str(exc)
        )


def _open_bet_ids(*, user_id: int) -> tuple[int, ...]:
    return tuple(
        Bet.objects.filter(user_id=user_id, status__in=Bet.OPEN_STATUSES)
        .order_by("id")
        .values_list("id", flat=True)
    )


def _skipped_for_open_bets(
    account: ExternalApiAccount, open_bets: tuple[int, ...]
) -> ReconcileResult:
    return ReconcileResult(
        account=account,
        status=ReconcileStatus.OPEN_BETS,
        detail="Open bets (pending or unknown): the balance is in motion",
        open_bet_ids=open_bets,
    )


@transaction.atomic
def _compare(
    *,
    account: ExternalApiAccount,
    provider_balance: Decimal,
    fix: bool,
    actor: User | None,
    by: str,
) -> ReconcileResult:
    """Under the balance row lock: record the provider's figure, and post the
    difference when asked to."""
    user = account.user
    wallet = wallet_lock(user_id=user.pk)
    ledger_balance = wallet.balance
    difference = provider_balance - ledger_balance
    result = ReconcileResult(
        account=account,
        status=ReconcileStatus.IN_SYNC,
        ledger_balance=ledger_balance,
        provider_balance=provider_balance,
    )
    if difference and fix:
        if provider_balance < 0:
            return replace(
                result,
                status=ReconcileStatus.ERROR,
                detail="The provider balance is negative: not booked",
            )
        entry = adjustment_book(
            user_id=user.pk,
            amount=difference,
            reason=f"Reconciliation with the provider balance ({by})",
            evidence={
                "kind": "reconcile",
                "provider_balance": str(provider_balance),
                "ledger_balance": str(ledger_balance),
                "external_user_id": account.external_user_id,
                "by": by,
            },
            actor_id=actor.pk if actor else None,
            provider_balance=provider_balance,
        )
        logger.warning(
            "Reconciled user %s: ledger %s, provider %s, adjustment %s",
            user.pk,
            ledger_balance,
            provider_balance,
            difference,
        )
        return replace(result, status=ReconcileStatus.FIXED, adjustment=entry)
    provider_balance_record(user_id=user.pk, provider_balance=provider_balance)
    if difference:
        logger.warning(
            "Balance drift for user %s: ledger %s, provider %s",
            user.pk,
            ledger_balance,
            provider_balance,
        )
        return replace(result, status=ReconcileStatus.DRIFT)
    return result
