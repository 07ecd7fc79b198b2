"""The database unreachable: 503 ``SERVICE_UNAVAILABLE`` everywhere, never a 500.

Every statement fails as it does while PostgreSQL is stopped or restarting
(``database_down``): the same exception class, raised at the same place.
"""

import logging
import sys

import pytest
from django.db import OperationalError
from django.http import HttpResponse
from django.urls import include, path

from accounts.tests.factories import UserFactory
from betting_site.database import describe_config
from betting_site.testing import database_down

pytestmark = pytest.mark.django_db

ADMIN_TOKEN = "internal-admin-token-for-the-tests-0123456789"

# (method, path, body, who): every /api/ endpoint that reads or writes the
# database, for the caller it serves.
ENDPOINTS = [
    ("post", "/api/auth/login", {"username": "x", "password": "y"}, "anyone"),
    ("post", "/api/auth/refresh", {"refresh": "REFRESH"}, "anyone"),
    ("post", "/api/auth/logout", {"refresh": "REFRESH"}, "player"),
    ("get", "/api/auth/me", None, "player"),
    ("get", "/api/bets", None, "player"),
    ("post", "/api/bets", {"amount": 3}, "player"),
    ("get", "/api/bets/1", None, "player"),
    ("get", "/api/bets/result/1", None, "player"),
    ("get", "/api/bets/recommended", None, "player"),
    ("get", "/api/balance", None, "player"),
    ("get", "/api/transactions", None, "player"),
    ("post", "/api/internal/auth", {"user_id": "9001"}, "admin"),
    ("get", "/api/internal/bet?user_id=9001", None, "admin"),
    ("post", "/api/internal/bet", {"user_id": "9001", "bet": 1}, "admin"),
    ("post", "/api/internal/win", {"user_id": "9001", "bet_id": "1"}, "admin"),
    ("post", "/api/internal/balance", {"user_id": "9001"}, "admin"),
    (
        "post",
        "/api/internal/check-balance",
        {"user_id": "9001", "expected_balance": 1},
        "admin",
    ),
]


@pytest.fixture
def callers(api_client, auth_client, tokens, player, settings):
    from rest_framework.test import APIClient

    settings.ADMIN_TOKEN = ADMIN_TOKEN
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}")
    return {"anyone": api_client, "player": auth_client, "admin": admin}


def _assert_503(response) -> dict:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response["X-Request-ID"]
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["error"]["requestId"] == response["X-Request-ID"]
    return body["error"]


@pytest.mark.parametrize(
    ("method", "url", "body", "who"),
    ENDPOINTS,
    ids=[f"{method} {url}" for method, url, _, _ in ENDPOINTS],
)
def test_every_api_endpoint_answers_503_with_the_envelope(
    callers, tokens, method, url, body, who, caplog
):
    if body and body.get("refresh") == "REFRESH":
        body = {"refresh": tokens["refresh"]}
    client = callers[who]
    with caplog.at_level(logging.WARNING), database_down():
        response = getattr(client, method)(url, body, format="json")

    error = _assert_503(response)
    assert "unreachable" in error["message"]
    # Explained in one line, no traceback: it is not a bug of ours.
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert any("unreachable" in r.getMessage() for r in caplog.records)


def test_the_api_answers_again_once_the_database_is_back(callers):
    with database_down():
        assert callers["player"].get("/api/balance").status_code == 503
    assert callers["player"].get("/api/balance").status_code == 200


def test_health_keeps_its_own_body_and_live_stays_200(api_client):
    with database_down():
        health = api_client.get("/api/health")
        live = api_client.get("/api/health/live")

    assert health.status_code == 503
    assert health.json()["services"]["database"] == "down"
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}


def test_the_admin_shows_a_plain_503_page(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    client.raise_request_exception = False

    with database_down():
        response = client.get("/admin/betting/bet/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == "5"
    page = response.content.decode()
    assert "Service unavailable" in page
    assert "Traceback" not in page


def test_an_unreachable_database_is_logged_in_one_line(capsys):
    """Django logs the admin's error with its traceback; the handler's filter
    makes it one warning line naming the cause."""
    from betting_site.logging import UnreachableDatabaseFilter

    try:
        raise OperationalError("server closed the connection unexpectedly\nmore")
    except OperationalError:
        record = logging.getLogger("django.request").makeRecord(
            "django.request",
            logging.ERROR,
            __file__,
            1,
            "Internal Server Error: %s",
            ("/admin/",),
            sys.exc_info(),
        )
    assert UnreachableDatabaseFilter().filter(record)
    assert record.exc_info is None
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        "Internal Server Error: /admin/: the database is unreachable: "
        "server closed the connection unexpectedly"
    )


def _plain_view(request):
    raise OperationalError("server closed the connection unexpectedly")


def _ok_view(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/plain-django-view", _plain_view),
    path("plain-django-view", _plain_view),
    path("", include("betting_site.urls")),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [False, True])
def test_errors_outside_drf_are_503_too_with_debug_on_or_off(client, settings, debug):
    """A view or middleware outside DRF: Django turns the error into a 500 (its
    technical page with DEBUG on); the middleware answers 503 in its place."""
    settings.DEBUG = debug
    client.raise_request_exception = False

    api = client.get("/api/plain-django-view")
    page = client.get("/plain-django-view")

    _assert_503(api)
    assert page.status_code == 503
    assert "Service unavailable" in page.content.decode()


@pytest.mark.urls(__name__)
def test_other_database_errors_stay_500(client):
    """An integrity or programming error is a bug: still 500 INTERNAL_ERROR."""
    from django.db import IntegrityError

    def broken(request):
        raise IntegrityError("duplicate key")

    urlpatterns.insert(0, path("api/broken", broken))
    try:
        client.raise_request_exception = False
        response = client.get("/api/broken")
    finally:
        urlpatterns.pop(0)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL_ERROR"


def test_the_database_is_named_without_credentials():
    text = describe_config(
        {
            "ENGINE": "betting_site.postgresql",
            "NAME": "betting",
            "USER": "app",
            "PASSWORD": "s3cret-password",
            "HOST": "db.internal",
            "PORT": "5432",
        }
    )
    assert text == "PostgreSQL database 'betting' at db.internal:5432"
    assert "s3cret" not in text
    assert "app" not in text
