"""``make soak``: mixed traffic under injected faults, server crashes and deploys,
and PostgreSQL and Redis failures, in each ``PROVIDER_STAKE_MODE``; then the
operator commands must leave every account equal to the provider and every
invariant intact.

The soak brings its own PostgreSQL cluster (``initdb`` into ``bench/.run/soak-pg``,
port 55433) and Redis server (port 56380), so that it can restart and kill them
without touching the machine's shared servers. For each stake mode, on a fresh
database ``betting_soak`` in that cluster and a flushed Redis:

1. start the simulator (that stake mode) and the server under gunicorn, seed
   players (linked and funded at the simulator);
2. make the simulator misbehave: on ``POST /bet``, ``POST /win``, ``POST
   /balance``, ``POST /auth`` and ``GET /bet``, every fault kind fires with
   ``--fault-rate`` probability (``numeric_bet_id`` on ``POST /bet`` only;
   delays once short and once longer than the read timeout, 2 s here);
3. run mixed traffic for ``--seconds``: bets with an ``Idempotency-Key`` (some
   replayed), balance reads, transaction and bet lists, results, recommendations;
   meanwhile the ``--faults``, evenly spread: PostgreSQL restarted ``fast`` and
   ``immediate``, Redis SIGKILLed and started again, the server SIGTERMed (a
   deploy) and started again, the whole server SIGKILLed and restarted, single
   workers SIGKILLed. A player whose bet is refused with 409
   ``BET_IN_PROGRESS``, a 5xx or no answer bets again every 0.5 s, on a task of
   its own, until a bet is accepted, so that how long players are blocked is
   measured closely;
4. stop the faults, wait for the leases of killed processes to expire (the wait
   is reported), then run ``settle_pending``, ``reconcile --fix``,
   ``check_ledger`` and ``reconcile``, and compare every account's ledger
   balance and every bet with the simulator's own state.

The report adds the 5xx answers by kind, the longest time a player was blocked
and, per fault, the time to the first accepted bet after it and to the next
accepted bet of each player who had one in flight. Writes
``bench/results/soak-latest.json`` and ``.md``. Exit status 1 when any invariant
fails, when any answer is a 500, or when a bet in flight at the SIGTERM got no
answer.
"""

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import psycopg

from bench import loadgen, report, soak_metrics
from bench.run import RESULTS, code_facts, machine_facts, step
from bench.stack import ROOT, Stack, StackConfig
from bench.stores import PgCluster, RedisServer

FAULT_ENDPOINTS = [
    ("/bet", "POST"),
    ("/win", "POST"),
    ("/balance", "POST"),
    ("/auth", "POST"),
    ("/bet", "GET"),
]
READ_TIMEOUT = 2.0
PG_PORT, REDIS_PORT = 55433, 56380
RETRY_BLOCKED = 0.5  # seconds between the bets of a blocked player
DEFAULT_FAULTS = (
    "pg-fast,server-kill,redis-kill,worker-kill,server-term,pg-immediate,"
    "server-kill,worker-kill"
)
SHORT_DELAY, LONG_DELAY = 0.2, READ_TIMEOUT + 0.5
FAULT_NAMES = (
    "server-kill",
    "server-term",
    "worker-kill",
    "pg-fast",
    "pg-immediate",
    "redis-kill",
)
MIX = [
    ("bet", 50),
    ("bet replay", 5),
    ("balance", 15),
    ("transactions", 10),
    ("result", 10),
    ("bets list", 5),
    ("recommended", 5),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=180, help="traffic per stake mode"
    )
    parser.add_argument("--modes", default="debit_on_loss,debit_on_place")
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.015,
        help="probability of each fault kind on each provider endpoint",
    )
    parser.add_argument(
        "--faults",
        default=DEFAULT_FAULTS,
        help="comma-separated, evenly spread over the traffic: "
        + ", ".join(FAULT_NAMES),
    )
    parser.add_argument(
        "--lease-wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the leases of killed processes to expire before "
        "settle_pending (--no-lease-wait: settle_pending right away, as an "
        "operator would after a crash)",
    )
    parser.add_argument("--balance", default="2000")
    parser.add_argument(
        "--drift-accounts",
        type=int,
        default=3,
        help="accounts whose provider balance is changed behind the server's back "
        "after settle_pending (reconcile --fix must book it)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="timestamped copies too")
    parser.add_argument("--output", default="soak-latest")
    args = parser.parse_args(argv)
    unknown = {f.strip() for f in args.faults.split(",") if f.strip()} - set(
        FAULT_NAMES
    )
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    return args


class SoakStores:
    """The soak's own PostgreSQL cluster and Redis server (``bench.stores``)."""

    def __init__(self) -> None:
        run = ROOT / "bench" / ".run"
        self.postgres = PgCluster(run / "soak-pg", PG_PORT)
        self.redis = RedisServer(run / "soak-redis", REDIS_PORT)

    def start(self) -> "SoakStores":
        self.postgres.create().start()
        self.redis.start()
        return self

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.destroy()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    result: dict[str, Any] = {
        "kind": "soak",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": vars(args),
        "machine": machine_facts(),
        "code": code_facts(),
        "description": (
            f"Per stake mode: {args.seconds:g} s of mixed traffic from "
            f"{args.players} players at {args.concurrency} concurrent clients; every "
            f"fault kind at {args.fault_rate:.1%} on each provider endpoint; "
            f"these faults, evenly spread: {args.faults.replace(',', ', ')} "
            f"(the soak's own PostgreSQL on port {PG_PORT} and Redis on port "
            f"{REDIS_PORT}); then settle_pending, "
            "reconcile --fix, check_ledger, reconcile, and a comparison of every "
            "account and bet with the simulator's state. The provider read timeout "
            f"is {READ_TIMEOUT:g} s (long delays become timeouts) and provider "
            "sessions last 10 s (so POST /auth is called, and faulted, throughout). "
            f"After settle_pending, {args.drift_accounts} accounts are moved at the "
            "provider behind the server's back, for reconcile --fix to find."
        ),
        "modes": [],
    }
    stores = SoakStores()
    try:
        step(f"the soak's own PostgreSQL (port {PG_PORT}) and Redis ({REDIS_PORT})")
        stores.start()
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            result["modes"].append(soak_mode(mode, args, stores))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        stores.stop()
        result["ok"] = bool(result["modes"]) and all(
            mode.get("ok") for mode in result["modes"]
        )
        if result.get("error"):
            result["ok"] = False
        result["duration_s"] = round(time.monotonic() - started, 1)
        paths = report.write(result, RESULTS, args.output, keep=args.keep)
        for mode in result["modes"]:
            print(f"{mode['stake_mode']}: {'PASS' if mode.get('ok') else 'FAIL'}")
            for failure in mode.get("failures", []):
                print(f"  - {failure}")
            for key, value in mode.get("final", {}).items():
                print(f"  {key}: {value}")
        print(f"Soak {'PASS' if result['ok'] else 'FAIL'} in {result['duration_s']} s")
        print("Reports: " + ", ".join(str(path.relative_to(ROOT)) for path in paths))
    return 0 if result["ok"] else 1


def soak_mode(
    mode: str, args: argparse.Namespace, stores: SoakStores
) -> dict[str, Any]:
    config = StackConfig(
        name=f"soak-{mode}",
        database="betting_soak",
        redis_db=0,
        pg_admin_url=stores.postgres.admin_url,
        redis_base_url=stores.redis.url,
        simulator_port=18411,
        server_port=18412,
        stake_mode=mode,
        simulator_seed=args.seed,
        # Provider sessions expire every 10 s, so that POST /auth (and its
        # faults) is part of the traffic too.
        extra_env={
            "EXTERNAL_API_READ_TIMEOUT": str(READ_TIMEOUT),
            "PROVIDER_SESSION_TTL": "10",
        },
    )
    entry: dict[str, Any] = {"stake_mode": mode, "players": args.players}
    with Stack(config) as stack:
        step(f"[{mode}] fresh database betting_soak, flushed Redis, migrations")
        stack.prepare()
        stack.start()
        step(f"[{mode}] seeding {args.players} players")
        players = seed(stack, args)
        rules = install_faults(stack, args.fault_rate)
        entry["fault_rules"] = rules
        step(f"[{mode}] {args.seconds:g} s of mixed traffic; faults: {args.faults}")
        traffic = asyncio.run(drive(stack, stores, players, args))
        entry.update(traffic)
        fired = stack.control("GET", "faults")["faults"]
        entry["faults_fired"] = fault_counts(fired)
        by_kind: Counter[str] = Counter()
        for rule in fired:
            by_kind[rule["kind"]] += rule["fired"]
        entry["faults_fired_by_kind"] = dict(sorted(by_kind.items()))
        entry["faults_fired_total"] = sum(rule["fired"] for rule in fired)
        stack.control("DELETE", "faults")
        entry["before_settling"] = database_state(stack)
        entry["leases_held_after_traffic"] = leases_held(stack)
        if args.lease_wait:
            step(f"[{mode}] waiting for the leases of killed processes to expire")
            entry["lease_wait_s"] = wait_for_leases(stack)
        else:
            entry["lease_wait_s"] = None
        step(f"[{mode}] settle_pending, reconcile --fix, check_ledger, reconcile")
        entry["steps"] = operator_steps(stack, players, args.drift_accounts, entry)
        step(f"[{mode}] comparing every account and bet with the simulator")
        simulator = stack.control("GET", "state")
        entry["final"], entry["failures"] = verify(
            stack, simulator, entry["steps"], entry["drift_injected"]
        )
        entry["failures"] += traffic_failures(entry)
        entry["targets"] = targets(entry)
    entry["ok"] = not entry["failures"]
    step(f"[{mode}] {'PASS' if entry['ok'] else 'FAIL'}")
    return entry


def fault_counts(rules: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rule in rules:
        name = f"{rule['kind']} {rule['method']} {rule['path']}"
        if rule["kind"].startswith("delay"):
            name += f" {rule['delay']:g}s"
        counts[name] = counts.get(name, 0) + rule["fired"]
    return counts


def seed(stack: Stack, args: argparse.Namespace) -> list[loadgen.Client]:
    out = stack.run_dir / "players.json"
    done = stack.python(
        "-m",
        "bench.seed",
        "--players",
        str(args.players),
        "--balance",
        args.balance,
        "--prefix",
        "soak",
        "--first-external-id",
        "600000",
        "--control-url",
        stack.control_url,
        "--out",
        str(out),
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
    rng = random.Random(args.seed)
    return [
        loadgen.Client(
            user_id=str(player["user_id"]),
            token=player["token"],
            rng=random.Random(rng.random()),
        )
        for player in json.loads(out.read_text())
    ]


def install_faults(stack: Stack, rate: float) -> int:
    """Every fault kind on every provider endpoint, each with probability
    ``rate`` (delays: half short, half longer than the read timeout)."""
    count = 0
    for path, method in FAULT_ENDPOINTS:
        rules: list[dict[str, Any]] = [
            {"kind": "error_before"},
            {"kind": "error_after"},
            {"kind": "rate_limit", "retry_after": 1},
            {"kind": "malformed_json"},
            {"kind": "drop_before"},
            {"kind": "drop_after"},
            # A delay kind fires at ``rate`` in all: half short, half a timeout.
            {"kind": "delay_before", "delay": SHORT_DELAY},
            {"kind": "delay_before", "delay": LONG_DELAY},
            {"kind": "delay_after", "delay": SHORT_DELAY},
            {"kind": "delay_after", "delay": LONG_DELAY},
        ]
        if (path, method) == ("/bet", "POST"):
            rules.append({"kind": "numeric_bet_id"})
        for rule in rules:
            probability = rate / 2 if rule["kind"].startswith("delay") else rate
            stack.control(
                "POST",
                "faults",
                {
                    "path": path,
                    "method": method,
                    "times": None,
                    "probability": probability,
                    **rule,
                },
            )
            count += 1
    return count


# --- traffic --------------------------------------------------------------------------


async def drive(
    stack: Stack,
    stores: "SoakStores",
    players: list[loadgen.Client],
    args: argparse.Namespace,
) -> dict[str, Any]:
    base = stack.server_url
    seconds = args.seconds
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    answers: list[soak_metrics.Answer] = []
    replays = Counter()
    replay_differences: list[dict[str, Any]] = []
    begin = time.monotonic()
    end = begin + seconds
    groups = [players[i :: args.concurrency] for i in range(args.concurrency)]
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    timeout = aiohttp.ClientTimeout(total=30)

    async def request(session, method, path, client, **kwargs) -> tuple[int, Any]:
        headers = {
            "Authorization": f"Bearer {client.token}",
            **kwargs.pop("headers", {}),
        }
        async with session.request(
            method, f"{base}{path}", headers=headers, **kwargs
        ) as response:
            raw = await response.read()
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            return response.status, (data, response.headers)

    def label(status: int, data: Any) -> str:
        if isinstance(data, dict):
            if data.get("success") is False and isinstance(data.get("error"), dict):
                return f"{status} {data['error'].get('code')}"
            if status == 201 and "status" in data:
                return f"{status} {data['status']}"
        return str(status)

    async def timed(
        name: str, client: loadgen.Client, method: str, path: str, **kwargs
    ) -> tuple[int, Any]:
        """One request, counted and kept as an ``Answer`` (a transport error
        too, as status 0)."""
        sent = time.monotonic()
        try:
            status, (data, headers) = await request(
                session_holder[0], method, path, client, **kwargs
            )
            text = label(status, data)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            status, data, headers = 0, None, {}
            text = f"0 {type(exc).__name__}"
            outcomes["transport errors"][type(exc).__name__] += 1
        else:
            outcomes[name][text] += 1
        answers.append(
            soak_metrics.Answer(
                start=sent - begin,
                end=time.monotonic() - begin,
                player=client.user_id,
                request=name,
                status=status,
                label=text,
            )
        )
        return status, (data, headers)

    async def bet(client: loadgen.Client, rng: random.Random, replay: bool) -> bool:
        """A bet (and with ``replay`` the same request again); answers whether
        the player is blocked (see ``soak_metrics``)."""
        key = uuid.uuid4().hex
        body = {"amount": rng.randint(1, 5)}
        status, (data, _) = await timed(
            soak_metrics.BET,
            client,
            "POST",
            "/api/bets",
            json=body,
            headers={"Idempotency-Key": key},
        )
        if status == 201 and isinstance(data, dict):
            client.last_bet_id = data.get("id")
        if replay and status in (201, 502):
            again, (replayed, headers) = await timed(
                "POST /api/bets (replay)",
                client,
                "POST",
                "/api/bets",
                json=body,
                headers={"Idempotency-Key": key},
            )
            same = again == status and replayed == data
            flagged = headers.get("Idempotent-Replayed") == "true"
            if same and flagged:
                replays["same answer"] += 1
            elif again == 0 or again >= 500:
                # The replay itself could not be answered (a store down): the
                # client retries it as it would the first request.
                replays[f"replay not answered ({label(again, replayed)})"] += 1
            else:
                replays["different"] += 1
                if len(replay_differences) < 5:
                    replay_differences.append(
                        {
                            "first": label(status, data),
                            "replay": label(again, replayed),
                            "flagged": flagged,
                        }
                    )
        text = label(status, data) if status else "0"
        return status == 0 or status >= 500 or text == "409 BET_IN_PROGRESS"

    retrying: set[str] = set()

    async def unblock(client: loadgen.Client, rng: random.Random) -> None:
        """A blocked player, on a task of its own, bets again every
        RETRY_BLOCKED seconds until a bet is accepted (or refused for the bet
        itself): how long players are blocked is measured to that grain, whatever
        the virtual client does meanwhile."""
        try:
            while time.monotonic() < end:
                await asyncio.sleep(RETRY_BLOCKED)
                if not await bet(client, rng, replay=False):
                    return
        finally:
            retrying.discard(client.user_id)

    async def user(own: list[loadgen.Client], rng: random.Random) -> None:
        while time.monotonic() < end:
            free = [c for c in own if c.user_id not in retrying]
            if not free:
                await asyncio.sleep(0.05)
                continue
            client = rng.choice(free)
            action = rng.choices(names, weights)[0]
            if action in ("bet", "bet replay"):
                if await bet(client, rng, action == "bet replay"):
                    retrying.add(client.user_id)
                    unblocking.append(
                        asyncio.create_task(
                            unblock(client, random.Random(rng.random()))
                        )
                    )
                continue
            if action == "balance":
                status, _ = await timed(
                    "GET /api/balance", client, "GET", "/api/balance"
                )
            elif action == "transactions":
                status, _ = await timed(
                    "GET /api/transactions",
                    client,
                    "GET",
                    "/api/transactions?page=1&limit=10",
                )
            elif action == "result" and client.last_bet_id:
                status, _ = await timed(
                    "GET /api/bets/result/{id}",
                    client,
                    "GET",
                    f"/api/bets/result/{client.last_bet_id}",
                )
            elif action == "bets list":
                status, _ = await timed(
                    "GET /api/bets", client, "GET", "/api/bets?status=pending"
                )
            elif action == "recommended":
                status, _ = await timed(
                    "GET /api/bets/recommended",
                    client,
                    "GET",
                    "/api/bets/recommended",
                )
            else:
                continue
            if status == 0:
                await asyncio.sleep(0.3)

    async def chaos() -> list[dict[str, Any]]:
        """The faults of ``--faults``, evenly spread over the traffic."""
        events = []
        plan = [f.strip() for f in args.faults.split(",") if f.strip()]
        for index, what in enumerate(plan):
            at = seconds * (index + 1) / (len(plan) + 1)
            await asyncio.sleep(max(0.0, begin + at - time.monotonic()))
            struck = time.monotonic() - begin
            event = await asyncio.to_thread(inject, what, stack, stores)
            events.append(
                {
                    "at_s": round(struck, 2),
                    "fault": what,
                    **event,
                    "took_s": round(time.monotonic() - begin - struck, 2),
                }
            )
        return events

    # Room for every player's request at once: the virtual clients' and the
    # blocked players' own retries.
    connector = aiohttp.TCPConnector(limit=args.concurrency + len(players))
    unblocking: list[asyncio.Task] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        session_holder = [session]
        chaos_task = asyncio.create_task(chaos())
        await asyncio.gather(
            *(
                user(group, random.Random(index))
                for index, group in enumerate(groups)
                if group
            )
        )
        await asyncio.gather(*unblocking)
        chaos_events = await chaos_task
    traffic_end = time.monotonic() - begin
    total = sum(sum(counter.values()) for counter in outcomes.values())
    found_blocks = soak_metrics.blocks(answers, traffic_end)
    return {
        "traffic_s": seconds,
        "concurrency": args.concurrency,
        "requests_total": total,
        "requests": {
            name: {
                "count": sum(counter.values()),
                "statuses": dict(counter.most_common()),
            }
            for name, counter in sorted(outcomes.items())
        },
        "idempotent_replays": dict(replays),
        "idempotent_replay_differences": replay_differences,
        "server_errors": soak_metrics.server_errors(answers),
        "longest_blocks": found_blocks[:5],
        "players_blocked": len({block["player"] for block in found_blocks}),
        "chaos": soak_metrics.recovery(answers, chaos_events, traffic_end),
    }


FAULTS = {
    "server-kill": "SIGKILL the gunicorn master and every worker, restart",
    "server-term": "SIGTERM the gunicorn master (a deploy), start again",
    "worker-kill": "SIGKILL one gunicorn worker",
    "pg-fast": "PostgreSQL restarted: pg_ctl -m fast restart",
    "pg-immediate": "PostgreSQL crashed and restarted: pg_ctl -m immediate restart",
    "redis-kill": "Redis SIGKILLed (its data lost), started again 1 s later",
}


def inject(what: str, stack: Stack, stores: "SoakStores") -> dict[str, Any]:
    """Do one fault; answers what it did and ``back_after_s``: when what it
    struck was back (the server answering, the store accepting connections; a
    killed worker at once, as its siblings carry on)."""
    event: dict[str, Any] = {"what": FAULTS[what]}
    struck = time.monotonic()
    back = struck
    if what == "server-kill":
        event["processes"] = stack.kill_server()
        time.sleep(1.0)
        stack.start_server()
        back = stack.answering_since or time.monotonic()
    elif what == "server-term":
        event["drained_s"] = round(stack.terminate_server(), 2)
        stack.start_server()
        back = stack.answering_since or time.monotonic()
    elif what == "worker-kill":
        event["pid"] = stack.kill_worker()
    elif what in ("pg-fast", "pg-immediate"):
        stores.postgres.restart(what.removeprefix("pg-"))
        back = time.monotonic()
    elif what == "redis-kill":
        stores.redis.kill()
        time.sleep(1.0)
        stores.redis.start()
        back = time.monotonic()
    else:  # pragma: no cover - parse_args refuses it
        raise ValueError(what)
    event["back_after_s"] = round(back - struck, 2)
    return event


# --- after the traffic ----------------------------------------------------------------


def database_state(stack: Stack) -> dict[str, Any]:
    with psycopg.connect(stack.database_url) as conn:
        bets = dict(
            conn.execute("SELECT status, count(*) FROM bets GROUP BY status").fetchall()
        )
        attention = conn.execute(
            "SELECT count(*) FROM bets WHERE needs_attention"
        ).fetchone()[0]
    return {"bets_by_status": bets, "needs_attention": attention}


def leases_held(stack: Stack) -> int | None:
    """Provider leases held now, neither expired nor past their holder's
    ``alive_until`` (None when the table cannot be read so)."""
    try:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            return conn.execute(
                "SELECT count(*) FROM provider_leases WHERE holder <> '' "
                "AND expires_at > now() "
                "AND (alive_until IS NULL OR alive_until > now())"
            ).fetchone()[0]
    except psycopg.Error:
        return None


def wait_for_leases(stack: Stack, limit: float = 90) -> float | None:
    """Wait until no provider lease is held (a killed process's lease expires by
    itself after PROVIDER_LEASE_TTL); answers the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        held = leases_held(stack)
        if held is None:
            return None
        if not held:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def operator_steps(
    stack: Stack, players: list[loadgen.Client], drift: int, entry: dict[str, Any]
) -> list[dict[str, Any]]:
    steps = []
    for attempt in range(3):
        steps.append(command(stack, "settle_pending", "--wait", "5"))
        if steps[-1]["exit_code"] == 0:
            break
        time.sleep(3 + attempt * 3)
    entry["drift_injected"] = inject_drift(stack, drift)
    steps.append(command(stack, "reconcile", "--fix"))
    steps.append(command(stack, "check_ledger"))
    steps.append(command(stack, "reconcile"))
    return steps


def inject_drift(stack: Stack, count: int) -> list[dict[str, str]]:
    """Move some provider balances behind the server's back (as an operator at the
    provider might): +7 on the first account, -3 on the next, alternating."""
    state = stack.control("GET", "state")
    soak_accounts = [
        account
        for account in state["accounts"]
        if account["username"].startswith("soak") and account["balance"] is not None
    ]
    moved = []
    for index, account in enumerate(soak_accounts[:count]):
        before = Decimal(str(account["balance"]))
        after = before + (Decimal(7) if index % 2 == 0 else Decimal(-3))
        # Whole stakes and a 2x payout keep every balance whole.
        stack.control(
            "POST", "balance", {"user_id": account["user_id"], "balance": int(after)}
        )
        moved.append(
            {"account": account["user_id"], "from": str(before), "to": str(after)}
        )
    return moved


NEXT_BET_WITHIN = 5.0  # the target after a crash or a database restart


def targets(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The recovery targets, measured (they do not decide the verdict, except
    where ``traffic_failures`` says so)."""
    rows = []
    errors = entry.get("server_errors", {})
    rows.append(
        {
            "target": "no 500 answer",
            "figure": f"{errors.get('500s')} of {errors.get('total')} 5xx",
            "met": not errors.get("500s"),
        }
    )
    grace = 3 * READ_TIMEOUT if entry["stake_mode"] == "debit_on_place" else 0.0
    limit = NEXT_BET_WITHIN + grace
    for event in entry.get("chaos", []):
        if event["fault"] == "server-term":
            cut = sum(
                n
                for label, n in event["bets_in_flight_answers"].items()
                if label.startswith("0 ")
            )
            rows.append(
                {
                    "target": f"SIGTERM at {event['at_s']:g} s: every bet in "
                    "flight answered",
                    "figure": f"{event['bets_in_flight'] - cut} of "
                    f"{event['bets_in_flight']}",
                    "met": not cut,
                }
            )
        if event["fault"] in ("server-kill", "worker-kill", "pg-fast", "pg-immediate"):
            longest = event["in_flight_next_bet_accepted_after_answer_max_s"]
            never = event["in_flight_players_never_accepted"]
            figure = "no bet in flight" if longest is None and not never else ""
            if longest is not None:
                figure = f"{longest:g} s"
            if never:
                figure += f"; {never} not before the traffic stopped"
            rows.append(
                {
                    "target": f"{event['fault']} at {event['at_s']:g} s: players "
                    f"with a bet in flight bet again within {limit:g} s of "
                    f"{'the restart' if event['fault'] != 'worker-kill' else 'it'}"
                    " or of their answer, the later"
                    + (f" ({NEXT_BET_WITHIN:g} + BET_UNKNOWN_GRACE)" if grace else ""),
                    "figure": figure,
                    "met": not never and (longest or 0) <= limit,
                }
            )
    settle = [
        s for s in entry.get("steps", []) if s["command"].startswith("settle_pending")
    ]
    if settle:
        rows.append(
            {
                "target": "settle_pending after the traffic exits 0 at its first run",
                "figure": ", ".join(
                    f"exit {s['exit_code']} in {s['seconds']:g} s" for s in settle
                )
                + (
                    f", after a lease wait of {entry['lease_wait_s']:g} s"
                    if entry.get("lease_wait_s") is not None
                    else ", without a lease wait"
                ),
                "met": settle[0]["exit_code"] == 0,
            }
        )
    return rows


def traffic_failures(entry: dict[str, Any]) -> list[str]:
    """What the traffic itself must not show, each on its own line."""
    failures = []
    errors = entry.get("server_errors", {})
    if errors.get("500s"):
        failures.append(
            f"{errors['500s']} answers were 500 (never for a failure of a store "
            f"or the provider): {errors.get('by_request')}"
        )
    for event in entry.get("chaos", []):
        if event["fault"] != "server-term":
            continue
        cut = {
            label: n
            for label, n in event["bets_in_flight_answers"].items()
            if label.startswith("0 ")
        }
        if cut:
            failures.append(
                f"bets in flight at the SIGTERM at {event['at_s']} s got no "
                f"answer: {cut}"
            )
    return failures


def command(stack: Stack, *args: str) -> dict[str, Any]:
    started = time.monotonic()
    done = stack.manage(*args)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    counts = Counter(line.split(" ", 1)[0] for line in lines)
    return {
        "command": " ".join(args),
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "summary": lines[-2:] + (errors[-2:] if done.returncode else []),
        "line_counts": {
            key: counts[key]
            for key in ("FIXED", "DRIFT", "SKIPPED", "BUSY", "ERROR", "VIOLATION")
            if counts[key]
        },
        "output_tail": lines[-15:],
    }


def verify(
    stack: Stack,
    simulator: dict[str, Any],
    steps: list[dict[str, Any]],
    drift_injected: list[dict[str, str]],
) -> tuple[dict[str, Any], list[str]]:
    """Every account against the provider, every bet against the provider's."""
    failures = []
    sim_balances = {
        account["user_id"]: Decimal(str(account["balance"]))
        for account in simulator["accounts"]
        if account["balance"] is not None
    }
    sim_bets = {bet["id"]: bet for bet in simulator["bets"]}
    with psycopg.connect(stack.database_url) as conn:
        accounts = conn.execute(
            "SELECT a.external_user_id, b.balance, b.held FROM external_api_accounts a "
            "JOIN user_balances b ON b.user_id = a.user_id WHERE a.is_active"
        ).fetchall()
        bets = conn.execute(
            "SELECT id, external_bet_id, status, amount, win_amount, needs_attention "
            "FROM bets"
        ).fetchall()
        entries = dict(
            conn.execute(
                "SELECT type, count(*) FROM transactions GROUP BY type"
            ).fetchall()
        )
        adjustments = conn.execute(
            "SELECT count(*), coalesce(sum(abs(amount)), 0) FROM transactions "
            "WHERE type = 'adjustment'"
        ).fetchone()
    differing = [
        f"{external}: ledger {balance}, provider {sim_balances.get(external)}"
        for external, balance, _held in accounts
        if sim_balances.get(external) != balance
    ]
    held = [f"{external}: held {h}" for external, _b, h in accounts if h]
    by_status = Counter(row[2] for row in bets)
    known_ids = {row[1] for row in bets if row[1] is not None}
    missing_at_provider = sorted(known_ids - set(sim_bets))
    win_mismatch = [
        f"bet {row[0]} ({row[1]}): ledger win {row[4]}, "
        f"provider {sim_bets[row[1]]['win']}"
        for row in bets
        if row[2] == "completed"
        and row[1] in sim_bets
        and Decimal(str(sim_bets[row[1]]["win"] or 0)) != row[4]
    ]
    provider_open_of_completed = [
        row[1]
        for row in bets
        if row[2] == "completed"
        and row[1] in sim_bets
        and sim_bets[row[1]]["status"] == "open"
    ]
    players = {external for external, _b, _h in accounts}
    orphans = Counter(
        bet["status"]
        for bet_id, bet in sim_bets.items()
        if bet["user_id"] in players and bet_id not in known_ids
    )
    void_without_id = sum(1 for row in bets if row[2] == "void" and row[1] is None)
    final = {
        "accounts": len(accounts),
        "accounts_equal_to_provider": len(accounts) - len(differing),
        "accounts_differing": len(differing),
        "accounts_with_held_stake": len(held),
        "bets_total": len(bets),
        "bets_by_status": dict(sorted(by_status.items())),
        "bets_open": by_status["pending"] + by_status["unknown"],
        "bets_flagged_needs_attention": sum(1 for row in bets if row[5]),
        "ledger_entries_by_type": dict(sorted(entries.items())),
        "adjustments": adjustments[0],
        "adjustments_abs_total": str(adjustments[1]),
        "provider_bets_total": sum(
            1 for bet in sim_bets.values() if bet["user_id"] in players
        ),
        "provider_bets_unknown_to_server": dict(orphans),
        "void_bets_without_provider_id": void_without_id,
        "server_bet_ids_missing_at_provider": len(missing_at_provider),
        "completed_bets_whose_win_differs": len(win_mismatch),
        "completed_bets_open_at_provider": len(provider_open_of_completed),
        "drift_injected_at_provider": len(drift_injected),
        "drift_fixed_by_reconcile": next(
            (
                s["line_counts"].get("FIXED", 0)
                for s in steps
                if s["command"] == "reconcile --fix"
            ),
            None,
        ),
    }
    settle = [s for s in steps if s["command"].startswith("settle_pending")]
    if not settle or settle[-1]["exit_code"] != 0:
        failures.append("settle_pending left bets open (invariant 5)")
    for name, label in (
        ("reconcile --fix", "reconcile --fix could not check or fix every account"),
        ("check_ledger", "check_ledger found violations (invariants 1-3)"),
        ("reconcile", "reconcile after --fix still finds drift (invariant 4)"),
    ):
        ran = [s for s in steps if s["command"] == name]
        if not ran or ran[-1]["exit_code"] != 0:
            failures.append(label)
    if differing:
        failures.append(
            f"{len(differing)} accounts differ from the provider: {differing[:5]}"
        )
    if held:
        failures.append(f"{len(held)} accounts still hold stakes: {held[:5]}")
    if final["bets_open"]:
        failures.append(f"{final['bets_open']} bets still open")
    if missing_at_provider:
        failures.append(
            f"{len(missing_at_provider)} bet ids unknown to the provider: "
            f"{missing_at_provider[:5]}"
        )
    if win_mismatch:
        failures.append(f"wins differ from the provider's: {win_mismatch[:5]}")
    if provider_open_of_completed:
        failures.append(
            "completed bets the provider never settled: "
            f"{provider_open_of_completed[:5]}"
        )
    fixed = final["drift_fixed_by_reconcile"] or 0
    if fixed < len(drift_injected):
        failures.append(
            f"reconcile --fix booked {fixed} drifts, fewer than the "
            f"{len(drift_injected)} injected"
        )
    if sum(orphans.values()) > void_without_id:
        failures.append(
            f"{sum(orphans.values())} provider bets unknown to the server, more than "
            f"the {void_without_id} void bets without a provider id (a bet placed "
            "twice, or lost)"
        )
    return final, failures


if __name__ == "__main__":
    sys.exit(main())
