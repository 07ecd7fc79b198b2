import json

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from auditlog import middleware as middleware_module
from auditlog.models import ApiLog
from betting_site.api.client_ip import client_ip
from betting_site.redaction import REDACTED
from betting_site.urls import urlpatterns as project_patterns

MIDDLEWARE = "auditlog.middleware.InboundApiLogMiddleware"


class EchoApi(APIView):
    """Open to anyone; answers what it got, plus a token to redact."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _echo(self, request):
        return Response({"echo": request.data, "token": "issued-token-value"})

    post = put = patch = delete = get = _echo


class WhoAmIApi(APIView):
    def post(self, request):
        return Response({"user": request.user.username})


class StrictApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        amount = serializers.IntegerField()

    def post(self, request):
        self.InputSerializer(data=request.data).is_valid(raise_exception=True)
        return Response(status=204)


urlpatterns = [
    path("api/_log/echo", EchoApi.as_view()),
    path("api/_log/whoami", WhoAmIApi.as_view()),
    path("api/_log/strict", StrictApi.as_view()),
    path("outside/echo", EchoApi.as_view()),
    *project_patterns,
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture(autouse=True)
def with_middleware(settings):
    stack = list(settings.MIDDLEWARE)
    if MIDDLEWARE not in stack:
        # Just inside the request id, outside the error envelope (as in production).
        stack.insert(
            stack.index("betting_site.api.middleware.RequestIdMiddleware") + 1,
            MIDDLEWARE,
        )
    settings.MIDDLEWARE = stack
    settings.TRUST_PROXY_HEADERS = False
    return settings


def only_row() -> ApiLog:
    rows = list(ApiLog.objects.all())
    assert len(rows) == 1, rows
    return rows[0]


class TestRecording:
    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
    def test_mutating_requests_are_recorded(self, api_client, method):
        response = getattr(api_client, method)(
            "/api/_log/echo",
            {"amount": 3, "password": "hunter22"},
            format="json",
            REMOTE_ADDR="203.0.113.7",
            HTTP_X_REQUEST_ID="client-request-01",
        )
        assert response.status_code == 200
        row = only_row()
        assert row.direction == ApiLog.Direction.INBOUND
        assert (row.method, row.endpoint) == (method.upper(), "/api/_log/echo")
        assert row.request_body == {"amount": 3, "password": REDACTED}
        assert row.response_body == {
            "echo": {"amount": 3, "password": REDACTED},
            "token": REDACTED,
        }
        assert row.status_code == 200
        assert row.ip_address == "203.0.113.7"
        assert row.request_id == "client-request-01"
        assert row.user is None
        assert row.duration_ms >= 0

    def test_a_body_with_a_nul_character_is_recorded(self, api_client):
        # Found by make fuzz: PostgreSQL's jsonb refused "\u0000" and the row was
        # lost with a warning.
        response = api_client.post(
            "/api/_log/echo",
            data=b'{"user_id": "1001\\u0000", "\\u0000": 1}',
            content_type="application/json",
        )
        assert response.status_code == 200
        row = only_row()
        assert row.request_body == {"user_id": "1001\ufffd", "\ufffd": 1}
        assert row.response_body["echo"] == row.request_body

    def test_reads_and_paths_outside_the_api_are_not_recorded(self, api_client):
        api_client.get("/api/_log/echo")
        api_client.post("/outside/echo", {"a": 1}, format="json")
        assert ApiLog.objects.count() == 0

    def test_login_tokens_and_password_are_redacted(self, api_client, user, password):
        response = api_client.post(
            "/api/auth/login",
            {"username": user.username, "password": password},
            format="json",
        )
        assert response.status_code == 200
        body = response.json()
        row = only_row()
        assert row.request_body == {"username": user.username, "password": REDACTED}
        assert row.response_body["token"] == REDACTED
        assert row.response_body["refresh"] == REDACTED
        stored = json.dumps([row.request_body, row.response_body])
        for secret in (body["token"], body["refresh"], password):
            assert secret not in stored

    def test_the_authenticated_user_is_recorded(self, auth_client, user):
        ApiLog.objects.all().delete()  # the login of the fixture
        response = auth_client.post("/api/_log/whoami", {}, format="json")
        assert response.status_code == 200
        assert only_row().user == user

    def test_error_responses_are_recorded_as_sent(self, api_client):
        response = api_client.post("/api/_log/strict", {"amount": "x"}, format="json")
        assert response.status_code == 400
        row = only_row()
        assert row.status_code == 400
        assert row.response_body["error"]["code"] == "VALIDATION_ERROR"

    def test_unknown_api_urls_are_recorded_with_the_envelope(self, api_client):
        response = api_client.post("/api/_log/missing", {}, format="json")
        assert response.status_code == 404
        assert only_row().response_body["error"]["code"] == "NOT_FOUND"

    def test_oversized_bodies_are_not_read(self, api_client, settings):
        settings.API_MAX_BODY_BYTES = 10
        response = api_client.post(
            "/api/_log/echo", {"padding": "x" * 100}, format="json"
        )
        assert response.status_code == 413
        row = only_row()
        assert "not recorded" in row.request_body
        assert row.status_code == 413

    def test_non_json_bodies_are_summarised(self, api_client):
        api_client.post(
            "/api/_log/echo",
            data="a=1",
            content_type="application/x-www-form-urlencoded",
        )
        assert only_row().request_body.startswith("<3 bytes of application/x-www")

    def test_a_log_failure_never_fails_the_request(self, api_client, monkeypatch):
        def broken(**kwargs):
            raise RuntimeError("log store down")

        monkeypatch.setattr(middleware_module, "api_log_record", broken)
        response = api_client.post("/api/_log/echo", {"a": 1}, format="json")
        assert response.status_code == 200

    def test_a_database_failure_never_fails_the_request(self, api_client, monkeypatch):
        def broken(*args, **kwargs):
            raise RuntimeError("database down")

        # The request's rows are written together at its end (api_log_batch).
        monkeypatch.setattr(ApiLog.objects, "bulk_create", broken)
        response = api_client.post("/api/_log/echo", {"a": 1}, format="json")
        assert response.status_code == 200


class TestClientIp:
    factory = RequestFactory()

    def test_remote_addr_without_trusted_proxies(self, settings):
        request = self.factory.get(
            "/", REMOTE_ADDR="198.51.100.2", HTTP_X_FORWARDED_FOR="1.2.3.4"
        )
        assert client_ip(request) == "198.51.100.2"

    def test_the_address_our_proxy_appended_wins_over_forged_ones(self, settings):
        settings.TRUST_PROXY_HEADERS = True
        request = self.factory.get(
            "/",
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR="1.1.1.1, unknown, 203.0.113.9",
        )
        assert client_ip(request) == "203.0.113.9"

    @pytest.mark.parametrize(
        ("forwarded", "expected"),
        [
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("2001:DB8::2", "2001:db8::2"),
            ("203.0.113.9:5555", "203.0.113.9"),
            ("garbage, also-garbage", "10.0.0.5"),
            ("203.0.113.9, garbage", "10.0.0.5"),
            ("", "10.0.0.5"),
        ],
    )
    def test_forwarded_forms(self, settings, forwarded, expected):
        settings.TRUST_PROXY_HEADERS = True
        request = self.factory.get(
            "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded
        )
        assert client_ip(request) == expected

    def test_invalid_remote_addr_is_none(self):
        assert client_ip(self.factory.get("/", REMOTE_ADDR="nonsense")) is None

    def test_forwarded_address_is_recorded_behind_a_trusted_proxy(
        self, api_client, settings
    ):
        settings.TRUST_PROXY_HEADERS = True
        api_client.post(
            "/api/_log/echo",
            {},
            format="json",
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR="203.0.113.50",
        )
        assert only_row().ip_address == "203.0.113.50"


class TestEdges:
    """The middleware called directly, for what a test client cannot send."""

    factory = RequestFactory()

    def call(self, request, response):
        request.request_id = "edge-request-1"
        middleware = middleware_module.InboundApiLogMiddleware(lambda _: response)
        return middleware(request)

    def test_an_invalid_content_length_is_not_read(self):
        request = self.factory.post(
            "/api/x", data=b"{}", content_type="application/json"
        )
        request.META["CONTENT_LENGTH"] = "many"
        self.call(request, HttpResponse(status=400))
        assert only_row().request_body is None

    def test_an_unreadable_body_is_not_recorded(self, monkeypatch):
        request = self.factory.post(
            "/api/x", data=b"{}", content_type="application/json"
        )

        def broken(self):
            raise OSError("client went away")

        monkeypatch.setattr(type(request), "body", property(broken))
        self.call(request, HttpResponse(status=400))
        assert only_row().request_body is None

    def test_streaming_and_empty_responses(self):
        request = self.factory.delete("/api/x")
        self.call(request, StreamingHttpResponse(iter([b"a"])))
        self.call(request, HttpResponse(status=204))
        assert list(ApiLog.objects.values_list("response_body", flat=True)) == [
            None,
            None,
        ]

    def test_broken_json_is_summarised(self):
        request = self.factory.post(
            "/api/x", data=b"{not json", content_type="application/json"
        )
        self.call(request, HttpResponse(b"[1,", content_type="application/json"))
        row = only_row()
        assert row.request_body == "<9 bytes of application/json>"
        assert row.response_body == "<3 bytes of application/json>"
        assert row.request_id == "edge-request-1"
