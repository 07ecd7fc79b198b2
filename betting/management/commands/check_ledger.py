import argparse
from collections import Counter
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)

from accounts.models import User
from betting.checks import ledger_check


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description's line breaks kept."""


class Command(BaseCommand):
    help = """\
Check the ledger's invariants for every user with a balance row, ledger entries or
bets (or one user, with --user). Read-only: it reports and never repairs.

  balance      the cached balance equals the sum of the user's entries
  chain        in id order the entries start at 0, each balance_before equals
               the previous balance_after, and balance_before + amount equals
               balance_after
  held         the held amount equals the stakes of the bets that hold one
               (pending not yet placed, unknown, pending in debit_on_loss)
  available    balance and balance - held are not negative
  bet_entries  each bet's entries fit its state: a completed bet has one result
               entry and, in debit_on_place, one bet_place; failed bets have
               none; a void bet at most its stake; no entry type twice
  open_bets    at most one open bet per user
  completed    completed bets have win_amount and completed_at

It cannot tell whether the ledger matches the provider: that is reconcile.
Exit status: 1 on any violation, 0 when clean, 2 on a usage error.
"""

    def create_parser(
        self, prog_name: str, subcommand: str, **kwargs: Any
    ) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", metavar="USERNAME", help="Only this user.")

    def handle(self, *args: Any, user: str | None = None, **options: Any) -> None:
        user_ids = None
        if user is not None:
            owner = User.objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}", returncode=2)
            user_ids = [owner.pk]
        violations = ledger_check(user_ids=user_ids, progress=self.stdout.write)
        for violation in violations:
            where = f" bet {violation.bet_id}" if violation.bet_id else ""
            self.stdout.write(
                self.style.ERROR(
                    f"VIOLATION user {violation.username} (id {violation.user_id})"
                    f"{where} [{violation.check}]: {violation.detail}"
                )
            )
        if violations:
            by_check = Counter(str(v.check) for v in violations)
            users = len({v.user_id for v in violations})
            counts = ", ".join(f"{check} {n}" for check, n in sorted(by_check.items()))
            raise CommandError(
                f"{len(violations)} violations for {users} users ({counts})",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("Ledger clean: no violations."))
