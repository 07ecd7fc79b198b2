"""The load generator: asyncio + aiohttp, keep-alive connections, one virtual client
per player (each with its own JWT: a player has at most one open bet, so a client
sends its next bet only when the previous one has answered).

Closed loop (``closed_loop``): N clients, each sending its next request as soon as
the previous one answered, for a fixed time. Open loop (``open_loop``): requests
at a fixed arrival rate whatever the answers; latency is measured from the
*intended* send time, so a server that falls behind is charged for the queue it
builds (no coordinated omission). A request waits for a free player when all are
busy; that wait counts in its latency too.
"""

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from provider.signing import sign_body

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(slots=True)
class Sample:
    intended: float  # when it was meant to go (closed loop: when it went)
    sent: float
    done: float
    status: int  # 0: no HTTP answer
    detail: str  # a bet's status, an error code, or the exception's name


@dataclass
class Client:
    """One player (or one simulator account for the simulator's own capacity)."""

    user_id: str
    token: str = ""
    secret: str = ""
    rng: random.Random = field(default_factory=random.Random)
    last_bet_id: int | None = None


Action = Callable[[aiohttp.ClientSession, Client], Awaitable[tuple[int, str]]]


def new_session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit, keepalive_timeout=60, force_close=False
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=REQUEST_TIMEOUT, auto_decompress=False
    )


def _detail(status: int, raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return "not-json"
    if not isinstance(data, dict):
        return "?"
    if data.get("success") is False and isinstance(data.get("error"), dict):
        return str(data["error"].get("code", "?"))
    return str(data.get("status", "ok"))


# --- actions: one request each, answering (HTTP status, detail) -----------------------


def bet_action(base_url: str, *, idempotency_key: bool = True) -> Action:
    url = f"{base_url}/api/bets"

    async def place(session: aiohttp.ClientSession, client: Client) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {client.token}"}
        if idempotency_key:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        body = {"amount": client.rng.randint(1, 5)}
        async with session.post(url, json=body, headers=headers) as response:
            raw = await response.read()
            if response.status == 201:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    client.last_bet_id = json.loads(raw)["id"]
            return response.status, _detail(response.status, raw)

    return place


def floor_action(base_url: str) -> Action:
    """``POST /bench/floor`` (``bench.floor``) for a provider account at the
    simulator: the client's ``user_id`` and ``secret``, a stake of 1 to 5."""
    url = f"{base_url}/bench/floor"

    async def floor(session: aiohttp.ClientSession, client: Client) -> tuple[int, str]:
        body = {
            "user_id": client.user_id,
            "secret": client.secret,
            "amount": client.rng.randint(1, 5),
        }
        async with session.post(url, json=body) as response:
            raw = await response.read()
            if response.status == 201:
                return 201, "floor"
            try:
                return response.status, str(json.loads(raw).get("error"))[:80]
            except (ValueError, AttributeError):
                return response.status, "not-json"

    return floor


def get_action(base_url: str, path: str, *, auth: bool = True) -> Action:
    url = f"{base_url}{path}"

    async def get(session: aiohttp.ClientSession, client: Client) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {client.token}"} if auth else {}
        async with session.get(url, headers=headers) as response:
            raw = await response.read()
            detail = "ok" if response.status == 200 else _detail(response.status, raw)
            return response.status, detail

    return get


def simulator_cycle_action(api_url: str) -> Action:
    """One bet's provider traffic, straight to the simulator with signed requests:
    ``POST /bet``, ``POST /win``, ``POST /balance`` (read). Answers the first
    failure, or 200 "cycle"; ``simulator_requests`` counts the requests."""

    async def call(session, client: Client, path: str, body: dict | None) -> Any:
        signed = sign_body(body, client.secret)
        headers = {
            "user-id": client.user_id,
            "x-signature": signed.signature,
            "Content-Type": "application/json",
        }
        async with session.post(
            f"{api_url}{path}", data=signed.body or None, headers=headers
        ) as response:
            raw = await response.read()
            simulator_requests[0] += 1
            return response.status, raw

    async def cycle(session: aiohttp.ClientSession, client: Client) -> tuple[int, str]:
        status, raw = await call(session, client, "/bet", {"bet": 1})
        if status != 200:
            return status, "bet"
        bet_id = json.loads(raw)["bet_id"]
        status, raw = await call(session, client, "/win", {"bet_id": bet_id})
        if status != 200:
            return status, "win"
        status, raw = await call(session, client, "/balance", None)
        if status != 200:
            return status, "balance"
        return 200, "cycle"

    return cycle


simulator_requests = [0]  # requests sent by simulator_cycle_action


# --- drivers --------------------------------------------------------------------------


async def _timed(
    session: aiohttp.ClientSession, action: Action, client: Client, intended: float
) -> Sample:
    sent = time.monotonic()
    try:
        status, detail = await action(session, client)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        status, detail = 0, type(exc).__name__
    return Sample(intended, sent, time.monotonic(), status, detail)


async def closed_loop(
    session: aiohttp.ClientSession,
    action: Action,
    clients: list[Client],
    duration: float,
) -> list[Sample]:
    """Each client sends its next request when the previous one answered, until
    ``duration`` has passed; answers every request's sample."""
    samples: list[Sample] = []
    end = time.monotonic() + duration

    async def run(client: Client) -> None:
        while time.monotonic() < end:
            now = time.monotonic()
            samples.append(await _timed(session, action, client, now))

    await asyncio.gather(*(run(client) for client in clients))
    return samples


async def open_loop(
    session: aiohttp.ClientSession,
    action: Action,
    pool: list[Client],
    rate: float,
    duration: float,
) -> list[Sample]:
    """``rate`` requests a second for ``duration`` seconds, evenly spaced, each by
    a free client of ``pool``."""
    free: asyncio.Queue[Client] = asyncio.Queue()
    for client in pool:
        free.put_nowait(client)
    samples: list[Sample] = []
    tasks = []
    start = time.monotonic()

    async def one(client: Client, intended: float) -> None:
        try:
            samples.append(await _timed(session, action, client, intended))
        finally:
            free.put_nowait(client)

    for index in range(int(rate * duration)):
        intended = start + index / rate
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        client = await free.get()
        tasks.append(asyncio.create_task(one(client, intended)))
    await asyncio.gather(*tasks)
    return samples


# --- figures --------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(
    samples: list[Sample],
    *,
    start: float,
    end: float,
    ok: Callable[[Sample], bool],
    open_loop: bool = False,
) -> dict[str, Any]:
    """Figures of the requests that answered within ``[start, end]``: throughput
    of good answers, latency (from the intended send time), errors by status."""
    window = [sample for sample in samples if start <= sample.done <= end]
    seconds = max(end - start, 1e-9)
    good = [sample for sample in window if ok(sample)]
    latencies = sorted((sample.done - sample.intended) * 1000 for sample in window)
    statuses = Counter(str(sample.status) for sample in window)
    details = Counter(f"{sample.status} {sample.detail}" for sample in window)
    figures: dict[str, Any] = {
        "window_s": round(seconds, 2),
        "requests": len(window),
        "ok": len(good),
        "throughput": round(len(good) / seconds, 1),
        "requests_per_s": round(len(window) / seconds, 1),
        "error_rate": round(1 - len(good) / len(window), 4) if window else None,
        "statuses": dict(sorted(statuses.items())),
        "details": dict(details.most_common()),
        "latency_ms": {
            "p50": _round(percentile(latencies, 0.50)),
            "p95": _round(percentile(latencies, 0.95)),
            "p99": _round(percentile(latencies, 0.99)),
            "max": _round(latencies[-1] if latencies else None),
            "mean": _round(sum(latencies) / len(latencies) if latencies else None),
        },
    }
    if open_loop:
        lags = sorted((sample.sent - sample.intended) * 1000 for sample in window)
        figures["send_lag_ms"] = {
            "p50": _round(percentile(lags, 0.50)),
            "p99": _round(percentile(lags, 0.99)),
        }
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
