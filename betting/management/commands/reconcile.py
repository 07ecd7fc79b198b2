import argparse
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.db.models import QuerySet

from accounts.models import ExternalApiAccount, User
from betting.reconciliation import (
    CHECKED_STATUSES,
    ReconcileResult,
    ReconcileStatus,
    balance_reconcile,
)
from wallet.models import Transaction

PROGRESS_EVERY = 50
PAGE_SIZE = 200


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description's line breaks kept."""


class Command(BaseCommand):
    help = """\
Compare each active provider account's ledger balance with the provider's balance
(or one user's, with --user), and record the provider's figure.

  An account whose user has open bets (pending or unknown) is reported and
  skipped: its balance is in motion; run settle_pending first.
  Otherwise the balance is read under the user's provider lease (a busy lease is
  reported and skipped). A difference is drift: reported with the user, ledger,
  provider and difference, or with --fix booked as one 'adjustment' entry whose
  evidence holds both figures.

It cannot know why the balances differ, only that they do. Exit status: 1 when
drift was found and not fixed, or an account could not be checked (busy, provider
error); 0 otherwise; 2 on a usage error.
"""

    def create_parser(
        self, prog_name: str, subcommand: str, **kwargs: Any
    ) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", metavar="USERNAME", help="Only this user's active account."
        )
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Post an adjustment of the difference for each drifted account.",
        )

    def handle(
        self,
        *args: Any,
        user: str | None = None,
        fix: bool = False,
        **options: Any,
    ) -> None:
        accounts = ExternalApiAccount.objects.filter(is_active=True)
        if user is not None:
            owner = User.objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}", returncode=2)
            accounts = accounts.filter(user=owner)
            if not accounts.exists():
                raise CommandError(
                    f"{user} has no active provider account", returncode=2
                )
        total = accounts.count()
        self.stdout.write(
            f"Reconciling {total} active provider accounts"
            f"{' and fixing drift' if fix else ''}."
        )
        tally: Counter[ReconcileStatus] = Counter()
        for done, account in enumerate(_paged(accounts), start=1):
            result = balance_reconcile(account=account, fix=fix)
            tally[result.status] += 1
            self._report(result)
            if done % PROGRESS_EVERY == 0 and done < total:
                self.stdout.write(f"... {done}/{total} accounts")

        checked = sum(tally[status] for status in CHECKED_STATUSES)
        drift = tally[ReconcileStatus.DRIFT] + tally[ReconcileStatus.FIXED]
        not_checked = tally[ReconcileStatus.BUSY] + tally[ReconcileStatus.ERROR]
        self.stdout.write(
            f"Checked {checked} of {total} accounts: "
            f"{tally[ReconcileStatus.IN_SYNC]} in sync, {drift} drift found, "
            f"{tally[ReconcileStatus.FIXED]} fixed, "
            f"{tally[ReconcileStatus.OPEN_BETS]} skipped with open bets, "
            f"{not_checked} errors ({tally[ReconcileStatus.BUSY]} busy, "
            f"{tally[ReconcileStatus.ERROR]} provider or other errors)."
        )
        problems = []
        if tally[ReconcileStatus.DRIFT]:
            problems.append(
                f"{tally[ReconcileStatus.DRIFT]} accounts drifted and were not fixed"
                f"{'' if fix else ' (run with --fix to book the differences)'}"
            )
        if not_checked:
            problems.append(f"{not_checked} accounts could not be checked")
        if problems:
            raise CommandError("; ".join(problems), returncode=1)
        self.stdout.write(self.style.SUCCESS("Ledger and provider agree."))

    def _report(self, result: ReconcileResult) -> None:
        account = result.account
        who = f"{account.user.username} (provider user {account.external_user_id})"
        figures = (
            f"ledger {result.ledger_balance}, provider {result.provider_balance}, "
            f"difference {result.difference:+}"
            if result.difference is not None
            else ""
        )
        status = result.status
        if status == ReconcileStatus.DRIFT:
            self.stdout.write(self.style.WARNING(f"DRIFT {who}: {figures}"))
        elif status == ReconcileStatus.FIXED:
            self.stdout.write(
                self.style.WARNING(
                    f"FIXED {who}: {figures}; adjustment "
                    f"{cast(Transaction, result.adjustment).pk} posted"  # FIXED has one
                )
            )
        elif status == ReconcileStatus.OPEN_BETS:
            bets = ", ".join(map(str, result.open_bet_ids))
            self.stdout.write(
                f"SKIPPED {who}: open bets {bets}; run settle_pending first"
            )
        elif status == ReconcileStatus.BUSY:
            self.stdout.write(self.style.WARNING(f"BUSY {who}: {result.detail}"))
        elif status == ReconcileStatus.ERROR:
            detail = f"{result.detail}; {figures}" if figures else result.detail
            self.stdout.write(self.style.ERROR(f"ERROR {who}: {detail}"))


def _paged(accounts: QuerySet[ExternalApiAccount]) -> Iterator[ExternalApiAccount]:
    """The accounts in id order, a page at a time (no cursor stays open while the
    provider is called)."""
    last = 0
    while True:
        page = list(
            accounts.filter(pk__gt=last)
            .select_related("user")
            .order_by("pk")[:PAGE_SIZE]
        )
        if not page:
            return
        yield from page
        last = page[-1].pk
