"""A deploy loses no bet: real gunicorn processes (``gunicorn.conf.py``, as the bench
starts them: ``bench.stack``) against PostgreSQL, Redis and a slow simulator are
sent SIGTERM while bets wait on the provider. Every client must get its answer and
every bet must end ``completed``. About 20 s."""

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings

from bench.stack import Stack, StackConfig, children_of

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.simulator]

PROVIDER_LATENCY_MS = 400  # a bet makes 3-4 calls: 1.2-1.6 s at the provider
BETS = 6


def _free_ports(count: int) -> list[int]:
    """Ports in the bench's range that nothing listens on."""
    found = []
    for port in range(18440, 18460):  # 18461-18466: the growth bench, its tests
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                found.append(port)
        if len(found) == count:
            return found
    pytest.skip("no free port in 18440-18459")


@pytest.fixture(scope="module")
def stack():
    database = settings.DATABASES["default"]
    admin = urlsplit(os.environ["DATABASE_URL"])
    redis = urlsplit(settings.REDIS_URL)
    simulator_port, server_port = _free_ports(2)
    config = StackConfig(
        name="graceful-test",
        database=f"{database['NAME']}_graceful",
        redis_db=int(redis.path.strip("/") or 0),
        simulator_port=simulator_port,
        server_port=server_port,
        workers=2,
        threads=4,
        pg_admin_url=f"{admin.scheme}://{admin.netloc}",
        redis_base_url=f"{redis.scheme}://{redis.netloc}",
    )
    with Stack(config) as started:
        started.prepare()
        started.start()
        yield started
    with psycopg.connect(f"{config.pg_admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{config.database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def players(stack) -> list[dict]:
    out = stack.run_dir / "players.json"
    done = stack.python(
        "-m",
        "bench.seed",
        "--players",
        str(BETS),
        "--balance",
        "1000",
        "--prefix",
        "graceful",
        "--control-url",
        stack.control_url,
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Slow from now on (seeding calls the provider too).
    stack.control("POST", "latency", {"latency_ms": PROVIDER_LATENCY_MS})
    return json.loads(out.read_text())


def _bet(stack: Stack, player: dict) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        f"{stack.server_url}/api/bets",
        data=json.dumps({"amount": 1}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {player['token']}",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _bets_during(stack: Stack, players: list[dict], signal_them) -> list:
    """Fire one bet per player; once the provider holds them all, call
    ``signal_them``; answer every (status, body), however long they take."""
    with ThreadPoolExecutor(len(players)) as pool:
        answers = [pool.submit(_bet, stack, player) for player in players]
        # Every bet sent, at the provider (POST /bet or its result), none answered.
        time.sleep(PROVIDER_LATENCY_MS / 1000 * 1.5)
        assert not any(answer.done() for answer in answers)
        signal_them()
        return [answer.result() for answer in answers]


def _bets_by_status(stack: Stack) -> dict[str, int]:
    with psycopg.connect(stack.database_url) as conn:
        return dict(
            conn.execute("SELECT status, count(*) FROM bets GROUP BY status").fetchall()
        )


def test_sigterm_to_the_master_finishes_the_bets_in_flight(stack, players):
    before = sum(_bets_by_status(stack).values())
    master = stack.server
    assert master is not None
    answers = _bets_during(stack, players, lambda: master.send_signal(signal.SIGTERM))
    assert [status for status, _ in answers] == [201] * len(players), answers
    assert {body["status"] for _, body in answers} == {"completed"}
    assert master.wait(timeout=30) == 0  # it exited by itself, and cleanly
    stack.server = None
    by_status = _bets_by_status(stack)
    assert by_status == {"completed": before + len(players)}


def test_sigterm_to_one_worker_finishes_its_bets_and_the_master_replaces_it(
    stack, players
):
    stack.config.workers = 1  # every bet on the one worker signalled
    stack.start_server()
    (worker,) = stack.server_pids()[1:]
    before = sum(_bets_by_status(stack).values())
    answers = _bets_during(stack, players, lambda: os.kill(worker, signal.SIGTERM))
    assert [status for status, _ in answers] == [201] * len(players), answers
    assert {body["status"] for _, body in answers} == {"completed"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = children_of(stack.server.pid)
        if workers and worker not in workers:
            break
        time.sleep(0.1)
    assert workers, "the master started another worker"
    assert worker not in workers
    status, body = _bet(stack, players[0])  # and it serves
    assert (status, body["status"]) == (201, "completed")
    assert _bets_by_status(stack) == {"completed": before + len(players) + 1}
