"""What a phase cost: CPU of each process and the server's own counters, taken
before and after a phase."""

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stack import (
    CLOCK_TICKS,
    Stack,
    group_cpu,
    machine_cpu,
    process_cpu,
)

_NUMERIC = (
    "requests",
    "wall",
    "cpu",
    "sql",
    "sql_time",
    "sql_apilog",
    "autocommit_sql",
    "commits",
    "commit_time",
    "rollbacks",
    "health_checks",
    "provider_calls",
    "provider_time",
)


@dataclass
class Snapshot:
    at: float
    server_cpu: float
    simulator_cpu: float
    loadgen_cpu: float
    machine_busy: float
    machine_total: float
    postgres: dict[int, float]
    stats: dict[str, dict[str, Any]]
    workers: set[int]


def postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database``."""
    backends = {}
    marker = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
            if not title.startswith(b"postgres:") or marker not in title:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        backends[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return backends


class BackendSampler:
    """Reads the CPU of the database's PostgreSQL backends every ``every`` seconds
    from a thread while a phase runs. Django closes a connection once it is older
    than ``CONN_MAX_AGE`` (60 s), so backends exit during a phase; a snapshot taken
    after the phase no longer sees them, and their CPU since the snapshot before
    would be lost. ``stop()`` answers each backend's last figure."""

    def __init__(self, database: str, every: float = 0.25) -> None:
        self.database = database
        self.every = every
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="pg-backend-sampler", daemon=True
        )

    def start(self) -> "BackendSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last.update(postgres_backends(self.database))
            self._stop.wait(self.every)

    def stop(self) -> dict[int, float]:
        self._stop.set()
        self._thread.join()
        return dict(self.last)


def merge_backends(
    sampled: dict[int, float], after: dict[int, float]
) -> dict[int, float]:
    """Each backend's CPU at the end of a phase: the snapshot's figure for those
    still running, the last sampled one for those that exited."""
    return {**sampled, **after}


def snapshot(stack: Stack, *, settle: float = 0.7) -> Snapshot:
    """The counters now (after ``settle`` seconds, so that every worker has written
    its last counts)."""
    if settle:
        time.sleep(settle)
    pids = stack.server_pids()
    busy, total = machine_cpu()
    return Snapshot(
        at=time.monotonic(),
        server_cpu=group_cpu(pids[0] if pids else None),
        simulator_cpu=process_cpu(stack.simulator.pid)[0] if stack.simulator else 0.0,
        loadgen_cpu=process_cpu(os.getpid())[0],
        machine_busy=busy,
        machine_total=total,
        postgres=postgres_backends(stack.config.database),
        stats=stack.server_stats(),
        workers=set(pids[1:]),
    )


def kind_delta(before: Snapshot, after: Snapshot, kind: str) -> dict[str, Any]:
    old = before.stats.get(kind, {})
    new = after.stats.get(kind, {})
    delta: dict[str, Any] = {
        name: new.get(name, 0) - old.get(name, 0) for name in _NUMERIC
    }
    for name in ("shapes", "provider"):
        old_counts, new_counts = old.get(name, {}), new.get(name, {})
        delta[name] = {
            key: count - old_counts.get(key, 0)
            for key, count in new_counts.items()
            if count - old_counts.get(key, 0)
        }
    return delta


def server_figures(before: Snapshot, after: Snapshot, kind: str) -> dict[str, Any]:
    """Per request of ``kind``: SQL, transactions, provider calls, times."""
    delta = kind_delta(before, after, kind)
    count = delta["requests"]
    if not count:
        return {"requests": 0}

    def per(value: float, scale: float = 1.0, digits: int = 2) -> float:
        return round(value * scale / count, digits)

    transactions = delta["commits"] + delta["rollbacks"]
    # What PostgreSQL counts as committed transactions: Django's COMMITs and every
    # statement sent in autocommit mode. The health check sends nothing: the
    # project's backend looks at the socket (betting_site/postgresql/base.py).
    pg_commits = delta["commits"] + delta["autocommit_sql"]
    return {
        "requests": count,
        "sql_per_request": per(delta["sql"]),
        "sql_apilog_per_request": per(delta["sql_apilog"]),
        "transactions_per_request": per(transactions),
        "health_checks_per_request": per(delta["health_checks"]),
        "autocommit_sql_per_request": per(delta["autocommit_sql"]),
        "pg_commits_counted_per_request": per(pg_commits),
        # What PostgreSQL sees: each statement, a BEGIN and a COMMIT/ROLLBACK per
        # transaction (psycopg sends BEGIN itself); the health check sends nothing.
        "db_round_trips_per_request": per(
            delta["sql"] + delta["sql_apilog"] + 2 * transactions
        ),
        "provider_calls_per_request": per(delta["provider_calls"]),
        "wall_ms_per_request": per(delta["wall"], 1000, 1),
        "thread_cpu_ms_per_request": per(delta["cpu"], 1000, 2),
        "sql_ms_per_request": per(delta["sql_time"], 1000, 2),
        "commit_ms_per_request": per(delta.get("commit_time", 0), 1000, 2),
        "provider_ms_per_request": per(delta["provider_time"], 1000, 2),
        "statements_per_request": {
            shape: per(number)
            for shape, number in sorted(
                delta["shapes"].items(), key=lambda item: -item[1]
            )
        },
        "provider_calls_by_endpoint": {
            call: per(number) for call, number in sorted(delta["provider"].items())
        },
    }


def cost_figures(before: Snapshot, after: Snapshot, good: int) -> dict[str, Any]:
    """CPU of each process over the phase, in total and per good request."""
    seconds = after.at - before.at
    postgres = sum(
        cpu - before.postgres.get(pid, 0.0) for pid, cpu in after.postgres.items()
    )
    cpu = {
        "server": after.server_cpu - before.server_cpu,
        "simulator": after.simulator_cpu - before.simulator_cpu,
        "loadgen": after.loadgen_cpu - before.loadgen_cpu,
        "postgres": postgres,
    }
    busy = after.machine_busy - before.machine_busy
    total = after.machine_total - before.machine_total
    figures: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_ms_per_ok": {
            name: round(value * 1000 / good, 2) if good else None
            for name, value in cpu.items()
        },
        "machine_busy_pct": round(100 * busy / total, 1) if total else None,
        # CPU of everything else on the machine (other work, Redis, the kernel).
        "other_cpu_s": round(busy - sum(cpu.values()), 2),
        "worker_restarts": len(after.workers - before.workers),
    }
    return figures
