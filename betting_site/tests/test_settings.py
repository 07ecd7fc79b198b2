"""With DEBUG=0 the settings refuse to load without real secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "DJANGO_SECRET_KEY": "a-real-production-secret-key-0123456789abcdef",
    "JWT_SIGNING_KEY": "a-real-production-jwt-signing-key-0123456789ab",
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def load_settings(**overrides) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (*GOOD, "DEBUG", "ADMIN_TOKEN", "JWT_ACCESS_TTL")
    }
    env.update({"DJANGO_SETTINGS_MODULE": "betting_site.settings"})
    env.update({key: value for key, value in overrides.items() if value is not None})
    return subprocess.run(
        [sys.executable, "-c", "import betting_site.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_load_with_real_secrets():
    result = load_settings(DEBUG="0", **GOOD)
    assert result.returncode == 0, result.stderr


def test_debug_settings_load_with_nothing_set():
    result = load_settings(DEBUG="1")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", list(GOOD))
def test_production_refuses_to_start_without_each_secret(missing):
    result = load_settings(DEBUG="0", **{**GOOD, missing: None})
    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG=0" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECRET_KEY", "short", "at least 32"),
        ("JWT_SIGNING_KEY", "short", "at least 32"),
        ("FIELD_ENCRYPTION_KEYS", "not-a-fernet-key", "entry 1 is not a valid Fernet"),
        (
            "FIELD_ENCRYPTION_KEYS",
            "ZGV2LW9ubHktaW5zZWN1cmUtZmVybmV0LWtleS0wMDA=",
            "development key",
        ),
        ("JWT_SIGNING_KEY", GOOD["DJANGO_SECRET_KEY"], "must differ"),
        ("JWT_ACCESS_TTL", "fifteen", "JWT_ACCESS_TTL"),
        ("PROVIDER_STAKE_MODE", "sometimes", "PROVIDER_STAKE_MODE"),
    ],
)
def test_production_refuses_unsafe_values(name, value, message):
    result = load_settings(DEBUG="0", **{**GOOD, name: value})
    assert result.returncode != 0
    assert message in result.stderr
    if name == "FIELD_ENCRYPTION_KEYS":
        assert value not in result.stderr  # a key is never echoed


def test_deploy_checks_flag_unsafe_production_config(settings):
    from betting_site.checks import check_production_settings

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["*"]
    settings.REDIS_URL = None
    settings.ADMIN_TOKEN = "short"
    ids = {problem.id for problem in check_production_settings(None)}
    assert {"betting_site.W001", "betting_site.W003", "betting_site.E001"} <= ids
    settings.DEBUG = True
    assert check_production_settings(None) == []


def test_deploy_check_wants_a_graceful_timeout_that_covers_the_longest_bet(
    settings, monkeypatch
):
    from betting.services.placement import bet_longest
    from betting_site.checks import check_graceful_timeout

    monkeypatch.delenv("GUNICORN_GRACEFUL_TIMEOUT", raising=False)
    assert check_graceful_timeout(None) == []  # the shipped default covers it
    monkeypatch.setenv("GUNICORN_GRACEFUL_TIMEOUT", "60")
    (problem,) = check_graceful_timeout(None)
    assert problem.id == "betting_site.E002"
    assert "(60 s) is shorter than the longest bet (174 s" in problem.msg
    # Shorter provider timeouts make a shorter bet, which 60 s then covers.
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 1.0
    settings.EXTERNAL_API_READ_TIMEOUT = 2.0
    assert bet_longest() == 2 + 4 * (3 * 3 + 2 + 2)
    assert check_graceful_timeout(None) == []


def test_env_example_lists_every_variable_the_settings_read():
    import re

    source = (ROOT / "betting_site" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', source))
    read |= set(re.findall(r'_(?:required_secret|duration)\(\s*"([A-Z_]+)"', source))
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert read, "the pattern found no variables"
    assert read - listed == set()
