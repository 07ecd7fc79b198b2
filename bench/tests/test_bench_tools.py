"""The bench's own arithmetic and parsing, without starting anything (the bench
itself runs with ``make bench`` / ``make soak``, not in the test suite)."""

import json
from pathlib import Path

import pytest

from bench import instrument, loadgen, pgstats, probe, profile_summary, report
from bench.run import ratio as bench_ratio
from bench.run import summarize as bench_summarize
from bench.run import target_row
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
        # A result booked in one statement (betting.services.settlement).
        (
            'WITH moved AS (UPDATE "user_balances" SET balance = balance + %s '
            "WHERE user_id = %s RETURNING balance), entry AS (INSERT INTO "
            '"transactions" ("amount") SELECT %s FROM moved RETURNING "id"), '
            'completed AS (UPDATE "bets" SET "status" = %s WHERE "id" = %s AND '
            "EXISTS (SELECT 1 FROM entry) RETURNING 1) "
            'SELECT entry."id", EXISTS (SELECT 1 FROM completed) FROM entry',
            "WITH UPDATE user_balances,INSERT transactions,UPDATE bets",
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


# --- the floor, commits per bet, the latency phase -----------------------------------


def test_ratio_is_rounded_and_none_without_a_denominator():
    assert bench_ratio(55.2, 177.5) == 0.311
    assert bench_ratio(5.1, 0.86, 2) == 5.93
    assert bench_ratio(1.0, 0) is None
    assert bench_ratio(None, 3.0) is None
    assert bench_ratio(3.0, None) is None


@pytest.mark.parametrize(
    ("measured", "operator", "goal", "met"),
    [
        (149.9, "<", 150, True),
        (150, "<", 150, False),
        (150, "<=", 150, True),
        (0.69, ">=", 0.7, False),
        (0.7, ">=", 0.7, True),
        (None, "<=", 7, None),
    ],
)
def test_target_rows(measured, operator, goal, met):
    row = target_row("x", measured, operator, goal)
    assert row == {
        "target": "x",
        "goal": f"{operator} {goal}",
        "measured": measured,
        "met": met,
        "group": "issue",
    }


def test_commits_per_answer_is_the_counter_difference_over_good_answers():
    before = pgstats.Reading(commits=1000, rollbacks=3, at=0.0)
    after = pgstats.Reading(commits=1600, rollbacks=5, at=20.0)
    assert pgstats.per(after, before, 100) == 6.0
    assert pgstats.per(after, before, 0) is None
    assert pgstats.per(after, None, 100) is None
    assert pgstats.delta(after, before) == {"commits": 600, "rollbacks": 2}
    assert pgstats.delta(None, before) is None


def test_the_commit_counter_reads_only_once_the_database_has_been_quiet():
    now = [100.0]
    slept: list[float] = []
    counts = iter([(10, 0), (16, 1), (16, 1)])

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    counter = pgstats.CommitCounter(
        "postgres://x",
        "db",
        quiet=10.5,
        clock=lambda: now[0],
        sleep=sleep,
        reader=lambda url, database: next(counts),
    )
    assert counter.read().commits == 10  # nothing ran: no wait
    counter.touched()
    now[0] += 1.0
    reading = counter.read()
    assert slept == [pytest.approx(9.5)]
    assert (reading.commits, reading.rollbacks, reading.at) == (16, 1, 110.5)
    assert counter.read().commits == 16  # still quiet: no second wait
    assert slept == [pytest.approx(9.5)]
    assert counter.waited == pytest.approx(9.5)
    assert pgstats.wait_needed(None, 5.0, 10.5) == 0
    assert pgstats.wait_needed(0.0, 20.0, 10.5) == 0


def test_backends_that_exited_during_a_phase_keep_their_last_cpu():
    merged = probe.merge_backends({1: 2.0, 2: 3.0}, {2: 3.5, 3: 0.1})
    assert merged == {1: 2.0, 2: 3.5, 3: 0.1}
    before = _snapshot({})
    before.postgres = {1: 1.0, 2: 1.0}
    after = _snapshot({}, at=10.0)
    after.postgres = merged
    cost = probe.cost_figures(before, after, good=10)
    assert cost["cpu_s"]["postgres"] == pytest.approx(3.6)


def test_server_figures_count_what_postgres_commits():
    kind = "POST /api/bets"
    zero = dict.fromkeys(probe._NUMERIC, 0)
    after = _snapshot(
        {
            kind: {
                **zero,
                "requests": 10,
                "sql": 100,
                "sql_apilog": 10,
                "autocommit_sql": 10,
                "commits": 40,
                "health_checks": 10,
            }
        }
    )
    figures = probe.server_figures(_snapshot({}), after, kind)
    # The health check sends nothing (betting_site/postgresql).
    assert figures["pg_commits_counted_per_request"] == 5
    assert figures["autocommit_sql_per_request"] == 1


def _phase(name, target, throughput, **extra):
    cpu = extra.pop("cpu", {})
    server = extra.pop("server", {"requests": 0})
    return {
        "name": name,
        "target": target,
        "throughput": throughput,
        "error_rate": 0.0,
        "details": {},
        "latency_ms": {"p50": 1, "p95": 2, "p99": extra.pop("p99", 3), "max": 4},
        "cost": {
            "cpu_ms_per_ok": {
                "server": cpu.get("server", 10.0),
                "simulator": 1.0,
                "postgres": cpu.get("postgres", 2.0),
                "loadgen": 1.0,
            },
            "machine_busy_pct": 50.0,
            "other_cpu_s": 0.0,
            "seconds": 10.0,
            "worker_restarts": 0,
        },
        "server": server,
        **extra,
    }


def test_summary_reports_the_floor_commits_and_the_latency_phase(tmp_path: Path):
    bets_server = {
        "requests": 100,
        "sql_per_request": 10.0,
        "sql_apilog_per_request": 1.0,
        "db_round_trips_per_request": 20.0,
        "provider_calls_per_request": 3.0,
        "pg_commits_counted_per_request": 6.0,
        "statements_per_request": {"INSERT bets": 1.0},
        "provider_calls_by_endpoint": {"POST /api/bet": 1.0},
    }
    floor_server = {
        **bets_server,
        "sql_per_request": 4.0,
        "sql_apilog_per_request": 0.0,
        "db_round_trips_per_request": 7.0,
    }
    result = {
        "kind": "bench",
        "started_at": "2026-01-01T00:00:00+00:00",
        "machine": {"cores": 2},
        "server": {"env": {"LOG_LEVEL": "INFO"}},
        "commit_counter_check": {
            "after_quiet_wait": {
                "expected": 200,
                "counted": 200,
                "ok": True,
                "quiet_wait_s": 10.5,
            },
            "after_0_6_s": {
                "expected": 200,
                "counted": 0,
                "ok": False,
                "quiet_wait_s": 0.6,
            },
        },
        "phases": [
            _phase("health", "health", 1000.0),
            _phase(
                "bets c=32",
                "bets",
                60.0,
                concurrency=32,
                cpu={"server": 15.0, "postgres": 3.0},
                server=bets_server,
                postgres={"commits": 600, "commits_per_ok": 6.0},
            ),
            _phase("bets c=64", "bets", 70.0, concurrency=64),
            _phase(
                "bets c=32 with key",
                "bets-key",
                50.0,
                concurrency=32,
                postgres={"commits_per_ok": 8.0},
            ),
            _phase(
                "floor c=32",
                "floor",
                150.0,
                concurrency=32,
                cpu={"server": 5.0, "postgres": 1.5},
                server=floor_server,
                postgres={"commits_per_ok": 2.0},
            ),
            _phase(
                "bets c=64 with 50 ms provider latency",
                "bets-latency",
                63.0,
                concurrency=64,
                provider_latency={"latency_ms": 50, "jitter_ms": 20},
            ),
            _phase("bets open 50%", "bets-open", 35.0, fraction=0.5, p99=120),
        ],
    }
    summary, targets = bench_summarize(result)
    assert summary["bets_per_s_at_32"] == 60.0
    assert summary["peak_bets_per_s"] == 70.0
    assert summary["sql_with_audit_per_bet"] == 11.0
    assert summary["commits_per_bet"] == 6.0
    assert summary["commits_per_bet_with_key"] == 8.0
    assert summary["floor_per_s"] == 150.0
    assert summary["commits_per_floor"] == 2.0
    assert summary["sql_per_floor"] == 4.0
    assert summary["db_round_trips_per_floor"] == 7.0
    assert summary["ratio_bets_to_floor"] == 0.4
    assert summary["ratio_bets_to_health"] == 0.06
    assert summary["pg_cpu_ms_per_bet"] == 3.0
    assert summary["pg_cpu_ms_per_floor"] == 1.5
    assert summary["ratio_pg_cpu_bets_to_floor"] == 2.0
    assert summary["bets_per_s_latency_50ms_c64"] == 63.0
    assert summary["ratio_latency_50ms_to_peak"] == 0.9
    assert summary["commit_counter_verified"] is True
    met = {t["target"]: t["met"] for t in targets if t["group"] == "issue"}
    assert met == {
        "server CPU per bet (ms)": False,
        "PostgreSQL CPU per bet (ms)": False,
        "PostgreSQL CPU per bet over the floor's": False,
        "SQL statements per bet, the audit log included": False,
        "commits per bet (pg_stat_database)": False,
        "bets/s at 32 clients over floor/s": False,
        "p99 latency (ms) at 50% of peak, open loop": True,
        "bets/s at 64 clients with 50 ms provider latency over the zero-latency "
        "peak": True,
    }
    assert len([t for t in targets if t["group"] == "earlier"]) == 5
    result["summary"], result["targets"] = summary, targets
    markdown = report.write(result, tmp_path, "bench-test", keep=False)[1].read_text()
    assert "| bets/s at 32 clients over floor/s | >= 0.7 | 0.4 | NOT met |" in markdown
    assert "| bets/s at 32 concurrent clients | >= 200 | 60 | NOT met |" in markdown
    assert "LOG_LEVEL=INFO" in markdown
    assert "200 counted in `pg_stat_database` after 10.5 s (exact)" in markdown


def test_provider_calls_are_counted_at_the_projects_transports(monkeypatch):
    from provider import transport

    classes = instrument.transport_classes()
    assert transport.Urllib3Transport in classes
    assert transport.Transport not in classes

    class FakeTransport:
        def send(self, method, url, *, body, headers, timeout):
            return "answer"

    monkeypatch.setattr(instrument, "transport_classes", lambda: [FakeTransport])
    calls = []
    instrument.patch_transports(lambda *call: calls.append(call))
    instrument.patch_transports(lambda *call: calls.append(call))  # not twice
    answer = FakeTransport().send(
        "POST", "http://127.0.0.1:1/api/bet?x=1", body=b"{}", headers={}, timeout=(1, 1)
    )
    assert answer == "answer"
    assert [(method, url) for method, url, _ in calls] == [
        ("POST", "http://127.0.0.1:1/api/bet?x=1")
    ]


def test_growth_bench_writes_cursors_as_the_server_does():
    from bench.growth import cursor_token
    from betting_site.api.pagination import decode_cursor, encode_cursor

    assert cursor_token(1234) == encode_cursor("after", 1234)
    assert decode_cursor(cursor_token(1234)) == ("after", 1234)
