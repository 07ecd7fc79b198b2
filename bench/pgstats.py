"""Transactions PostgreSQL committed for the bench database, from
``pg_stat_database`` (``xact_commit``, ``xact_rollback``).

PostgreSQL 15 keeps a backend's counts in the backend until it flushes them to
shared memory: at the end of a transaction at most once a second, and otherwise
when the backend has been idle ``PGSTAT_IDLE_INTERVAL`` (10 s), or when it exits.
``pg_stat_force_next_flush()`` only flushes the backend that calls it. So a
figure read right after a phase misses up to a second of each backend's commits,
which a later read then charges to the next phase. The counter therefore reads
only when the database has been quiet for ``QUIET_SECONDS`` since its last
traffic (``touched()``): by then every backend has flushed. Verified by
``check``: commits made on an idle, still open connection are all counted.

Reads go through a connection to the ``postgres`` database, so that they add
nothing to the bench database's own counts.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

# PGSTAT_IDLE_INTERVAL (10 s) and a margin.
QUIET_SECONDS = 10.5


@dataclass(frozen=True)
class Reading:
    commits: int
    rollbacks: int
    at: float  # time.monotonic() of the read


def read(admin_url: str, database: str) -> tuple[int, int]:
    """(xact_commit, xact_rollback) of ``database`` as PostgreSQL has them now."""
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT pg_stat_get_db_xact_commit(oid), "
            "pg_stat_get_db_xact_rollback(oid) FROM pg_database WHERE datname = %s",
            (database,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no database {database!r}")
    return int(row[0]), int(row[1])


def wait_needed(busy_at: float | None, now: float, quiet: float) -> float:
    """Seconds to wait before a read counts everything done until ``busy_at``
    (None: no traffic to wait for)."""
    if busy_at is None:
        return 0.0
    return max(0.0, busy_at + quiet - now)


def per(after: Reading | None, before: Reading | None, count: int) -> float | None:
    """Commits per answer between two readings (None when either is missing or
    nothing was answered)."""
    if after is None or before is None or count <= 0:
        return None
    return round((after.commits - before.commits) / count, 2)


def delta(after: Reading | None, before: Reading | None) -> dict[str, int] | None:
    if after is None or before is None:
        return None
    return {
        "commits": after.commits - before.commits,
        "rollbacks": after.rollbacks - before.rollbacks,
    }


class CommitCounter:
    """Reads of one database's commit count, each after the database has been
    quiet long enough for every backend to have flushed its counts."""

    def __init__(
        self,
        admin_url: str,
        database: str,
        *,
        quiet: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        reader: Callable[[str, str], tuple[int, int]] = read,
    ) -> None:
        self.admin_url = admin_url
        self.database = database
        self.quiet = quiet
        self.busy_at: float | None = None
        self.waited = 0.0  # seconds spent waiting, in all
        self._clock, self._sleep, self._reader = clock, sleep, reader

    def touched(self) -> None:
        """Something may have used the database until now."""
        self.busy_at = self._clock()

    def read(self) -> Reading:
        wait = wait_needed(self.busy_at, self._clock(), self.quiet)
        if wait:
            self._sleep(wait)
            self.waited += wait
        commits, rollbacks = self._reader(self.admin_url, self.database)
        return Reading(commits, rollbacks, self._clock())


def check(counter: CommitCounter, database_url: str, count: int = 200) -> dict:
    """A known number of commits, made on a connection left open and idle (so that
    only the quiet wait, not the backend's exit, gets them flushed): answers what
    the counter saw; ``ok`` when it saw exactly ``count``. The connection's start,
    which PostgreSQL counts as a transaction too, is flushed as soon as the backend
    is first idle, before the first reading."""
    conn = psycopg.connect(database_url, autocommit=True)
    # psycopg prepares a statement run five times in a round trip of its own,
    # which PostgreSQL counts as a transaction: not here.
    conn.prepare_threshold = None
    try:
        time.sleep(0.2)
        before = counter.read()
        conn.execute("CREATE TEMPORARY TABLE bench_commit_check (id int)")
        for index in range(count - 1):
            conn.execute("INSERT INTO bench_commit_check VALUES (%s)", (index,))
        counter.touched()
        after = counter.read()
    finally:
        conn.close()
    seen = after.commits - before.commits
    return {
        "expected": count,
        "counted": seen,
        "ok": seen == count,
        "quiet_wait_s": counter.quiet,
    }
