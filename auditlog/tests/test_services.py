import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory
from auditlog.models import ApiLog
from auditlog.services import (
    MAX_TEXT_BODY,
    api_log_prune,
    api_log_record,
    delete_in_batches,
)
from betting_site.logging import request_id_var
from betting_site.redaction import REDACTED

SECRET = "provider-secret-0001"
SIGNATURE = "ab" * 64


def record(**overrides) -> ApiLog | None:
    options = {
        "direction": ApiLog.Direction.OUTBOUND,
        "endpoint": "/bet",
        "method": "post",
    }
    options.update(overrides)
    return api_log_record(**options)


@pytest.mark.django_db
class TestApiLogRecord:
    def test_writes_one_row_with_every_field(self):
        user = UserFactory()
        row = record(
            request_body={"bet": 3},
            response_body={"bet_id": "1", "balance": Decimal("1006.10")},
            status_code=200,
            duration_ms=12.6,
            attempt=2,
            outcome="ok",
            user=user,
            ip_address="10.0.0.1",
            request_id="req-abcdefgh",
        )
        row.refresh_from_db()
        assert row.method == "POST"
        assert row.request_body == {"bet": 3}
        assert row.response_body == {"bet_id": "1", "balance": 1006.1}
        assert (row.status_code, row.duration_ms, row.attempt) == (200, 13, 2)
        assert (row.outcome, row.user, row.ip_address) == ("ok", user, "10.0.0.1")
        assert row.request_id == "req-abcdefgh"

    def test_bodies_and_error_are_redacted(self):
        row = record(
            request_body={"password": "hunter22", "nested": [{"token": "abc"}]},
            response_body={"echo": f"the key is {SECRET}", "sig": SIGNATURE},
            error=f"failed with {SECRET}",
            secrets=(SECRET, SIGNATURE),
        )
        row.refresh_from_db()
        assert row.request_body == {
            "password": REDACTED,
            "nested": [{"token": REDACTED}],
        }
        assert row.response_body == {"echo": f"the key is {REDACTED}", "sig": REDACTED}
        assert SECRET not in row.error

    def test_text_bodies_are_redacted_and_bounded(self):
        row = record(
            response_body=(f"{SECRET} " + "x" * 5000).encode(), secrets=(SECRET,)
        )
        row.refresh_from_db()
        assert row.response_body.startswith(REDACTED)
        assert len(row.response_body) == MAX_TEXT_BODY

    def test_user_may_be_an_id_or_anonymous(self):
        user = UserFactory()
        assert record(user=user.pk).user_id == user.pk
        assert record(user=AnonymousUser()).user_id is None
        assert record(user=None).user_id is None

    def test_request_id_comes_from_the_request_context(self):
        token = request_id_var.set("ctx-request-1")
        try:
            assert record().request_id == "ctx-request-1"
        finally:
            request_id_var.reset(token)
        assert record().request_id == ""  # "-" outside a request

    def test_a_failed_write_returns_none_and_does_not_poison_the_transaction(
        self, caplog
    ):
        with (
            caplog.at_level(logging.WARNING, logger="auditlog.services"),
            transaction.atomic(),
        ):
            # A negative status breaks the positive-integer constraint.
            assert record(status_code=-1) is None
            assert User.objects.count() == 0
            assert record(status_code=200) is not None
        assert ApiLog.objects.count() == 1
        assert "Could not write the API log row of post /bet" in caplog.text

    def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(self):
        # PostgreSQL refuses both in jsonb and text: the row was lost (found by
        # make fuzz). Now it is written, with U+FFFD in their place.
        row = record(
            endpoint="/bet\x00",
            request_body={"user_id\x00": ["a\x00b", "\ud800"], "n": 1},
            response_body="text \x00 body",
            error="failed \udfff",
        )
        assert row is not None
        row.refresh_from_db()
        assert row.endpoint == "/bet\ufffd"
        assert row.request_body == {"user_id\ufffd": ["a\ufffdb", "\ufffd"], "n": 1}
        assert row.response_body == "text \ufffd body"
        assert row.error == "failed \ufffd"

    def test_any_exception_is_swallowed(self, monkeypatch):
        def broken(**kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(ApiLog.objects, "create", broken)
        assert record() is None


def aged(days: float, count: int = 1) -> list[ApiLog]:
    rows = [record() for _ in range(count)]
    ApiLog.objects.filter(pk__in=[row.pk for row in rows]).update(
        created_at=timezone.now() - timedelta(days=days)
    )
    return rows


@pytest.mark.django_db
class TestApiLogPrune:
    def test_deletes_only_older_rows_in_batches(self):
        aged(40, count=5)
        recent = aged(2)
        batches = []
        deleted = api_log_prune(
            older_than=timedelta(days=30), batch_size=2, progress=batches.append
        )
        assert deleted == 5
        assert batches == [2, 4, 5]
        assert list(ApiLog.objects.values_list("pk", flat=True)) == [recent[0].pk]

    def test_dry_run_only_counts(self):
        aged(40, count=3)
        assert api_log_prune(older_than=timedelta(days=30), dry_run=True) == 3
        assert ApiLog.objects.count() == 3

    def test_delete_in_batches_of_an_empty_queryset(self):
        assert delete_in_batches(ApiLog.objects.none()) == 0
