"""A request's API log rows, written in one INSERT at its end (api_log_batch)."""

import logging
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import path
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from auditlog import services
from auditlog.middleware import InboundApiLogMiddleware
from auditlog.models import ApiLog
from auditlog.services import api_log_batch, api_log_record
from betting_site.redaction import REDACTED
from betting_site.urls import urlpatterns as project_patterns

SECRET = "provider-secret-0001"
INSERT = 'INSERT INTO "api_logs"'


def provider_call(endpoint: str = "/bet", **overrides) -> ApiLog | None:
    """What provider.client records for one attempt."""
    options = {
        "direction": ApiLog.Direction.OUTBOUND,
        "endpoint": endpoint,
        "method": "POST",
        "request_body": {"bet": 3},
        "response_body": {"bet_id": "1"},
        "status_code": 200,
        "outcome": "ok",
    }
    options.update(overrides)
    return api_log_record(**options)


class CallsApi(APIView):
    """Records ``?calls=N`` provider calls, then answers how many rows the
    database held meanwhile, with ``?status=`` or by raising (``?raise=1``)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _handle(self, request):
        for n in range(int(request.query_params.get("calls", 3))):
            provider_call(
                f"/call-{n}",
                request_body={"bet": 3, "password": "hunter22"},
                response_body=f"echo {SECRET}",
                secrets=(SECRET,),
            )
        if request.query_params.get("raise"):
            raise RuntimeError("the view broke")
        status = int(request.query_params.get("status", 200))
        return Response({"stored": ApiLog.objects.count()}, status=status)

    get = post = _handle


class OutsideView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        row = provider_call()
        return Response({"pk": row.pk, "stored": ApiLog.objects.count()})


urlpatterns = [
    path("api/_batch/calls", CallsApi.as_view()),
    path("outside/_batch/call", OutsideView.as_view()),
    *project_patterns,
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture(autouse=True)
def _middleware_installed():
    assert "auditlog.middleware.InboundApiLogMiddleware" in django_settings.MIDDLEWARE


def inserts(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if INSERT in q["sql"]]


def rows() -> list[ApiLog]:
    return list(ApiLog.objects.order_by("pk"))


class TestDuringARequest:
    def test_a_mutating_request_writes_all_its_rows_in_one_insert(self, api_client):
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post("/api/_batch/calls?calls=3", {}, format="json")
        assert response.status_code == 200
        assert response.json()["stored"] == 0  # nothing written while serving
        assert len(inserts(queries)) == 1
        assert [(row.direction, row.endpoint) for row in rows()] == [
            (ApiLog.Direction.OUTBOUND, "/call-0"),
            (ApiLog.Direction.OUTBOUND, "/call-1"),
            (ApiLog.Direction.OUTBOUND, "/call-2"),
            (ApiLog.Direction.INBOUND, "/api/_batch/calls"),
        ]

    def test_a_read_writes_its_provider_calls_in_one_insert_without_a_row_of_its_own(
        self, api_client
    ):
        with CaptureQueriesContext(connection) as queries:
            response = api_client.get("/api/_batch/calls?calls=2")
        assert response.json()["stored"] == 0
        assert len(inserts(queries)) == 1
        assert [row.direction for row in rows()] == [ApiLog.Direction.OUTBOUND] * 2

    def test_a_request_without_rows_writes_nothing(self, api_client):
        with CaptureQueriesContext(connection) as queries:
            api_client.get("/api/_batch/calls?calls=0")
        assert inserts(queries) == []

    def test_buffered_rows_are_redacted(self, api_client):
        api_client.post("/api/_batch/calls?calls=1", {}, format="json")
        outbound = rows()[0]
        assert outbound.request_body == {"bet": 3, "password": REDACTED}
        assert SECRET not in outbound.response_body
        assert REDACTED in outbound.response_body

    @pytest.mark.parametrize("status", [409, 503])
    def test_error_answers_are_flushed(self, api_client, status):
        response = api_client.post(
            f"/api/_batch/calls?calls=2&status={status}", {}, format="json"
        )
        assert response.status_code == status
        assert len(rows()) == 3
        assert rows()[-1].status_code == status

    def test_rows_are_flushed_when_the_view_raises(self, api_client):
        api_client.raise_request_exception = False
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post(
                "/api/_batch/calls?calls=2&raise=1", {}, format="json"
            )
        assert response.status_code == 500
        assert len(inserts(queries)) == 1
        assert [row.status_code for row in rows()] == [200, 200, 500]

    def test_rows_are_flushed_when_the_handler_itself_raises(self):
        def broken(request):
            provider_call()
            raise RuntimeError("nothing turned this into a response")

        request = RequestFactory().post("/api/x", data=b"{}", content_type="x/y")
        with pytest.raises(RuntimeError, match="nothing turned"):
            InboundApiLogMiddleware(broken)(request)
        assert [row.direction for row in rows()] == [ApiLog.Direction.OUTBOUND]

    def test_a_failing_flush_never_fails_the_response(
        self, api_client, monkeypatch, caplog
    ):
        def broken(*args, **kwargs):
            raise RuntimeError("database down")

        monkeypatch.setattr(services, "_insert", broken)
        with caplog.at_level(logging.WARNING, logger="auditlog.services"):
            response = api_client.post("/api/_batch/calls?calls=2", {}, format="json")
        assert response.status_code == 200
        assert "Could not write 3 API log row(s)" in caplog.text
        monkeypatch.undo()
        assert rows() == []

    def test_outside_the_api_rows_are_written_at_once(self, api_client):
        body = api_client.get("/outside/_batch/call").json()
        assert body["pk"] is not None
        assert body["stored"] == 1


class TestBatch:
    def test_outside_a_batch_each_row_is_written_at_once(self):
        with CaptureQueriesContext(connection) as queries:
            row = provider_call()
            assert len(inserts(queries)) == 1
        assert row.pk is not None
        assert ApiLog.objects.get().pk == row.pk

    def test_a_buffered_row_is_returned_unsaved_and_gets_its_pk_at_the_flush(self):
        with api_log_batch():
            row = provider_call()
            assert row is not None
            assert row.pk is None
            assert not ApiLog.objects.exists()
        assert row.pk == ApiLog.objects.get().pk

    def test_created_at_is_the_time_of_the_call_not_of_the_flush(self):
        with api_log_batch():
            row = provider_call()
            called_at = row.created_at
            time.sleep(0.01)
            flushed_after = timezone.now()
        assert ApiLog.objects.get().created_at == called_at < flushed_after

    def test_the_cap_writes_the_buffer_early(self, monkeypatch):
        monkeypatch.setattr(services, "MAX_BUFFERED_ROWS", 3)
        with CaptureQueriesContext(connection) as queries, api_log_batch():
            for n in range(7):
                provider_call(f"/call-{n}")
            assert len(inserts(queries)) == 2  # at 3 and at 6 rows
            assert ApiLog.objects.count() == 6
        assert len(inserts(queries)) == 3
        assert [row.endpoint for row in rows()] == [f"/call-{n}" for n in range(7)]

    def test_nested_batches_share_the_outer_buffer(self):
        with CaptureQueriesContext(connection) as queries, api_log_batch():
            provider_call("/a")
            with api_log_batch():
                provider_call("/b")
            assert not ApiLog.objects.exists()
        assert len(inserts(queries)) == 1
        assert [row.endpoint for row in rows()] == ["/a", "/b"]

    def test_a_refused_row_does_not_lose_the_others(self, caplog):
        with (
            caplog.at_level(logging.WARNING, logger="auditlog.services"),
            api_log_batch(),
        ):
            provider_call("/first")
            provider_call("/refused", status_code=-1)  # breaks a CHECK
            provider_call("/last")
        assert [row.endpoint for row in rows()] == ["/first", "/last"]
        assert "Could not write 1 API log row(s): POST /refused" in caplog.text

    def test_a_failed_flush_inside_a_transaction_does_not_poison_it(self, caplog):
        with (
            caplog.at_level(logging.WARNING, logger="auditlog.services"),
            transaction.atomic(),
        ):
            with api_log_batch():
                provider_call("/refused", status_code=-1)
            assert User.objects.count() == 0  # the transaction still works
            with api_log_batch():
                provider_call("/fine")
        assert [row.endpoint for row in rows()] == ["/fine"]
        assert "Could not write 1 API log row(s)" in caplog.text

    def test_the_buffer_is_closed_after_the_batch(self):
        with api_log_batch():
            provider_call("/inside")
        row = provider_call("/after")
        assert row.pk is not None

    def test_a_direct_response_still_flushes(self):
        request = RequestFactory().get("/api/x")

        def view(request):
            provider_call()
            return HttpResponse(status=204)

        assert InboundApiLogMiddleware(view)(request).status_code == 204
        assert len(rows()) == 1
