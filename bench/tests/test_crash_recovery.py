"""A server process SIGKILLed mid-bet, with real gunicorn, PostgreSQL and Redis.

The lease TTL is set to 10 minutes here, so anything that frees the player
within the test is the dead holder being recognised (``alive_until``, kept up
by the keeper thread of a living process), never the TTL running out.
"""

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bench.stack import Stack, StackConfig

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LEASE_TTL = 600


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    config = StackConfig(
        name="crash-test",
        database="betting_crash_test",
        redis_db=10,
        simulator_port=18465,
        server_port=18466,
        workers=2,
        threads=2,
        extra_env={"PROVIDER_LEASE_TTL": str(LEASE_TTL)},
    )
    with Stack(config) as running:
        running.prepare()
        running.start()
        yield running


def _player(stack: Stack, prefix: str) -> dict[str, Any]:
    out = stack.run_dir / f"{prefix}.json"
    done = stack.python(
        "-m",
        "bench.seed",
        "--players",
        "1",
        "--balance",
        "100",
        "--prefix",
        prefix,
        "--first-external-id",
        str(abs(hash(prefix)) % 100000 + 700000),
        "--control-url",
        stack.control_url,
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())[0]


def _bet(
    stack: Stack, player: dict[str, Any], timeout: float = 30
) -> requests.Response:
    return requests.post(
        f"{stack.server_url}/api/bets",
        json={"amount": 1},
        headers={"Authorization": f"Bearer {player['token']}"},
        timeout=timeout,
    )


def _kill_mid_bet(stack: Stack, player: dict[str, Any]) -> float:
    """Start a bet the provider answers slowly, SIGKILL every worker while it is
    in flight (the master starts new ones); answers when the kill happened."""
    stack.control("POST", "latency", {"latency_ms": 3000})
    in_flight = threading.Thread(
        target=lambda: _swallow(lambda: _bet(stack, player, timeout=10)), daemon=True
    )
    in_flight.start()
    time.sleep(1.0)  # the bet is recorded, its POST /bet waits at the provider
    for pid in stack.server_pids()[1:]:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    stack.control("POST", "latency", {"latency_ms": 0})
    in_flight.join(timeout=15)
    return killed_at


def _swallow(call) -> None:
    with contextlib.suppress(requests.RequestException):
        call()  # its worker died: no answer


def _wait_for_workers(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{stack.server_url}/api/health/live", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("the master did not start new workers")


def test_the_players_next_bet_is_accepted_once_the_dead_holder_is_recognised(
    stack: Stack,
):
    player = _player(stack, "killed-next-bet")
    killed_at = _kill_mid_bet(stack, player)
    _wait_for_workers(stack)
    ready_at = time.monotonic()  # every worker was killed: new ones booted

    statuses = []
    while True:
        response = _bet(stack, player)
        statuses.append(response.status_code)
        if response.status_code == 201:
            break
        assert response.status_code == 409, response.text
        assert time.monotonic() - killed_at < LEASE_TTL / 10, statuses
        time.sleep(float(response.headers.get("Retry-After", "1")))
    accepted_after = time.monotonic() - killed_at
    print(
        f"next bet accepted {accepted_after:.1f} s after the kill, "
        f"{time.monotonic() - ready_at:.1f} s after new workers answered: {statuses}"
    )
    assert response.json()["status"] == "completed"
    assert accepted_after < LEASE_TTL / 10  # far from the TTL: recognised dead


def test_settle_pending_right_after_the_kill_waits_once_and_exits_0(stack: Stack):
    player = _player(stack, "killed-settle")
    _kill_mid_bet(stack, player)

    done = stack.manage("settle_pending", timeout=120)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "No open bets left." in done.stdout
    checked = stack.manage("check_ledger", timeout=120)
    assert checked.returncode == 0, checked.stdout[-2000:]
