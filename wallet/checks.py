"""The ledger's self-check: the invariants that hold whatever the bets are.

Read-only and in a fixed number of queries whatever the data size. The bets'
side (which stakes are held, which entries each bet should have) is betting's,
which runs this with the stakes it expects held (``betting.checks``).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.db.models import Count, QuerySet, Sum

from accounts.models import User
from betting_site.money import ZERO, round_money
from wallet.models import Transaction, UserBalance

Report = Callable[[str], None]


class Check(StrEnum):
    BALANCE = "balance"  # (a) cached balance == sum of the entries
    CHAIN = "chain"  # (b) entries chain from 0 in id order
    HELD = "held"  # (c) held == stakes of the bets that hold one
    AVAILABLE = "available"  # (d) balance >= 0 and balance - held >= 0


@dataclass(frozen=True)
class Violation:
    user_id: int
    check: str
    detail: str
    bet_id: int | None = None
    username: str = field(default="", compare=False)


def for_users(
    queryset: QuerySet[Any], ids: list[int] | None, lookup: str = "user_id"
) -> QuerySet[Any]:
    return queryset if ids is None else queryset.filter(**{f"{lookup}__in": ids})


def wallet_check(
    *,
    ids: list[int] | None,
    held_expected: Mapping[int, Decimal],
    report: Report,
    every: int,
) -> list[Violation]:
    """(a) to (d) for the given users (None: all), ``held_expected`` being the
    stakes each user's open bets hold."""
    return _check_balances(ids, held_expected, report) + _check_chains(
        ids, report, every
    )


def _check_balances(
    ids: list[int] | None, held_by_user: Mapping[int, Decimal], report: Report
) -> list[Violation]:
    """(a), (c), (d): per-user aggregates, one query each; the sums rounded to
    cents (see ``round_money``)."""
    wallets = {
        row["user_id"]: row
        for row in for_users(UserBalance.objects.all(), ids).values(
            "user_id", "balance", "held"
        )
    }
    sums = {
        row["user_id"]: round_money(row["total"] or ZERO)
        for row in for_users(Transaction.objects.all(), ids)
        .values("user_id")
        .annotate(total=Sum("amount"), entries=Count("id"))
        .order_by()
    }
    users = sorted(set(wallets) | set(sums) | set(held_by_user))
    report(f"Checking balances of {len(users)} users")
    violations = []
    for user_id in users:
        wallet = wallets.get(user_id)
        total = sums.get(user_id, ZERO)
        held_expected = round_money(held_by_user.get(user_id) or ZERO)

        def add(check: Check, detail: str, user_id: int = user_id) -> None:
            violations.append(Violation(user_id, check, detail))

        if wallet is None:
            if total or held_expected:
                add(
                    Check.BALANCE,
                    f"no balance row, but the entries sum to {total} and the "
                    f"open bets hold {held_expected}",
                )
            continue
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
    return violations


def _check_chains(ids: list[int] | None, report: Report, every: int) -> list[Violation]:
    """(b): one pass over the entries in (user, id) order, streamed."""
    entries = (
        for_users(Transaction.objects.all(), ids)
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


def with_usernames(violations: list[Violation]) -> list[Violation]:
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
