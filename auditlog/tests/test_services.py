import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
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
        for hours in range(12):
            aged(40 - hours / 24, count=2)
        recent = aged(29.9) + aged(2)
        batches = []
        deleted = api_log_prune(
            older_than=timedelta(days=30), batch_size=4, progress=batches.append
        )
        assert deleted == 24
        assert len(batches) >= 3  # windows of a few rows, not one statement
        assert batches == sorted(batches)
        assert batches[-1] == 24
        assert sorted(ApiLog.objects.values_list("pk", flat=True)) == sorted(
            row.pk for row in recent
        )

    def test_rows_out_of_id_order_go_by_their_time(self):
        """The walk follows created_at, not the primary key: an old row written
        after newer ones (a slow request's) goes too, and a row one second short
        of the age stays."""
        newer = aged(31)
        older = aged(45)
        kept = aged(30 - 1 / 86400)
        assert api_log_prune(older_than=timedelta(days=30), batch_size=1) == 2
        assert not ApiLog.objects.filter(pk__in=[newer[0].pk, older[0].pk]).exists()
        assert ApiLog.objects.filter(pk=kept[0].pk).exists()

    def test_a_long_quiet_gap_takes_few_batches(self, django_assert_max_num_queries):
        """An empty window quadruples the next: a year without rows is crossed
        in a few dozen statements, not one per second."""
        aged(400)
        aged(40)
        with django_assert_max_num_queries(60):
            assert api_log_prune(older_than=timedelta(days=30)) == 2

    def test_pause_waits_between_batches_only(self, monkeypatch):
        naps = []
        monkeypatch.setattr("auditlog.services.time.sleep", naps.append)
        for day in (50, 45, 40):
            aged(day)
        api_log_prune(older_than=timedelta(days=30), batch_size=1, pause=0.25)
        assert naps
        assert set(naps) == {0.25}
        assert len(naps) <= 3

    def test_nothing_old_is_nothing_deleted(self):
        aged(2)
        assert api_log_prune(older_than=timedelta(days=30)) == 0
        assert ApiLog.objects.count() == 1

    def test_dry_run_only_counts(self):
        aged(40, count=3)
        assert api_log_prune(older_than=timedelta(days=30), dry_run=True) == 3
        assert ApiLog.objects.count() == 3

    def test_delete_in_batches_of_an_empty_queryset(self):
        assert delete_in_batches(ApiLog.objects.none()) == 0


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN")
def test_each_prune_batch_reads_its_window_through_the_created_at_index():
    """What keeps the last batch as cheap as the first on a large log: a window's
    DELETE is a range scan of api_logs_created_at_idx, never a walk of the primary
    key or of the whole table."""
    aged(40, count=3)
    start = timezone.now() - timedelta(days=41)
    window = ApiLog.objects.filter(
        created_at__gte=start, created_at__lt=start + timedelta(days=2)
    )
    sql, params = window.query.sql_with_params()
    where = sql.split(" WHERE ", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        explain = f"EXPLAIN DELETE FROM api_logs WHERE {where}"  # noqa: S608 - the ORM's
        cursor.execute(explain, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "api_logs_created_at_idx" in plan
    assert "Seq Scan" not in plan
