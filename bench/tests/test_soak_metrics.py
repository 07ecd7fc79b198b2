"""The soak's measures (``bench.soak_metrics``) and their report, on made-up
answers: nothing is started."""

import pytest

from bench import report, soak_metrics
from bench.soak import parse_args, targets, traffic_failures
from bench.soak_metrics import BET, Answer


def bet(player: str, start: float, end: float, label: str) -> Answer:
    status = int(label.split(" ", 1)[0])
    return Answer(start, end, player, BET, status, label)


def test_5xx_are_counted_by_kind_and_500s_apart():
    answers = [
        bet("1", 0, 1, "503 SERVICE_UNAVAILABLE"),
        bet("1", 1, 2, "500 INTERNAL_ERROR"),
        Answer(0, 1, "2", "GET /api/balance", 503, "503 SERVICE_UNAVAILABLE"),
        bet("2", 2, 3, "201 completed"),
        bet("2", 3, 4, "409 BET_IN_PROGRESS"),
    ]
    errors = soak_metrics.server_errors(answers)
    assert errors["total"] == 3
    assert errors["500s"] == 1
    assert errors["by_kind"] == {"503 SERVICE_UNAVAILABLE": 2, "500 INTERNAL_ERROR": 1}
    assert errors["by_request"]["GET /api/balance"] == {"503 SERVICE_UNAVAILABLE": 1}


def test_a_block_lasts_from_the_first_refusal_to_the_next_accepted_bet():
    answers = [
        bet("1", 0.0, 0.5, "201 completed"),
        bet("1", 1.0, 1.1, "409 BET_IN_PROGRESS"),
        bet("1", 1.6, 1.7, "0 ClientConnectorError"),
        bet("1", 2.2, 2.4, "503 SERVICE_UNAVAILABLE"),
        bet("1", 2.9, 3.5, "201 unknown"),  # accepted, whatever the bet became
        bet("2", 5.0, 5.2, "409 BET_IN_PROGRESS"),  # never accepted again
        bet("3", 1.0, 1.2, "502 PROVIDER_ERROR"),
        bet("3", 1.7, 1.8, "201 completed"),
    ]
    blocks = soak_metrics.blocks(answers, traffic_end=10.0)
    assert [(b["player"], b["seconds"], b["unblocked"]) for b in blocks] == [
        ("2", 5.0, False),
        ("1", 2.5, True),
        ("3", 0.8, True),
    ]
    assert blocks[1]["answers"]["409 BET_IN_PROGRESS"] == 1


def test_recovery_after_a_fault_and_the_players_who_had_a_bet_in_flight():
    answers = [
        bet("1", 9.0, 10.5, "0 ServerDisconnectedError"),  # cut by the fault at 10
        bet("1", 11.0, 11.1, "409 BET_IN_PROGRESS"),
        bet("1", 11.6, 12.0, "201 completed"),
        bet("2", 9.5, 13.0, "201 completed"),  # finished despite the fault
        bet("3", 10.2, 10.3, "0 ClientConnectorError"),
        bet("3", 10.8, 11.5, "201 completed"),  # the first accepted after it
        bet("4", 20.5, 21.0, "201 completed"),
    ]
    faults = [
        {"at_s": 10.0, "fault": "server-kill", "back_after_s": 1.5},
        {"at_s": 20.0, "fault": "x"},
    ]
    first, second = soak_metrics.recovery(answers, faults, traffic_end=30.0)
    assert first["first_bet_accepted_after_s"] == 1.5
    assert first["bets_in_flight"] == 2
    assert first["bets_in_flight_answers"] == {
        "0 ServerDisconnectedError": 1,
        "201 completed": 1,
    }
    assert first["in_flight_next_bet_accepted_max_s"] == 3.0
    assert first["in_flight_next_bet_accepted_after_back_max_s"] == 1.5
    # Player 1 answered (cut) at 10.5, the server was back at 11.5, accepted at 12.
    assert first["in_flight_next_bet_accepted_after_answer_max_s"] == 0.5
    assert first["in_flight_players_never_accepted"] == 0
    assert first["last_blocking_answer_after_s"] == 1.1
    assert second["bets_in_flight"] == 0
    assert second["first_bet_accepted_after_s"] == 1.0


def test_a_500_and_a_bet_cut_by_the_sigterm_fail_the_soak_on_lines_of_their_own():
    entry = {
        "server_errors": {"500s": 2, "by_request": {BET: {"500 INTERNAL_ERROR": 2}}},
        "chaos": [
            {
                "fault": "server-term",
                "at_s": 50.0,
                "bets_in_flight_answers": {"201 completed": 4, "0 ClientOSError": 1},
            },
            {"fault": "server-kill", "at_s": 60, "bets_in_flight_answers": {"0 X": 3}},
        ],
    }
    failures = traffic_failures(entry)
    assert len(failures) == 2
    assert failures[0].startswith("2 answers were 500")
    assert "SIGTERM at 50.0 s got no answer: {'0 ClientOSError': 1}" in failures[1]
    assert traffic_failures({"server_errors": {"500s": 0}, "chaos": []}) == []


def test_the_report_shows_the_recovery_the_5xx_and_the_longest_block(tmp_path):
    answers = [
        bet("1", 9.0, 10.5, "503 SERVICE_UNAVAILABLE"),
        bet("1", 11.0, 12.0, "201 completed"),
    ]
    chaos = soak_metrics.recovery(
        answers, [{"at_s": 10.0, "fault": "pg-fast", "what": "PG"}], 30.0
    )
    mode = {
        "stake_mode": "debit_on_loss",
        "chaos": chaos,
        "server_errors": soak_metrics.server_errors(answers),
        "longest_blocks": soak_metrics.blocks(answers, 30.0),
        "players_blocked": 1,
        "lease_wait_s": 12.5,
    }
    result = {"kind": "soak", "modes": [mode], "ok": False}
    markdown = report.write(result, tmp_path, "soak-test", keep=False)[1].read_text()
    assert "| 10 | PG | - | 2 |" in markdown
    assert "of which **500: 0**" in markdown
    assert "**Longest block: 3.0 s**" in markdown
    assert "**waited 12.5 s**" in markdown


def test_unknown_faults_are_refused(capsys):
    assert parse_args(["--faults", "pg-fast,server-term"]).faults
    with pytest.raises(SystemExit) as exited:
        parse_args(["--faults", "pg-slow"])
    assert exited.value.code == 2
    assert "unknown faults: pg-slow" in capsys.readouterr().err


def test_targets_after_crashes_allow_the_unknown_grace_in_debit_on_place():
    def fault(name, longest, never=0, answers=None):
        return {
            "fault": name,
            "at_s": 20.0,
            "in_flight_next_bet_accepted_max_s": longest,
            "in_flight_next_bet_accepted_after_back_max_s": longest,
            "in_flight_next_bet_accepted_after_answer_max_s": longest,
            "in_flight_players_never_accepted": never,
            "bets_in_flight": sum((answers or {}).values()),
            "bets_in_flight_answers": answers or {},
        }

    entry = {
        "stake_mode": "debit_on_loss",
        "server_errors": {"500s": 0, "total": 4},
        "chaos": [
            fault("pg-fast", 4.0),
            fault("server-kill", 8.0),
            fault("pg-immediate", 1.0, never=1),
            fault("server-term", 2.0, answers={"201 completed": 3, "0 X": 1}),
            fault("worker-kill", 30.0),
        ],
        "steps": [{"command": "settle_pending --wait 5", "exit_code": 0, "seconds": 3}],
        "lease_wait_s": 41.0,
    }
    rows = targets(entry)
    assert [row["met"] for row in rows] == [
        True,
        True,
        False,
        False,
        False,
        False,
        True,
    ]
    assert rows[3]["figure"] == "1 s; 1 not before the traffic stopped"
    assert rows[4]["figure"] == "3 of 4"
    assert rows[5]["target"].startswith("worker-kill at 20 s: players with a bet")
    assert rows[6]["figure"] == "exit 0 in 3 s, after a lease wait of 41 s"
    entry["stake_mode"] = "debit_on_place"  # 5 s + BET_UNKNOWN_GRACE (6 s)
    assert targets(entry)[2]["met"]
    assert (
        "within 11 s of the restart or of their answer, the later "
        "(5 + BET_UNKNOWN_GRACE)" in targets(entry)[2]["target"]
    )
