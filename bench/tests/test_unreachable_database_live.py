"""A real gunicorn server whose PostgreSQL refuses connections: 503 everywhere.

The server is started against a port nothing listens on, as while PostgreSQL is
stopped; the in-process tests (``betting_site/tests/test_database_unavailable``)
play every endpoint and phase, this one checks the real process path: psycopg's
connection refused, the middlewares, the health endpoints and the admin.
"""

import re
from collections.abc import Iterator

import pytest
import requests

from bench.stack import Stack, StackConfig

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def server() -> Iterator[Stack]:
    config = StackConfig(
        name="unreachable-db-test",
        database="betting_unreachable_test",
        redis_db=10,
        simulator_port=18463,
        server_port=18464,
        workers=1,
        threads=2,
        extra_env={
            "DATABASE_URL": "postgres://postgres@127.0.0.1:9/betting",
            "DB_CONNECT_TIMEOUT": "2",
        },
    )
    with Stack(config) as running:
        running.stats_dir.mkdir(parents=True, exist_ok=True)  # no prepare(): no DB
        running.start()
        yield running


def _url(server: Stack, path: str) -> str:
    return f"{server.server_url}{path}"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/auth/login", {"username": "demo", "password": "x"}),
        ("get", "/api/internal/bet?user_id=1", None),
    ],
)
def test_api_endpoints_answer_503_with_the_envelope(server, method, path, body):
    headers = {"X-Request-ID": "outage-test-0001"}
    if "/internal/" in path:
        headers["Authorization"] = "Bearer " + "a-staff-jwt-the-db-must-check"
    response = getattr(requests, method)(
        _url(server, path), json=body, headers=headers, timeout=15
    )
    if "/internal/" in path:
        # Not a valid token: refused before anything needs the database.
        assert response.status_code == 401
        return
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Request-ID"] == "outage-test-0001"
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert error["requestId"] == "outage-test-0001"


def test_health_is_503_with_its_body_and_live_is_200(server):
    health = requests.get(_url(server, "/api/health"), timeout=15)
    live = requests.get(_url(server, "/api/health/live"), timeout=15)
    assert health.status_code == 503
    assert health.json()["services"]["database"] == "down"
    assert live.status_code == 200


def test_the_admin_login_is_a_plain_503_page(server):
    """Signing in needs the database: the staff member sees the plain page."""
    form = requests.get(_url(server, "/admin/login/"), timeout=15)
    assert form.status_code == 200, form.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None
    response = requests.post(
        _url(server, "/admin/login/"),
        # The cookie is Secure with DEBUG=0 (plain HTTP here): sent by hand.
        cookies={"csrftoken": form.cookies["csrftoken"]},
        data={
            "username": "staff",
            "password": "x",
            "csrfmiddlewaretoken": token.group(1),
        },
        headers={"Referer": _url(server, "/admin/login/")},
        timeout=15,
    )
    assert response.status_code == 503, response.text[:500]
    assert "Service unavailable" in response.text
    assert "Traceback" not in response.text
    assert response.headers["Retry-After"] == "5"
