"""The bench and soak reports: JSON (everything) and Markdown (the figures)."""

import json
from pathlib import Path
from typing import Any


def write(result: dict[str, Any], directory: Path, stem: str, *, keep: bool) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    soak = result.get("kind") == "soak"
    markdown = soak_markdown(result) if soak else bench_markdown(result)
    paths = [directory / f"{stem}.json", directory / f"{stem}.md"]
    paths[0].write_text(text)
    paths[1].write_text(markdown)
    if keep:
        stamp = result["started_at"].replace(":", "").replace("-", "")[:15]
        kind = result.get("kind", "run")
        for suffix, content in ((".json", text), (".md", markdown)):
            path = directory / f"{kind}-{stamp}{suffix}"
            path.write_text(content)
            paths.append(path)
    return paths


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[met]


def console_summary(result: dict[str, Any]) -> str:
    summary = result.get("summary", {})
    lines = ["", "Bench summary (noisy if anything else ran on the machine):"]
    for key, value in summary.items():
        lines.append(f"  {key}: {value}")
    for target in result.get("targets", []):
        earlier = " (earlier)" if target.get("group") == "earlier" else ""
        lines.append(
            f"  target{earlier} {target['target']} {target['goal']}: "
            f"{_cell(target['measured'])} ({_met(target['met'])})"
        )
    ledger = result.get("ledger")
    if ledger:
        for name in ("check_ledger", "reconcile"):
            check = ledger.get(name, {})
            lines.append(
                f"  {name}: exit {check.get('exit_code')} "
                f"{' / '.join(check.get('summary', [])[-1:])}"
            )
    lines.append(f"  duration: {result.get('duration_s')} s")
    return "\n".join(lines)


def bench_markdown(result: dict[str, Any]) -> str:
    machine = result.get("machine", {})
    server = result.get("server", {})
    code = result.get("code", {})
    summary = result.get("summary", {})
    commit = machine.get("postgres_commit_ms") or {}
    out = [
        "# Bench report: POST /api/bets",
        "",
        f"Run {result.get('started_at')} on commit `{code.get('commit')}`"
        + (
            f" with {len(code.get('uncommitted', []))} uncommitted changes"
            if code.get("uncommitted")
            else ""
        )
        + f"; {result.get('duration_s')} s in all (`make bench`).",
        "",
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}, "
        f"PostgreSQL {machine.get('postgres')}; load average at start "
        f"{machine.get('load_average_at_start')}; PostgreSQL commit of one small "
        f"insert p50/p95 {commit.get('p50')}/{commit.get('p95')} ms. "
        f"{machine.get('note', '')}.",
        "",
        f"Server: {server.get('gunicorn')}, {server.get('workers')} workers x "
        f"{server.get('threads')} threads, {server.get('stake_mode')}, "
        f"rate limits off, DEBUG=0, "
        f"LOG_LEVEL={server.get('env', {}).get('LOG_LEVEL', '?')}; "
        f"{result.get('players')} players seeded in {result.get('seed_s')} s. "
        "The headline is bets at 32 clients without an Idempotency-Key; every "
        "statement is counted, the audit log's included.",
        "",
        *_noise_warning(result),
        "## Targets",
        "",
        _targets_table(result, "issue"),
        "",
        "Earlier targets:",
        "",
        _targets_table(result, "earlier"),
        "",
        *_commit_check_lines(result),
        "## Summary",
        "",
        _table(["figure", "value"], [[key, value] for key, value in summary.items()]),
        "",
        "## Phases",
        "",
        "Throughput counts good answers (201 for bets, 200 otherwise) in the "
        "measured window (after the first seconds of each phase). Open-loop "
        "latency is from the intended send time. CPU is per good answer over the "
        "whole phase: the gunicorn master and workers, the simulator, the load "
        'generator, and the PostgreSQL backends of the bench database. "Other '
        "work's CPU\" is the share of the machine's CPU that none of these used "
        "(other programs, Redis, the kernel): the higher, the noisier the phase.",
        "",
        _table(
            [
                "phase",
                "ok/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "errors",
                "server CPU ms",
                "sim CPU ms",
                "PG CPU ms",
                "loadgen CPU ms",
                "machine busy %",
                "other work's CPU %",
                "worker restarts",
            ],
            [
                [
                    p["name"],
                    p["throughput"],
                    p["latency_ms"]["p50"],
                    p["latency_ms"]["p95"],
                    p["latency_ms"]["p99"],
                    p["latency_ms"]["max"],
                    p["error_rate"],
                    p["cost"]["cpu_ms_per_ok"]["server"],
                    p["cost"]["cpu_ms_per_ok"]["simulator"],
                    p["cost"]["cpu_ms_per_ok"]["postgres"],
                    p["cost"]["cpu_ms_per_ok"]["loadgen"],
                    p["cost"]["machine_busy_pct"],
                    round(
                        100
                        * p["cost"]["other_cpu_s"]
                        / max(p["cost"]["seconds"] * machine.get("cores", 1), 1e-9),
                        1,
                    ),
                    p["cost"]["worker_restarts"],
                ]
                for p in result.get("phases", [])
            ],
        ),
        "",
        "Answers by status and detail:",
        "",
    ]
    for phase in result.get("phases", []):
        details = ", ".join(f"{k}: {v}" for k, v in phase.get("details", {}).items())
        out.append(f"- {phase['name']}: {details}")
    out += [
        "",
        "## Inside the server, per request",
        "",
        "Counted in each worker by `bench/instrument.py`: SQL statements sent "
        "through Django (the audit log's `api_logs` inserts apart), transactions "
        "(psycopg sends a BEGIN before each, then COMMIT), `CONN_HEALTH_CHECKS`' "
        "checks (which send nothing), and provider calls. PG commits: the increase of "
        "`xact_commit` in `pg_stat_database` for the bench database over the "
        "phase, per good answer (`bench/pgstats.py`); counted: what the workers "
        "sent that PostgreSQL commits (COMMITs, statements in autocommit "
        "mode), per request.",
        "",
        _table(
            [
                "phase",
                "SQL",
                "audit SQL",
                "transactions",
                "health checks",
                "DB round trips",
                "PG commits",
                "PG commits counted",
                "provider calls",
                "wall ms",
                "thread CPU ms",
                "SQL ms",
                "COMMIT ms",
                "provider ms",
            ],
            [
                [
                    p["name"],
                    s.get("sql_per_request"),
                    s.get("sql_apilog_per_request"),
                    s.get("transactions_per_request"),
                    s.get("health_checks_per_request"),
                    s.get("db_round_trips_per_request"),
                    p.get("postgres", {}).get("commits_per_ok"),
                    s.get("pg_commits_counted_per_request"),
                    s.get("provider_calls_per_request"),
                    s.get("wall_ms_per_request"),
                    s.get("thread_cpu_ms_per_request"),
                    s.get("sql_ms_per_request"),
                    s.get("commit_ms_per_request"),
                    s.get("provider_ms_per_request"),
                ]
                for p in result.get("phases", [])
                if (s := p.get("server")) and s.get("requests")
            ],
        ),
        "",
    ]
    statement_phase = next(
        (
            p
            for p in result.get("phases", [])
            if p["target"] == "bets" and p.get("concurrency") == 32
        ),
        None,
    )
    if statement_phase and statement_phase["server"].get("requests"):
        server_figures = statement_phase["server"]
        out += [
            f"Statements per bet by shape ({statement_phase['name']}, "
            "no Idempotency-Key):",
            "",
            _table(
                ["statement", "per bet"],
                list(server_figures["statements_per_request"].items()),
            ),
            "",
            "Provider calls per bet: "
            + ", ".join(
                f"{call} {count}"
                for call, count in server_figures["provider_calls_by_endpoint"].items()
            ),
            "",
        ]
    for target, title in (
        ("bets-key", "With Idempotency-Key"),
        ("floor", "The floor, `POST /bench/floor`"),
    ):
        other = next(
            (p for p in result.get("phases", []) if p["target"] == target), None
        )
        if other and other["server"].get("requests"):
            out += [
                f"{title} ({other['name']}):",
                "",
                _table(
                    ["statement", "per request"],
                    list(other["server"]["statements_per_request"].items()),
                ),
                "",
            ]
    trace = (result.get("trace") or {}).get("without_key")
    if trace and trace.get("events"):
        out += [
            "### One bet, statement by statement",
            "",
            "`bench/sql_trace.py`: one `POST /api/bets` without an Idempotency-Key "
            "through the Django test client, in order (BEGIN/COMMIT are Django's "
            f"transaction boundaries; answer {trace.get('status')}).",
            "",
            "```",
            *trace_lines(trace["events"]),
            "```",
            "",
        ]
    cross = result.get("provider_cross_check")
    if cross:
        out += [
            "Provider calls counted by the simulator over the bets phases: "
            f"{cross['simulator_total']} for {cross['bet_requests']} bet requests "
            f"({cross['simulator_calls_per_bet']} per bet; the server counted "
            f"{cross['server_counted_total']}): "
            + ", ".join(f"{k} {v}" for k, v in cross["simulator_calls"].items()),
            "",
        ]
    profile = result.get("profile")
    if profile:
        out += ["## Profile (py-spy)", "", profile_markdown_short(profile), ""]
    ledger = result.get("ledger")
    if ledger:
        out += ["## Ledger after the run", ""]
        for name in ("check_ledger", "reconcile"):
            check = ledger.get(name, {})
            out.append(
                f"- `{name}`: exit {check.get('exit_code')}: "
                + " / ".join(check.get("summary", []))
            )
            out += [f"  - {line}" for line in check.get("violations", [])]
        out.append("")
    database = result.get("database")
    if database:
        out += [
            f"- bets by status: {database['bets_by_status']}",
            f"- ledger entries: {database['ledger_entries']}",
            f"- API log rows: {database['api_logs']}",
            "",
        ]
    if result.get("notes") or result.get("error"):
        out += ["## Notes", ""]
        out += [f"- {note}" for note in result.get("notes", [])]
        if result.get("error"):
            out.append(f"- error: {result['error']}")
        out.append("")
    return "\n".join(out)


def _targets_table(result: dict[str, Any], group: str) -> str:
    return _table(
        ["target", "goal", "measured", ""],
        [
            [t["target"], t["goal"], t["measured"], _met(t["met"])]
            for t in result.get("targets", [])
            if t.get("group", "issue") == group
        ],
    )


def _commit_check_lines(result: dict[str, Any]) -> list[str]:
    check = result.get("commit_counter_check") or {}
    quiet, quick = check.get("after_quiet_wait"), check.get("after_0_6_s")
    if not quiet:
        return []
    line = (
        f"Commit counter check: {quiet['expected']} known commits on an idle open "
        f"connection, {quiet['counted']} counted in `pg_stat_database` after "
        f"{quiet['quiet_wait_s']} s ({'exact' if quiet['ok'] else 'NOT exact'})"
    )
    if quick:
        line += f"; after {quick['quiet_wait_s']} s only {quick['counted']} were"
    return [line + ".", ""]


def trace_lines(events: list[dict[str, str]]) -> list[str]:
    lines, depth, number = [], 0, 0
    for event in events:
        kind = event["event"]
        if kind in ("commit", "rollback"):
            depth = 0
        if kind == "sql":
            number += 1
            label = f"{number:3d}  {event['shape']}"
        elif kind == "provider":
            label = f"     -> provider {event['shape']}"
        else:
            label = f"     {event['shape']}"
        lines.append(("    " * depth) + label)
        if kind == "begin":
            depth = 1
    return lines


def _noise_warning(result: dict[str, Any]) -> list[str]:
    """A warning when other programs took a large share of the machine."""
    cores = result.get("machine", {}).get("cores") or 1
    shares = [
        100 * p["cost"]["other_cpu_s"] / max(p["cost"]["seconds"] * cores, 1e-9)
        for p in result.get("phases", [])
        if p.get("cost")
    ]
    if not shares or max(shares) < 20:
        return []
    return [
        f"**Noisy run:** other work on the machine used up to {max(shares):.0f}% of "
        "its CPU during the phases (see the phase table), so throughput and "
        "latency are understated; the CPU and statement counts per bet, and the "
        "CPU-bound ceilings in the summary, hold regardless.",
        "",
    ]


def profile_markdown_short(profile: dict[str, Any]) -> str:
    kinds = [[name, f"{share:.1f}%"] for name, share in profile.get("kinds", [])]
    features = [
        [name.strip(), f"{share:.1f}%"] for name, share in profile.get("features", [])
    ]
    return (
        f"py-spy --gil: {profile.get('samples')} samples of gunicorn threads "
        "running Python. Details: `bench/results/profile-latest.md`.\n\n"
        + _table(["kind of work (adds up to 100%)", "share"], kinds)
        + "\n\n"
        + _table(["feature (inclusive)", "share"], features)
    )


def fault_table(fired: dict[str, int]) -> str:
    """Rows: fault kinds (delays by length); columns: provider endpoints."""
    rows: dict[str, dict[str, int]] = {}
    endpoints: list[str] = []
    for name, count in fired.items():
        parts = name.split(" ")
        kind, endpoint = parts[0], f"{parts[1]} {parts[2]}"
        if len(parts) > 3:
            kind += f" {parts[3]}"
        rows.setdefault(kind, {})[endpoint] = count
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    return _table(
        ["fault", *endpoints, "total"],
        [
            [kind, *(row.get(e, 0) for e in endpoints), sum(row.values())]
            for kind, row in rows.items()
        ],
    )


def chaos_table(events: list[dict[str, Any]]) -> str:
    """One row per fault: what it was, how long it took, and the recovery."""
    rows = []
    for event in events:
        what = event.get("what", event.get("fault"))
        if "drained_s" in event:
            what += f" (drained in {event['drained_s']} s)"
        rows.append(
            [
                event["at_s"],
                what,
                event.get("took_s")
                if abs((event.get("back_after_s") or 0) - (event.get("took_s") or 0))
                < 0.5
                else f"{event.get('took_s')} (back after {event['back_after_s']})",
                event.get("first_bet_accepted_after_s"),
                f"{event.get('bets_in_flight')} "
                f"{event.get('bets_in_flight_answers') or ''}",
                _next_accepted(event),
                event.get("blocking_answers_until_next_fault") or "none",
                event.get("last_blocking_answer_after_s"),
            ]
        )
    return _table(
        [
            "at s",
            "fault",
            "took",
            "first bet accepted after",
            "bets in flight (their answers)",
            "their players' next bet accepted after (max)",
            "blocking answers until the next fault",
            "last one after",
        ],
        rows,
    )


def _next_accepted(event: dict[str, Any]) -> str:
    longest = event.get("in_flight_next_bet_accepted_max_s")
    after_back = event.get("in_flight_next_bet_accepted_after_back_max_s")
    never = event.get("in_flight_players_never_accepted")
    text = "-" if longest is None else str(longest)
    if after_back is not None and after_back != longest:
        text += f" ({after_back} after it was back)"
    after_answer = event.get("in_flight_next_bet_accepted_after_answer_max_s")
    if after_answer is not None and after_answer != after_back:
        text += f" ({after_answer} after the later of that and their answer)"
    if never:
        text += f"; {never} never before the traffic stopped"
    return text


def server_error_lines(errors: dict[str, Any]) -> list[str]:
    if not errors:
        return []
    lines = [
        f"5xx answers: {errors.get('total', 0)}, of which **500: "
        f"{errors.get('500s', 0)}**."
    ]
    if errors.get("total"):
        lines += [
            "",
            _table(
                ["request", "5xx by kind"],
                [[k, v] for k, v in errors.get("by_request", {}).items()],
            ),
        ]
    return [*lines, ""]


def block_lines(blocks: list[dict[str, Any]], players: int | None) -> list[str]:
    if not blocks:
        return ["No player was blocked.", ""]
    top = blocks[0]
    return [
        f"Players blocked at some point: {players}. **Longest block: "
        f"{top['seconds']} s** (player {top['player']} from {top['from_s']} s: "
        f"{top['answers']}"
        + ("" if top["unblocked"] else "; still blocked when the traffic stopped")
        + "). The next longest: "
        + ", ".join(f"{b['seconds']} s ({b['answers']})" for b in blocks[1:5])
        + ".",
        "",
    ]


def soak_markdown(result: dict[str, Any]) -> str:
    out = [
        "# Soak and fault report",
        "",
        f"Run {result.get('started_at')} on commit "
        f"`{result.get('code', {}).get('commit')}`"
        + (
            f" with {len(result.get('code', {}).get('uncommitted', []))} uncommitted "
            "changes"
            if result.get("code", {}).get("uncommitted")
            else ""
        )
        + f"; {result.get('duration_s')} s in all (`make soak`). "
        f"Verdict: **{'PASS' if result.get('ok') else 'FAIL'}**.",
        "",
        result.get("description", ""),
        "",
    ]
    for mode in result.get("modes", []):
        out += [
            f"## {mode['stake_mode']}: {'PASS' if mode.get('ok') else 'FAIL'}",
            "",
            f"{mode.get('traffic_s')} s of traffic from {mode.get('players')} "
            f"players at {mode.get('concurrency')} concurrent clients. The faults, "
            "and how the service came back after each (times in seconds from the "
            "fault; a player is blocked by 409 BET_IN_PROGRESS, a 5xx or no "
            "answer):",
            "",
            chaos_table(mode.get("chaos", [])),
            "",
            "Recovery targets (measured; only the 500s and a cut bet fail the soak):",
            "",
            _table(
                ["target", "measured", "met"],
                [
                    [row["target"], row["figure"], _met(row["met"])]
                    for row in mode.get("targets", [])
                ],
            ),
            "",
            *server_error_lines(mode.get("server_errors", {})),
            *block_lines(mode.get("longest_blocks", []), mode.get("players_blocked")),
            f"Idempotency-Key replays: {mode.get('idempotent_replays')}"
            + (
                f" (different: {mode['idempotent_replay_differences']})"
                if mode.get("idempotent_replay_differences")
                else ""
            )
            + ". Bets when "
            "the traffic stopped: "
            f"{mode.get('before_settling', {}).get('bets_by_status')}. "
            f"Provider leases still held: {mode.get('leases_held_after_traffic')}; "
            + (
                "settle_pending ran without waiting for them."
                if mode.get("lease_wait_s") is None
                else f"**waited {mode.get('lease_wait_s')} s** for those of killed "
                "processes to expire before settle_pending."
            ),
            "",
            "Requests:",
            "",
            _table(
                ["request", "count", "by status"],
                [
                    [name, info["count"], info["statuses"]]
                    for name, info in mode.get("requests", {}).items()
                ],
            ),
            "",
            f"Faults injected by the simulator: {mode.get('faults_fired_total')} in "
            "all, by kind and provider endpoint:",
            "",
            fault_table(mode.get("faults_fired", {})),
            "",
            "After the traffic:",
            "",
        ]
        drift = mode.get("drift_injected") or []
        if drift:
            out.append(
                "- moved at the provider after settle_pending: "
                + ", ".join(f"{d['account']} {d['from']} -> {d['to']}" for d in drift)
            )
        for step in mode.get("steps", []):
            out.append(
                f"- `{step['command']}`: exit {step['exit_code']} in "
                f"{step.get('seconds')} s: " + " / ".join(step.get("summary", []))
            )
        final = mode.get("final", {})
        out += [
            "",
            _table(
                ["check", "value"],
                [[key, value] for key, value in final.items()],
            ),
            "",
        ]
        if mode.get("failures"):
            out += ["Failures:", ""] + [f"- {f}" for f in mode["failures"]] + [""]
    if result.get("error"):
        out += [f"Error: {result['error']}", ""]
    return "\n".join(out)
