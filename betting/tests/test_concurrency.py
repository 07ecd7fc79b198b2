"""Concurrency on PostgreSQL: threads in one process, and two server processes.

Skipped on SQLite, where concurrent writers queue on one file lock and prove
nothing about row locks, the lease's conditional UPDATE or unique constraints.
"""

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.db import connection, connections
from django.test import Client

from betting.models import Bet
from betting.services import bet_place, settlement
from wallet.models import Transaction, UserBalance

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "concurrency-password-1"
CONCURRENCY = 30


@pytest.fixture
def player_provider(provider, stake_mode, settings):
    """Every test with a player runs in both stake modes; the bets lose."""
    settings.BET_LOCK_WAIT = 10.0  # let most requests queue rather than get 409
    provider.configure(win_probability=0.0)
    return provider


@pytest.fixture
def player_external_id() -> str:
    return "9301"


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("10")


@pytest.fixture
def password() -> str:
    return PASSWORD


def token_for(user) -> str:
    response = Client().post(
        "/api/auth/login",
        {"username": user.username, "password": PASSWORD},
        content_type="application/json",
    )
    return response.json()["token"]


def in_threads(count: int, work):
    def run(i):
        try:
            return work(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def assert_invariants(user, provider) -> None:
    wallet = UserBalance.objects.get(user=user)
    entries = list(Transaction.objects.filter(user=user).order_by("id"))
    assert sum(e.amount for e in entries) == wallet.balance
    running = Decimal("0")
    for entry in entries:
        assert entry.balance_before == running
        running = entry.balance_after
    assert wallet.balance >= 0
    assert wallet.held == 0
    assert wallet.balance == provider.balance_of("9301")
    assert not Bet.objects.filter(user=user, status__in=Bet.OPEN_STATUSES).exists()
    placed = [b for b in provider.snapshot()["bets"] if b["user_id"] == "9301"]
    assert len(placed) == Bet.objects.filter(user=user).exclude(status="failed").count()


def test_concurrent_bets_of_one_user_never_overspend(player, provider):
    token = token_for(player)

    def bet(_):
        return Client().post(
            "/api/bets",
            data='{"amount": 1}',
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )

    responses = in_threads(CONCURRENCY, bet)
    statuses = sorted(r.status_code for r in responses)
    assert all(s in (201, 400, 409) for s in statuses), statuses
    completed = Bet.objects.filter(user=player, status="completed").count()
    assert completed == 10  # exactly the balance: every bet is a loss of 1
    assert statuses.count(201) == 10
    for response in responses:
        if response.status_code == 400:
            assert response.json()["error"]["code"] == "INSUFFICIENT_BALANCE"
    assert_invariants(player, provider)


def test_concurrent_requests_with_one_key_place_one_bet(player, provider):
    token = token_for(player)

    def bet(_):
        return Client().post(
            "/api/bets",
            data='{"amount": 1}',
            content_type="application/json",
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": "same-key-1",
            },
        )

    responses = in_threads(CONCURRENCY, bet)
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    assert Bet.objects.filter(user=player).count() == 1
    first = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in first}) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert_invariants(player, provider)


def test_a_result_booked_concurrently_is_booked_once(
    player, provider, stake_mode, monkeypatch
):
    """Bookers of one result race on one statement each: the first to lock the
    balance row books it; every other one is stopped by the one-entry-per-event
    constraint (the same result) or the bet's status (a different one), rolls
    back and is answered by the locked path, moving no money."""
    bet = bet_place(user=player, amount=3, settle=False).bet
    before = UserBalance.objects.get(user=player).balance
    careful: list[int] = []
    locked = settlement._bet_complete_careful

    def spy(**kwargs):
        careful.append(kwargs["bet"].pk)
        return locked(**kwargs)

    monkeypatch.setattr(settlement, "_bet_complete_careful", spy)
    count = 8
    start = threading.Barrier(count)

    def book(i):
        pending = Bet.objects.get(pk=bet.pk)
        win = Decimal("6") if i % 2 else Decimal("0")
        start.wait()
        return settlement.bet_complete(bet=pending, win=win, evidence={"i": i})

    booked = in_threads(count, book)
    assert {b.status for b in booked} == {"completed"}
    bet.refresh_from_db()
    results = list(
        Transaction.objects.filter(bet=bet, type__in=["bet_win", "bet_loss"])
    )
    assert len(results) == 1
    (entry,) = results
    assert len(careful) == count - 1
    assert {b.win_amount for b in booked} == {bet.win_amount}
    wallet = UserBalance.objects.get(user=player)
    assert wallet.balance == before + entry.amount
    assert wallet.held == 0
    if stake_mode == "debit_on_loss":
        assert entry.amount == (Decimal("6") if bet.win_amount else Decimal("-3"))
    else:
        assert entry.amount == bet.win_amount
    entries = list(Transaction.objects.filter(user=player).order_by("id"))
    assert sum(e.amount for e in entries) == wallet.balance
    for earlier, later in itertools.pairwise(entries):
        assert later.balance_before == earlier.balance_after


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_servers(provider, settings):
    """Two gunicorn processes on the test database and the same simulator."""
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}"
        f"/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EXTERNAL_API_URL": provider.base_url,
        "EXTERNAL_API_READ_TIMEOUT": "2",
        "PROVIDER_STAKE_MODE": settings.PROVIDER_STAKE_MODE,
        "BET_LOCK_WAIT": "10",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "betting_site.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "16",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/api/health/live", timeout=5)
                    break
                except requests.RequestException:
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.2)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_two_server_processes_share_the_guarantees(player, provider, two_servers):
    token = token_for(player)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def keyed(i):
        return requests.post(
            f"{two_servers[i % 2]}/api/bets",
            data='{"amount": 1}',
            headers={**headers, "Idempotency-Key": "two-process-key"},
            timeout=30,
        )

    keyed_responses = in_threads(CONCURRENCY, keyed)
    assert {r.status_code for r in keyed_responses} <= {201, 409}
    assert Bet.objects.filter(user=player).count() == 1
    assert len({r.json()["id"] for r in keyed_responses if r.status_code == 201}) == 1

    def bet(i):
        return requests.post(
            f"{two_servers[i % 2]}/api/bets",
            data='{"amount": 1}',
            headers=headers,
            timeout=30,
        )

    statuses = [r.status_code for r in in_threads(CONCURRENCY, bet)]
    assert all(s in (201, 400, 409) for s in statuses), statuses
    assert statuses.count(201) == 9  # the balance of 10 less the keyed bet
    assert Bet.objects.filter(user=player, status="completed").count() == 10
    assert_invariants(player, provider)
