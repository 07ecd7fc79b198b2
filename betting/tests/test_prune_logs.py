from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts.models import RevokedSession
from accounts.tests.factories import UserFactory
from auditlog.models import ApiLog
from betting.management.commands.prune_logs import Command
from betting.models import IdempotencyKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    """Old and recent rows of every kind that prune_logs looks at."""
    user = UserFactory()
    now = timezone.now()
    for days in (45, 40, 35, 1):
        log = ApiLog.objects.create(
            direction="inbound", endpoint="/api/x", method="POST"
        )
        ApiLog.objects.filter(pk=log.pk).update(created_at=now - timedelta(days=days))
    for number, expires in enumerate(
        (now - timedelta(hours=1), now + timedelta(days=1))
    ):
        IdempotencyKey.objects.create(
            caller=f"user:{user.pk}",
            user=user,
            key=f"key-{number:08d}",
            endpoint="bets",
            request_hash="0" * 64,
            expires_at=expires,
        )
        RevokedSession.objects.create(
            sid=f"sid-{number}", user=user, expires_at=expires
        )
        token = OutstandingToken.objects.create(
            user=user, jti=f"jti-{number}", token="", expires_at=expires
        )
        BlacklistedToken.objects.create(token=token)
    return now


def run(*args: str) -> str:
    out = StringIO()
    call_command("prune_logs", *args, stdout=out)
    return out.getvalue()


def test_deletes_old_logs_and_expired_rows(rows):
    output = run("--older-than", "30d")
    assert ApiLog.objects.count() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [
        "key-00000001"
    ]
    assert list(RevokedSession.objects.values_list("sid", flat=True)) == ["sid-1"]
    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == ["jti-1"]
    assert BlacklistedToken.objects.count() == 1  # the expired one went with its token
    assert "Deleted 3 API log rows, 1 expired idempotency keys" in output
    assert "1 expired revoked sessions, 1 expired refresh tokens" in output


def test_older_than_decides_which_logs_go(rows):
    run("--older-than", "38d")
    assert ApiLog.objects.count() == 2


def test_dry_run_counts_and_deletes_nothing(rows):
    output = run("--older-than", "30d", "--dry-run")
    assert "Dry run: would delete 3 API log rows, 1 expired idempotency keys" in output
    assert ApiLog.objects.count() == 4
    assert IdempotencyKey.objects.count() == 2
    assert RevokedSession.objects.count() == 2
    assert OutstandingToken.objects.count() == 2


def test_long_runs_show_progress(rows):
    output = run("--older-than", "30d", "--batch-size", "1")
    assert "API log rows: 1 deleted so far" in output
    assert "API log rows: 3 deleted so far" in output


def test_defaults_to_thirty_days(rows):
    run()
    assert ApiLog.objects.count() == 1


@pytest.mark.parametrize("value", ["0d", "soon", "1.5h"])
def test_invalid_durations_are_refused(value):
    with pytest.raises(CommandError, match="invalid duration"):
        run("--older-than", value)


def test_help_describes_the_command():
    text = Command().create_parser("manage.py", "prune_logs").format_help()
    assert "--older-than" in text
    assert "--dry-run" in text
    assert "idempotency keys" in text
