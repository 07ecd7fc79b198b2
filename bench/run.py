"""``make bench``: throughput, latency and cost of ``POST /api/bets``.

Starts the provider simulator and the server under gunicorn (production
``gunicorn.conf.py`` as committed, ``LOG_LEVEL=INFO``) against a fresh PostgreSQL
database and Redis database 14, rate limits off, seeds players, and drives:

1. a short warm-up (not reported);
2. the baseline ``GET /api/health/live`` at 32 clients;
3. ``POST /api/bets`` closed loop at each concurrency level (8, 32, 64), each
   client a player of its own sending its next bet when the previous answered,
   without an ``Idempotency-Key`` (the headline is the phase at 32); and once at
   32 with the key, to show what idempotency costs;
4. ``POST /api/bets`` open loop at 50% and 80% of the peak measured in 3, latency
   from the intended send time;
5. the floor (``bench/floor.py``): ``POST /bench/floor`` at 32 clients, the same
   three signed provider calls as a bet and one transaction of four statements,
   with no authentication and no ORM, on the same server;
6. bets at 64 clients while the simulator answers every request after 50 +/- 20 ms
   (``POST /__control/latency``), against the zero-latency peak;
7. the simulator's own capacity: signed bet/win/balance cycles straight to it;
8. with ``--profile``: a bets phase under py-spy (every gunicorn process).

Each phase also reads the transactions PostgreSQL committed for the bench
database (``bench/pgstats.py``: ``pg_stat_database``, read once every backend
has flushed its counts), checked first against a known number of commits.

Then ``check_ledger`` and ``reconcile`` against the bench database. Writes
``bench/results/bench-latest.json`` and ``.md`` (and a timestamped copy of each
with ``--keep``). Exit status: 0, or 1 when an invariant check failed or a phase
answered no good request at all.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import floor, loadgen, pgstats, probe, report
from bench.stack import PG_ADMIN_URL, ROOT, Stack, StackConfig

RESULTS = ROOT / "bench" / "results"
BET_KIND = "POST /api/bets"
HEALTH_KIND = "GET /api/health/live"
FLOOR_KIND = floor.KIND
FLOOR_ACCOUNTS = 32
# The targets of the issue: (summary key, label, operator, goal).
TARGETS = [
    ("server_cpu_ms_per_bet", "server CPU per bet (ms)", "<=", 7),
    ("pg_cpu_ms_per_bet", "PostgreSQL CPU per bet (ms)", "<=", 1.5),
    (
        "ratio_pg_cpu_bets_to_floor",
        "PostgreSQL CPU per bet over the floor's",
        "<=",
        1.6,
    ),
    (
        "sql_with_audit_per_bet",
        "SQL statements per bet, the audit log included",
        "<=",
        6,
    ),
    ("commits_per_bet", "commits per bet (pg_stat_database)", "<=", 3),
    ("ratio_bets_to_floor", "bets/s at 32 clients over floor/s", ">=", 0.7),
    ("p99_ms_at_50pct_of_peak", "p99 latency (ms) at 50% of peak, open loop", "<", 150),
    (
        "ratio_latency_50ms_to_peak",
        "bets/s at 64 clients with 50 ms provider latency over the zero-latency peak",
        ">=",
        0.9,
    ),
]
# The targets before the issue, still reported.
EARLIER_TARGETS = [
    ("bets_per_s_at_32", "bets/s at 32 concurrent clients", ">=", 200),
    (
        "p99_ms_at_50pct_of_peak",
        "p99 latency (ms) at 50% of peak, open loop",
        "<=",
        250,
    ),
    ("provider_calls_per_bet", "provider calls per bet", "<=", 3),
    ("sql_per_bet", "SQL statements per bet (audit log apart)", "<=", 15),
    ("ratio_bets_to_health", "bets/s over health-live requests/s", ">=", 0.15),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark POST /api/bets (see bench/README section in README)."
    )
    parser.add_argument("--players", type=int, default=128)
    parser.add_argument(
        "--levels", default="8,32,64", help="closed-loop concurrency levels"
    )
    parser.add_argument("--seconds", type=float, default=20, help="per bets phase")
    parser.add_argument(
        "--warmup", type=float, default=3, help="seconds of each phase not measured"
    )
    parser.add_argument("--baseline-seconds", type=float, default=12)
    parser.add_argument(
        "--open-loop", default="0.5,0.8", help="fractions of the peak, open loop"
    )
    parser.add_argument(
        "--key-phase",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a c=32 phase with Idempotency-Key (the others send none)",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the floor phase (POST /bench/floor at 32 clients)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=50,
        help="the provider latency of the latency phase (0: no such phase)",
    )
    parser.add_argument("--jitter-ms", type=float, default=20)
    parser.add_argument("--latency-clients", type=int, default=64)
    parser.add_argument(
        "--pg-quiet-seconds",
        type=float,
        default=pgstats.QUIET_SECONDS,
        help="wait this long after a phase before reading pg_stat_database "
        "(PostgreSQL 15 flushes an idle backend's counts within 10 s)",
    )
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: conf)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default: conf)")
    parser.add_argument("--stake-mode", default="debit_on_loss")
    parser.add_argument("--profile", action="store_true", help="py-spy a bets phase")
    parser.add_argument("--profile-seconds", type=float, default=20)
    parser.add_argument("--keep", action="store_true", help="timestamped copies too")
    parser.add_argument("--output", default="bench-latest", help="report file stem")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = datetime.now(UTC)
    started = time.monotonic()
    config = StackConfig(
        name="bench",
        database="betting_bench",
        redis_db=14,
        simulator_port=18401,
        server_port=18402,
        stake_mode=args.stake_mode,
        workers=args.workers,
        threads=args.threads,
        # As production runs: LOG_LEVEL=INFO and gunicorn.conf.py's own log level.
        log_level="INFO",
        gunicorn_log_level=None,
        # bench/wsgi.py routes POST /bench/floor (bench/urls.py) only with this.
        extra_env={"BENCH_FLOOR": "1"},
    )
    result: dict[str, Any] = {
        "kind": "bench",
        "started_at": started_at.isoformat(timespec="seconds"),
        "arguments": vars(args),
        "machine": machine_facts(),
        "code": code_facts(),
        "phases": [],
        "notes": [],
    }
    stack = Stack(config)
    counter = pgstats.CommitCounter(
        PG_ADMIN_URL, config.database, quiet=args.pg_quiet_seconds
    )
    exit_code = 0
    try:
        step("Preparing the database betting_bench, Redis db 14 and migrations")
        stack.prepare()
        result["machine"]["postgres_commit_ms"] = commit_latency(stack)
        floor_clients = floor_accounts(FLOOR_ACCOUNTS)
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            floor.create_tables(conn, [client.user_id for client in floor_clients])
        step(
            f"Checking the commit counter: 200 known commits, read after "
            f"{args.pg_quiet_seconds} s (and after 0.6 s)"
        )
        result["commit_counter_check"] = {
            "after_quiet_wait": pgstats.check(counter, stack.database_url),
            "after_0_6_s": pgstats.check(
                pgstats.CommitCounter(PG_ADMIN_URL, config.database, quiet=0.6),
                stack.database_url,
            ),
        }
        print(f"    {result['commit_counter_check']}", flush=True)
        step("Starting the simulator (:18401) and gunicorn (:18402)")
        stack.start()
        result["server"] = server_facts(stack)
        players = seed(stack, args.players, result)
        for client in floor_clients:
            stack.control(
                "POST",
                "accounts",
                {"user_id": client.user_id, "secret": client.secret, "balance": 100000},
            )
        counter.touched()
        asyncio.run(run_phases(stack, players, floor_clients, counter, args, result))
        step("check_ledger and reconcile")
        result["ledger"] = ledger_checks(stack)
        if not result["ledger"]["ok"]:
            exit_code = 1
        result["database"] = database_facts(stack)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"bench failed: {result['error']}", file=sys.stderr)
        exit_code = 1
        raise
    finally:
        stack.stop()
        result["duration_s"] = round(time.monotonic() - started, 1)
        result["summary"], result["targets"] = summarize(result)
        if any(phase.get("ok", 0) == 0 for phase in result["phases"]):
            exit_code = 1
        result["exit_code"] = exit_code
        paths = report.write(result, RESULTS, args.output, keep=args.keep)
        print(report.console_summary(result))
        print("Reports: " + ", ".join(str(path.relative_to(ROOT)) for path in paths))
    return exit_code


def step(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- set-up ---------------------------------------------------------------------------


def seed(stack: Stack, count: int, result: dict[str, Any]) -> list[loadgen.Client]:
    step(f"Seeding {count} players (linked and funded at the simulator)")
    out = stack.run_dir / "players.json"
    started = time.monotonic()
    done = stack.python(
        "-m",
        "bench.seed",
        "--players",
        str(count),
        "--control-url",
        stack.control_url,
        "--out",
        str(out),
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    result["players"] = count
    result["seed_s"] = round(time.monotonic() - started, 1)
    players = json.loads(out.read_text())
    return [
        loadgen.Client(
            user_id=str(player["user_id"]),
            token=player["token"],
            rng=random.Random(index),
        )
        for index, player in enumerate(players)
    ]


def floor_accounts(count: int) -> list[loadgen.Client]:
    """Provider accounts for the floor alone: created at the simulator, linked to
    no local user, so that the floor's bets move no seeded player's provider
    balance away from its ledger (``reconcile`` would see drift)."""
    return [
        loadgen.Client(
            user_id=f"floor{index:04d}",
            secret=secrets.token_hex(24),
            rng=random.Random(10_000 + index),
        )
        for index in range(count)
    ]


def machine_facts() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    try:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        postgres = "?"
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgres": postgres,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": "server, simulator, PostgreSQL, Redis and the load generator share "
        "the machine",
    }


def commit_latency(stack: Stack, count: int = 50) -> dict[str, float]:
    """How long PostgreSQL takes to commit one small insert (its WAL flush): the
    floor under every transaction of a bet, and a sign of how busy the disk is."""
    times = []
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_commit_probe (id serial, at timestamptz)")
        for _ in range(count):
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_commit_probe (at) VALUES (now())")
            times.append((time.perf_counter() - started) * 1000)
        conn.execute("DROP TABLE bench_commit_probe")
    times.sort()
    return {
        "p50": round(loadgen.percentile(times, 0.5), 2),
        "p95": round(loadgen.percentile(times, 0.95), 2),
        "max": round(times[-1], 2),
    }


def code_facts() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line for line in git("status", "--porcelain").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": changed}


def server_facts(stack: Stack) -> dict[str, Any]:
    return {
        "gunicorn": "gunicorn.conf.py (production), gthread workers",
        "workers": stack.worker_count(),
        "threads": stack.thread_count(),
        "pids_at_start": len(stack.server_pids()),
        "stake_mode": stack.config.stake_mode,
        "database": stack.database_url,
        "redis": stack.redis_url,
        "env": {
            key: stack.env().get(key, "(gunicorn.conf.py default)")
            for key in (
                "DEBUG",
                "LOG_LEVEL",
                "GUNICORN_LOG_LEVEL",
                "RATE_LIMIT_GLOBAL",
                "RATE_LIMIT_AUTH",
                "RATE_LIMIT_BETS",
                "EXTERNAL_API_URL",
            )
        },
    }


# --- phases ---------------------------------------------------------------------------


async def run_phases(
    stack: Stack,
    players: list[loadgen.Client],
    floor_clients: list[loadgen.Client],
    counter: pgstats.CommitCounter,
    args: argparse.Namespace,
    result: dict[str, Any],
) -> None:
    levels = [int(level) for level in args.levels.split(",") if level]
    base = stack.server_url
    no_key = loadgen.bet_action(base, idempotency_key=False)
    session = loadgen.new_session(limit=max(len(players), 100))
    async with session:
        step("Warm-up: bets at 32 clients, 6 s (not reported)")
        await loadgen.closed_loop(session, no_key, players[:32], 6)
        if args.floor:
            await loadgen.closed_loop(
                session, loadgen.floor_action(base), floor_clients, 2
            )
        counter.touched()

        step(f"Baseline: GET /api/health/live at 32 clients, {args.baseline_seconds} s")
        health = loadgen.get_action(base, "/api/health/live", auth=False)
        await phase(
            stack,
            result,
            name="health-live c=32",
            target="health",
            kind=HEALTH_KIND,
            run=lambda: loadgen.closed_loop(
                session, health, players[:32], args.baseline_seconds
            ),
            seconds=args.baseline_seconds,
            warmup=min(args.warmup, 2),
            ok=lambda sample: sample.status == 200,
            concurrency=32,
        )

        simulator_before = simulator_calls(stack)
        server_before = probe.snapshot(stack, settle=0.7)
        for level in levels:
            clients = players[:level]
            step(
                f"Bets closed loop at {level} clients, no Idempotency-Key, "
                f"{args.seconds} s"
            )
            await phase(
                stack,
                result,
                name=f"bets c={level}",
                target="bets",
                kind=BET_KIND,
                run=lambda clients=clients: loadgen.closed_loop(
                    session, no_key, clients, args.seconds
                ),
                seconds=args.seconds,
                warmup=args.warmup,
                ok=bet_ok,
                counter=counter,
                concurrency=level,
            )
        if args.key_phase:
            step(
                f"Bets closed loop at 32 clients with Idempotency-Key, "
                f"{args.baseline_seconds} s"
            )
            with_key = loadgen.bet_action(base, idempotency_key=True)
            await phase(
                stack,
                result,
                name="bets c=32 with key",
                target="bets-key",
                kind=BET_KIND,
                run=lambda: loadgen.closed_loop(
                    session, with_key, players[:32], args.baseline_seconds
                ),
                seconds=args.baseline_seconds,
                warmup=min(args.warmup, 2),
                ok=bet_ok,
                counter=counter,
                concurrency=32,
            )

        peak = max(
            (p["throughput"] for p in result["phases"] if p["target"] == "bets"),
            default=0,
        )
        for fraction in [float(f) for f in args.open_loop.split(",") if f]:
            rate = max(1.0, round(peak * fraction, 1))
            step(
                f"Bets open loop at {rate}/s ({fraction:.0%} of the peak {peak}/s), "
                f"{args.seconds} s"
            )
            await phase(
                stack,
                result,
                name=f"bets open {fraction:.0%} of peak",
                target="bets-open",
                kind=BET_KIND,
                run=lambda rate=rate: loadgen.open_loop(
                    session, no_key, players, rate, args.seconds
                ),
                seconds=args.seconds,
                warmup=args.warmup,
                ok=bet_ok,
                counter=counter,
                rate=rate,
                fraction=fraction,
                open_loop=True,
            )
        server_after = probe.snapshot(stack, settle=0.7)
        simulator_after = simulator_calls(stack)
        result["provider_cross_check"] = provider_cross_check(
            simulator_before, simulator_after, server_before, server_after
        )

        if args.floor:
            step(
                f"Floor: POST /bench/floor at 32 clients (3 signed provider calls, "
                f"1 transaction of {floor.STATEMENTS} statements), {args.seconds} s"
            )
            await phase(
                stack,
                result,
                name="floor c=32",
                target="floor",
                kind=FLOOR_KIND,
                run=lambda: loadgen.closed_loop(
                    session, loadgen.floor_action(base), floor_clients, args.seconds
                ),
                seconds=args.seconds,
                warmup=args.warmup,
                ok=bet_ok,
                counter=counter,
                concurrency=32,
            )

        if args.latency_ms:
            level = args.latency_clients
            step(
                f"Bets closed loop at {level} clients with {args.latency_ms:g} +/- "
                f"{args.jitter_ms:g} ms provider latency, {args.seconds} s"
            )
            latency = stack.control(
                "POST",
                "latency",
                {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms},
            )
            try:
                await phase(
                    stack,
                    result,
                    name=f"bets c={level} with {args.latency_ms:g} ms provider latency",
                    target="bets-latency",
                    kind=BET_KIND,
                    run=lambda: loadgen.closed_loop(
                        session, no_key, players[:level], args.seconds
                    ),
                    seconds=args.seconds,
                    warmup=args.warmup,
                    ok=bet_ok,
                    counter=counter,
                    concurrency=level,
                    provider_latency=latency,
                )
            finally:
                stack.control("POST", "latency", {"latency_ms": 0})

        step("Trace: one bet, statement by statement (in process)")
        result["trace"] = {
            "without_key": trace_one_bet(stack, players[-1], key=False),
            "with_key": trace_one_bet(stack, players[-1], key=True),
        }
        counter.touched()

        if args.profile:
            await profile_phase(stack, result, session, no_key, players, args)

    await simulator_capacity(stack, result, args)


def trace_one_bet(stack: Stack, player: loadgen.Client, *, key: bool) -> dict:
    done = stack.python(
        "-m",
        "bench.sql_trace",
        "--token",
        player.token,
        *(() if key else ("--no-key",)),
    )
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"error": done.stdout[-2000:]}


def bet_ok(sample: loadgen.Sample) -> bool:
    return sample.status == 201


async def phase(
    stack: Stack,
    result: dict[str, Any],
    *,
    name: str,
    target: str,
    kind: str,
    run,
    seconds: float,
    warmup: float,
    ok,
    counter: pgstats.CommitCounter | None = None,
    open_loop: bool = False,
    **facts: Any,
) -> dict[str, Any]:
    """One phase: its load, the figures of its measured window, and its costs over
    the whole phase. With ``counter``, the commits PostgreSQL counted for the bench
    database over the phase (read once every backend has flushed them)."""
    commits_before = counter.read() if counter else None
    before = probe.snapshot(stack)
    sampler = probe.BackendSampler(stack.config.database).start()
    started = time.monotonic()
    try:
        samples = await run()
        after = probe.snapshot(stack)
    finally:
        sampled = sampler.stop()
    exited = set(sampled) - set(after.postgres)
    after.postgres = probe.merge_backends(sampled, after.postgres)
    commits_after = None
    if counter:
        counter.touched()
        commits_after = counter.read()
    figures = loadgen.summarize(
        samples,
        start=started + warmup,
        end=started + seconds,
        ok=ok,
        open_loop=open_loop,
    )
    everything = loadgen.summarize(
        samples, start=0, end=float("inf"), ok=ok, open_loop=open_loop
    )
    good = everything["ok"]
    entry = {
        "name": name,
        "target": target,
        **facts,
        "seconds": seconds,
        "measured_after_s": warmup,
        **figures,
        "cost": {
            **probe.cost_figures(before, after, good),
            "pg_backends_exited": len(exited),
        },
        "server": probe.server_figures(before, after, kind),
    }
    if counter:
        entry["postgres"] = {
            **(pgstats.delta(commits_after, commits_before) or {}),
            "answered_ok": good,
            "commits_per_ok": pgstats.per(commits_after, commits_before, good),
        }
    result["phases"].append(entry)
    latency = figures["latency_ms"]
    commits = entry.get("postgres", {}).get("commits_per_ok")
    print(
        f"    {figures['throughput']}/s ok, p50 {latency['p50']} ms, p99 "
        f"{latency['p99']} ms, errors {figures['error_rate']}, "
        f"server CPU {entry['cost']['cpu_ms_per_ok']['server']} ms/ok, PG CPU "
        f"{entry['cost']['cpu_ms_per_ok']['postgres']} ms/ok, SQL "
        f"{entry['server'].get('sql_per_request')}/req, provider calls "
        f"{entry['server'].get('provider_calls_per_request')}/req"
        + ("" if commits is None else f", PG commits {commits}/ok"),
        flush=True,
    )
    return entry


def simulator_calls(stack: Stack) -> dict[str, int]:
    state = stack.control("GET", "state")
    return {**state.get("calls", {}), "_served": state.get("requests_served", 0)}


def provider_cross_check(sim_before, sim_after, server_before, server_after):
    """The provider calls the simulator counted over the bets phases against those
    the server counted, per bet."""
    calls = {
        key: value - sim_before.get(key, 0)
        for key, value in sim_after.items()
        if not key.startswith("_") and value - sim_before.get(key, 0)
    }
    bets = probe.kind_delta(server_before, server_after, BET_KIND)
    counted = sum(
        probe.kind_delta(server_before, server_after, kind)["provider_calls"]
        for kind in server_after.stats
    )
    total = sum(calls.values())
    return {
        "simulator_calls": calls,
        "simulator_total": total,
        "server_counted_total": counted,
        "bet_requests": bets["requests"],
        "simulator_calls_per_bet": round(total / bets["requests"], 3)
        if bets["requests"]
        else None,
    }


async def simulator_capacity(
    stack: Stack, result: dict[str, Any], args: argparse.Namespace
) -> None:
    """Signed bet/win/balance cycles straight to the simulator, 32 clients."""
    step(f"Baseline: simulator capacity, 32 clients, {args.baseline_seconds} s")
    clients = []
    for index in range(32):
        user_id, secret = f"capacity{index}", f"capacity-secret-{index:04d}-bench"
        stack.control(
            "POST",
            "accounts",
            {"user_id": user_id, "secret": secret, "balance": 1000000000},
        )
        clients.append(loadgen.Client(user_id=user_id, secret=secret))
    action = loadgen.simulator_cycle_action(f"{stack.simulator_url}/api")
    session = loadgen.new_session(limit=64)
    async with session:
        before = probe.snapshot(stack, settle=0.2)
        requests_before = loadgen.simulator_requests[0]
        started = time.monotonic()
        samples = await loadgen.closed_loop(
            session, action, clients, args.baseline_seconds
        )
        after = probe.snapshot(stack, settle=0.2)
    requests = loadgen.simulator_requests[0] - requests_before
    elapsed = time.monotonic() - started
    figures = loadgen.summarize(
        samples,
        start=started + 2,
        end=started + args.baseline_seconds,
        ok=lambda sample: sample.status == 200,
    )
    cost = probe.cost_figures(before, after, figures["ok"])
    entry = {
        "name": "simulator capacity c=32",
        "target": "simulator",
        "concurrency": 32,
        "seconds": args.baseline_seconds,
        "measured_after_s": 2,
        **figures,
        "simulator_requests_per_s": round(requests / elapsed, 1),
        "cost": cost,
        "server": {},
    }
    result["phases"].append(entry)
    print(
        f"    {figures['throughput']} cycles/s (bet+win+balance), "
        f"{entry['simulator_requests_per_s']} requests/s, p99 "
        f"{figures['latency_ms']['p99']} ms per cycle",
        flush=True,
    )


async def profile_phase(stack, result, session, action, players, args) -> None:
    """A bets phase at 32 clients with py-spy sampling every gunicorn process."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        result["notes"].append("--profile: py-spy is not installed")
        return
    raw = stack.run_dir / "profile.txt"
    master = stack.server_pids()[0]
    step(f"Profile: bets at 32 clients under py-spy, {args.profile_seconds} s")
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(master),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--rate",
            "97",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--duration",
            str(int(args.profile_seconds)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    time.sleep(1.0)
    try:
        await phase(
            stack,
            result,
            name="bets c=32 under py-spy",
            target="bets-profiled",
            kind=BET_KIND,
            run=lambda: loadgen.closed_loop(
                session, action, players[:32], args.profile_seconds - 2
            ),
            seconds=args.profile_seconds - 2,
            warmup=1,
            ok=bet_ok,
            concurrency=32,
        )
    finally:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    if raw.exists():
        from bench import profile_summary

        summary = profile_summary.summarize(raw.read_text())
        result["profile"] = summary
        (RESULTS / "profile-latest.md").write_text(
            profile_summary.markdown(summary, source=str(raw.relative_to(ROOT)))
        )
    else:
        error = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
        result["notes"].append(f"py-spy wrote no profile: {error[-500:]}")


# --- after the run --------------------------------------------------------------------


def ledger_checks(stack: Stack) -> dict[str, Any]:
    checks = {}
    for name, args in (
        ("check_ledger", ("check_ledger",)),
        ("reconcile", ("reconcile",)),
    ):
        done = stack.manage(*args)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        checks[name] = {
            "exit_code": done.returncode,
            "summary": lines[-2:] + errors[-2:],
            "violations": [
                line
                for line in lines
                if line.startswith(("VIOLATION", "DRIFT", "ERROR", "BUSY"))
            ][:20],
        }
    checks["ok"] = all(check["exit_code"] == 0 for check in checks.values())
    return checks


def database_facts(stack: Stack) -> dict[str, Any]:
    with psycopg.connect(stack.database_url) as conn:
        bets = dict(
            conn.execute("SELECT status, count(*) FROM bets GROUP BY status").fetchall()
        )
        entries = dict(
            conn.execute(
                "SELECT type, count(*) FROM transactions GROUP BY type"
            ).fetchall()
        )
        logs = dict(
            conn.execute(
                "SELECT direction, count(*) FROM api_logs GROUP BY direction"
            ).fetchall()
        )
    return {"bets_by_status": bets, "ledger_entries": entries, "api_logs": logs}


# --- summary --------------------------------------------------------------------------


def ratio(numerator: Any, denominator: Any, digits: int = 3) -> float | None:
    """``numerator / denominator`` rounded, or None when either is missing or the
    denominator is 0."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def target_row(
    label: str, measured: Any, operator: str, goal: float, group: str = "issue"
) -> dict[str, Any]:
    """One row of a targets table: met is None when nothing was measured."""
    met = None
    if measured is not None:
        met = {
            "<=": measured <= goal,
            "<": measured < goal,
            ">=": measured >= goal,
        }[operator]
    return {
        "target": label,
        "goal": f"{operator} {goal}",
        "measured": measured,
        "met": met,
        "group": group,
    }


def summarize(result: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    phases = result.get("phases", [])

    def find(target: str, **where: Any) -> dict[str, Any] | None:
        for phase_ in phases:
            if phase_["target"] == target and all(
                phase_.get(key) == value for key, value in where.items()
            ):
                return phase_
        return None

    def cpu(phase_: dict[str, Any] | None, process: str) -> float | None:
        return None if phase_ is None else phase_["cost"]["cpu_ms_per_ok"][process]

    def commits(phase_: dict[str, Any] | None) -> float | None:
        return (
            None if phase_ is None else phase_.get("postgres", {}).get("commits_per_ok")
        )

    def sql_all(server: dict[str, Any]) -> float | None:
        if server.get("sql_per_request") is None:
            return None
        return round(
            server["sql_per_request"] + (server.get("sql_apilog_per_request") or 0), 2
        )

    bets = [p for p in phases if p["target"] == "bets"]
    peak = max(bets, key=lambda p: p["throughput"], default=None)
    at32 = find("bets", concurrency=32)  # the headline: no Idempotency-Key
    health = find("health")
    half = find("bets-open", fraction=0.5)
    simulator = find("simulator")
    floor_phase = find("floor")
    latency = find("bets-latency")
    summary: dict[str, Any] = {}
    if peak:
        summary["peak_bets_per_s"] = peak["throughput"]
        summary["peak_at_concurrency"] = peak.get("concurrency")
    if at32:
        server = at32["server"]
        summary["headline_phase"] = f"{at32['name']} (no Idempotency-Key)"
        summary["bets_per_s_at_32"] = at32["throughput"]
        summary["p99_ms_at_32"] = at32["latency_ms"]["p99"]
        summary["provider_calls_per_bet"] = server.get("provider_calls_per_request")
        summary["sql_per_bet"] = server.get("sql_per_request")
        summary["sql_apilog_per_bet"] = server.get("sql_apilog_per_request")
        summary["sql_with_audit_per_bet"] = sql_all(server)
        summary["db_round_trips_per_bet"] = server.get("db_round_trips_per_request")
        summary["commits_per_bet"] = commits(at32)
        summary["pg_commits_counted_per_bet"] = server.get(
            "pg_commits_counted_per_request"
        )
        summary["server_cpu_ms_per_bet"] = cpu(at32, "server")
        summary["pg_cpu_ms_per_bet"] = cpu(at32, "postgres")
        summary["error_rate_at_32"] = at32["error_rate"]
    cores = result.get("machine", {}).get("cores") or 1
    if at32 and health:
        # Noise-proof estimates: what the CPU each answer cost (server, simulator,
        # PostgreSQL, load generator) would allow if nothing else ran.
        bet_ms = sum(v or 0 for v in at32["cost"]["cpu_ms_per_ok"].values())
        health_ms = sum(v or 0 for v in health["cost"]["cpu_ms_per_ok"].values())
        if bet_ms and health_ms:
            summary["cpu_ms_per_bet_all_processes"] = round(bet_ms, 2)
            summary["cpu_bound_ceiling_bets_per_s"] = round(cores * 1000 / bet_ms, 1)
            summary["cpu_bound_ceiling_health_per_s"] = round(
                cores * 1000 / health_ms, 1
            )
            summary["cpu_bound_ceiling_ratio"] = round(health_ms / bet_ms, 3)
    with_key = find("bets-key")
    if with_key:
        summary["bets_per_s_at_32_with_key"] = with_key["throughput"]
        summary["sql_per_bet_with_key"] = with_key["server"].get("sql_per_request")
        summary["sql_with_audit_per_bet_with_key"] = sql_all(with_key["server"])
        summary["commits_per_bet_with_key"] = commits(with_key)
        summary["server_cpu_ms_per_bet_with_key"] = cpu(with_key, "server")
    if health:
        summary["health_live_per_s"] = health["throughput"]
        if at32:
            summary["ratio_bets_to_health"] = ratio(
                at32["throughput"], health["throughput"]
            )
    if floor_phase:
        server = floor_phase["server"]
        summary["floor_per_s"] = floor_phase["throughput"]
        summary["p99_ms_floor"] = floor_phase["latency_ms"]["p99"]
        summary["server_cpu_ms_per_floor"] = cpu(floor_phase, "server")
        summary["pg_cpu_ms_per_floor"] = cpu(floor_phase, "postgres")
        summary["commits_per_floor"] = commits(floor_phase)
        summary["sql_per_floor"] = sql_all(server)
        summary["db_round_trips_per_floor"] = server.get("db_round_trips_per_request")
        summary["provider_calls_per_floor"] = server.get("provider_calls_per_request")
        if at32:
            summary["ratio_bets_to_floor"] = ratio(
                at32["throughput"], floor_phase["throughput"]
            )
            summary["ratio_pg_cpu_bets_to_floor"] = ratio(
                cpu(at32, "postgres"), cpu(floor_phase, "postgres"), 2
            )
            summary["ratio_server_cpu_bets_to_floor"] = ratio(
                cpu(at32, "server"), cpu(floor_phase, "server"), 2
            )
    if latency:
        setting = latency.get("provider_latency") or {}
        summary["provider_latency_ms"] = (
            f"{setting.get('latency_ms')} +/- {setting.get('jitter_ms')}"
        )
        summary["bets_per_s_latency_50ms_c64"] = latency["throughput"]
        summary["p99_ms_latency_50ms_c64"] = latency["latency_ms"]["p99"]
        if peak:
            summary["ratio_latency_50ms_to_peak"] = ratio(
                latency["throughput"], peak["throughput"]
            )
    if half:
        summary["p99_ms_at_50pct_of_peak"] = half["latency_ms"]["p99"]
    if simulator:
        summary["simulator_cycles_per_s"] = simulator["throughput"]
        summary["simulator_requests_per_s"] = simulator["simulator_requests_per_s"]
        if at32:
            # A bet is one such cycle at the provider: how close the server comes
            # to what the provider alone can take.
            summary["ratio_bets_to_simulator_cycles"] = ratio(
                at32["throughput"], simulator["throughput"]
            )
    check = (result.get("commit_counter_check") or {}).get("after_quiet_wait")
    if check:
        summary["commit_counter_verified"] = check.get("ok")

    targets = [
        target_row(label, summary.get(key), operator, goal)
        for key, label, operator, goal in TARGETS
    ] + [
        target_row(label, summary.get(key), operator, goal, group="earlier")
        for key, label, operator, goal in EARLIER_TARGETS
    ]
    return summary, targets


if __name__ == "__main__":
    sys.exit(main())
