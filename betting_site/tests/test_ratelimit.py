"""The contract's rate limits: 429 ``RATE_LIMITED`` in the envelope with Retry-After."""

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory
from django_ratelimit.exceptions import Ratelimited
from rest_framework.test import APIClient

from betting_site.api import ratelimit
from betting_site.api.ratelimit import RateLimitMiddleware, rate_limit

pytestmark = pytest.mark.django_db


def assert_rate_limited(response, window: int) -> None:
    assert response.status_code == 429, response.content
    assert response.status_code != 403
    body = response.json()
    assert body["success"] is False
    error = body["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "requestId"}
    assert error["code"] == "RATE_LIMITED"
    assert error["requestId"] == response["X-Request-ID"]
    retry_after = response["Retry-After"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= window


WRONG_PASSWORD = "not-the-password"


def login(client: APIClient, username: str, password: str = WRONG_PASSWORD, **extra):
    return client.post(
        "/api/auth/login",
        {"username": username, "password": password},
        format="json",
        **extra,
    )


# --- settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100/15m", (100, 900)),
        ("20/1m", (20, 60)),
        ("5/1h", (5, 3600)),
        ("3/90", (3, 90)),
        (" 7 / 30s ", (7, 30)),
        ("0", None),
        (0, None),
    ],
)
def test_rate_values_are_parsed(settings, value, expected):
    settings.RATE_LIMIT_GLOBAL = value
    assert rate_limit("RATE_LIMIT_GLOBAL") == expected


@pytest.mark.parametrize(
    "value", ["", "abc", "10", "10/", "/1m", "0/1m", "-1/1m", "10/xyz", "10/0m", "x/1m"]
)
def test_a_bad_rate_value_is_improperly_configured(settings, value):
    settings.RATE_LIMIT_BETS = value
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_BETS"):
        rate_limit("RATE_LIMIT_BETS")


def test_a_bad_rate_value_is_refused_when_the_middleware_loads(settings):
    settings.RATE_LIMIT_AUTH = "ten per minute"
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_AUTH"):
        RateLimitMiddleware(lambda request: HttpResponse())


def test_a_bad_rate_value_is_read_at_request_time(settings, api_client):
    settings.RATE_LIMIT_GLOBAL = "2/1m"
    api_client.get("/api/auth/validate")
    settings.RATE_LIMIT_GLOBAL = "lots"
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_GLOBAL"):
        api_client.get("/api/auth/validate")


def test_the_middleware_sits_right_inside_the_envelope_middleware(settings):
    position = settings.MIDDLEWARE.index(
        "betting_site.api.middleware.ApiErrorEnvelopeMiddleware"
    )
    assert (
        settings.MIDDLEWARE[position + 1]
        == "betting_site.api.ratelimit.RateLimitMiddleware"
    )


# --- global -------------------------------------------------------------------------


def test_the_global_limit_triggers_at_n_plus_one(settings, api_client):
    settings.RATE_LIMIT_GLOBAL = "2/1m"
    assert api_client.get("/api/auth/validate").status_code == 401
    assert api_client.get("/api/no-such-thing").status_code == 404
    assert_rate_limited(api_client.get("/api/auth/validate"), 60)
    assert_rate_limited(api_client.post("/api/bets", {}, format="json"), 60)


def test_the_global_limit_is_per_client_ip(settings, api_client):
    settings.RATE_LIMIT_GLOBAL = "1/15m"
    assert api_client.get("/api/auth/validate").status_code == 401
    assert_rate_limited(api_client.get("/api/auth/validate"), 900)
    other = api_client.get("/api/auth/validate", REMOTE_ADDR="10.1.2.3")
    assert other.status_code == 401


def test_zero_disables_the_global_limit(settings, api_client):
    settings.RATE_LIMIT_GLOBAL = "0"
    for _ in range(5):
        assert api_client.get("/api/auth/validate").status_code == 401


def test_paths_outside_the_api_are_not_limited(settings, client):
    settings.RATE_LIMIT_GLOBAL = "1/1m"
    for _ in range(3):
        assert client.get("/no-such-page").status_code == 404


def test_health_endpoints_are_exempt(settings, client):
    settings.RATE_LIMIT_GLOBAL = "1/1m"
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
    for path in ("/api/health/live", "/api/health/live/") * 3:
        assert client.get(path).status_code == 200
    for path in ("/api/health", "/api/health/"):
        assert client.get(path).status_code == 200
    # ...and they did not use up the budget of the client either.
    assert client.get("/api/auth/validate").status_code == 401
    assert_rate_limited(client.get("/api/auth/validate"), 60)


def test_forwarded_for_is_ignored_without_trusted_proxy_headers(settings, api_client):
    settings.RATE_LIMIT_GLOBAL = "1/1m"
    settings.TRUST_PROXY_HEADERS = False
    first = api_client.get("/api/auth/validate", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert first.status_code == 401
    second = api_client.get("/api/auth/validate", HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert_rate_limited(second, 60)


def test_forwarded_for_is_honoured_with_trusted_proxy_headers(settings, api_client):
    settings.RATE_LIMIT_GLOBAL = "1/1m"
    settings.TRUST_PROXY_HEADERS = True
    for address in ("203.0.113.1", "203.0.113.2"):
        response = api_client.get(
            "/api/auth/validate", HTTP_X_FORWARDED_FOR=f"198.51.100.9, {address}"
        )
        assert response.status_code == 401
    again = api_client.get(
        "/api/auth/validate", HTTP_X_FORWARDED_FOR="192.0.2.77, 203.0.113.1"
    )
    assert_rate_limited(again, 60)


# --- login --------------------------------------------------------------------------


def test_the_login_limit_counts_per_username_across_ips(settings, api_client, user):
    settings.RATE_LIMIT_AUTH = "2/15m"
    assert login(api_client, user.username, REMOTE_ADDR="10.0.0.1").status_code == 401
    response = login(api_client, f"  {user.username.upper()} ", REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 401
    assert_rate_limited(login(api_client, user.username, REMOTE_ADDR="10.0.0.3"), 900)
    # Even the right password waits for the window.
    right = login(
        api_client, user.username, password="irrelevant", REMOTE_ADDR="10.0.0.4"
    )
    assert_rate_limited(right, 900)
    # Another username from a fresh IP is not affected.
    assert login(api_client, "someone-else", REMOTE_ADDR="10.0.0.5").status_code == 401


def test_the_login_limit_counts_per_ip_across_usernames(settings, api_client):
    settings.RATE_LIMIT_AUTH = "2/15m"
    assert login(api_client, "alice").status_code == 401
    assert login(api_client, "bob").status_code == 401
    assert_rate_limited(login(api_client, "carol"), 900)
    assert login(api_client, "dave", REMOTE_ADDR="10.9.9.9").status_code == 401


def test_malformed_login_bodies_still_count_per_ip(settings, api_client):
    settings.RATE_LIMIT_AUTH = "2/1m"
    for body in ("{not json", '["a list"]'):
        response = api_client.post(
            "/api/auth/login", body, content_type="application/json"
        )
        assert response.status_code == 400
    response = api_client.post(
        "/api/auth/login", {"username": 5}, content_type="application/json"
    )
    assert_rate_limited(response, 60)


def test_a_login_under_the_limit_still_works(settings, api_client, user, password):
    settings.RATE_LIMIT_AUTH = "2/1m"
    response = login(api_client, user.username, password=password)
    assert response.status_code == 200, response.content
    assert response.json()["token"]


def test_the_login_limit_applies_only_to_login(settings, api_client):
    settings.RATE_LIMIT_AUTH = "1/1m"
    for _ in range(3):
        assert api_client.get("/api/auth/validate").status_code == 401
    assert login(api_client, "alice").status_code == 401
    assert_rate_limited(login(api_client, "alice"), 60)


def test_zero_disables_the_login_limit(settings, api_client):
    settings.RATE_LIMIT_AUTH = "0"
    for _ in range(5):
        assert login(api_client, "alice").status_code == 401


def test_the_username_is_not_logged(settings, api_client, caplog):
    settings.RATE_LIMIT_AUTH = "1/1m"
    with caplog.at_level(logging.DEBUG):
        login(api_client, "Secret-Username-42")
        assert_rate_limited(login(api_client, "Secret-Username-42"), 60)
    assert "rate limit" in caplog.text.casefold()
    assert "secret-username-42" not in caplog.text.casefold()


# --- bets ---------------------------------------------------------------------------


def token_for(username: str, password: str) -> APIClient:
    client = APIClient()
    response = login(client, username, password=password)
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return client


def test_the_bet_limit_is_per_user(settings, user, password):
    from accounts.tests.factories import UserFactory

    other = UserFactory(password=password)
    first = token_for(user.username, password)
    second = token_for(other.username, password)
    settings.RATE_LIMIT_BETS = "2/1m"
    for _ in range(2):
        response = first.post("/api/bets", {"amount": 999}, format="json")
        assert response.status_code == 400
    assert_rate_limited(first.post("/api/bets", {"amount": 1}, format="json"), 60)
    assert_rate_limited(first.post("/api/bets/", {"amount": 1}, format="json"), 60)
    # Same IP, other user: a budget of their own.
    response = second.post("/api/bets", {"amount": 999}, format="json")
    assert response.status_code == 400
    # Reading bets is not limited by it.
    assert first.get("/api/bets").status_code == 200


def test_the_bet_limit_falls_back_to_the_ip_without_a_valid_token(settings, api_client):
    settings.RATE_LIMIT_BETS = "1/1m"
    assert api_client.post("/api/bets", {"amount": 1}, format="json").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_rate_limited(api_client.post("/api/bets", {"amount": 1}, format="json"), 60)


def test_zero_disables_the_bet_limit(settings, auth_client):
    settings.RATE_LIMIT_BETS = "0"
    for _ in range(4):
        response = auth_client.post("/api/bets", {"amount": 999}, format="json")
        assert response.status_code == 400


# --- failure modes ------------------------------------------------------------------


def test_a_cache_failure_lets_the_request_through(settings, api_client, monkeypatch):
    settings.RATE_LIMIT_GLOBAL = "1/1m"

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(ratelimit, "get_usage", broken)
    for _ in range(3):
        assert api_client.get("/api/auth/validate").status_code == 401


def test_a_library_ratelimited_exception_is_a_429_not_a_403():
    middleware = RateLimitMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/api/anything")
    response = middleware.process_exception(request, Ratelimited())
    assert response.status_code == 429
    assert response["Retry-After"].isdigit()
    outside = RequestFactory().get("/elsewhere")
    assert middleware.process_exception(outside, Ratelimited()) is None


def test_the_librarys_ratelimited_error_in_a_drf_view_is_a_429():
    from django_ratelimit.exceptions import Ratelimited
    from rest_framework.test import APIRequestFactory

    from betting_site.api.exceptions import exception_handler

    request = APIRequestFactory().get("/api/x")
    response = exception_handler(Ratelimited(), {"request": request})
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
