"""The bench's own arithmetic and parsing, without starting anything (the bench
itself runs with ``make bench`` / ``make soak``, not in the test suite)."""

import json
from pathlib import Path

import pytest

from bench import instrument, loadgen, probe, profile_summary, report
from bench.run import summarize as bench_summarize
from bench.soak import fault_counts


def sample(start: float, latency: float, status: int = 201, detail: str = "x"):
    return loadgen.Sample(start, start, start + latency, status, detail)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert loadgen.percentile(values, 0.50) == 50
    assert loadgen.percentile(values, 0.99) == 99
    assert loadgen.percentile(values, 1.0) == 100
    assert loadgen.percentile([], 0.5) is None


def test_summarize_counts_only_answers_in_the_window_and_splits_errors():
    samples = [sample(0.5, 0.1)]  # answered before the window
    samples += [sample(1.0 + i / 10, 0.05) for i in range(10)]
    samples += [sample(1.5, 0.2, status=409, detail="BET_IN_PROGRESS")]
    figures = loadgen.summarize(
        samples, start=1.0, end=3.0, ok=lambda s: s.status == 201
    )
    assert figures["requests"] == 11
    assert figures["ok"] == 10
    assert figures["throughput"] == 5.0
    assert figures["error_rate"] == round(1 / 11, 4)
    assert figures["statuses"] == {"201": 10, "409": 1}
    assert figures["details"]["409 BET_IN_PROGRESS"] == 1
    assert figures["latency_ms"]["max"] == 200.0


def test_open_loop_latency_counts_from_the_intended_time():
    late = loadgen.Sample(intended=1.0, sent=1.3, done=1.4, status=201, detail="")
    figures = loadgen.summarize(
        [late], start=0, end=2, ok=lambda s: True, open_loop=True
    )
    assert figures["latency_ms"]["p50"] == pytest.approx(400.0)
    assert figures["send_lag_ms"]["p50"] == pytest.approx(300.0)


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        (
            'SELECT "users"."id", EXISTS(SELECT 1 AS "a" FROM "revoked_sessions" U0 '
            'WHERE U0."sid" = %s) AS "r" FROM "users" WHERE "users"."id" = %s',
            "SELECT users +exists",
        ),
        (
            'SELECT "user_balances"."id" FROM "user_balances" WHERE '
            '"user_balances"."user_id" = %s FOR UPDATE',
            "SELECT user_balances FOR UPDATE",
        ),
        (
            'UPDATE "provider_leases" SET "expires_at" = %s WHERE '
            '("provider_leases"."holder" = %s)',
            "UPDATE provider_leases SET expires_at",
        ),
        ('INSERT INTO "api_logs" ("a") VALUES (%s)', "INSERT api_logs"),
        ('SAVEPOINT "s1"', "SAVEPOINT"),
        ('SELECT COUNT(*) AS "__count" FROM "bets"', "SELECT bets count"),
        # The project's hand-written SQL names tables and columns unquoted.
        (
            "UPDATE user_balances SET balance = balance + %s, held = CASE WHEN "
            "held < %s THEN 0 ELSE held - %s END, updated_at = %s "
            "WHERE user_id = %s RETURNING balance",
            "UPDATE user_balances SET balance,held,updated_at",
        ),
        (
            "SELECT u.*, EXISTS (SELECT 1 FROM revoked_sessions r WHERE r.sid = %s) "
            "AS session_revoked FROM users u WHERE u.id = %s",
            "SELECT users +exists",
        ),
    ],
)
def test_statement_shapes(sql, shape):
    assert instrument.fingerprint(sql) == shape


def test_request_kind_names_routes():
    assert instrument.request_kind("POST", "/api/bets/") == "POST /api/bets"
    assert (
        instrument.request_kind("GET", "/api/bets/result/123")
        == "GET /api/bets/result/{id}"
    )


def _snapshot(stats, at=0.0, server=0.0):
    return probe.Snapshot(
        at=at,
        server_cpu=server,
        simulator_cpu=0.0,
        loadgen_cpu=0.0,
        machine_busy=0.0,
        machine_total=1.0,
        postgres={},
        stats=stats,
        workers=set(),
    )


def test_server_figures_are_per_request_deltas():
    kind = "POST /api/bets"
    zero = dict.fromkeys(probe._NUMERIC, 0)
    before = _snapshot(
        {kind: {**zero, "requests": 10, "sql": 100, "shapes": {"SELECT bets": 20}}}
    )
    after = _snapshot(
        {
            kind: {
                **zero,
                "requests": 20,
                "sql": 300,
                "sql_apilog": 40,
                "commits": 50,
                "provider_calls": 30,
                "shapes": {"SELECT bets": 40},
                "provider": {"POST /api/bet": 10},
            }
        },
        at=10.0,
        server=0.5,
    )
    figures = probe.server_figures(before, after, kind)
    assert figures["requests"] == 10
    assert figures["sql_per_request"] == 20
    assert figures["sql_apilog_per_request"] == 4
    assert figures["db_round_trips_per_request"] == 20 + 4 + 2 * 5
    assert figures["provider_calls_per_request"] == 3
    assert figures["statements_per_request"] == {"SELECT bets": 2}
    cost = probe.cost_figures(before, after, good=10)
    assert cost["cpu_ms_per_ok"]["server"] == 50.0


def test_profile_summary_attributes_each_sample_once():
    raw = "\n".join(
        [
            'process 1:"gunicorn";handle (gunicorn/workers/gthread.py:1);'
            "counted (bench/instrument.py:2);"
            "bet_place (betting/services/placement.py:3);"
            "execute (psycopg/cursor.py:4) 3",
            'process 1:"gunicorn";handle (gunicorn/workers/gthread.py:1);'
            "bet_place (betting/services/placement.py:3);"
            "compile (django/db/models/sql/compiler.py:5) 1",
        ]
    )
    summary = profile_summary.summarize(raw)
    assert summary["samples"] == 4
    kinds = dict(summary["kinds"])
    assert kinds["psycopg: sending SQL, reading results"] == 75.0
    assert kinds["Django ORM: building queries, making model objects"] == 25.0
    assert dict(summary["features"])["POST /api/bets: bet_place"] == 100.0
    assert "# Profile" in profile_summary.markdown(summary)


def test_reports_render_from_a_minimal_result(tmp_path: Path):
    phase = {
        "name": "bets c=32",
        "target": "bets",
        "concurrency": 32,
        "throughput": 100.0,
        "error_rate": 0.0,
        "details": {"201 completed": 10},
        "latency_ms": {"p50": 1, "p95": 2, "p99": 3, "max": 4, "mean": 1},
        "cost": {
            "cpu_ms_per_ok": {
                "server": 5.0,
                "simulator": 1.0,
                "postgres": 1.0,
                "loadgen": 1.0,
            },
            "machine_busy_pct": 50.0,
            "other_cpu_s": 0.0,
            "seconds": 10.0,
            "worker_restarts": 0,
        },
        "server": {"requests": 0},
    }
    health = {**phase, "name": "health", "target": "health", "throughput": 500.0}
    result = {
        "kind": "bench",
        "started_at": "2026-01-01T00:00:00+00:00",
        "machine": {"cores": 2},
        "phases": [health, phase],
    }
    result["summary"], result["targets"] = bench_summarize(result)
    assert result["summary"]["ratio_bets_to_health"] == 0.2
    assert result["summary"]["cpu_bound_ceiling_bets_per_s"] == 250.0
    paths = report.write(result, tmp_path, "bench-test", keep=True)
    assert json.loads(paths[0].read_text())["summary"]["bets_per_s_at_32"] == 100.0
    assert "| bets/s at 32 concurrent clients | >= 200 | 100 | NOT met |" in (
        paths[1].read_text()
    )
    assert len(paths) == 4


def test_soak_fault_table_pivots_kinds_by_endpoint():
    rules = [
        {"kind": "drop_after", "method": "POST", "path": "/bet", "fired": 2},
        {
            "kind": "delay_before",
            "method": "POST",
            "path": "/win",
            "fired": 1,
            "delay": 2.5,
        },
    ]
    counts = fault_counts(rules)
    assert counts == {"drop_after POST /bet": 2, "delay_before POST /win 2.5s": 1}
    table = report.fault_table(counts)
    assert "| delay_before 2.5s | 0 | 1 | 1 |" in table
