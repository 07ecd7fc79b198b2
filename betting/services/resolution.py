"""Resolution: bring an open bet to a final state from the provider's evidence.

Under the user's lease no other operation of that user is in flight and the user
has at most one open bet, so a change of the provider balance belongs to that bet
(the contract's resolution rules):

- ``pending`` without a provider id (a crash before POST /bet was answered):
  ``unknown``.
- ``unknown``, debit_on_loss: ``void`` (placing moves no money, nothing can tell).
- ``unknown``, debit_on_place, once ``BET_UNKNOWN_GRACE`` is over: the balance fell
  by the stake, ``void`` with the stake booked; unchanged, ``failed``.
- ``pending`` with an id: POST /win; while an earlier /win may have been
  processed, the balance decides first.
- Anything else is flagged for staff and stays open.
"""

import logging
import math
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from betting.exceptions import BetInProgress
from betting.lease import Lease, LeaseLost, provider_lease
from betting.models import Bet
from betting.services.settlement import bet_complete, result_book, win_send
from betting.services.transitions import (
    bet_fail,
    bet_flag,
    bet_mark_unknown,
    bet_update,
    bet_void,
    why,
)
from betting.wire import bet_as_dict
from betting_site.money import ZERO, to_money
from provider.client import ProviderClient
from provider.exceptions import ProviderError, ProviderOutcomeUnknown, ProviderRefused
from wallet.models import UserBalance

logger = logging.getLogger(__name__)


def bet_resolve(*, bet: Bet, wait: float | None = None) -> Bet:
    """Try to bring an open bet to a final state by the contract's resolution rules.

    A final bet is returned unchanged. Raises ``BetInProgress`` when the user's
    lease stays busy for ``wait`` seconds.
    """
    if not bet.is_open:
        return bet
    with provider_lease(
        user_id=bet.user_id, operation="bet_resolve", wait=wait
    ) as lease:
        bet.refresh_from_db()
        client = ProviderClient(account=bet.account)
        return _resolve(bet=bet, client=client, lease=lease)


def open_bets_resolve(*, user: User, client: ProviderClient, lease: Lease) -> None:
    """Before a new bet: resolve the user's open bet, or refuse the new one (its
    balance changes could not be told apart)."""
    for bet in Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES):
        bet = _resolve(bet=bet, client=client, lease=lease)
        if not bet.is_open:
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


def unknown_grace_left(bet: Bet) -> float:
    """Seconds before the balance may decide this ``unknown`` bet (debit_on_place
    only: in debit_on_loss nothing is read from the balance); 0 when it may now."""
    if (
        bet.status != Bet.Status.UNKNOWN
        or bet.stake_mode != Bet.StakeMode.DEBIT_ON_PLACE
        or bet.unknown_since is None
    ):
        return 0.0
    elapsed = (timezone.now() - bet.unknown_since).total_seconds()
    return max(0.0, float(settings.BET_UNKNOWN_GRACE) - elapsed)


def _resolve(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    """The contract's resolution rules, under the user's lease."""
    try:
        if bet.status == Bet.Status.PENDING and bet.external_bet_id is None:
            # Left by a crash between recording and placing: we hold the lease, so
            # nobody is placing it now, and it may or may not have been sent.
            bet = bet_mark_unknown(
                bet=bet, reason="Interrupted before the provider answered"
            )
        if bet.status == Bet.Status.UNKNOWN:
            return _resolve_unknown(bet=bet, client=client, lease=lease)
        if bet.status == Bet.Status.PENDING:
            return _resolve_pending(bet=bet, client=client, lease=lease)
    except (ProviderError, LeaseLost) as exc:
        # Unreachable, unknown, or a refused read: the bet stays open, saying why.
        logger.info("Bet %s not resolved yet: %s", bet.pk, why(exc))
        bet.refresh_from_db()
        if bet.is_open:
            bet_update(bet, status_reason=f"Not resolved yet: {why(exc)}"[:500])
    return bet


def _resolve_unknown(*, bet: Bet, client: ProviderClient, lease: Lease) -> Bet:
    if bet.stake_mode == Bet.StakeMode.DEBIT_ON_LOSS:
        # Placing moves no money in this mode, so no balance can tell; it is never
        # sent again and no money will move for it.
        return bet_void(
            bet=bet,
            reason="Outcome of POST /bet unknown; debit_on_loss: nothing can tell",
            stake_taken=False,
        )
    if unknown_grace_left(bet) > 0:
        # A POST /bet the provider received but answered after our timeout may
        # still be processed: the balance is evidence only once it cannot land.
        return bet
    provider_balance, ledger_balance = _balances(bet=bet, client=client, lease=lease)
    if provider_balance == ledger_balance - bet.amount:
        return bet_void(
            bet=bet,
            reason="The provider balance fell by the stake: the bet was taken",
            stake_taken=True,
        )
    if provider_balance == ledger_balance:
        return bet_fail(
            bet=bet, reason="The provider balance is unchanged: the bet was not taken"
        )
    return bet_flag(
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
            result = win_send(bet=bet, client=client, lease=lease)
        except ProviderOutcomeUnknown:
            continue  # in doubt now: the balance decides first next time
        except ProviderRefused as exc:
            if in_doubt_before:
                # The contract's rule: refused after a /win that may have been
                # processed; the balance says whether it paid, else it was a loss.
                settled = _settle_by_balance(
                    bet=bet, client=client, lease=lease, refused=True
                )
                return settled if settled is not None else bet
            # Nothing of this bet was processed: a refusal says nothing about
            # its result. Once more, then staff decide.
            refusals += 1
            if refusals == 2:
                return bet_flag(bet, f"POST /win refused twice: {why(exc)}")
            continue
        return result_book(bet=bet, result=result, client=client, lease=lease)
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
    if bet.stake_mode == Bet.StakeMode.DEBIT_ON_LOSS:
        if delta == -bet.amount:
            return bet_complete(bet=bet, win=ZERO, evidence=evidence)
        if delta > 0:
            return bet_complete(bet=bet, win=delta, evidence=evidence)
        if delta == 0 and not refused:
            return None
    else:
        if delta > 0:
            return bet_complete(bet=bet, win=delta, evidence=evidence)
        if delta == 0:
            # Unchanged is a loss or not processed: a refusal after a /win that
            # may have been processed says it was settled, so a loss.
            if refused:
                return bet_complete(bet=bet, win=ZERO, evidence=evidence)
            return None
    return bet_flag(
        bet,
        f"Cannot attribute the provider balance {provider_balance} "
        f"(ledger {ledger_balance}, stake {bet.amount}, win refused: {refused})",
    )


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
