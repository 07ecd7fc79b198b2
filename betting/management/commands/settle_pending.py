import argparse
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

from django.conf import settings
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.utils import timezone

from accounts.models import User
from betting.exceptions import BetInProgress
from betting.lease import LeaseLost
from betting.models import Bet, ProviderLease
from betting.services import bet_resolve, unknown_grace_left
from betting_site.database import is_unreachable
from betting_site.errors import ApplicationError

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 50

NO_ANSWER = (
    "the provider gave no conclusive answer (unreachable, timed out or 5xx); "
    "the next run tries again"
)


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description's line breaks kept."""


class Command(BaseCommand):
    help = """\
Bring every open bet (pending or unknown), oldest first, to a final state by the
contract's resolution rules, each under its user's provider lease.

  pending, with a provider bet id: POST /win. When that call's outcome is unknown
      the provider balance decides: won, lost, or not processed (sent again).
  pending, without a provider bet id (a placement interrupted by a crash): once
      its lease has expired it is treated as unknown.
  unknown (POST /bet may have reached the provider): never sent again.
      debit_on_place: the balance fell by the stake -> void, with its bet_place
      entry; unchanged -> failed. The balance decides only BET_UNKNOWN_GRACE
      seconds after the timeout (a late POST /bet may still land): younger
      bets are decided after one wait, at the end.
      debit_on_loss: nothing can tell -> void, with no money moved.
      Void bets are flagged for staff.

What it cannot know: whether a debit_on_loss bet of unknown outcome exists at the
provider, or what it would have paid; and which bet a balance change belongs to
when something else moved the provider balance - such bets stay open, flagged
"needs attention", for staff. While the provider is down nothing can be decided.

A bet whose user is busy (lease held) is skipped; a provider error is reported for
that bet and the run goes on. Exit status: 0 when no bet is left open, 1 when some
remain open (listed with the reason), 2 on a usage error.
"""

    def create_parser(
        self, prog_name: str, subcommand: str, **kwargs: Any
    ) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", metavar="USERNAME", help="Only this user's open bets."
        )
        parser.add_argument(
            "--limit",
            type=int,
            metavar="N",
            help="Examine at most N bets, the oldest first; the rest stay open "
            "for the next run.",
        )
        parser.add_argument(
            "--wait",
            type=float,
            metavar="SECONDS",
            help="How long to wait for a busy user's provider lease before "
            "skipping the bet (default BET_LOCK_WAIT).",
        )

    def handle(
        self,
        *args: Any,
        user: str | None = None,
        limit: int | None = None,
        wait: float | None = None,
        **options: Any,
    ) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1", returncode=2)
        if wait is not None and wait < 0:
            raise CommandError("--wait must not be negative", returncode=2)
        bets = Bet.objects.filter(status__in=Bet.OPEN_STATUSES).order_by(
            "created_at", "id"
        )
        if user is not None:
            owner = User.objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}", returncode=2)
            bets = bets.filter(user=owner)
        total_open = bets.count()
        ids = list(bets.values_list("id", flat=True)[:limit])
        self.stdout.write(
            f"{total_open} open bets; examining {len(ids)}, oldest first."
        )

        tally: Counter[str] = Counter()
        still_open: list[tuple[Bet, str]] = []
        void_ids: list[int] = []
        waiting: list[Bet] = []  # unknown bets a late POST /bet may still reach

        def count(bet: Bet | None, reason: str, kind: str) -> None:
            tally[kind] += 1
            if bet is not None and bet.status in Bet.OPEN_STATUSES:
                still_open.append((bet, reason))
            elif bet is not None:
                tally[bet.status] += 1
                if bet.status == Bet.Status.VOID:
                    void_ids.append(bet.pk)

        busy: list[Bet] = []  # their users' leases are held: tried again below

        def sort(outcome: tuple[Bet | None, str, str]) -> None:
            bet, reason, kind = outcome
            if kind == "waiting":
                waiting.append(cast(Bet, bet))  # "waiting" comes with its bet
            elif kind == "busy" and bet is not None:
                busy.append(bet)
            else:
                count(bet, reason, kind)

        for done, bet_id in enumerate(ids, start=1):
            sort(self._settle_one(bet_id, wait, quiet_busy=True))
            if done % PROGRESS_EVERY == 0 and done < len(ids):
                self.stdout.write(f"... {done}/{len(ids)} bets examined")
        if busy:
            for outcome in self._wait_for_leases(busy):
                if outcome[2] == "busy":
                    count(*outcome)
                else:
                    sort(outcome)
        if waiting:
            # One wait for all of them: each is decided once its grace is over.
            longest = max(unknown_grace_left(bet) for bet in waiting)
            self.stdout.write(
                f"Waiting {longest:.1f} s for late POST /bet requests of "
                f"{len(waiting)} unknown bets to land before the balance decides them."
            )
            time.sleep(longest)
            for bet in waiting:
                count(*self._settle_one(bet.pk, wait))

        self._summary(ids, tally, still_open, void_ids)
        not_examined = total_open - len(ids)
        problems = []
        if still_open:
            attention = sum(1 for bet, _ in still_open if bet.needs_attention)
            problems.append(
                f"{len(still_open)} examined bets are still open "
                f"({tally['busy']} busy, {tally['error']} provider or other errors, "
                f"{attention} need staff attention)"
            )
        if not_examined > 0:
            problems.append(f"{not_examined} open bets were not examined (--limit)")
        if problems:
            raise CommandError("; ".join(problems), returncode=1)
        self.stdout.write(self.style.SUCCESS("No open bets left."))

    def _wait_for_leases(
        self, busy: list[Bet]
    ) -> Iterator[tuple[Bet | None, str, str]]:
        """One wait for every busy user's lease, each bet tried again as soon as
        its lease frees: held by a live operation (it ends), or by a process that
        died (free ``PROVIDER_LEASE_ALIVE`` after it stopped showing life), or
        held since before a database restart; never longer than the lease TTL."""
        longest = min(
            float(settings.PROVIDER_LEASE_TTL),
            max(_lease_left(bet.user_id) for bet in busy),
        )
        self.stdout.write(
            f"Waiting up to {longest + 1:.0f} s for the provider leases of "
            f"{len({bet.user_id for bet in busy})} busy users ({len(busy)} bets): "
            "another operation is running, or a process died holding the lease "
            f"(freed {settings.PROVIDER_LEASE_ALIVE:g} s after it stopped)."
        )
        started = time.monotonic()
        deadline = started + longest + 1
        reported = started
        while busy:
            time.sleep(0.5)
            still: list[Bet] = []
            for bet in busy:
                outcome = self._settle_one(bet.pk, 0, quiet_busy=True)
                if outcome[2] == "busy":
                    still.append(bet)
                else:
                    yield outcome
            busy = still
            now = time.monotonic()
            if busy and now >= deadline:
                break
            if busy and now - reported >= 5:
                reported = now
                self.stdout.write(
                    f"... {now - started:.0f} s: {len(busy)} bets still wait "
                    "for their user's lease"
                )
        if not busy:
            self.stdout.write(
                f"The leases freed after {time.monotonic() - started:.1f} s."
            )
        for bet in busy:
            yield self._settle_one(bet.pk, 0)  # reported as busy, with its line

    def _settle_one(
        self, bet_id: int, wait: float | None, *, quiet_busy: bool = False
    ) -> tuple[Bet | None, str, str]:
        """Resolve one bet: the bet (None when it was settled meanwhile), why it is
        still open, and how the attempt went (resolved, busy, error)."""
        bet = Bet.objects.select_related("user", "account").filter(pk=bet_id).first()
        if bet is None or bet.status not in Bet.OPEN_STATUSES:
            return None, "", "already_final"
        label = f"bet {bet.pk} of {bet.user.username} ({bet.status}, {bet.amount})"
        try:
            bet = bet_resolve(bet=bet, wait=wait)
        except BetInProgress:
            reason = "busy: another operation of this user holds the provider lease"
            if not quiet_busy:
                self.stdout.write(self.style.WARNING(f"{label}: {reason}"))
            return _reread(bet), reason, "busy"
        except (ApplicationError, LeaseLost) as exc:
            code = getattr(exc, "code", type(exc).__name__)
            reason = f"error {code}: {getattr(exc, 'message', str(exc))}"
            self.stdout.write(self.style.ERROR(f"{label}: {reason}"))
            return _reread(bet), reason, "error"
        except Exception as exc:  # one bad bet never stops the run
            if is_unreachable(exc):
                raise  # but the database gone stops it (manage.py: one line)
            logger.exception("settle_pending: bet %s could not be resolved", bet.pk)
            reason = f"unexpected error {type(exc).__name__}: {exc}"
            self.stdout.write(self.style.ERROR(f"{label}: {reason}"))
            return _reread(bet), reason, "error"
        if bet.status == Bet.Status.COMPLETED:
            self.stdout.write(f"{label}: completed, win {bet.win_amount}")
            return bet, "", "resolved"
        if bet.status in (Bet.Status.FAILED, Bet.Status.VOID):
            flag = " (flagged for staff)" if bet.needs_attention else ""
            self.stdout.write(f"{label}: {bet.status}{flag}: {bet.status_reason}")
            return bet, "", "resolved"
        if (grace := unknown_grace_left(bet)) > 0:
            self.stdout.write(
                f"{label}: still unknown; a late POST /bet may land for "
                f"{grace:.1f} s more, decided after that"
            )
            return bet, "", "waiting"
        if bet.needs_attention:
            reason = f"needs attention: {bet.status_reason}"
        else:
            reason = NO_ANSWER
            if bet.status_reason:
                reason += f" (last: {bet.status_reason})"
        self.stdout.write(self.style.WARNING(f"{label}: still {bet.status}, {reason}"))
        return bet, reason, "unresolved"

    def _summary(
        self,
        ids: list[int],
        tally: Counter[str],
        still_open: list[tuple[Bet, str]],
        void_ids: list[int],
    ) -> None:
        self.stdout.write(
            f"Examined {len(ids)} bets: {tally['completed']} completed, "
            f"{tally['failed']} failed, {tally['void']} void, "
            f"{len(still_open)} still open, "
            f"{tally['already_final']} already settled elsewhere."
        )
        if void_ids:
            self.stdout.write(
                "Void bets, flagged for staff: " + ", ".join(map(str, void_ids))
            )
        if still_open:
            self.stdout.write("Still open:")
            for bet, reason in still_open:
                flag = " [needs attention]" if bet.needs_attention else ""
                self.stdout.write(
                    f"  bet {bet.pk} of {bet.user.username} ({bet.status}){flag}: "
                    f"{reason}"
                )


def _lease_left(user_id: int) -> float:
    """Seconds before the user's lease may be taken, by the row (0 if free)."""
    lease = ProviderLease.objects.filter(user_id=user_id).first()
    if lease is None or not lease.holder or lease.expires_at is None:
        return 0.0
    until = lease.expires_at
    if lease.alive_until is not None:
        until = min(until, lease.alive_until)
    return max(0.0, (until - timezone.now()).total_seconds())


def _reread(bet: Bet) -> Bet:
    """The bet as stored now; the report matters more than a fresh status."""
    try:
        bet.refresh_from_db()
    except Exception:
        logger.exception("settle_pending: bet %s could not be re-read", bet.pk)
    return bet
