"""Reconciliation with the provider and the ledger's self-check.

``balance_reconcile`` compares one account's ledger balance with the provider's
under the user's provider lease, so that no bet of that user moves money while the
provider is read; ``ledger_check`` verifies the contract's ledger invariants and the
bet lifecycle's bookkeeping, in a fixed number of queries whatever the data size.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from accounts.models import ExternalApiAccount, User
from betting.exceptions import BetInProgress
from betting.lease import LeaseLost, provider_lease
from betting.models import Bet
from betting_site.api.errors import ValidationFailed
from betting_site.money import ZERO, round_money, to_money
from provider.client import ProviderClient
from provider.exceptions import ProviderError
from wallet.models import Transaction, UserBalance
from wallet.services import ledger_post, wallet_lock

logger = logging.getLogger(__name__)

RECONCILE_LEASE_WAIT = 2.0
COMMAND_NAME = "manage.py reconcile"


# --- reconciliation -------------------------------------------------------------


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
    wallet = wallet_lock(user=user)
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
        entry = ledger_post(
            user=user,
            entry_type=Transaction.Type.ADJUSTMENT,
            amount=difference,
            description=f"Reconciliation with the provider balance ({by})",
            evidence={
                "kind": "reconcile",
                "provider_balance": str(provider_balance),
                "ledger_balance": str(ledger_balance),
                "external_user_id": account.external_user_id,
                "by": by,
            },
            actor=actor,
            external_balance=provider_balance,
        )
        logger.warning(
            "Reconciled user %s: ledger %s, provider %s, adjustment %s",
            user.pk,
            ledger_balance,
            provider_balance,
            difference,
        )
        return replace(result, status=ReconcileStatus.FIXED, adjustment=entry)
    wallet.external_balance = provider_balance
    wallet.last_checked_at = timezone.now()
    wallet.save(update_fields=["external_balance", "last_checked_at", "updated_at"])
    if difference:
        logger.warning(
            "Balance drift for user %s: ledger %s, provider %s",
            user.pk,
            ledger_balance,
            provider_balance,
        )
        return replace(result, status=ReconcileStatus.DRIFT)
    return result


# --- ledger check ---------------------------------------------------------------


class Check(StrEnum):
    BALANCE = "balance"  # (a) cached balance == sum of the entries
    CHAIN = "chain"  # (b) entries chain from 0 in id order
    HELD = "held"  # (c) held == stakes of the bets that hold one
    AVAILABLE = "available"  # (d) balance >= 0 and balance - held >= 0
    BET_ENTRIES = "bet_entries"  # (e) each bet's ledger entries fit its state
    OPEN_BETS = "open_bets"  # (f) at most one open bet per user
    COMPLETED = "completed"  # (g) a completed bet has its result and time


@dataclass(frozen=True)
class Violation:
    user_id: int
    check: Check
    detail: str
    bet_id: int | None = None
    username: str = field(default="", compare=False)


def ledger_check(
    *,
    user_ids: Iterable[int] | None = None,
    progress: Callable[[str], None] | None = None,
    progress_every: int = 10_000,
) -> list[Violation]:
    """Every broken ledger invariant of the given users (default: every user with a
    balance row, ledger entries or bets), in a fixed number of queries."""
    report = progress or (lambda message: None)
    ids = None if user_ids is None else sorted(set(user_ids))
    violations: list[Violation] = []
    violations += _check_balances(ids, report)
    violations += _check_chains(ids, report, progress_every)
    violations += _check_bets(ids, report, progress_every)
    order = list(Check)
    violations.sort(key=lambda v: (v.user_id, order.index(v.check), v.bet_id or 0))
    return _with_usernames(violations)


def _for_users(queryset, ids: list[int] | None, lookup: str = "user_id"):
    return queryset if ids is None else queryset.filter(**{f"{lookup}__in": ids})


def _held_condition() -> Q:
    """The bets whose stake is held: not yet debited by the provider."""
    return (
        Q(status=Bet.Status.PENDING, external_bet_id__isnull=True)
        | Q(status=Bet.Status.UNKNOWN)
        | Q(
            status=Bet.Status.PENDING,
            external_bet_id__isnull=False,
            stake_mode=Bet.StakeMode.DEBIT_ON_LOSS,
        )
    )


def _check_balances(
    ids: list[int] | None, report: Callable[[str], None]
) -> list[Violation]:
    """(a), (c), (d), (f): per-user aggregates, one query each; the sums rounded
    to cents (see ``round_money``)."""
    wallets = {
        row["user_id"]: row
        for row in _for_users(UserBalance.objects.all(), ids).values(
            "user_id", "balance", "held"
        )
    }
    sums = {
        row["user_id"]: row
        for row in _for_users(Transaction.objects.all(), ids)
        .values("user_id")
        .annotate(total=Sum("amount"), entries=Count("id"))
        .order_by()
    }
    bets = {
        row["user_id"]: row
        for row in _for_users(Bet.objects.all(), ids)
        .values("user_id")
        .annotate(
            held=Sum("amount", filter=_held_condition()),
            open=Count("id", filter=Q(status__in=Bet.OPEN_STATUSES)),
        )
        .order_by()
    }
    users = sorted(set(wallets) | set(sums) | set(bets))
    report(f"Checking balances of {len(users)} users")
    violations = []
    for user_id in users:
        wallet = wallets.get(user_id)
        total = round_money((sums.get(user_id) or {}).get("total") or ZERO)
        held_expected = round_money((bets.get(user_id) or {}).get("held") or ZERO)
        open_count = (bets.get(user_id) or {}).get("open") or 0

        def add(check: Check, detail: str, user_id: int = user_id) -> None:
            violations.append(Violation(user_id, check, detail))

        if wallet is None:
            if total or held_expected:
                add(
                    Check.BALANCE,
                    f"no balance row, but the entries sum to {total} and the "
                    f"open bets hold {held_expected}",
                )
        else:
            balance, held = wallet["balance"], wallet["held"]
            if balance != total:
                add(
                    Check.BALANCE,
                    f"balance {balance} but the entries sum to {total} "
                    f"(difference {balance - total})",
                )
            if held != held_expected:
                add(
                    Check.HELD,
                    f"held {held} but the bets holding a stake hold {held_expected}",
                )
            if balance < 0:
                add(Check.AVAILABLE, f"balance {balance} is negative")
            if balance - held < 0:
                add(
                    Check.AVAILABLE,
                    f"available {balance - held} is negative "
                    f"(balance {balance}, held {held})",
                )
        if open_count > 1:
            add(Check.OPEN_BETS, f"{open_count} open bets (at most one allowed)")
    return violations


def _check_chains(
    ids: list[int] | None, report: Callable[[str], None], every: int
) -> list[Violation]:
    """(b): one pass over the entries in (user, id) order, streamed."""
    entries = (
        _for_users(Transaction.objects.all(), ids)
        .order_by("user_id", "id")
        .values_list("user_id", "id", "amount", "balance_before", "balance_after")
    )
    violations = []
    current_user, previous_after, count = None, ZERO, 0
    for user_id, entry_id, amount, before, after in entries.iterator(chunk_size=2000):
        count += 1
        if count % every == 0:
            report(f"  chain: {count} entries checked")
        if user_id != current_user:
            current_user, previous_after = user_id, ZERO
            if before != ZERO:
                violations.append(
                    Violation(
                        user_id,
                        Check.CHAIN,
                        f"first entry {entry_id} starts at {before}, not 0",
                    )
                )
        elif before != previous_after:
            violations.append(
                Violation(
                    user_id,
                    Check.CHAIN,
                    f"entry {entry_id} starts at {before} but the previous entry "
                    f"ended at {previous_after}",
                )
            )
        if before + amount != after:
            violations.append(
                Violation(
                    user_id,
                    Check.CHAIN,
                    f"entry {entry_id}: {before} + {amount} != {after}",
                )
            )
        previous_after = after
    report(f"Checked the chain of {count} entries")
    return violations


def _check_bets(
    ids: list[int] | None, report: Callable[[str], None], every: int
) -> list[Violation]:
    """(e), (g): every bet with its entries counted and summed per type, one query."""
    counts, sums = {}, {}
    for entry_type in Transaction.BET_TYPES:
        in_type = Q(transactions__type=entry_type)
        counts[f"n_{entry_type}"] = Count("transactions", filter=in_type)
        sums[f"s_{entry_type}"] = Sum("transactions__amount", filter=in_type)
    bets = (
        _for_users(Bet.objects.all(), ids)
        .annotate(
            **counts,
            **sums,
            n_other=Count(
                "transactions",
                filter=~Q(transactions__type__in=Transaction.BET_TYPES),
            ),
            n_foreign=Count(
                "transactions", filter=~Q(transactions__user_id=F("user_id"))
            ),
        )
        .order_by("id")
        .values(
            "id",
            "user_id",
            "status",
            "stake_mode",
            "amount",
            "external_bet_id",
            "win_amount",
            "completed_at",
            *counts,
            *sums,
            "n_other",
            "n_foreign",
        )
    )
    violations = []
    count = 0
    for bet in bets.iterator(chunk_size=2000):
        count += 1
        if count % every == 0:
            report(f"  bets: {count} checked")
        for key in sums:  # SQLite's sums carry float error (see round_money)
            if bet[key] is not None:
                bet[key] = round_money(bet[key])
        for check, detail in _bet_problems(bet):
            violations.append(Violation(bet["user_id"], check, detail, bet["id"]))
    report(f"Checked the entries of {count} bets")
    return violations


def _bet_problems(bet: dict) -> list[tuple[Check, str]]:
    """What is wrong with one bet's ledger entries, by the lifecycle's rules."""
    place, win, loss = bet["n_bet_place"], bet["n_bet_win"], bet["n_bet_loss"]
    amount, mode, status = bet["amount"], bet["stake_mode"], bet["status"]
    on_place = mode == Bet.StakeMode.DEBIT_ON_PLACE
    name = f"bet {bet['id']} ({status}, {mode})"
    problems: list[tuple[Check, str]] = []

    def problem(detail: str, check: Check = Check.BET_ENTRIES) -> None:
        problems.append((check, f"{name}: {detail}"))

    for entry_type, n in (("bet_place", place), ("bet_win", win), ("bet_loss", loss)):
        if n > 1:
            problem(f"{n} {entry_type} entries (at most one)")
    if bet["n_foreign"]:
        problem(f"{bet['n_foreign']} entries belong to another user")
    if bet["n_other"]:
        problem(f"{bet['n_other']} entries of a non-bet type point at it")
    if place and bet["s_bet_place"] != -amount * place:
        problem(f"bet_place of {bet['s_bet_place']}, not -{amount}")

    if status == Bet.Status.COMPLETED:
        win_amount = bet["win_amount"]
        if win_amount is None or bet["completed_at"] is None:
            problem("no win_amount or completed_at", Check.COMPLETED)
        if win + loss != 1:
            problem(f"{win + loss} result entries (bet_win or bet_loss), not one")
        if on_place and place != 1:
            problem(f"{place} bet_place entries, not one")
        if not on_place and place:
            problem("a bet_place entry, though debit_on_loss stakes are not posted")
        if win == 1 and win_amount is not None and bet["s_bet_win"] != win_amount:
            problem(f"bet_win of {bet['s_bet_win']}, but win_amount {win_amount}")
        if win == 1 and win_amount is not None and win_amount <= 0:
            problem(f"a bet_win entry, but win_amount {win_amount}")
        if loss == 1:
            expected = ZERO if on_place else -amount
            if bet["s_bet_loss"] != expected:
                problem(f"bet_loss of {bet['s_bet_loss']}, not {expected}")
            if win_amount is not None and win_amount != 0:
                problem(f"a bet_loss entry, but win_amount {win_amount}")
    elif status == Bet.Status.FAILED:
        if place + win + loss:
            problem("ledger entries, though a failed bet moved no money")
    elif status == Bet.Status.VOID:
        if win + loss:
            problem("a result entry, though a void bet is never settled")
        if not on_place and place:
            problem("a bet_place entry, though debit_on_loss moves no money")
    else:  # pending or unknown
        if win + loss:
            problem("a result entry, though the bet is still open")
        placed = status == Bet.Status.PENDING and bet["external_bet_id"] is not None
        if on_place and placed and place != 1:
            problem(f"{place} bet_place entries, not one (placed, debit_on_place)")
        if (not on_place or not placed) and place:
            problem("a bet_place entry before the provider took the stake")
    return problems


def _with_usernames(violations: list[Violation]) -> list[Violation]:
    """Usernames for the users with violations only (few), in chunks."""
    ids = sorted({v.user_id for v in violations})
    names: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        names.update(
            User.objects.filter(pk__in=ids[start : start + 500]).values_list(
                "pk", "username"
            )
        )
    return [replace(v, username=names.get(v.user_id, "?")) for v in violations]
