"""Every error under /api/ answers the envelope, from every layer, DEBUG on or off."""

import re

import pytest
from django.conf import settings as django_settings
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("betting_site.tests.urls")]

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def client():
    # Answer like a server would, instead of re-raising the view's exception.
    return Client(raise_request_exception=False)


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "error"}
    assert body["success"] is False
    error = body["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "requestId"}
    assert error["code"] == code
    assert error["message"]
    assert ISO_UTC.match(error["timestamp"])
    assert error["requestId"] == response["X-Request-ID"]
    assert "Traceback" not in response.content.decode()
    return error


def test_unknown_url_is_404_envelope(client, debug):
    assert_envelope(client.get("/api/no/such/thing"), 404, "NOT_FOUND")
    assert_envelope(client.post("/api/no/such/thing", {}), 404, "NOT_FOUND")
    assert_envelope(client.get("/api"), 404, "NOT_FOUND")


def test_unknown_url_is_never_redirected(client, debug):
    response = client.get("/api/auth/me/extra")
    assert response.status_code == 404


def test_django_http404_in_a_view(client, debug):
    assert_envelope(client.get("/api/_test/django-404"), 404, "NOT_FOUND")


def test_unhandled_exception_in_a_drf_view_is_500_without_detail(client, debug, caplog):
    error = assert_envelope(client.get("/api/_test/boom"), 500, "INTERNAL_ERROR")
    assert "secret detail" not in error["message"]
    assert error["details"] is None
    assert any("Unhandled error" in r.getMessage() for r in caplog.records)


def test_exception_in_a_plain_django_view(client, debug):
    assert_envelope(client.get("/api/_test/plain-boom"), 500, "INTERNAL_ERROR")


def test_plain_django_500_response_is_replaced(client, debug):
    assert_envelope(client.get("/api/_test/plain-500"), 500, "INTERNAL_ERROR")


def test_error_raised_in_middleware(client, settings, debug):
    settings.MIDDLEWARE = [
        *django_settings.MIDDLEWARE,
        "betting_site.tests.urls.FailingMiddleware",
    ]
    response = client.get("/api/health/live", headers={"X-Fail-In-Middleware": "1"})
    assert_envelope(response, 500, "INTERNAL_ERROR")


def test_method_not_allowed(client, debug):
    response = client.delete("/api/auth/login")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response["Allow"]


def test_malformed_json(client, debug):
    response = client.post(
        "/api/auth/login", data='{"username": "a",', content_type="application/json"
    )
    error = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "Malformed JSON" in error["message"]


@pytest.mark.parametrize("body", ["NaN", '{"username": Infinity}', "[1, 2"])
def test_non_standard_json_is_refused(client, body):
    response = client.post(
        "/api/auth/login", data=body, content_type="application/json"
    )
    assert_envelope(response, 400, "VALIDATION_ERROR")


def test_wrong_content_type(client, debug):
    response = client.post("/api/auth/login", {"username": "a", "password": "b"})
    assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_not_acceptable(client, debug):
    response = client.get("/api/health/live", headers={"Accept": "text/html"})
    assert_envelope(response, 406, "NOT_ACCEPTABLE")


def test_oversized_body(client, settings, debug):
    body = '{"username": "' + "a" * (settings.API_MAX_BODY_BYTES + 1) + '"}'
    response = client.post(
        "/api/auth/login", data=body, content_type="application/json"
    )
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


def test_non_numeric_content_length(client):
    response = client.post(
        "/api/auth/login",
        data="{}",
        content_type="application/json",
        CONTENT_LENGTH="abc",
    )
    assert_envelope(response, 400, "VALIDATION_ERROR")


def test_validation_errors_list_messages_per_field(client):
    response = client.post(
        "/api/_test/money", data={"amount": "x"}, content_type="application/json"
    )
    error = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert isinstance(error["details"]["amount"], list)


def test_non_api_paths_keep_django_pages(client):
    response = client.get("/not-api/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


class TestRequestId:
    def test_a_sane_incoming_id_is_kept(self, client):
        response = client.get(
            "/api/health/live", headers={"X-Request-ID": "abc-123_x.y"}
        )
        assert response["X-Request-ID"] == "abc-123_x.y"

    @pytest.mark.parametrize("bad", ["short", "has space here", "x" * 129, "<script>"])
    def test_an_insane_incoming_id_is_replaced(self, client, bad):
        response = client.get("/api/no-such", headers={"X-Request-ID": bad})
        assert response["X-Request-ID"] != bad
        assert re.match(r"^[0-9a-f]{32}$", response["X-Request-ID"])
        assert response.json()["error"]["requestId"] == response["X-Request-ID"]

    def test_every_response_has_one(self, client):
        assert client.get("/api/health/live")["X-Request-ID"]
        assert client.get("/api/_test/plain-ok")["X-Request-ID"]


class TestMoneyOnTheWire:
    def test_decimals_are_exact_json_numbers(self, client):
        response = client.get("/api/_test/money")
        raw = response.content.decode()
        assert '"amount":1006.10' in raw
        assert '"tiny":0.01' in raw
        assert '"big":123456789012.34' in raw
        assert '"serialized":{"amount":0.30}' in raw

    def test_decimals_come_in_exactly(self, client):
        response = client.post(
            "/api/_test/money",
            data='{"amount": 0.1}',
            content_type="application/json",
        )
        assert response.content.decode() == '{"echo":0.10}'


class TestRequestLog:
    def test_every_request_is_logged_with_status_duration_and_user(
        self, auth_client, user, caplog
    ):
        import logging

        caplog.set_level(logging.INFO, logger="betting_site.requests")
        auth_client.get("/api/auth/me")
        record = next(r for r in caplog.records if r.name == "betting_site.requests")
        assert record.status == 200
        assert record.user_id == user.pk
        assert record.duration_ms >= 0
        assert record.levelno == logging.INFO

    def test_slow_requests_are_warnings(self, client, settings, caplog):
        import logging

        settings.SLOW_REQUEST_SECONDS = 0
        caplog.set_level(logging.INFO, logger="betting_site.requests")
        client.get("/api/health/live")
        record = next(r for r in caplog.records if r.name == "betting_site.requests")
        assert record.levelno == logging.WARNING
        assert "(slow)" in record.getMessage()
