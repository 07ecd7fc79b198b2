"""Settlement: POST /win, the result booked exactly once, the balance checked.

``result_in_doubt`` is committed before every POST /win, so that a process that
dies during the call leaves the bet for the balance to decide (see
``resolution``). After a settlement the ledger is compared with the provider; a
difference is booked as an adjustment with its evidence, never overwritten.
"""

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import ExternalApiAccount
from betting.lease import Lease, LeaseLost, provider_lease
from betting.models import Bet
from betting.services import checkpoints
from betting.services.transitions import bet_update, why
from betting_site.errors import ValidationFailed
from betting_site.last_commit import last_transaction
from betting_site.metrics import BET_LOST, BET_WON, bet_outcome_record
from betting_site.money import ZERO, to_money
from betting_site.sql import concrete_field, quoted_column, quoted_table
from provider.client import ProviderClient
from provider.exceptions import ProviderError, ProviderOutcomeUnknown
from provider.types import BetResult
from wallet.ledger import (
    ENTRY,
    MOVED,
    adjustment_book,
    ledger_post,
    ledger_post_ctes,
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
        bet = result_book(bet=bet, result=result, client=client, lease=lease, last=True)
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
    return result_book(bet=bet, result=result, client=client, lease=lease, last=True)


def result_book(
    *,
    bet: Bet,
    result: BetResult,
    client: ProviderClient,
    lease: Lease,
    last: bool = False,
) -> Bet:
    """``POST /win`` answered: read the provider's balance, then book the result
    and the comparison in one transaction: the entry, the balance moved and the
    provider's figure beside it, the bet completed, and with ``last`` (nothing
    else follows under the lease) the lease released. A difference between the
    two balances is then booked as an adjustment with its evidence.

    The balance is read before the booking commits, not after: the result is
    still in doubt (``result_in_doubt``) while it is read, so a crash there
    leaves the bet for the balance to decide, as a crash before booking always
    did."""
    checkpoints.reached("result")
    provider_balance = _provider_balance_read(client=client, lease=lease)
    bet, agreed = _bet_complete(
        bet=bet,
        win=result.win,
        evidence={"win": str(result.win)},
        provider_balance=provider_balance,
        lease=lease if last else None,
    )
    if provider_balance is not None and not agreed:
        _balance_compare(user_id=bet.user_id, provider_balance=provider_balance)
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
    return _bet_complete(bet=bet, win=win, evidence=evidence)[0]


def _bet_complete(
    *,
    bet: Bet,
    win: Decimal,
    evidence: dict[str, Any],
    provider_balance: Decimal | None = None,
    lease: Lease | None = None,
) -> tuple[Bet, bool]:
    """``bet_complete``, recording ``provider_balance`` in the same write and, when
    it equals the new ledger balance, releasing ``lease`` in the same transaction.
    Returns the bet and whether the two balances agreed."""
    win = to_money(win)
    # With the lease (nothing else follows under it) the booking is the request's
    # last transaction: the key's answer and the API log commit with it.
    booking = last_transaction() if lease is not None else transaction.atomic()
    try:
        with booking:
            bet, agreed = _bet_complete_fast(
                bet=bet,
                win=win,
                evidence=evidence,
                provider_balance=provider_balance,
                lease=lease,
            )
    except (_NotPending, IntegrityError, DataError):
        # Settled already (its entry exists), or a refusal to explain: the
        # careful path decides under both locks.
        bet, agreed = _bet_complete_careful(
            bet=bet,
            win=win,
            evidence=evidence,
            provider_balance=provider_balance,
            lease=lease,
        )
    if agreed and lease is not None:
        lease.released()  # its release committed with the result
    return bet, agreed


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


def _bet_complete_fast(
    *,
    bet: Bet,
    win: Decimal,
    evidence: dict[str, Any],
    provider_balance: Decimal | None,
    lease: Lease | None,
) -> tuple[Bet, bool]:
    """On PostgreSQL one statement: the balance moved and locked, the entry, the
    bet completed only if still pending (the exactly-once guard) and, when the
    balances agree, the lease released (``_book_in_one_statement``). Elsewhere,
    or when there is no balance row to move, three statements (four with the
    lease). In the caller's transaction; raises to be rolled back."""
    now = timezone.now()
    booked = None
    if connection.vendor == "postgresql":
        booked = _book_in_one_statement(
            bet=bet,
            win=win,
            evidence=evidence,
            provider_balance=provider_balance,
            lease=lease,
            now=now,
        )
    if booked is None:
        booked = _book_step_by_step(
            bet=bet,
            win=win,
            evidence=evidence,
            provider_balance=provider_balance,
            lease=lease,
            now=now,
        )
    entry, agreed = booked
    bet.status, bet.win_amount, bet.completed_at = Bet.Status.COMPLETED, win, now
    bet.result_in_doubt, bet.updated_at = False, now
    _bet_completed(bet, entry)
    return bet, agreed


def _completion(win: Decimal, now: datetime) -> dict[str, Any]:
    """What completing a pending bet writes."""
    return {
        "status": Bet.Status.COMPLETED,
        "win_amount": win,
        "completed_at": now,
        "result_in_doubt": False,
        "updated_at": now,
    }


def _book_step_by_step(
    *,
    bet: Bet,
    win: Decimal,
    evidence: dict[str, Any],
    provider_balance: Decimal | None,
    lease: Lease | None,
    now: datetime,
) -> tuple[Transaction, bool]:
    """The entry (``ledger_post`` explains a refusal and creates a missing
    balance row), the bet completed if still pending, the lease."""
    entry = ledger_post(
        user_id=bet.user_id,
        bet_id=bet.pk,
        evidence=evidence,
        provider_balance=provider_balance,
        **_result_entry(bet, win),
    )
    completed = Bet.objects.filter(pk=bet.pk, status=Bet.Status.PENDING).update(
        **_completion(win, now)
    )
    if not completed:
        raise _NotPending(f"bet {bet.pk} is no longer pending")
    return entry, _agreed(entry, provider_balance, lease)


def _book_in_one_statement(
    *,
    bet: Bet,
    win: Decimal,
    evidence: dict[str, Any],
    provider_balance: Decimal | None,
    lease: Lease | None,
    now: datetime,
) -> tuple[Transaction, bool] | None:
    """One data-modifying ``WITH`` on PostgreSQL, each part acting only when the
    one before it did: the balance moved (``moved``) and the entry chained from
    it (``entry``: wallet's SQL), the bet completed if still pending and the
    entry written (``completed``), the lease released if the bet was completed
    and the new balance equals the provider's (``released``).

    All parts see one snapshot and all run to the end whatever the final
    ``SELECT`` reads, so a bet no longer pending still has its money moved and
    its entry written here: ``_NotPending`` rolls them back. None when nothing
    was moved (no balance row, or out of the column's range): nothing was
    written and the caller books step by step, which explains or creates the
    row."""
    ledger = ledger_post_ctes(
        user_id=bet.user_id,
        bet_id=bet.pk,
        evidence=evidence,
        provider_balance=provider_balance,
        **_result_entry(bet, win),
    )
    assignments: list[str] = []
    params = list(ledger.params)
    for name, value in _completion(win, now).items():
        assignments.append(f"{quoted_column(Bet, name)} = %s")
        params.append(concrete_field(Bet, name).get_db_prep_save(value, connection))
    status = quoted_column(Bet, "status")
    sql = (
        f"WITH {ledger.sql}, completed AS ("  # noqa: S608
        f"UPDATE {quoted_table(Bet)} SET {', '.join(assignments)} "
        f"WHERE {quoted_column(Bet, 'pk')} = %s AND {status} = %s "
        f"AND EXISTS (SELECT 1 FROM {ENTRY}) RETURNING 1)"
    )
    params += [bet.pk, Bet.Status.PENDING]
    if lease is not None and provider_balance is not None:
        release_sql, release_params = lease.release_sql()
        sql += (
            f", released AS ({release_sql} AND EXISTS (SELECT 1 FROM completed) "  # noqa: S608
            f"AND EXISTS (SELECT 1 FROM {MOVED} WHERE {ledger.balance} = %s) "
            "RETURNING 1)"
        )
        params += [*release_params, provider_balance]
    # No row: nothing moved. ``released`` runs unread, as every part does.
    sql += (
        f" SELECT {ledger.returning}, "  # noqa: S608
        f"EXISTS (SELECT 1 FROM completed) FROM {ENTRY}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    *returned, completed = row
    if not completed:
        raise _NotPending(f"bet {bet.pk} is no longer pending")
    entry = ledger.posted(returned)
    agreed = provider_balance is not None and entry.balance_after == provider_balance
    return entry, agreed


def _agreed(
    entry: Transaction, provider_balance: Decimal | None, lease: Lease | None
) -> bool:
    """Whether the provider's balance equals the ledger's after ``entry``; if so
    the lease, when given, is released in the same transaction."""
    agreed = provider_balance is not None and entry.balance_after == provider_balance
    if agreed and lease is not None:
        lease.release_in_transaction()
    return agreed


@transaction.atomic
def _bet_complete_careful(
    *,
    bet: Bet,
    win: Decimal,
    evidence: dict[str, Any],
    provider_balance: Decimal | None,
    lease: Lease | None,
) -> tuple[Bet, bool]:
    """Under both row locks; answers an already settled bet as it is."""
    wallet_lock(user_id=bet.user_id)
    bet = Bet.objects.select_for_update().get(pk=bet.pk)
    if bet.status != Bet.Status.PENDING:
        return bet, False  # settled already: money never moves twice
    entry = ledger_post(
        user_id=bet.user_id,
        bet_id=bet.pk,
        evidence=evidence,
        provider_balance=provider_balance,
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
    return bet, _agreed(entry, provider_balance, lease)


def _bet_completed(bet: Bet, entry: Transaction) -> None:
    win = bet.win_amount or ZERO
    bet_outcome_record(outcome=BET_WON if win > 0 else BET_LOST)
    logger.info("Bet %s completed: win %s (entry %s)", bet.pk, win, entry.pk)


# --- the balance check after a settlement -------------------------------------------


def _provider_balance_read(*, client: ProviderClient, lease: Lease) -> Decimal | None:
    """The provider's balance for the comparison after a result; None when it
    cannot be read now (the comparison is then skipped: reconcile catches up)."""
    try:
        lease.renew()
        return to_money(client.balance_read().balance)
    except (ProviderError, LeaseLost) as exc:
        logger.info("Balance check after settlement skipped: %s", why(exc))
        return None


def _balance_compare(*, user_id: int, provider_balance: Decimal) -> None:
    """The ledger and the provider disagree after a settlement (or the result was
    booked before): under the balance row lock, book the difference as an
    adjustment with its evidence when no bet is open, else record the figure."""
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
