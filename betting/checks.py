"""``check_ledger``: the ledger's invariants and the bet lifecycle's bookkeeping.

``wallet.checks`` checks what holds whatever the bets are (balances, chains,
available); this module adds the bets' side: the stakes they hold, at most one
open bet per user, and each bet's entries fitting its state. Read-only, in a
fixed number of queries whatever the data size.
"""

from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.db.models import Count, F, Q, Sum

from betting.models import Bet, holding_stake
from betting_site.money import ZERO, round_money
from wallet.checks import (
    Check,
    Report,
    Violation,
    for_users,
    wallet_check,
    with_usernames,
)
from wallet.models import Transaction


class BetCheck(StrEnum):
    BET_ENTRIES = "bet_entries"  # (e) each bet's ledger entries fit its state
    OPEN_BETS = "open_bets"  # (f) at most one open bet per user
    COMPLETED = "completed"  # (g) a completed bet has its result and time


CHECK_ORDER = [*Check, *BetCheck]


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
    held, open_counts = _stakes_and_open_bets(ids)
    violations = wallet_check(
        ids=ids, held_expected=held, report=report, every=progress_every
    )
    violations += [
        Violation(user_id, BetCheck.OPEN_BETS, f"{n} open bets (at most one allowed)")
        for user_id, n in open_counts.items()
        if n > 1
    ]
    violations += _check_bets(ids, report, progress_every)
    violations.sort(
        key=lambda v: (v.user_id, CHECK_ORDER.index(v.check), v.bet_id or 0)
    )
    return with_usernames(violations)


def _stakes_and_open_bets(
    ids: list[int] | None,
) -> tuple[dict[int, Decimal], dict[int, int]]:
    """Per user: the stakes the open bets hold, and how many bets are open."""
    rows = (
        for_users(Bet.objects.all(), ids)
        .values("user_id")
        .annotate(
            held=Sum("amount", filter=holding_stake()),
            open=Count("id", filter=Q(status__in=Bet.OPEN_STATUSES)),
        )
        .order_by()
    )
    held, open_counts = {}, {}
    for row in rows:
        held[row["user_id"]] = row["held"] or ZERO
        open_counts[row["user_id"]] = row["open"] or 0
    return held, open_counts


def _check_bets(ids: list[int] | None, report: Report, every: int) -> list[Violation]:
    """(e), (g): every bet with its entries counted and summed per type, one query."""
    counts: dict[str, Any] = {}
    sums: dict[str, Any] = {}
    for entry_type in Transaction.BET_TYPES:
        in_type = Q(transactions__type=entry_type)
        counts[f"n_{entry_type}"] = Count("transactions", filter=in_type)
        sums[f"s_{entry_type}"] = Sum("transactions__amount", filter=in_type)
    bets = (
        for_users(Bet.objects.all(), ids)
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


def _bet_problems(bet: dict[str, Any]) -> list[tuple[BetCheck, str]]:
    """What is wrong with one bet's ledger entries, by the lifecycle's rules."""
    place, win, loss = bet["n_bet_place"], bet["n_bet_win"], bet["n_bet_loss"]
    amount, mode, status = bet["amount"], bet["stake_mode"], bet["status"]
    on_place = mode == Bet.StakeMode.DEBIT_ON_PLACE
    name = f"bet {bet['id']} ({status}, {mode})"
    problems: list[tuple[BetCheck, str]] = []

    def problem(detail: str, check: BetCheck = BetCheck.BET_ENTRIES) -> None:
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
            problem("no win_amount or completed_at", BetCheck.COMPLETED)
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
        # A void bet's stake is booked when the provider took it, whatever the
        # mode: by the balance (debit_on_place) or by staff who saw it there.
        if win + loss:
            problem("a result entry, though a void bet is never settled")
    else:  # pending or unknown
        if win + loss:
            problem("a result entry, though the bet is still open")
        placed = status == Bet.Status.PENDING and bet["external_bet_id"] is not None
        if on_place and placed and place != 1:
            problem(f"{place} bet_place entries, not one (placed, debit_on_place)")
        if (not on_place or not placed) and place:
            problem("a bet_place entry before the provider took the stake")
    return problems
