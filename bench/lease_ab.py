"""What a session advisory lock would add to a bet's lease, measured A/B.

``python -m bench.lease_ab [--iterations N]``: on a scratch database
(``betting_lease_ab``), one connection, the lease's own statements as a bet
runs them, interleaved round-robin so that the machine's noise hits every
variant alike:

- ``row`` (what ships): the claim upsert, then the release ``UPDATE``; the
  claim also writes ``alive_until`` (the keeper's liveness), the release is
  what the booking statement folds in;
- ``row + advisory, folded``: the same two statements with
  ``pg_try_advisory_lock`` / ``pg_advisory_unlock`` folded into them (no extra
  round trip);
- ``row + advisory, apart``: the two statements plus a ``SELECT`` for each of
  the lock and the unlock (two round trips more per bet);
- ``advisory alone``: lock and unlock only, no row (the lease replaced).

Each bet is two transactions, as in the server: the claim commits with the
opening (a bet row inserted), the release with the booking (that row updated).
A floor without any lease is measured alike, so each variant's figure is what
it adds to a bet. Reports the median and p90 per variant, what it adds to the
floor, and that as a multiple of what the row adds, in
``bench/results/lease-ab.{json,md}``.
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench import report
from bench.run import RESULTS, code_facts, machine_facts
from bench.stack import PG_ADMIN_URL

DATABASE = "betting_lease_ab"
USERS = 200
NAMESPACE = 0x6C65  # the advisory lock's first key: "le(ase)"

CLAIM = """
    INSERT INTO leases (user_id, holder, expires_at, alive_until, operation)
    VALUES (%s, %s, %s, %s, 'bet_place')
    ON CONFLICT (user_id) DO UPDATE
    SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
        alive_until = EXCLUDED.alive_until, operation = EXCLUDED.operation
    WHERE leases.holder = '' OR leases.expires_at IS NULL
       OR leases.expires_at < %s
       OR (leases.alive_until < %s AND pg_postmaster_start_time() < %s)
    RETURNING holder
"""
RELEASE = (
    "UPDATE leases SET holder = '', expires_at = NULL, operation = '' "
    "WHERE user_id = %s AND holder = %s"
)
CLAIM_FOLDED = (
    "WITH claim AS (" + CLAIM + ") "  # noqa: S608 - constant text
    "SELECT holder FROM claim WHERE pg_try_advisory_lock(%s::int, %s::int)"
)
RELEASE_FOLDED = (
    "WITH released AS (" + RELEASE + " RETURNING user_id) "  # noqa: S608
    "SELECT pg_advisory_unlock(%s::int, user_id::int) FROM released"
)


def _claim_params(user: int, holder: str) -> list[Any]:
    now = datetime.now(UTC)
    return [
        user,
        holder,
        now + timedelta(seconds=60),
        now + timedelta(seconds=4),
        now,
        now,
        now - timedelta(seconds=4),
    ]


# A bet's two commits that carry its lease: the opening (the bet row inserted)
# and the booking (the bet row updated). The lease rides in them, as it does in
# the server, so what a variant adds is its marginal cost.
OPEN = "INSERT INTO bets (user_id, status) VALUES (%s, 'pending') RETURNING id"
BOOK = "UPDATE bets SET status = 'completed' WHERE id = %s"
LOCK = "SELECT pg_try_advisory_lock(%s::int, %s::int)"
UNLOCK = "SELECT pg_advisory_unlock(%s::int, %s::int)"


def _open(conn: psycopg.Connection, user: int) -> int:
    row = conn.execute(OPEN, [user]).fetchone()
    assert row is not None
    return int(row[0])


def no_lease(conn: psycopg.Connection, user: int, holder: str) -> None:
    with conn.transaction():
        bet = _open(conn, user)
    with conn.transaction():
        conn.execute(BOOK, [bet])


def row(conn: psycopg.Connection, user: int, holder: str) -> None:
    with conn.transaction():
        conn.execute(CLAIM, _claim_params(user, holder)).fetchone()
        bet = _open(conn, user)
    with conn.transaction():
        conn.execute(BOOK, [bet])
        conn.execute(RELEASE, [user, holder])


def row_advisory_folded(conn: psycopg.Connection, user: int, holder: str) -> None:
    with conn.transaction():
        conn.execute(CLAIM_FOLDED, [*_claim_params(user, holder), NAMESPACE, user])
        bet = _open(conn, user)
    with conn.transaction():
        conn.execute(BOOK, [bet])
        conn.execute(RELEASE_FOLDED, [user, holder, NAMESPACE]).fetchone()


def row_advisory_apart(conn: psycopg.Connection, user: int, holder: str) -> None:
    with conn.transaction():
        conn.execute(CLAIM, _claim_params(user, holder)).fetchone()
        conn.execute(LOCK, [NAMESPACE, user])
        bet = _open(conn, user)
    with conn.transaction():
        conn.execute(BOOK, [bet])
        conn.execute(RELEASE, [user, holder])
        conn.execute(UNLOCK, [NAMESPACE, user])


def advisory_alone(conn: psycopg.Connection, user: int, holder: str) -> None:
    with conn.transaction():
        conn.execute(LOCK, [NAMESPACE, user])
        bet = _open(conn, user)
    with conn.transaction():
        conn.execute(BOOK, [bet])
        conn.execute(UNLOCK, [NAMESPACE, user])


VARIANTS = {
    "no lease (floor)": no_lease,
    "row (ships)": row,
    "row + advisory, folded": row_advisory_folded,
    "row + advisory, apart": row_advisory_apart,
    "advisory alone": advisory_alone,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--output", default="lease-ab")
    args = parser.parse_args(argv)

    with psycopg.connect(f"{PG_ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with psycopg.connect(f"{PG_ADMIN_URL}/{DATABASE}", autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE leases (user_id bigint PRIMARY KEY, holder varchar(64) "
            "NOT NULL, expires_at timestamptz, alive_until timestamptz, "
            "operation varchar(100) NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE bets (id bigserial PRIMARY KEY, user_id bigint NOT NULL, "
            "status varchar(16) NOT NULL)"
        )
        for warm in range(200):  # plans prepared, rows in place
            for run in VARIANTS.values():
                run(conn, warm % USERS, f"warm-{warm}")
        for i in range(args.iterations):
            user = i % USERS
            for name, run in VARIANTS.items():
                started = time.perf_counter()
                run(conn, user, f"h{i}")
                samples[name].append((time.perf_counter() - started) * 1e6)
    with psycopg.connect(f"{PG_ADMIN_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')

    floor = statistics.median(samples["no lease (floor)"])
    base = statistics.median(samples["row (ships)"]) - floor
    rows = []
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        rows.append(
            {
                "variant": name,
                "median_us": round(median, 1),
                "p90_us": round(values[int(len(values) * 0.9)], 1),
                "added_to_floor_us": round(median - floor, 1),
                "ratio_to_floor": round(median / floor, 2),
                "added_ratio_to_row": round((median - floor) / base, 2)
                if base > 0
                else None,
            }
        )
    result = {
        "kind": "lease-ab",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "code": code_facts(),
        "iterations": args.iterations,
        "description": __doc__,
        "variants": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(
        json.dumps(result, indent=2, default=str) + "\n"
    )
    headers = ["variant", "median µs per bet", "p90 µs", "added µs", "x floor"]
    table = report._table(
        [*headers, "added, x the row's"],
        [
            [
                r["variant"],
                r["median_us"],
                r["p90_us"],
                r["added_to_floor_us"],
                r["ratio_to_floor"],
                r["added_ratio_to_row"],
            ]
            for r in rows
        ],
    )
    (RESULTS / f"{args.output}.md").write_text(
        f"# Lease A/B: session advisory locks beside the row\n\n"
        f"{result['started_at']}, {args.iterations} bets per variant, one "
        f"connection, variants interleaved; commit {result['code'].get('commit')}."
        f"\n\n{table}\n\nHow it was measured: `bench/lease_ab.py`.\n"
    )
    for entry in rows:
        print(
            f"{entry['variant']:<26} median {entry['median_us']:>8} us  "
            f"added {entry['added_to_floor_us']:>8} us  x{entry['ratio_to_floor']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
