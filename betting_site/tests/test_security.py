"""CORS for the client, the content security policy, and a clean ``check --deploy``."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.net"
ALLOWED_HEADERS = {"authorization", "content-type", "idempotency-key", "x-request-id"}
EXPOSED_HEADERS = {"x-request-id", "retry-after", "idempotent-replayed"}
CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


@pytest.fixture(autouse=True)
def _client_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]


def header_set(response, name: str) -> set[str]:
    return {part.strip().lower() for part in response[name].split(",")}


def preflight(client: Client, path: str, origin: str = ORIGIN, method: str = "POST"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": (
                "authorization, content-type, idempotency-key, x-request-id"
            ),
        },
    )


def csp_directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    parts = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {name: (rest[0] if rest else "") for name, *rest in parts}


# --- CORS -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/bets", "/api/auth/login", "/api/nowhere"])
def test_preflight_from_the_client_origin_is_answered_by_corsheaders(client, path):
    response = preflight(client, path)
    assert response.status_code == 200, response.content
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert header_set(response, "Access-Control-Allow-Headers") == ALLOWED_HEADERS
    assert header_set(response, "Access-Control-Allow-Methods") == {
        "get",
        "post",
        "options",
    }
    assert "Access-Control-Allow-Credentials" not in response
    # Still stamped by the outermost middleware.
    assert response["X-Request-ID"]


def test_preflight_is_never_rate_limited(client, settings):
    settings.RATE_LIMIT_GLOBAL = "1/15m"
    settings.RATE_LIMIT_BETS = "1/1m"
    for _ in range(5):
        assert preflight(client, "/api/bets").status_code == 200


def test_actual_request_exposes_the_client_headers(client):
    response = client.get("/api/health/live", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert header_set(response, "Access-Control-Expose-Headers") == EXPOSED_HEADERS
    assert "Access-Control-Allow-Credentials" not in response


def test_errors_carry_cors_headers_so_the_client_can_read_them(client, settings):
    settings.RATE_LIMIT_GLOBAL = "1/15m"
    client.get("/api/balance", headers={"Origin": ORIGIN})
    response = client.get("/api/balance", headers={"Origin": ORIGIN})
    assert response.status_code == 429
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "retry-after" in header_set(response, "Access-Control-Expose-Headers")
    assert response["Retry-After"].isdigit()


def test_disallowed_origin_gets_no_allow_origin(client):
    response = preflight(client, "/api/bets", origin=OTHER_ORIGIN)
    assert "Access-Control-Allow-Origin" not in response
    response = client.get("/api/health/live", headers={"Origin": OTHER_ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Expose-Headers" not in response


def test_no_cors_outside_the_api(client):
    response = client.get("/admin/login/", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("Access-Control")]
    response = preflight(client, "/admin/login/")
    assert "Access-Control-Allow-Origin" not in response


# --- security headers and CSP -----------------------------------------------------


def assert_security_headers(response) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert csp_directives(response) == CSP_DIRECTIVES


def test_api_response_security_headers(client):
    response = client.get("/api/health/live")
    assert response.status_code == 200
    assert_security_headers(response)


def test_api_error_envelope_has_the_content_security_policy(client):
    response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert csp_directives(response) == CSP_DIRECTIVES


def test_api_error_envelope_has_security_headers(client):
    response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert_security_headers(response)


def test_admin_login_security_headers(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert_security_headers(response)


def test_admin_pages_work_under_the_policy(client, django_user_model):
    admin = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="a-long-admin-password"
    )
    client.force_login(admin)
    for path in (
        "/admin/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{admin.pk}/change/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
        # Nothing the policy would block: no executable inline script, no inline
        # style attribute or element (JSON data blocks are not executed).
        html = response.content.decode()
        assert "<style" not in html, path
        assert ' style="' not in html, path
        for chunk in html.split("<script")[1:]:
            tag = chunk.split(">", 1)[0]
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)


def test_hsts_on_secure_requests_in_production(client, settings):
    assert settings.DEBUG is False
    response = client.get("/api/health/live", secure=True)
    assert response.status_code == 200
    hsts = response["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts
    assert "includeSubDomains" in hsts
    assert "preload" in hsts
    # Never over plain HTTP (browsers ignore it there anyway).
    assert "Strict-Transport-Security" not in client.get("/api/health/live")


# --- deploy checks ----------------------------------------------------------------


def test_plain_http_client_origin_is_a_deploy_warning(settings):
    settings.CORS_ALLOWED_ORIGINS = ["http://app.example.com", ORIGIN]
    ids = {message.id for message in run_checks(include_deployment_checks=True)}
    assert "betting_site.W004" in ids
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    ids = {message.id for message in run_checks(include_deployment_checks=True)}
    assert "betting_site.W004" not in ids


def production_environment() -> dict[str, str]:
    # Only what the OS needs from the test environment: none of pytest.ini's values
    # (SECURE_SSL_REDIRECT=0, STATIC_MANIFEST=0...) may leak into the check.
    kept = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
    env = {key: os.environ[key] for key in kept if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "betting_site.settings",
            "DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ADMIN_TOKEN": secrets.token_hex(20),
            # Only parsed: the checks open no connection to either.
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            "REDIS_URL": "redis://127.0.0.1:6379/15",
            "ALLOWED_HOSTS": "api.example.com",
            "CLIENT_URL": f"{ORIGIN}/",
            "SECURE_SSL_REDIRECT": "1",
            "TRUST_PROXY_HEADERS": "1",
            "STATIC_MANIFEST": "1",
        }
    )
    return env


def test_check_deploy_is_clean_under_production_settings():
    env = production_environment()
    assert len(env["ADMIN_TOKEN"]) == 40
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output
    assert "ERRORS" not in output
    assert "no issues" in output
