"""The deployment files (compose.yaml, Dockerfile, gunicorn.conf.py, nginx) agree
with the settings: no engine is needed to check them."""

import io
import json
import logging
import re
import runpy
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from django.conf import settings
from gunicorn.config import Config

from betting_site.gunicorn_logging import JsonLogger

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY", "FIELD_ENCRYPTION_KEYS")
APP_IMAGE = "betting-server:latest"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def app_services(services: dict) -> dict:
    return {
        name: service
        for name, service in services.items()
        if service.get("image") == APP_IMAGE
    }


def test_compose_has_the_services(services):
    assert set(services) >= {
        "postgres",
        "redis",
        "migrate",
        "simulator",
        "web1",
        "web2",
        "lb",
        "scheduler",
    }
    assert services["postgres"]["image"].startswith("postgres:15")
    assert set(app_services(services)) == {
        "migrate",
        "simulator",
        "web1",
        "web2",
        "scheduler",
    }


def test_exactly_two_web_replicas_and_one_scheduler(services):
    web = [n for n, s in services.items() if command_of(s).startswith("gunicorn")]
    assert sorted(web) == ["web1", "web2"]
    for name in web:
        assert "gunicorn.conf.py" in command_of(services[name])
    schedulers = [n for n, s in services.items() if "run_periodic" in command_of(s)]
    assert schedulers == ["scheduler"]
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1
    migrations = [n for n, s in services.items() if " migrate" in command_of(s)]
    assert migrations == ["migrate"]


def test_healthchecks_where_meaningful(services):
    for name in ("postgres", "redis", "simulator", "web1", "web2", "lb"):
        check = services[name].get("healthcheck", {})
        assert check.get("test"), name
        assert not check.get("disable"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert "/api/health" in " ".join(services["simulator"]["healthcheck"]["test"])
    for name in ("web1", "web2"):
        assert "/api/health/live" in " ".join(services[name]["healthcheck"]["test"])


def test_restart_policies(services):
    for name, service in services.items():
        expected = "no" if name == "migrate" else "unless-stopped"
        assert service.get("restart") == expected, name


def test_start_order(services):
    conditions = {
        name: {dep: spec["condition"] for dep, spec in s["depends_on"].items()}
        for name, s in services.items()
        if isinstance(s.get("depends_on"), dict)
    }
    assert conditions["migrate"] == {"postgres": "service_healthy"}
    for name in ("web1", "web2"):
        assert conditions[name] == {
            "migrate": "service_completed_successfully",
            "redis": "service_healthy",
            "simulator": "service_healthy",
        }
    assert conditions["scheduler"]["migrate"] == "service_completed_successfully"


def test_secrets_are_required(services):
    for name, service in app_services(services).items():
        env = service["environment"]
        for secret in SECRETS:
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), name
        assert ":?" in env["DATABASE_URL"]
        assert env["DEBUG"] == "0"
    assert ":?" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_app_environment_is_what_the_settings_read(services):
    settings_source = (ROOT / "betting_site" / "settings.py").read_text()
    read = set(re.findall(r"env\.\w+\(\s*\"([A-Z0-9_]+)\"", settings_source))
    read |= set(re.findall(r"_required_secret\(\"([A-Z0-9_]+)\"", settings_source))
    documented = set(
        re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M)
    )
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "STATIC_MANIFEST"} <= read
    for name, service in app_services(services).items():
        env = service["environment"]
        unknown = set(env) - (read | documented)
        assert not unknown, f"{name} sets {unknown}, which nothing reads"
        assert env["EXTERNAL_API_URL"] == "http://simulator:8081/api"
        assert env["TRUST_PROXY_HEADERS"] == "1"
        assert env["SECURE_SSL_REDIRECT"] == "0"


def test_simulator_listens_on_the_network_with_a_state_file(services):
    command = command_of(services["simulator"])
    assert "--host 0.0.0.0 --port 8081 --state-file /data/" in command
    assert any(v.endswith(":/data") for v in services["simulator"]["volumes"])
    assert "ports" not in services["simulator"]  # control endpoints stay private


def test_balancer_spreads_over_both_replicas(services):
    assert services["lb"]["ports"] == ["8000:80"]
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server web1:8000" in conf
    assert "server web2:8000" in conf
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        assert f"proxy_set_header {header}" in conf
    assert "non_idempotent" not in conf.replace("(no\n", "").split("#")[0]
    assert re.search(r"^\s*proxy_next_upstream error timeout;", conf, re.M)


@pytest.fixture
def gunicorn_conf(monkeypatch):
    def load(**env) -> dict:
        for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_BIND", "PORT"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    return load


def test_gunicorn_conf_defaults(gunicorn_conf):
    conf = gunicorn_conf()
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] >= 2
    assert 2 <= conf["workers"] <= 8
    assert conf["bind"] == ["0.0.0.0:8000"]
    assert conf["timeout"] >= 30
    assert conf["graceful_timeout"] >= 60
    assert conf["max_requests"] > 0
    assert conf["max_requests_jitter"] > 0
    assert conf["accesslog"] == "-"
    assert conf["errorlog"] == "-"
    # gunicorn itself accepts every value.
    config = Config()
    names = [name for name in conf if name in config.settings]
    assert "logger_class" in names
    for name in names:
        config.set(name, conf[name])
    assert config.logger_class is JsonLogger
    assert config.worker_class_str == "gthread"


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)s", value.strip())
    assert match, value
    return float(match.group(1))


def test_every_stop_waits_for_the_longest_bet(gunicorn_conf, services, monkeypatch):
    """gunicorn's graceful timeout covers the longest bet with the default
    settings; compose gives it longer before SIGKILL, and nginx waits that long
    for an answer."""
    from betting.services.placement import bet_longest

    monkeypatch.delenv("GUNICORN_GRACEFUL_TIMEOUT", raising=False)
    assert settings.EXTERNAL_API_CONNECT_TIMEOUT == 3.0, "the default"
    assert settings.EXTERNAL_API_READ_TIMEOUT == 10.0, "the default"
    longest = bet_longest()
    graceful = gunicorn_conf()["graceful_timeout"]
    assert longest <= graceful
    for name in ("web1", "web2", "scheduler"):
        assert _seconds(services[name]["stop_grace_period"]) > graceful, name
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    read_timeout = re.search(r"^\s*proxy_read_timeout (\S+);", conf, re.M)
    assert read_timeout
    assert _seconds(read_timeout.group(1)) >= longest


def test_gunicorn_conf_from_the_environment(gunicorn_conf):
    conf = gunicorn_conf(WEB_CONCURRENCY="3", GUNICORN_THREADS="8", PORT="9000")
    assert (conf["workers"], conf["threads"]) == (3, 8)
    assert conf["bind"] == ["0.0.0.0:9000"]
    conf = gunicorn_conf(GUNICORN_BIND="127.0.0.1:18123")
    assert conf["bind"] == ["127.0.0.1:18123"]


@pytest.fixture
def json_logger():
    config = Config()
    config.set("accesslog", "-")
    config.set("errorlog", "-")
    logger = JsonLogger(config)
    yield logger
    for log in (logger.error_log, logger.access_log):
        for handler in list(log.handlers):
            if getattr(handler, "_gunicorn", False):
                log.removeHandler(handler)


def _capture(log: logging.Logger) -> io.StringIO:
    stream = io.StringIO()
    for handler in log.handlers:
        if getattr(handler, "_gunicorn", False):
            handler.setStream(stream)
    return stream


def test_access_log_is_one_json_object_per_line(json_logger):
    out, err = _capture(json_logger.access_log), _capture(json_logger.error_log)
    resp = SimpleNamespace(
        status="201 Created",
        sent=57,
        headers=[("Content-Type", "application/json"), ("X-Request-ID", "req-1234")],
    )
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": '/api/bets/"quoted"',
        "QUERY_STRING": "",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.0.0.2",
    }
    json_logger.access(resp, None, environ, timedelta(milliseconds=12.5))
    json_logger.error_log.info("worker %s booted", 42)
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["method"] == "POST"
    assert entry["path"] == '/api/bets/"quoted"'
    assert entry["status"] == 201
    assert entry["duration_ms"] == 12.5
    assert entry["request_id"] == "req-1234"
    assert entry["remote_addr"] == "10.0.0.7"
    assert entry["bytes"] == 57
    assert entry["time"].endswith("Z")
    error = json.loads(err.getvalue().splitlines()[-1])
    assert error["message"] == "worker 42 booted"
    assert error["level"] == "INFO"


def test_access_log_counts_sendfile_bytes(json_logger):
    resp = SimpleNamespace(status=200, sent=0, headers={"Content-Length": "4950"})
    line = json_logger.access_line(resp, None, {}, timedelta(0))
    assert json.loads(line)["bytes"] == 4950
    assert json.loads(line)["request_id"] is None


def test_access_log_failure_never_fails_the_request(json_logger, monkeypatch):
    def broken(*args):
        raise ValueError("boom")

    monkeypatch.setattr(json_logger, "access_line", broken)
    errors = []
    monkeypatch.setattr(json_logger, "exception", lambda msg, *a: errors.append(msg))
    json_logger.access(SimpleNamespace(status=200, headers=[]), None, {}, None)
    assert errors == ["could not write the access log line"]


def test_error_log_formats_exceptions():
    from betting_site.gunicorn_logging import JsonErrorFormatter

    try:
        raise RuntimeError("worker died")
    except RuntimeError:
        record = logging.getLogger("gunicorn.error").makeRecord(
            "gunicorn.error", logging.ERROR, __file__, 1, "oops", (), _exc_info()
        )
    entry = json.loads(JsonErrorFormatter().format(record))
    assert entry["level"] == "ERROR"
    assert "RuntimeError: worker died" in entry["exc_info"]


def _exc_info():
    import sys

    return sys.exc_info()


def test_whitenoise_follows_the_security_middleware():
    middleware = settings.MIDDLEWARE
    position = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[position + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    # The suite runs with STATIC_MANIFEST=0: no collectstatic needed.
    assert settings.STATIC_MANIFEST is False


def test_dockerfile_is_multi_stage_non_root_and_checked():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(froms) >= 2
    assert all("python:3.11-slim" in line for line in froms)
    assert any("--from=builder" in line for line in lines)
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    final_stage = lines[lines.index(froms[-1]) :]
    assert any(line.startswith("HEALTHCHECK") for line in final_stage)
    assert any("/api/health/live" in line for line in final_stage)
    assert any("collectstatic" in line for line in final_stage)
    assert "EXPOSE 8000" in final_stage
    assert final_stage[-1].startswith("CMD")
    assert "gunicorn.conf.py" in final_stage[-1]
    # The throwaway build secrets never become image environment.
    env_lines = " ".join(line for line in final_stage if line.startswith("ENV"))
    for secret in SECRETS:
        assert secret not in env_lines


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "db.sqlite3", "run/", ".env"):
        assert entry in ignored
