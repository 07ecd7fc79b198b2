"""The bundled provider simulator, over a real socket."""

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from provider.management.commands.run_provider_simulator import Command
from provider.signing import sign_body, sign_bytes
from provider.simulator import DEMO_ACCOUNTS, ProviderSimulator
from provider.simulator.latency import Latency
from provider.simulator.persistence import StateFileError

pytestmark = pytest.mark.simulator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRETS = {account["user_id"]: account["secret"] for account in DEMO_ACCOUNTS}


def call(
    sim: ProviderSimulator,
    method: str,
    path: str,
    body: dict | None = None,
    *,
    user: str = "1001",
    secret: str | None = None,
    timeout: float = 5,
) -> requests.Response:
    """A correctly signed call, as the server's client makes it."""
    signed = sign_body(body, secret or SECRETS[user])
    headers = {
        "user-id": user,
        "x-signature": signed.signature,
        "Content-Type": "application/json",
    }
    return requests.request(
        method,
        sim.base_url + path,
        data=signed.body or None,
        headers=headers,
        timeout=timeout,
    )


def raw(
    sim: ProviderSimulator,
    method: str,
    path: str,
    data: bytes = b"",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    return requests.request(
        method, sim.base_url + path, data=data or None, headers=headers, timeout=5
    )


def control(
    sim: ProviderSimulator, method: str, name: str, body: Any = None
) -> requests.Response:
    return requests.request(method, f"{sim.control_url}/{name}", json=body, timeout=5)


def fund(sim: ProviderSimulator, balance: Any = 100, user: str = "1001") -> None:
    response = call(sim, "POST", "/balance", {"balance": balance}, user=user)
    assert response.status_code == 200, response.text


def read_balance(sim: ProviderSimulator, user: str = "1001") -> Any:
    response = call(sim, "POST", "/balance", user=user)
    assert response.status_code == 200, response.text
    return response.json()["balance"]


def place(sim: ProviderSimulator, stake: Any = 3, user: str = "1001") -> str:
    response = call(sim, "POST", "/bet", {"bet": stake}, user=user)
    assert response.status_code == 200, response.text
    return response.json()["bet_id"]


def settle(sim: ProviderSimulator, bet_id: Any, user: str = "1001") -> dict:
    response = call(sim, "POST", "/win", {"bet_id": bet_id}, user=user)
    assert response.status_code == 200, response.text
    return response.json()


def bets(sim: ProviderSimulator) -> list[dict]:
    return sim.snapshot()["bets"]


def sim_account(sim: ProviderSimulator, user: str = "1001") -> dict:
    return next(a for a in sim.snapshot()["accounts"] if a["user_id"] == user)


# --- signatures and transport -------------------------------------------------------


def test_health_answers_without_a_signature(simulator):
    response = requests.get(simulator.base_url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_auth_accepts_a_good_signature(simulator):
    response = call(simulator, "POST", "/auth", {})
    assert response.status_code == 200
    assert response.json() == {
        "message": "Successfully authenticated",
        "user_id": "1001",
        "username": "demo1",
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"user-id": "1001", "x-signature": "0" * 128}, id="wrong"),
        pytest.param({"user-id": "1001"}, id="missing-signature"),
        pytest.param({"x-signature": sign_bytes(b"{}", "x")}, id="missing-user"),
        pytest.param(
            {"user-id": "9999", "x-signature": sign_bytes(b"{}", "x")},
            id="unknown-user",
        ),
        pytest.param(
            {"user-id": "1001", "x-signature": sign_bytes(b"{}", "demo-secret-1002")},
            id="another-accounts-secret",
        ),
    ],
)
def test_bad_credentials_are_unauthorized(simulator, headers):
    response = raw(simulator, "POST", "/auth", b"{}", headers)
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert response.json()["message"]


def test_a_call_without_a_body_is_signed_over_an_empty_object(simulator):
    headers = {"user-id": "1001", "x-signature": sign_bytes(b"{}", SECRETS["1001"])}
    assert raw(simulator, "GET", "/bet", b"", headers).status_code == 200
    headers["x-signature"] = sign_bytes(b"", SECRETS["1001"])
    assert raw(simulator, "GET", "/bet", b"", headers).status_code == 401


def test_the_signature_covers_exactly_the_bytes_sent(simulator):
    fund(simulator)
    spaced = b'{"bet": 3}'
    headers = {"user-id": "1001", "x-signature": sign_bytes(spaced, SECRETS["1001"])}
    assert raw(simulator, "POST", "/bet", spaced, headers).status_code == 200
    headers["x-signature"] = sign_bytes(b'{"bet":3}', SECRETS["1001"])
    assert raw(simulator, "POST", "/bet", spaced, headers).status_code == 401


@pytest.mark.parametrize("body", [b"[1]", b'"x"', b"{", b'{"bet": NaN}', b"\xff"])
def test_a_body_that_is_not_a_json_object_is_refused(simulator, body):
    headers = {"user-id": "1001", "x-signature": sign_bytes(body, SECRETS["1001"])}
    response = raw(simulator, "POST", "/bet", body, headers)
    assert response.status_code == 400
    assert response.json()["error"]


def test_unknown_paths_and_methods(simulator):
    assert call(simulator, "POST", "/nothing", {}).status_code == 404
    response = call(simulator, "DELETE", "/bet")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    outside = requests.get(simulator.base_url[: -len("/api")] + "/bet", timeout=5)
    assert outside.status_code == 404


def test_connections_are_kept_alive_with_a_content_length(simulator):
    connection = http.client.HTTPConnection(simulator.host, simulator.port, timeout=5)
    try:
        for _ in range(2):
            connection.request("GET", "/api/health")
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(len(response.read()))
            assert not response.will_close
        connection.request("POST", "/api/auth", body=b"{}")  # unsigned: 401
        response = connection.getresponse()
        assert response.status == 401
        assert int(response.getheader("Content-Length")) == len(response.read())
        (accepted,) = simulator._connections
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        connection.close()


def test_importing_the_simulator_needs_no_django():
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE"
    }
    code = "import sys, provider.simulator; sys.exit('django' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, check=False
    )
    assert result.returncode == 0


# --- balance ------------------------------------------------------------------------


def test_balance_is_set_once_then_read(simulator):
    response = call(simulator, "POST", "/balance", {"balance": 1000})
    assert response.status_code == 200
    assert response.json() == {"message": "Balance set successfully", "balance": 1000}
    again = call(simulator, "POST", "/balance", {"balance": 50})
    assert again.status_code == 400
    assert again.json()["error"] == "Balance already set"
    assert read_balance(simulator) == 1000
    assert call(simulator, "POST", "/balance", {}).json() == {"balance": 1000}


def test_a_fractional_balance_is_kept_exactly(simulator):
    fund(simulator, Decimal("10.25"))
    response = call(simulator, "POST", "/balance")
    assert response.content == b'{"balance":10.25}'
    assert simulator.balance_of("1001") == Decimal("10.25")


def test_reading_a_balance_never_set_is_not_found(simulator):
    response = call(simulator, "POST", "/balance")
    assert response.status_code == 404
    assert response.json()["error"] == "Balance not set"


@pytest.mark.parametrize("value", [0, -5, "100", True, None])
def test_setting_an_invalid_balance_is_refused(simulator, value):
    response = call(simulator, "POST", "/balance", {"balance": value})
    assert response.status_code == 400
    assert simulator.balance_of("1001") is None


# --- bets ---------------------------------------------------------------------------


def test_recommendation_is_a_bet_from_one_to_five(simulator):
    for _ in range(10):
        response = call(simulator, "GET", "/bet")
        assert response.status_code == 200
        bet = response.json()["bet"]
        assert isinstance(bet, int)
        assert 1 <= bet <= 5


def test_placing_a_bet_answers_increasing_ids_unique_across_accounts(simulator):
    fund(simulator, user="1001")
    fund(simulator, user="1002")
    response = call(simulator, "POST", "/bet", {"bet": 3})
    assert response.json() == {"message": "Bet placed successfully", "bet_id": "1"}
    ids = [place(simulator, user="1002"), place(simulator, user="1001")]
    assert ids == ["2", "3"]


def test_an_integral_number_is_a_valid_stake(simulator):
    fund(simulator)
    place(simulator, Decimal("3.0"))
    assert bets(simulator)[0]["stake"] == 3


@pytest.mark.parametrize("stake", [True, "3", Decimal("2.5"), 0, 6, None, [3]])
def test_an_invalid_stake_is_refused(simulator, stake):
    fund(simulator)
    response = call(simulator, "POST", "/bet", {"bet": stake})
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid bet"
    assert bets(simulator) == []


def test_a_missing_stake_is_refused(simulator):
    fund(simulator)
    assert call(simulator, "POST", "/bet", {}).status_code == 400


def test_a_bet_without_a_balance_is_refused(simulator):
    response = call(simulator, "POST", "/bet", {"bet": 1})
    assert response.status_code == 400
    assert response.json()["error"] == "Insufficient balance"


def test_a_bet_above_the_balance_is_refused(simulator):
    fund(simulator, 2)
    response = call(simulator, "POST", "/bet", {"bet": 3})
    assert response.status_code == 400
    assert response.json()["error"] == "Insufficient balance"


def test_debit_on_loss_counts_the_stakes_of_unsettled_bets(simulator):
    fund(simulator, 10)
    place(simulator, 5)
    place(simulator, 5)
    assert read_balance(simulator) == 10
    response = call(simulator, "POST", "/bet", {"bet": 1})
    assert response.status_code == 400
    assert response.json()["error"] == "Insufficient balance"
    assert sim_account(simulator)["unsettled_stake"] == 10


def test_debit_on_place_needs_only_the_stake(simulator):
    simulator.configure(stake_mode="debit_on_place")
    fund(simulator, 10)
    place(simulator, 5)
    place(simulator, 5)
    assert read_balance(simulator) == 0
    assert call(simulator, "POST", "/bet", {"bet": 1}).status_code == 400


# --- results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stake_mode", "after_place", "after_win", "after_loss"),
    [("debit_on_loss", 100, 106, 101), ("debit_on_place", 97, 103, 98)],
)
def test_stake_modes_move_money_exactly(
    simulator, stake_mode, after_place, after_win, after_loss
):
    simulator.configure(stake_mode=stake_mode, win_probability=1)
    fund(simulator, 100)
    bet_id = place(simulator, 3)
    assert read_balance(simulator) == after_place
    assert settle(simulator, bet_id) == {
        "win": 6,
        "message": "Congratulations! You won!",
    }
    assert read_balance(simulator) == after_win
    simulator.configure(win_probability=0)
    bet_id = place(simulator, 5)
    assert settle(simulator, bet_id) == {"win": 0, "message": "Better luck next time"}
    assert read_balance(simulator) == after_loss
    assert sim_account(simulator)["unsettled_stake"] == 0


def test_a_bet_keeps_the_stake_mode_it_was_placed_with(simulator):
    simulator.configure(win_probability=0)
    fund(simulator, 100)
    bet_id = place(simulator, 4)  # debit_on_loss
    simulator.configure(stake_mode="debit_on_place")
    settle(simulator, bet_id)
    assert read_balance(simulator) == 96


def test_a_repeated_win_is_refused_by_default(simulator):
    fund(simulator)
    bet_id = place(simulator)
    settle(simulator, bet_id)
    balance = read_balance(simulator)
    response = call(simulator, "POST", "/win", {"bet_id": bet_id})
    assert response.status_code == 400
    assert response.json()["error"] == "Bet already settled"
    assert read_balance(simulator) == balance


def test_a_repeated_win_can_replay_the_result_without_moving_money(simulator):
    simulator.configure(repeat_win="replay", win_probability=1)
    fund(simulator)
    bet_id = place(simulator)
    first = settle(simulator, bet_id)
    balance = read_balance(simulator)
    assert settle(simulator, bet_id) == first
    assert read_balance(simulator) == balance == 106


def test_win_accepts_a_numeric_bet_id(simulator):
    fund(simulator)
    bet_id = place(simulator)
    assert settle(simulator, int(bet_id))["message"]


def test_win_for_an_unknown_or_another_accounts_bet_is_not_found(simulator):
    fund(simulator)
    bet_id = place(simulator)
    assert call(simulator, "POST", "/win", {"bet_id": "999"}).status_code == 404
    other = call(simulator, "POST", "/win", {"bet_id": bet_id}, user="1002")
    assert other.status_code == 404
    assert other.json()["error"] == "Bet not found"
    assert bets(simulator)[0]["status"] == "open"


@pytest.mark.parametrize("bet_id", [True, None, Decimal("1.5"), ""])
def test_win_with_an_invalid_bet_id_is_refused(simulator, bet_id):
    assert call(simulator, "POST", "/win", {"bet_id": bet_id}).status_code == 400


def outcomes(sim: ProviderSimulator, count: int) -> list[Any]:
    bet_ids = [place(sim, 1) for _ in range(count)]
    return [settle(sim, bet_id)["win"] for bet_id in bet_ids]


def test_a_seed_makes_the_outcomes_repeatable(simulator):
    fund(simulator, 1000)
    first = outcomes(simulator, 20)
    assert set(first) == {0, 2}
    with ProviderSimulator("127.0.0.1", 0, seed=1234) as other:
        fund(other, 1000)
        assert outcomes(other, 20) == first
    simulator.reset()
    simulator.configure(seed=99)
    fund(simulator, 1000)
    reseeded = outcomes(simulator, 20)
    simulator.reset()
    simulator.configure(seed=99)
    fund(simulator, 1000)
    assert outcomes(simulator, 20) == reseeded


def test_check_balance_answers_both_ways(simulator):
    fund(simulator, 1006)
    response = call(simulator, "POST", "/check-balance", {"expected_balance": 1006})
    assert response.json() == {"is_correct": True, "balance": 1006}
    response = call(simulator, "POST", "/check-balance", {"expected_balance": 1010})
    assert response.json() == {
        "is_correct": False,
        "message": "Incorrect balance. Expected: 1010, Actual: 1006",
        "correct_balance": 1006,
    }


def test_check_balance_refuses_bad_input_and_an_unset_balance(simulator):
    body = {"expected_balance": 5}
    assert call(simulator, "POST", "/check-balance", body).status_code == 404
    fund(simulator)
    bad = {"expected_balance": "5"}
    assert call(simulator, "POST", "/check-balance", bad).status_code == 400


# --- faults -------------------------------------------------------------------------


def test_error_before_answers_without_acting(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "error_before", method="POST", status=503)
    response = call(simulator, "POST", "/bet", {"bet": 3})
    assert response.status_code == 503
    assert response.json() == {
        "error": "Injected error",
        "message": "Fault injected by the simulator",
    }
    assert bets(simulator) == []


def test_error_after_acts_then_answers_the_error(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "error_after", method="POST")
    assert call(simulator, "POST", "/bet", {"bet": 3}).status_code == 500
    assert len(bets(simulator)) == 1


def test_rate_limit_answers_429_with_retry_after_without_acting(simulator):
    simulator.add_fault("/balance", "rate_limit", retry_after=2)
    response = call(simulator, "POST", "/balance", {"balance": 10})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert simulator.balance_of("1001") is None
    simulator.add_fault("/balance", "rate_limit", retry_after=None)
    assert "Retry-After" not in call(simulator, "POST", "/balance").headers


def test_delay_before_waits_then_acts(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "delay_before", method="POST", delay=0.2)
    started = time.monotonic()
    assert call(simulator, "POST", "/bet", {"bet": 3}).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert len(bets(simulator)) == 1


def test_delay_after_acts_before_the_client_times_out(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "delay_after", method="POST", delay=0.3)
    with pytest.raises(requests.ReadTimeout):
        call(simulator, "POST", "/bet", {"bet": 3}, timeout=0.1)
    assert len(bets(simulator)) == 1


def test_malformed_json_acts_then_answers_broken_json(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "malformed_json", method="POST")
    response = call(simulator, "POST", "/bet", {"bet": 3})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(bets(simulator)) == 1


def test_drop_before_closes_the_connection_without_acting(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "drop_before", method="POST")
    with pytest.raises(requests.ConnectionError):
        call(simulator, "POST", "/bet", {"bet": 3})
    assert bets(simulator) == []


def test_drop_after_acts_then_closes_the_connection(simulator):
    fund(simulator)
    simulator.add_fault("/win", "drop_after")
    bet_id = place(simulator)
    with pytest.raises(requests.ConnectionError):
        call(simulator, "POST", "/win", {"bet_id": bet_id})
    assert bets(simulator)[0]["status"] in ("won", "lost")


def test_numeric_bet_id_answers_the_id_as_a_number(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "numeric_bet_id", method="POST")
    response = call(simulator, "POST", "/bet", {"bet": 3})
    assert response.json() == {"message": "Bet placed successfully", "bet_id": 1}
    assert settle(simulator, 1)["message"]


def test_a_fault_targets_only_its_method_and_path(simulator):
    fund(simulator)
    simulator.add_fault("/bet", "error_before", method="POST", times=None)
    assert call(simulator, "GET", "/bet").status_code == 200
    assert call(simulator, "POST", "/auth", {}).status_code == 200
    assert call(simulator, "POST", "/bet", {"bet": 1}).status_code == 500


def test_a_fault_fires_the_given_number_of_times(simulator):
    rule = simulator.add_fault("/health", "error_before", times=2)
    statuses = [raw(simulator, "GET", "/health").status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert rule.fired == 2


def test_a_fault_without_times_fires_until_cleared(simulator):
    simulator.add_fault("health", "error_before", times=None)
    statuses = [raw(simulator, "GET", "/health").status_code for _ in range(5)]
    assert statuses == [500] * 5
    assert simulator.clear_faults() == 1
    assert raw(simulator, "GET", "/health").status_code == 200


def test_a_fault_fires_with_its_probability(simulator):
    never = simulator.add_fault("/health", "error_before", times=None, probability=0)
    sometimes = simulator.add_fault(
        "/health", "error_before", times=None, probability=0.5
    )
    statuses = [raw(simulator, "GET", "/health").status_code for _ in range(40)]
    assert never.fired == 0
    assert 5 < statuses.count(500) == sometimes.fired < 35


def test_an_invalid_fault_is_refused(simulator):
    with pytest.raises(ValueError, match="kind"):
        simulator.add_fault("/bet", "explode")
    with pytest.raises(ValueError, match="probability"):
        simulator.add_fault("/bet", "error_before", probability=2)
    with pytest.raises(ValueError, match="times"):
        simulator.add_fault("/bet", "error_before", times=0)


# --- control endpoints --------------------------------------------------------------


def test_control_faults_add_list_and_clear(simulator):
    rule = {
        "path": "/bet",
        "method": "GET",
        "kind": "error_before",
        "status": 502,
        "times": 1,
        "probability": 1.0,
        "delay": 0.5,
        "retry_after": 1,
    }
    response = control(simulator, "POST", "faults", rule)
    assert response.status_code == 201
    assert response.json()["kind"] == "error_before"
    assert call(simulator, "GET", "/bet").status_code == 502
    (listed,) = control(simulator, "GET", "faults").json()["faults"]
    assert listed["fired"] == 1
    assert control(simulator, "DELETE", "faults").json() == {"cleared": 1}
    assert simulator.snapshot()["faults"] == []


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "/bet", "kind": "explode"},
        {"kind": "error_before"},
        {"path": "/bet", "kind": "error_before", "colour": "red"},
        {"path": "/bet", "kind": "delay_before", "delay": -1},
    ],
)
def test_control_refuses_an_invalid_fault(simulator, rule):
    response = control(simulator, "POST", "faults", rule)
    assert response.status_code == 400
    assert response.json()["message"]


def test_control_state_dumps_accounts_and_bets(simulator):
    simulator.configure(win_probability=1)
    fund(simulator, 50)
    settle(simulator, place(simulator, 2))
    place(simulator, 4)
    state = control(simulator, "GET", "state").json()
    assert state["accounts"][0] == {
        "user_id": "1001",
        "username": "demo1",
        "balance": 54,
        "unsettled_stake": 4,
    }
    assert {"user_id": "1002", "username": "demo2", "balance": None} in [
        {key: a[key] for key in ("user_id", "username", "balance")}
        for a in state["accounts"]
    ]
    assert [
        (bet["id"], bet["stake"], bet["status"], bet["win"]) for bet in state["bets"]
    ] == [
        ("1", 2, "won", 4),
        ("2", 4, "open", None),
    ]
    assert state["config"]["win_probability"] == 1
    assert state["calls"]["POST /bet"] == 2


def test_control_config_changes_the_rules(simulator):
    response = control(
        simulator,
        "POST",
        "config",
        {"stake_mode": "debit_on_place", "win_probability": 0, "repeat_win": "replay"},
    )
    assert response.status_code == 200
    assert response.json()["config"]["stake_mode"] == "debit_on_place"
    fund(simulator, 10)
    bet_id = place(simulator, 2)
    assert read_balance(simulator) == 8
    assert settle(simulator, bet_id) == settle(simulator, bet_id)
    bad = control(simulator, "POST", "config", {"stake_mode": "never"})
    assert bad.status_code == 400


def test_control_accounts_adds_an_account(simulator):
    account = {"user_id": "42", "secret": "s3cret", "username": "zaphod"}
    assert control(simulator, "POST", "accounts", account).status_code == 201
    response = call(simulator, "POST", "/auth", {}, user="42", secret="s3cret")
    assert response.json()["username"] == "zaphod"
    assert control(simulator, "POST", "accounts", account).status_code == 201
    clash = control(simulator, "POST", "accounts", {**account, "secret": "other"})
    assert clash.status_code == 400


def test_control_balance_forces_a_balance(simulator):
    fund(simulator, 100)
    response = control(simulator, "POST", "balance", {"user_id": "1001", "balance": 90})
    assert response.status_code == 200
    assert read_balance(simulator) == 90


def test_control_reset_restores_the_initial_state(simulator):
    simulator.add_account("42", "s3cret")
    simulator.configure(stake_mode="debit_on_place")
    simulator.add_fault("/auth", "error_before")
    fund(simulator)
    place(simulator)
    assert control(simulator, "POST", "reset").status_code == 200
    state = simulator.snapshot()
    assert [a["user_id"] for a in state["accounts"]] == ["1001", "1002", "1003"]
    assert all(a["balance"] is None for a in state["accounts"])
    assert state["bets"] == []
    assert state["faults"] == []
    assert state["config"]["stake_mode"] == "debit_on_loss"
    assert call(simulator, "POST", "/auth", {}).status_code == 200
    fund(simulator)
    assert place(simulator) == "1"


def test_unknown_control_endpoint_is_not_found(simulator):
    assert control(simulator, "GET", "nothing").status_code == 404


# --- latency ------------------------------------------------------------------------


def test_latency_delays_api_requests_without_blocking_others():
    with ProviderSimulator("127.0.0.1", 0, seed=1, latency_ms=300) as sim:
        fund(sim, 100)
        durations: list[float] = []

        def one() -> None:
            started = time.monotonic()
            assert read_balance(sim) == 100
            durations.append(time.monotonic() - started)

        started = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        assert len(durations) == 4
        assert min(durations) >= 0.29
        # Four waits of 300 ms side by side, not one after the other.
        assert elapsed < 0.9
        started = time.monotonic()
        assert control(sim, "GET", "state").status_code == 200
        assert time.monotonic() - started < 0.25  # control endpoints never wait


def test_latency_jitter_is_uniform_within_its_bounds():
    latency = Latency(50, 20).validated()
    rng = random.Random(7)
    waits = [latency.seconds(rng) for _ in range(2000)]
    assert min(waits) >= 0.030
    assert max(waits) <= 0.070
    assert min(waits) < 0.032
    assert max(waits) > 0.068
    assert sum(waits) / len(waits) == pytest.approx(0.050, abs=0.002)
    assert Latency(40).validated().seconds(rng) == 0.040
    assert not Latency().validated().active


@pytest.mark.parametrize(
    ("latency_ms", "jitter_ms"),
    [(10, 20), (-1, 0), (True, 0), ("50", 0), (50, -5), (10**6, 0)],
)
def test_an_invalid_latency_is_refused(latency_ms, jitter_ms):
    with pytest.raises(ValueError, match="_ms"):
        Latency(latency_ms, jitter_ms).validated()
    with pytest.raises(ValueError, match="_ms"):
        ProviderSimulator("127.0.0.1", 0, latency_ms=latency_ms, jitter_ms=jitter_ms)


def test_control_latency_changes_it_and_reset_restores_it():
    with ProviderSimulator("127.0.0.1", 0, latency_ms=5, jitter_ms=1) as sim:
        assert control(sim, "GET", "latency").json() == {
            "latency_ms": 5,
            "jitter_ms": 1,
        }
        response = control(sim, "POST", "latency", {"latency_ms": 30, "jitter_ms": 10})
        assert response.status_code == 200
        assert response.json() == {"latency_ms": 30, "jitter_ms": 10}
        assert sim.snapshot()["latency"] == {"latency_ms": 30.0, "jitter_ms": 10.0}
        bad = control(sim, "POST", "latency", {"latency_ms": 5, "jitter_ms": 10})
        assert bad.status_code == 400
        assert control(sim, "POST", "latency", {"jitter_ms": 1}).status_code == 400
        assert control(sim, "POST", "latency", {"latency_ms": 0}).json() == {
            "latency_ms": 0,
            "jitter_ms": 0,
        }
        assert not sim.latency.active
        control(sim, "POST", "reset")
        assert sim.latency == Latency(5, 1)


# --- management command -------------------------------------------------------------


def test_command_help_describes_the_simulator():
    text = Command().create_parser("manage.py", "run_provider_simulator").format_help()
    assert "provider simulator" in text
    for option in ("--host", "--port", "--stake-mode", "--seed", "--win-probability"):
        assert option in text


def test_command_serves_until_sigterm_and_prints_a_summary():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_provider_simulator", "--port", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/api", first_line)
        assert url, first_line + process.stderr.read()
        assert "1001, 1002, 1003" in first_line
        assert requests.get(url.group() + "/health", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped: 1 requests served, 0 bets placed" in out


# --- state persistence --------------------------------------------------------------


def persisted(path: Path, **options: Any) -> ProviderSimulator:
    return ProviderSimulator("127.0.0.1", 0, seed=1234, state_file=path, **options)


def test_state_survives_a_restart_with_the_same_file(tmp_path):
    path = tmp_path / "simulator.json"
    with persisted(path, win_probability=1) as sim:
        assert not sim.restored
        sim.configure(stake_mode="debit_on_place")
        fund(sim, Decimal("100.25"))
        fund(sim, 50, user="1002")
        settled = place(sim, 3)
        settle(sim, settled)  # won under debit_on_place: 100.25 - 3 + 6
        sim.configure(stake_mode="debit_on_loss")
        still_open = place(sim, 2)
        sim.add_account("42", "s3cret", "zaphod", 7)
    with persisted(path) as sim:
        assert sim.restored
        assert sim.balance_of("1001") == Decimal("103.25")
        assert call(sim, "POST", "/balance").content == b'{"balance":103.25}'
        assert read_balance(sim, user="1002") == 50
        assert call(sim, "POST", "/balance", user="1003").status_code == 404
        config = sim.snapshot()["config"]
        assert (config["stake_mode"], config["win_probability"]) == ("debit_on_loss", 1)
        assert [
            (b["id"], b["stake_mode"], b["status"], b["win"]) for b in bets(sim)
        ] == [
            (settled, "debit_on_place", "won", 6),
            (still_open, "debit_on_loss", "open", None),
        ]
        repeated = call(sim, "POST", "/win", {"bet_id": settled})
        assert repeated.status_code == 400
        assert repeated.json()["error"] == "Bet already settled"
        assert sim_account(sim)["unsettled_stake"] == 2
        assert place(sim, 1) == "3"
        assert settle(sim, still_open)["win"] == 4
        assert read_balance(sim) == Decimal("107.25")
        assert call(sim, "POST", "/auth", {}, user="1002").status_code == 200
        response = call(sim, "POST", "/auth", {}, user="42", secret="s3cret")
        assert response.json()["username"] == "zaphod"
        assert sim.balance_of("42") == 7


def test_the_state_file_is_saved_soon_without_a_stop(tmp_path):
    path = tmp_path / "simulator.json"
    with persisted(path) as sim:
        fund(sim, 30)
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        balances = {
            a["user_id"]: a["balance"] for a in json.loads(path.read_text())["accounts"]
        }
        assert balances == {"1001": "30", "1002": None, "1003": None}


def test_saves_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "simulator.json"
    with persisted(path) as sim:
        fund(sim, Decimal("9.5"))
        for _ in range(5):
            settle(sim, place(sim, 1))
        assert sim.save_state() in (True, False)  # False: the saver was first
        assert sim.save_state() is False  # nothing changed since
    assert list(tmp_path.iterdir()) == [path]
    assert path.stat().st_mode & 0o777 == 0o600  # it holds secrets
    saved = path.read_bytes()
    data = json.loads(saved)
    assert data["next_bet_id"] == 6
    assert data["accounts"][0]["secret"] == SECRETS["1001"]
    assert all(isinstance(bet["stake"], str) for bet in data["bets"])

    def fail(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    with persisted(path) as sim:
        monkeypatch.setattr("provider.simulator.persistence.os.replace", fail)
        place(sim, 1)
        with pytest.raises(OSError, match="No space"):
            sim.save_state()
        assert path.read_bytes() == saved
        monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [path]  # the failed saves' files are gone
    assert json.loads(path.read_bytes())["next_bet_id"] == 7


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"format": "something else"}', id="other-format"),
        pytest.param(None, id="a-directory"),
    ],
)
def test_a_corrupt_state_file_fails_loudly_naming_it(tmp_path, content):
    path = tmp_path / "simulator.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(StateFileError, match=re.escape(str(path))):
        persisted(path)
    if content is not None:
        assert path.read_bytes() == content


def test_an_invalid_value_in_the_state_file_fails_loudly(tmp_path):
    path = tmp_path / "simulator.json"
    with persisted(path) as sim:
        fund(sim, 10)
    data = json.loads(path.read_text())
    data["accounts"][0]["balance"] = "ten"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"accounts\[0\]\.balance") as error:
        persisted(path)
    assert str(path) in str(error.value)


def test_control_reset_clears_the_state_file(tmp_path):
    path = tmp_path / "simulator.json"
    with persisted(path) as sim:
        sim.configure(stake_mode="debit_on_place")
        fund(sim)
        place(sim)
        sim.save_state()
        assert path.exists()
        assert control(sim, "POST", "reset").status_code == 200
        assert not path.exists()
    assert not path.exists()
    with persisted(path) as sim:
        assert not sim.restored
        assert sim.balance_of("1001") is None
        assert sim.snapshot()["config"]["stake_mode"] == "debit_on_loss"
        fund(sim)
        assert place(sim) == "1"


def test_command_accepts_the_state_file_options(tmp_path):
    parser = Command().create_parser("manage.py", "run_provider_simulator")
    text = parser.format_help()
    assert "--state-file" in text
    assert "--reset-state" in text
    options = parser.parse_args(["--state-file", "var/sim.json", "--reset-state"])
    assert options.state_file == Path("var/sim.json")
    assert options.reset_state is True
    assert parser.parse_args([]).state_file is None
    with pytest.raises(CommandError, match="--state-file"):
        call_command("run_provider_simulator", "--reset-state")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(CommandError, match=re.escape(str(broken))):
        call_command("run_provider_simulator", "--port", "0", "--state-file", broken)


def test_command_accepts_the_latency_options():
    parser = Command().create_parser("manage.py", "run_provider_simulator")
    text = parser.format_help()
    assert "--latency-ms" in text
    assert "--jitter-ms" in text
    options = parser.parse_args(["--latency-ms", "50", "--jitter-ms", "20"])
    assert (options.latency_ms, options.jitter_ms) == (50.0, 20.0)
    assert (parser.parse_args([]).latency_ms, parser.parse_args([]).jitter_ms) == (0, 0)
    with pytest.raises(CommandError, match="jitter_ms must not exceed latency_ms"):
        call_command(
            "run_provider_simulator",
            "--port",
            "0",
            "--latency-ms",
            "5",
            "--jitter-ms",
            "9",
        )


def test_command_saves_the_state_file_on_sigterm(tmp_path):
    path = tmp_path / "simulator.json"
    path.write_text("left over")
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_provider_simulator",
            "--port",
            "0",
            "--state-file",
            str(path),
            "--reset-state",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/api", first_line)
        assert url, first_line + process.stderr.read()
        assert f"state kept in {path}" in first_line
        signed = sign_body({"balance": 12}, SECRETS["1002"])
        headers = {"user-id": "1002", "x-signature": signed.signature}
        response = requests.post(
            url.group() + "/balance", data=signed.body, headers=headers, timeout=5
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    accounts = json.loads(path.read_text())["accounts"]
    assert {a["user_id"]: a["balance"] for a in accounts}["1002"] == "12"
