"""GET /metrics: the Prometheus text, the domain metrics, the token."""

import json
import os
import runpy
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import ExternalApiAccountFactory
from auditlog.models import ApiLog
from betting.models import Bet
from betting.services.transitions import bet_fail
from betting.tests.factories import BetFactory
from provider.breaker import CircuitBreaker
from provider.client import ProviderClient
from provider.exceptions import ProviderUnreachable
from wallet.tests.factories import EntryFactory, fund

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-for-the-tests-0123456789"

DOMAIN_FAMILIES = {
    "betting_bets",
    "betting_provider_requests",
    "betting_provider_request_duration_seconds",
    "betting_provider_breaker_state",
    "betting_bets_open",
    "betting_balance_discrepancies",
    "betting_metrics_database_up",
}


def scrape(client, **headers) -> dict[str, dict[tuple, float]]:
    """``{family: {(sample name, sorted labels): value}}`` of one GET /metrics."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    families = {}
    for family in text_string_to_metric_families(response.content.decode()):
        families[family.name] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
        }
    return families


def value(families, family: str, sample: str | None = None, **labels) -> float:
    return families[family][(sample or family, tuple(sorted(labels.items())))]


def bets(outcome: str) -> float:
    return REGISTRY.get_sample_value("betting_bets_total", {"outcome": outcome})


def provider_requests(method: str, endpoint: str, outcome: str) -> float:
    labels = {"method": method, "endpoint": endpoint, "outcome": outcome}
    return REGISTRY.get_sample_value("betting_provider_requests_total", labels) or 0


def provider_timed(method: str, endpoint: str) -> float:
    labels = {"method": method, "endpoint": endpoint}
    name = "betting_provider_request_duration_seconds_count"
    return REGISTRY.get_sample_value(name, labels) or 0


def counters() -> dict:
    """The counters the bet tests look at, to compare before and after."""
    outcomes = ("placed", "won", "lost", "failed", "unknown", "void")
    snapshot = {outcome: bets(outcome) for outcome in outcomes}
    for endpoint in ("/auth", "/bet", "/win", "/balance"):
        for outcome in ("ok", "refused", "outcome_unknown", "unreachable"):
            snapshot[endpoint, outcome] = provider_requests("POST", endpoint, outcome)
        snapshot[endpoint, "timed"] = provider_timed("POST", endpoint)
    return snapshot


def delta(before: dict, after: dict) -> dict:
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("50")


def place(auth_client, capture, amount: int = 3):
    with capture(execute=True):
        response = auth_client.post("/api/bets", data={"amount": amount}, format="json")
    return response


# --- the exposition ---------------------------------------------------------------


def test_metrics_is_prometheus_text_with_every_domain_family(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = scrape(client)
    assert set(families) >= DOMAIN_FAMILIES
    # django-prometheus's request metrics are there too.
    assert "django_http_requests_total_by_method" in families
    for outcome in ("placed", "won", "lost", "failed", "unknown", "void"):
        assert ("betting_bets_total", (("outcome", outcome),)) in families[
            "betting_bets"
        ]
    assert client.get("/metrics/").status_code == 200


def test_metrics_answers_only_get_and_head(client):
    assert client.head("/metrics").status_code == 200
    response = client.post("/metrics")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_metrics_is_neither_rate_limited_nor_written_to_the_api_log(client, settings):
    settings.RATE_LIMIT_GLOBAL = "1/15m"
    for _ in range(3):
        assert client.get("/metrics").status_code == 200
    assert not ApiLog.objects.exists()


# --- bets ---------------------------------------------------------------------------


def test_a_placed_bet_counts_placed_its_result_and_the_provider_requests(
    auth_client, player, django_capture_on_commit_callbacks
):
    before = counters()
    response = place(auth_client, django_capture_on_commit_callbacks)
    assert response.status_code == 201, response.content
    bet = Bet.objects.get()
    assert bet.status == Bet.Status.COMPLETED
    result = "won" if bet.win_amount > 0 else "lost"
    change = delta(before, counters())
    assert change["placed"] == 1
    assert change[result] == 1
    other = {"won": "lost", "lost": "won"}[result]
    assert not {"failed", "unknown", "void", other} & set(change)
    assert change["/bet", "ok"] == 1
    assert change["/bet", "timed"] == 1
    assert change["/win", "ok"] == 1
    assert change["/win", "timed"] == 1


def test_a_refused_bet_counts_failed_and_a_refused_request(
    auth_client, player, provider, django_capture_on_commit_callbacks
):
    provider.add_fault("/bet", "error_before", method="POST", status=400)
    before = counters()
    response = place(auth_client, django_capture_on_commit_callbacks)
    assert response.status_code == 502
    change = delta(before, counters())
    assert change["failed"] == 1
    assert "placed" not in change
    assert change["/bet", "refused"] == 1
    assert change["/bet", "timed"] == 1


def test_an_unknown_outcome_counts_unknown_and_an_outcome_unknown_request(
    auth_client, player, provider, django_capture_on_commit_callbacks
):
    provider.add_fault("/bet", "error_after", method="POST", status=500)
    before = counters()
    response = place(auth_client, django_capture_on_commit_callbacks)
    assert response.json()["status"] == "unknown"
    change = delta(before, counters())
    assert change["unknown"] == 1
    assert "placed" not in change
    assert change["/bet", "outcome_unknown"] == 1


def test_a_rolled_back_transition_is_not_counted(
    user, django_capture_on_commit_callbacks
):
    fund(user, 10)
    bet = BetFactory(account=ExternalApiAccountFactory(user=user), amount=Decimal("2"))
    failed = bets("failed")

    def fail_then_roll_back() -> None:
        with transaction.atomic():
            assert bet_fail(bet=bet, reason="test").status == Bet.Status.FAILED
            raise RuntimeError("roll it back")

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
    ):
        fail_then_roll_back()
    bet.refresh_from_db()
    assert bet.status == Bet.Status.PENDING
    assert bets("failed") == failed
    # The same transition, committed, is counted once.
    with django_capture_on_commit_callbacks(execute=True):
        bet_fail(bet=bet, reason="test")
    assert bets("failed") == failed + 1


# --- the provider client and the breaker -------------------------------------------


def test_a_call_the_open_breaker_refuses_is_counted_but_not_timed(provider, settings):
    settings.PROVIDER_BREAKER_THRESHOLD = 1
    breaker = CircuitBreaker.for_url(provider.base_url)
    breaker.record_failure(breaker.acquire())
    refused = provider_requests("GET", "/health", "breaker_open")
    timed = provider_timed("GET", "/health")
    with pytest.raises(ProviderUnreachable):
        ProviderClient().health()
    assert provider_requests("GET", "/health", "breaker_open") == refused + 1
    assert provider_timed("GET", "/health") == timed


def test_an_unreachable_provider_is_counted_unreachable(settings):
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"  # nothing listens there
    settings.PROVIDER_READ_RETRIES = 0
    before = provider_requests("GET", "/health", "unreachable")
    with pytest.raises(ProviderUnreachable):
        ProviderClient().health()
    assert provider_requests("GET", "/health", "unreachable") == before + 1


def test_breaker_state_gauge_follows_the_shared_breaker(client, provider, settings):
    settings.PROVIDER_BREAKER_THRESHOLD = 1
    breaker = CircuitBreaker.for_url(provider.base_url)
    assert value(scrape(client), "betting_provider_breaker_state") == 0
    breaker.record_failure(breaker.acquire())
    assert value(scrape(client), "betting_provider_breaker_state") == 2
    breaker.reset()
    settings.PROVIDER_BREAKER_RESET = 0  # opens and is due for a probe at once
    breaker.record_failure(breaker.acquire())
    assert value(scrape(client), "betting_provider_breaker_state") == 1


# --- database figures, read when scraped ---------------------------------------------


def open_bet(status: str, **fields) -> Bet:
    """A bet of a player with no balance: no stake held (the gauge counts rows)."""
    return BetFactory(status=status, amount=Decimal("1"), hold=False, **fields)


def test_open_bets_gauge_counts_pending_and_unknown_rows(client):
    families = scrape(client)
    assert value(families, "betting_bets_open", status="pending") == 0
    assert value(families, "betting_bets_open", status="unknown") == 0
    open_bet(Bet.Status.PENDING)
    open_bet(Bet.Status.PENDING, external_bet_id="p-2")
    open_bet(Bet.Status.UNKNOWN)
    open_bet(Bet.Status.FAILED)
    families = scrape(client)
    assert value(families, "betting_bets_open", status="pending") == 2
    assert value(families, "betting_bets_open", status="unknown") == 1
    assert value(families, "betting_metrics_database_up") == 1


def balance(external: str | None, ledger: str = "10", *, active: bool = True):
    account = ExternalApiAccountFactory(
        is_active=active, deactivated_at=None if active else timezone.now()
    )
    EntryFactory(
        user=account.user,
        amount=Decimal(ledger),
        provider_balance=None if external is None else Decimal(external),
    )
    return account


def test_discrepancy_gauge_counts_drift_as_reconcile_would(client):
    balance("12")  # drift
    balance("10")  # in sync
    balance(None)  # never read
    balance("15", active=False)  # no active provider account: reconcile skips it
    busy = balance("13")  # an open bet: its balance is in motion, not drifting
    BetFactory(account=busy)
    assert value(scrape(client), "betting_balance_discrepancies") == 1


def test_a_database_failure_leaves_the_scrape_up_without_its_figures(
    client, monkeypatch
):
    def broken():
        raise DatabaseError("the database is down")

    monkeypatch.setattr("betting_site.metrics_view.open_bet_counts", broken)
    families = scrape(client)
    assert value(families, "betting_metrics_database_up") == 0
    assert "betting_bets_open" not in families
    assert "betting_provider_breaker_state" in families


# --- the token ----------------------------------------------------------------------


def test_metrics_is_open_without_a_token(client, settings):
    settings.METRICS_TOKEN = None
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", TOKEN, "Basic " + TOKEN, "Bearer"]
)
def test_a_set_token_is_required(client, settings, caplog, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert body["error"]["requestId"] == response["X-Request-ID"]
    assert TOKEN not in response.content.decode()
    assert TOKEN not in caplog.text


def test_the_right_token_is_let_through_and_never_logged(client, settings, caplog):
    settings.METRICS_TOKEN = TOKEN
    caplog.set_level("DEBUG")
    families = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert set(families) >= DOMAIN_FAMILIES
    assert TOKEN not in caplog.text


# --- several gunicorn workers -------------------------------------------------------

_WORKER = """
import django
django.setup()
from betting_site.metrics import provider_request_record
provider_request_record(method="POST", endpoint="/bet", outcome="ok", seconds=0.2)
"""

_SCRAPE = """
import django
django.setup()
from django.test import Client
response = Client().get("/metrics")
print(response.status_code)
print(response.content.decode())
"""


def test_multiprocess_mode_sums_the_workers_and_keeps_the_shared_state(tmp_path):
    metrics_dir = tmp_path / "metrics"  # missing: the settings create it
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "betting_site.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # An empty database: the shared-state collector reports it cannot read it.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "REDIS_URL": "",
        "METRICS_TOKEN": "",
    }

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run(_WORKER)
    run(_WORKER)
    status, _, text = run(_SCRAPE).partition("\n")
    assert status == "200"
    samples = {
        (s.name, json.dumps(s.labels, sort_keys=True)): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    bet_ok = json.dumps(
        {"endpoint": "/bet", "method": "POST", "outcome": "ok"}, sort_keys=True
    )
    timed = json.dumps({"endpoint": "/bet", "method": "POST"}, sort_keys=True)
    assert samples["betting_provider_requests_total", bet_ok] == 2
    assert samples["betting_provider_request_duration_seconds_count", timed] == 2
    assert samples["betting_provider_breaker_state", "{}"] == 0
    assert samples["betting_metrics_database_up", "{}"] == 0


def test_gunicorn_starts_from_an_empty_metrics_dir_and_forgets_dead_workers(
    tmp_path, monkeypatch
):
    metrics_dir = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf["on_starting"](None)
    assert metrics_dir.is_dir()
    (metrics_dir / "counter_123.db").write_bytes(b"stale")
    (metrics_dir / "gauge_livesum_456.db").write_bytes(b"live")
    (metrics_dir / "keep.txt").write_text("not ours")
    conf["child_exit"](None, type("Worker", (), {"pid": 456})())
    assert not (metrics_dir / "gauge_livesum_456.db").exists()
    conf["on_starting"](None)
    assert sorted(p.name for p in metrics_dir.iterdir()) == ["keep.txt"]


def test_gunicorn_hooks_do_nothing_without_a_metrics_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf["on_starting"](None)
    conf["child_exit"](None, type("Worker", (), {"pid": 1})())


def test_provider_endpoints_are_path_templates_never_ids(
    auth_client, player, django_capture_on_commit_callbacks
):
    place(auth_client, django_capture_on_commit_callbacks)
    text = auth_client.get("/metrics").content.decode()
    endpoints = {
        sample.labels["endpoint"]
        for family in text_string_to_metric_families(text)
        if family.name.startswith("betting_provider_request")
        for sample in family.samples
    }
    assert "/bet" in endpoints
    templates = {"/health", "/auth", "/balance", "/bet", "/win", "/check-balance"}
    assert endpoints <= templates


def test_an_empty_multiproc_dir_keeps_the_single_process_registry(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "betting_site.settings",
        "PROMETHEUS_MULTIPROC_DIR": "",  # as a copied .env.example leaves it
    }
    code = (
        "import os, django; django.setup(); import betting_site.metrics; "
        "from prometheus_client import values; "
        "print('PROMETHEUS_MULTIPROC_DIR' in os.environ, values.ValueClass.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "MutexValue"]
    assert not list(tmp_path.iterdir())
