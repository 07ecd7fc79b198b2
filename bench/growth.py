"""``make bench-growth``: the pages and commands whose cost grows with the data.

Builds issue 13's data set in SQL (``bench.growth_seed``: 10,000 players, 2,000,000
settled bets, one player with 200,000 of them, their ledger entries, 5,000,000 API
log rows over 90 days), starts the server under gunicorn (``bench.stack``) and
times, through HTTP as staff and players use them:

- the admin changelists, plain, filtered and searched the way staff search
  (username, provider user id, provider bet id, request id), a bet's page and the
  dashboard;
- a player's first and last page of bets and of transactions, by page number and
  by cursor, and ``?status=completed``;
- ``check_ledger`` (wall time and peak memory);
- ``prune_logs --older-than 30d`` (3.3 M rows) while bets arrive at the bench's
  50%-of-peak rate, with the bets' p99 before and during.

Each request is sent once to warm up, then ``--repeat`` times; the report gives
the median and the worst. ``--reuse`` keeps a database built before (only the
API log is rebuilt if a prune emptied it), so a code change can be measured on
the same data. Reports: ``bench/results/growth-latest.{json,md}``.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench import loadgen
from bench.growth_seed import ADMIN_USERNAME, GROWTH_PASSWORD, HEAVY_USERNAME
from bench.run import code_facts, machine_facts
from bench.stack import PYTHON, ROOT, Stack, StackConfig

RESULTS = ROOT / "bench" / "results"


def bench_half_load() -> tuple[float, float]:
    """The rate and the p99 (ms) of ``POST /api/bets`` at 50% of peak, open loop,
    in the last ``make bench`` (bench/results/bench-latest.json): the figure the
    bets' p99 during ``prune_logs`` is held to."""
    report = json.loads((RESULTS / "bench-latest.json").read_text())
    for phase in report["phases"]:
        if phase.get("fraction") == 0.5 and phase.get("target") == "bets-open":
            return float(phase["rate"]), float(phase["latency_ms"]["p99"])
    raise SystemExit("bench-latest.json has no 50%-of-peak phase: run make bench")


BENCH_HALF_LOAD_RATE, BENCH_P99_AT_HALF_LOAD_MS = bench_half_load()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", default=os.environ.get("GROWTH_DATABASE", "betting_growth")
    )
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--port", type=int, default=18461, help="simulator; +1 server")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-prune", action="store_true")
    parser.add_argument("--prune-rate", type=float, default=BENCH_HALF_LOAD_RATE)
    parser.add_argument(
        "--prune-args", default="", help='more for prune_logs, e.g. "--pause 0.05"'
    )
    parser.add_argument("--output", default="growth-latest")
    parser.add_argument("--label", default="", help="what this run measures")
    return parser.parse_args(argv)


def step(message: str) -> None:
    print(f"[growth {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    result: dict[str, Any] = {
        "kind": "growth",
        "label": args.label,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": vars(args),
        "machine": machine_facts(),
        "code": code_facts(),
        "pages": {},
        "notes": [],
    }
    stack = Stack(
        StackConfig(
            name="growth",
            database=args.database,
            redis_db=args.redis_db,
            simulator_port=args.port,
            server_port=args.port + 1,
        )
    )
    try:
        built = args.reuse and _has_data(stack)
        step(f"Database {args.database}: " + ("reused" if built else "fresh"))
        started_prepare = time.monotonic()
        stack.prepare(keep_database=built)
        # On a reused database: the migrations this code adds (indexes built
        # CONCURRENTLY on the full tables).
        result["migrate_s"] = round(time.monotonic() - started_prepare, 1)
        if not built:
            step("Building the data set in SQL (a few minutes)")
            result["data"] = _build(stack, args.scale, [])
        elif _log_rows(stack) < 4_000_000 * args.scale:
            step("Rebuilding the API log a prune emptied")
            result["data"] = _build(stack, args.scale, ["api_logs_again"])
        result["tables"] = _table_sizes(stack)
        stack.start()
        staff = _login_admin(stack)
        heavy = _login_player(stack)
        ids = _sample_ids(stack)
        result["pages"].update(_time_admin(stack, staff, ids, args.repeat))
        result["pages"].update(_time_api(stack, heavy, ids, args.repeat))
        step("the SQL under each page (in-process, queries captured)")
        result["sql"] = _sql_per_page(stack, result["pages"])
        step("check_ledger")
        result["check_ledger"] = _check_ledger(stack)
        if not args.skip_prune:
            result["prune"] = _prune_under_load(stack, args)
    finally:
        stack.stop()
        result["duration_s"] = round(time.monotonic() - started, 1)
        paths = write(result, args.output)
        print(markdown(result))
        print("Reports: " + ", ".join(str(p.relative_to(ROOT)) for p in paths))
    return 0


# --- the data ----------------------------------------------------------------------


def _connect(stack: Stack) -> psycopg.Connection:
    return psycopg.connect(stack.database_url, autocommit=True)


def _has_data(stack: Stack) -> bool:
    try:
        with _connect(stack) as conn:
            row = conn.execute("SELECT count(*) FROM users").fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0] > 0)


def _log_rows(stack: Stack) -> int:
    with _connect(stack) as conn:
        row = conn.execute("SELECT count(*) FROM api_logs").fetchone()
    return int(row[0]) if row else 0


def _build(stack: Stack, scale: float, only: list[str]) -> dict[str, Any]:
    out = stack.run_dir / "data.json"
    extra = [arg for name in only for arg in ("--only", name)]
    done = stack.python(
        "-m",
        "bench.growth_seed",
        "--scale",
        str(scale),
        "--out",
        str(out),
        *extra,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"growth_seed failed:\n{done.stderr[-3000:]}")
    print(done.stderr, end="")
    return json.loads(out.read_text())


def _table_sizes(stack: Stack) -> dict[str, Any]:
    with _connect(stack) as conn:
        rows = conn.execute(
            "SELECT relname, reltuples::bigint, pg_total_relation_size(oid) "
            "FROM pg_class WHERE relname IN "
            "('users', 'bets', 'transactions', 'api_logs') ORDER BY relname"
        ).fetchall()
    return {
        name: {"rows": count, "mb": round(size / 2**20)} for name, count, size in rows
    }


def _sample_ids(stack: Stack) -> dict[str, Any]:
    """What staff would search for: the heavy player, one provider user id, one
    provider bet id, one request id; and ids for the cursor's last page."""
    with _connect(stack) as conn:
        heavy_id = conn.execute(
            "SELECT id FROM users WHERE username = %s", [HEAVY_USERNAME]
        ).fetchone()[0]
        ext_user = conn.execute(
            "SELECT external_user_id FROM external_api_accounts WHERE user_id = %s",
            [heavy_id],
        ).fetchone()[0]
        bet = conn.execute(
            "SELECT id, external_bet_id FROM bets WHERE user_id = %s "
            "ORDER BY id LIMIT 1 OFFSET 1000",
            [heavy_id],
        ).fetchone()
        request_id = conn.execute(
            "SELECT request_id FROM api_logs ORDER BY id DESC LIMIT 1 OFFSET 5000"
        ).fetchone()[0]
        bets_total = conn.execute(
            "SELECT count(*) FROM bets WHERE user_id = %s", [heavy_id]
        ).fetchone()[0]
        entries_total = conn.execute(
            "SELECT count(*) FROM transactions WHERE user_id = %s", [heavy_id]
        ).fetchone()[0]
        oldest_bets = conn.execute(
            "SELECT id FROM bets WHERE user_id = %s ORDER BY id LIMIT 11", [heavy_id]
        ).fetchall()
        oldest_entries = conn.execute(
            "SELECT id FROM transactions WHERE user_id = %s ORDER BY id LIMIT 11",
            [heavy_id],
        ).fetchall()
    return {
        "heavy_id": heavy_id,
        "username": HEAVY_USERNAME,
        "external_user_id": ext_user,
        "bet_id": bet[0],
        "external_bet_id": bet[1],
        "request_id": request_id,
        "bets_total": bets_total,
        "entries_total": entries_total,
        # The last page by cursor starts after the 11th oldest (limit 10).
        "bets_cursor_last": oldest_bets[-1][0],
        "entries_cursor_last": oldest_entries[-1][0],
    }


# --- timing ------------------------------------------------------------------------


class _PlainHttpSession(requests.Session):
    """Production settings mark the session and CSRF cookies Secure; the bench
    speaks plain HTTP to 127.0.0.1, so this client sends them anyway."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        answer = super().request(*args, **kwargs)
        for cookie in self.cookies:
            cookie.secure = False
        return answer


def _login_admin(stack: Stack) -> requests.Session:
    session = _PlainHttpSession()
    url = f"{stack.server_url}/admin/login/"
    session.get(url, timeout=30)
    answer = session.post(
        url,
        data={
            "username": ADMIN_USERNAME,
            "password": GROWTH_PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": url},
        timeout=30,
    )
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"admin login failed: {answer.status_code}")
    return session


def _login_player(stack: Stack) -> requests.Session:
    session = requests.Session()
    answer = session.post(
        f"{stack.server_url}/api/auth/login",
        json={"username": HEAVY_USERNAME, "password": GROWTH_PASSWORD},
        timeout=30,
    )
    answer.raise_for_status()
    session.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    return session


def _timed(session: requests.Session, url: str, repeat: int) -> dict[str, Any]:
    session.get(url, timeout=120)  # warm-up: plans, caches, the connection
    times, status, size = [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = session.get(url, timeout=120)
        times.append((time.perf_counter() - started) * 1000)
        status, size = answer.status_code, len(answer.content)
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "status": status,
        "bytes": size,
    }


def _time_admin(
    stack: Stack, staff: requests.Session, ids: dict[str, Any], repeat: int
) -> dict[str, Any]:
    base = f"{stack.server_url}/admin"
    pages = {
        "admin dashboard": "/",
        "admin bet page": f"/betting/bet/{ids['bet_id']}/change/",
        "admin bet list": "/betting/bet/",
        "admin bet list ?status=completed": "/betting/bet/?status__exact=completed",
        "admin bet list search username": f"/betting/bet/?q={ids['username']}",
        "admin bet list search provider user id": (
            f"/betting/bet/?q={ids['external_user_id']}"
        ),
        "admin bet list search provider bet id": (
            f"/betting/bet/?q={ids['external_bet_id']}"
        ),
        "admin ledger list": "/wallet/transaction/",
        "admin ledger list search username": (
            f"/wallet/transaction/?q={ids['username']}"
        ),
        "admin API log list": "/auditlog/apilog/",
        "admin API log list search request id": (
            f"/auditlog/apilog/?q={ids['request_id']}"
        ),
        "admin API log list search username": (
            f"/auditlog/apilog/?q={ids['username']}"
        ),
        "admin user list search username": f"/accounts/user/?q={ids['username']}",
    }
    figures = {}
    for name, path in pages.items():
        step(name)
        figures[name] = _timed(staff, base + path, repeat)
        figures[name]["path"] = "/admin" + path
    return figures


def cursor_token(after_id: int) -> str:
    """The cursor of the page after the row ``after_id`` (``betting_site.api.
    pagination``'s format; a client takes it from ``next_cursor``)."""
    raw = json.dumps({"after": after_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _time_api(
    stack: Stack, player: requests.Session, ids: dict[str, Any], repeat: int
) -> dict[str, Any]:
    base = f"{stack.server_url}/api"
    last_bets = -(-ids["bets_total"] // 10)
    last_entries = -(-ids["entries_total"] // 10)
    pages = {
        "bets first page": "/bets?page=1&limit=10",
        "bets last page": f"/bets?page={last_bets}&limit=10",
        "bets ?status=completed first page": "/bets?status=completed&page=1&limit=10",
        "bets first page by cursor": "/bets?cursor=&limit=10",
        "bets last page by cursor": (
            f"/bets?cursor={cursor_token(ids['bets_cursor_last'])}&limit=10"
        ),
        "transactions first page": "/transactions?page=1&limit=10",
        "transactions last page": f"/transactions?page={last_entries}&limit=10",
        "transactions first page by cursor": "/transactions?cursor=&limit=10",
        "transactions last page by cursor": (
            f"/transactions?cursor={cursor_token(ids['entries_cursor_last'])}&limit=10"
        ),
    }
    figures = {}
    for name, path in pages.items():
        step(name)
        figures[name] = _timed(player, base + path, repeat)
        figures[name]["path"] = "/api" + path
        if "cursor" in name:
            body = player.get(base + path, timeout=60).json()
            pagination = body.get("pagination", {})
            if "next_cursor" not in pagination:
                figures[name]["note"] = "no cursor support: the page-number answer"
    return figures


def _sql_per_page(stack: Stack, pages: dict[str, Any]) -> dict[str, Any]:
    spec = stack.run_dir / "sql-pages.json"
    out = stack.run_dir / "sql.json"
    spec.write_text(
        json.dumps(
            {
                "admin": ADMIN_USERNAME,
                "player": HEAVY_USERNAME,
                "pages": {name: page["path"] for name, page in pages.items()},
            }
        )
    )
    done = stack.python(
        "-m", "bench.growth_sql", "--pages", str(spec), "--out", str(out), timeout=1800
    )
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(out.read_text())


def _check_ledger(stack: Stack) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", PYTHON, "manage.py", "check_ledger"],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.monotonic() - started
    rss = re.search(r"maxrss_kb=(\d+)", done.stderr)
    return {
        "seconds": round(elapsed, 1),
        "max_rss_mb": round(int(rss.group(1)) / 1024) if rss else None,
        "exit_code": done.returncode,
        "last_line": (done.stdout.strip().splitlines() or [""])[-1],
    }


# --- prune_logs under load ---------------------------------------------------------


def _prune_under_load(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Bets at the bench's 50%-of-peak rate: 10 s to warm up, 30 s alone, then
    while prune_logs deletes the API log rows older than 30 days."""
    players = _seed_players(stack, 60)
    with _connect(stack) as conn:
        stale = conn.execute(
            "SELECT count(*) FROM api_logs "
            "WHERE created_at < now() - interval '30 days'"
        ).fetchone()[0]
        size_before = conn.execute(
            "SELECT pg_total_relation_size('api_logs')"
        ).fetchone()[0]

    async def run() -> dict[str, Any]:
        async with loadgen.new_session(200) as session:
            action = loadgen.bet_action(stack.server_url)
            step("bets warm-up for 10 s")
            await loadgen.open_loop(session, action, players, args.prune_rate, 10)
            step(f"bets alone at {args.prune_rate}/s for 30 s")
            t0 = time.monotonic()
            alone = await loadgen.open_loop(
                session, action, players, args.prune_rate, 30
            )
            baseline = loadgen.summarize(
                alone, start=t0, end=time.monotonic(), ok=_bet_ok, open_loop=True
            )
            step(f"prune_logs ({stale} rows) with bets at {args.prune_rate}/s")
            process = await asyncio.create_subprocess_exec(
                PYTHON,
                "manage.py",
                "prune_logs",
                "--older-than",
                "30d",
                *args.prune_args.split(),
                cwd=str(ROOT),
                env=stack.env(),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            t1 = time.monotonic()
            samples: list[loadgen.Sample] = []
            while process.returncode is None:
                batch = asyncio.create_task(
                    loadgen.open_loop(session, action, players, args.prune_rate, 5)
                )
                samples += await batch
                with_timeout = asyncio.wait_for(process.wait(), timeout=0.01)
                with contextlib.suppress(TimeoutError):
                    await with_timeout
            out, err = await process.communicate()
            seconds = time.monotonic() - t1
            during = loadgen.summarize(
                samples, start=t1, end=time.monotonic(), ok=_bet_ok, open_loop=True
            )
            return {
                "stale_rows": stale,
                "prune_s": round(seconds, 1),
                "exit_code": process.returncode,
                "output_tail": (out.decode().strip().splitlines() or [""])[-1],
                "stderr_tail": err.decode()[-500:],
                "bets_alone": baseline,
                "bets_during_prune": during,
            }

    figures = asyncio.run(run())
    with _connect(stack) as conn:
        figures["api_logs_mb_before"] = round(size_before / 2**20)
        figures["api_logs_mb_after"] = round(
            conn.execute("SELECT pg_total_relation_size('api_logs')").fetchone()[0]
            / 2**20
        )
    figures["bench_p99_at_half_load_ms"] = BENCH_P99_AT_HALF_LOAD_MS
    return figures


def _seed_players(stack: Stack, count: int) -> list[loadgen.Client]:
    """Players linked at this run's simulator (``bench.seed``), under a prefix
    and provider ids of their own: a reused database keeps earlier runs' ones."""
    stamp = int(time.time()) % 100_000
    out = stack.run_dir / "players.json"
    done = stack.python(
        "-m",
        "bench.seed",
        "--players",
        str(count),
        "--prefix",
        f"load{stamp}_",
        "--first-external-id",
        str(10_000_000 + stamp * 1000),
        "--control-url",
        stack.control_url,
        "--out",
        str(out),
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
    return [
        loadgen.Client(user_id=str(p["user_id"]), token=p["token"])
        for p in json.loads(out.read_text())
    ]


def _bet_ok(sample: loadgen.Sample) -> bool:
    return sample.status == 201 and sample.detail == "completed"


# --- the report --------------------------------------------------------------------


def write(result: dict[str, Any], stem: str) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = [RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"]
    paths[0].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(result))
    return paths


def markdown(result: dict[str, Any]) -> str:
    code = result.get("code", {})
    lines = [
        f"# Data that grows: {result.get('label') or 'bench-growth'}",
        "",
        f"Started {result['started_at']}, {result.get('duration_s')} s; code "
        f"{code.get('commit', '?')}; machine: {result['machine'].get('cores', '?')} "
        "CPUs, shared, load average at the start "
        f"{result['machine'].get('load_average_at_start')}. Each figure: one warm-up "
        "request, then the median (and the "
        "worst) of the repeats, through gunicorn on 127.0.0.1.",
        "",
    ]
    if result.get("tables"):
        lines += ["| table | rows | MB |", "|---|---|---|"]
        lines += [
            f"| {name} | {size['rows']:,} | {size['mb']} |"
            for name, size in result["tables"].items()
        ]
        lines.append("")
    if result.get("data"):
        lines += [f"Data set built in {result['data'].get('build_s')} (seconds).", ""]
    if result["arguments"].get("reuse"):
        lines += [
            f"Database reused; `migrate` took {result.get('migrate_s')} s.",
            "",
        ]
    sql = result.get("sql") or {}
    lines += [
        "| page | median ms | worst ms | SQL ms | queries | status | path |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figure in result.get("pages", {}).items():
        note = f" ({figure['note']})" if figure.get("note") else ""
        under = sql.get(name, {})
        lines.append(
            f"| {name}{note} | {figure['median_ms']} | {figure['max_ms']} | "
            f"{under.get('sql_ms', '')} | {under.get('queries', '')} | "
            f"{figure['status']} | `{figure['path']}` |"
        )
    if sql:
        lines += [
            "",
            "SQL ms and queries: the same page requested in-process once warm, its "
            "queries captured (the sum of their times as Django saw them).",
        ]
    ledger = result.get("check_ledger")
    if ledger:
        lines += [
            "",
            f"`check_ledger`: {ledger['seconds']} s, peak memory "
            f"{ledger['max_rss_mb']} MB, exit {ledger['exit_code']}: "
            f"{ledger['last_line']}",
        ]
    prune = result.get("prune")
    if prune:
        alone = prune["bets_alone"]["latency_ms"]
        during = prune["bets_during_prune"]["latency_ms"]
        lines += [
            "",
            f"`prune_logs --older-than 30d {result['arguments']['prune_args']}`: "
            f"{prune['stale_rows']:,} rows in "
            f"{prune['prune_s']} s (exit {prune['exit_code']}: "
            f"{prune['output_tail']}); api_logs {prune['api_logs_mb_before']} MB "
            f"before, {prune['api_logs_mb_after']} MB after.",
            "",
            "| POST /api/bets, open loop | rate/s | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|",
            f"| alone | {prune['bets_alone']['requests_per_s']} | {alone['p50']} | "
            f"{alone['p99']} | {prune['bets_alone']['error_rate']} |",
            f"| while prune_logs runs | "
            f"{prune['bets_during_prune']['requests_per_s']} | {during['p50']} | "
            f"{during['p99']} | {prune['bets_during_prune']['error_rate']} |",
            "",
            f"The bench's p99 at 50% of peak (bench-latest.md): "
            f"{prune['bench_p99_at_half_load_ms']} ms.",
        ]
    lines += [""] + [f"- {note}" for note in result.get("notes", [])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
