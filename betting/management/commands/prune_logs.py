import argparse
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import RevokedSession
from accounts.services import revoked_sessions_prune
from auditlog.services import api_log_prune, delete_in_batches
from betting.models import IdempotencyKey
from betting_site.durations import parse_duration


def _duration(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Delete API log rows older than --older-than (default 30d), and expired "
        "rows that are no longer needed: idempotency keys, revoked login sessions "
        "and simplejwt's outstanding refresh tokens (with their blacklist rows). "
        "Deletes in batches, each its own short transaction (the API log in "
        "windows of its indexed created_at); --dry-run only counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=_duration,
            default=timedelta(days=30),
            help="Age of the API log rows to delete: 90s, 15m, 12h, 30d or 2w "
            "(default 30d).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Rows deleted per transaction (default 5000).",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="Seconds to wait between two batches of API log rows, to leave "
            "the disk to live traffic on a busy server (default 0).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing.",
        )

    def handle(
        self,
        *args: Any,
        older_than: timedelta,
        batch_size: int,
        dry_run: bool,
        pause: float,
        **options: Any,
    ) -> None:
        batch_size = max(1, batch_size)
        now = timezone.now()
        keys = IdempotencyKey.objects.filter(expires_at__lt=now)
        tokens = OutstandingToken.objects.filter(expires_at__lt=now)
        if dry_run:
            counts = {
                "API log rows": api_log_prune(older_than=older_than, dry_run=True),
                "expired idempotency keys": keys.count(),
                "expired revoked sessions": RevokedSession.objects.filter(
                    expires_at__lt=now
                ).count(),
                "expired refresh tokens": tokens.count(),
            }
            self.stdout.write(f"Dry run: would delete {self._summary(counts)}.")
            return
        counts = {
            "API log rows": api_log_prune(
                older_than=older_than,
                batch_size=batch_size,
                progress=self._progress("API log rows", batch_size),
                pause=max(0.0, pause),
            ),
            "expired idempotency keys": self._delete(
                keys, "idempotency keys", batch_size
            ),
            "expired revoked sessions": revoked_sessions_prune(),
            "expired refresh tokens": self._delete(
                tokens, "refresh tokens", batch_size
            ),
        }
        self.stdout.write(self.style.SUCCESS(f"Deleted {self._summary(counts)}."))

    def _delete(self, queryset: QuerySet[Any], label: str, batch_size: int) -> int:
        return delete_in_batches(
            queryset,
            batch_size=batch_size,
            progress=self._progress(label, batch_size),
        )

    def _progress(self, label: str, batch_size: int) -> Callable[[int], None]:
        """A progress line per full batch: silent on short runs."""

        def report(done: int) -> None:
            if done >= batch_size:
                self.stdout.write(f"  {label}: {done} deleted so far")

        return report

    @staticmethod
    def _summary(counts: dict[str, int]) -> str:
        return ", ".join(f"{count} {label}" for label, count in counts.items())
