"""The real provider client against the real simulator, over a socket: no mocks.

Each test starts a fresh, seeded simulator (the ``provider`` fixture points
``EXTERNAL_API_URL`` at it with short timeouts and tiny backoffs), and asserts what
reached the simulator (``snapshot()["calls"]``) and what took effect there (bets,
balances) next to what the client reported.
"""

import json
import socket
import time
from decimal import Decimal
from typing import Any

import pytest
from django.forms.models import model_to_dict

from accounts.models import User
from accounts.tests.factories import ExternalApiAccountFactory
from auditlog.models import ApiLog
from provider.breaker import CLOSED, OPEN, breaker_state, provider_host
from provider.client import ProviderClient
from provider.exceptions import (
    ProviderOutcomeUnknown,
    ProviderRefused,
    ProviderUnreachable,
)
from provider.sessions import session_is_fresh, session_mark
from provider.signing import sign_body
from provider.simulator import ProviderSimulator
from provider.types import (
    AuthResult,
    BalanceCheck,
    BalanceResult,
    BalanceSetResult,
    BetPlaced,
    BetResult,
    Recommendation,
)

pytestmark = pytest.mark.django_db

USER = "7001"
USERNAME = "integration7001"
SECRET = "integration-secret-7f3a9c51"


# --- fixtures and helpers -----------------------------------------------------------


@pytest.fixture
def account(provider):
    """A local provider account, known to the simulator with the same secret."""
    # No password: hashing one would cost each test a fifth of a second.
    user = User.objects.create(username="integration-player")
    linked = ExternalApiAccountFactory(user=user, external_user_id=USER, secret=SECRET)
    provider.add_account(USER, SECRET, username=USERNAME)
    return linked


@pytest.fixture
def provider_client(account) -> ProviderClient:
    return ProviderClient(account=account)


@pytest.fixture
def funded(provider, account):
    """The account's balance set to 1000 at the provider (not through the client)."""
    provider.set_balance(USER, 1000)
    return provider


def calls(simulator, key: str) -> int:
    """How many requests ``key`` ("POST /bet") reached the simulator."""
    return simulator.snapshot()["calls"].get(key, 0)


def bets(simulator) -> list[dict[str, Any]]:
    return simulator.snapshot()["bets"]


def log_rows(endpoint: str | None = None, method: str | None = None) -> list[tuple]:
    """(endpoint, method, status, attempt, outcome) of the outbound log, in order."""
    rows = ApiLog.objects.filter(direction=ApiLog.Direction.OUTBOUND)
    if endpoint is not None:
        rows = rows.filter(endpoint=endpoint)
    if method is not None:
        rows = rows.filter(method=method)
    return list(
        rows.order_by("id").values_list(
            "endpoint", "method", "status_code", "attempt", "outcome"
        )
    )


def wait_for(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def closed_port_url() -> str:
    """An API URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


# --- 1. the whole flow of the contract ----------------------------------------------


def expected_balances(stake_mode: str, stake: int, won: bool) -> tuple[int, int]:
    """The provider balance after placing, and after the result, from 1000."""
    if stake_mode == "debit_on_loss":
        return 1000, (1000 + 2 * stake if won else 1000 - stake)
    return 1000 - stake, (1000 + stake if won else 1000 - stake)


@pytest.mark.parametrize("won", [True, False], ids=["win", "loss"])
@pytest.mark.parametrize("stake_mode", ["debit_on_loss", "debit_on_place"])
def test_the_whole_flow_moves_money_exactly_by_the_stake_mode_rules(
    provider, provider_client, stake_mode, won
):
    provider.configure(stake_mode=stake_mode, win_probability=1.0 if won else 0.0)

    auth = provider_client.auth()
    assert isinstance(auth, AuthResult)
    assert (auth.user_id, auth.username) == (USER, USERNAME)

    balance_set = provider_client.balance_set(1000)
    assert isinstance(balance_set, BalanceSetResult)
    assert isinstance(balance_set.balance, Decimal)
    assert balance_set.balance == Decimal(1000)

    read = provider_client.balance_read()
    assert isinstance(read, BalanceResult)
    assert isinstance(read.balance, Decimal)
    assert read.balance == Decimal(1000)

    recommendation = provider_client.bet_recommend()
    assert isinstance(recommendation, Recommendation)
    assert type(recommendation.amount) is int
    assert 1 <= recommendation.amount <= 5
    stake = recommendation.amount
    after_place, after_result = expected_balances(stake_mode, stake, won)

    placed = provider_client.bet_place(stake)
    assert isinstance(placed, BetPlaced)
    assert isinstance(placed.bet_id, str)
    assert placed.bet_id
    assert provider.balance_of(USER) == after_place
    assert provider_client.balance_read().balance == Decimal(after_place)

    result = provider_client.bet_result(placed.bet_id)
    assert isinstance(result, BetResult)
    assert isinstance(result.win, Decimal)
    assert result.win == Decimal(2 * stake if won else 0)
    assert provider.balance_of(USER) == after_result
    assert provider_client.balance_read().balance == Decimal(after_result)

    correct = provider_client.balance_check(after_result)
    assert isinstance(correct, BalanceCheck)
    assert correct.is_correct is True
    assert isinstance(correct.balance, Decimal)
    assert correct.balance == Decimal(after_result)

    incorrect = provider_client.balance_check(Decimal(after_result) + Decimal("0.5"))
    assert incorrect.is_correct is False
    assert isinstance(incorrect.balance, Decimal)
    assert incorrect.balance == Decimal(after_result)

    with pytest.raises(ProviderRefused) as second_set:
        provider_client.balance_set(500)
    assert second_set.value.status == 400
    assert second_set.value.attempts == 1
    assert second_set.value.endpoint == "/balance"

    with pytest.raises(ProviderRefused) as repeated_win:
        provider_client.bet_result(placed.bet_id)
    assert repeated_win.value.status == 400
    assert repeated_win.value.attempts == 1
    assert repeated_win.value.endpoint == "/win"

    # Neither refusal moved money, and every call was sent exactly once.
    assert provider.balance_of(USER) == after_result
    assert provider.snapshot()["calls"] == {
        "POST /auth": 1,
        "POST /balance": 5,
        "GET /bet": 1,
        "POST /bet": 1,
        "POST /win": 2,
        "POST /check-balance": 2,
    }


# --- 2. each injectable fault -------------------------------------------------------


def test_error_before_on_placing_a_bet_is_an_unknown_outcome_never_resent(
    funded, provider_client
):
    funded.add_fault("/bet", "error_before", method="POST", status=500, times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_place(3)

    assert info.value.status == 500
    assert info.value.attempts == 1
    # A retry would have succeeded (the fault fires once): none was sent.
    assert calls(funded, "POST /bet") == 1
    assert bets(funded) == []
    assert funded.balance_of(USER) == 1000


def test_error_before_on_a_recommendation_is_retried_and_succeeds(
    funded, provider_client
):
    funded.add_fault("/bet", "error_before", method="GET", status=500, times=1)

    recommendation = provider_client.bet_recommend()

    assert 1 <= recommendation.amount <= 5
    assert calls(funded, "GET /bet") == 2
    assert log_rows("/bet", "GET") == [
        ("/bet", "GET", 500, 1, "unknown"),
        ("/bet", "GET", 200, 2, "ok"),
    ]


def test_error_after_on_placing_a_bet_is_unknown_but_the_bet_was_placed(
    funded, provider_client
):
    funded.add_fault("/bet", "error_after", method="POST", status=500, times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_place(3)

    assert info.value.status == 500
    assert info.value.attempts == 1
    assert calls(funded, "POST /bet") == 1
    [bet] = bets(funded)
    assert (bet["stake"], bet["status"]) == (Decimal(3), "open")


def test_error_after_on_a_result_is_unknown_but_the_bet_was_settled(
    funded, provider_client
):
    funded.configure(win_probability=1.0)
    placed = provider_client.bet_place(3)
    funded.add_fault("/win", "error_after", method="POST", status=500, times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_result(placed.bet_id)

    assert info.value.status == 500
    assert info.value.attempts == 1
    assert calls(funded, "POST /win") == 1
    [bet] = bets(funded)
    assert (bet["status"], bet["win"]) == ("won", Decimal(6))
    assert funded.balance_of(USER) == 1006
    # Asking again is a definite no: the result was taken the first time.
    with pytest.raises(ProviderRefused) as again:
        provider_client.bet_result(placed.bet_id)
    assert again.value.status == 400
    assert funded.balance_of(USER) == 1006


def test_a_rate_limited_bet_is_retried_after_retry_after_and_placed_once(
    funded, account, settings
):
    settings.PROVIDER_RETRY_AFTER_MAX = 5
    sleeps: list[float] = []
    client = ProviderClient(account=account, sleep=sleeps.append)
    funded.add_fault("/bet", "rate_limit", method="POST", retry_after=1, times=1)

    placed = client.bet_place(3)

    assert sleeps == [1.0]  # the provider's Retry-After, honoured
    assert calls(funded, "POST /bet") == 2
    assert [bet["id"] for bet in bets(funded)] == [placed.bet_id]
    assert log_rows("/bet", "POST") == [
        ("/bet", "POST", 429, 1, "unreachable"),
        ("/bet", "POST", 200, 2, "ok"),
    ]


def test_a_rate_limited_bet_with_retry_after_zero_is_retried_at_once(
    funded, provider_client
):
    funded.add_fault("/bet", "rate_limit", method="POST", retry_after=0, times=2)

    placed = provider_client.bet_place(2)

    assert calls(funded, "POST /bet") == 3
    assert [bet["id"] for bet in bets(funded)] == [placed.bet_id]


def test_endless_429s_give_up_as_unreachable_with_retry_after(
    funded, provider_client, settings
):
    funded.add_fault("/bet", "rate_limit", method="POST", retry_after=0, times=None)

    with pytest.raises(ProviderUnreachable) as info:
        provider_client.bet_place(3)

    assert info.value.status == 429
    assert info.value.attempts == 1 + settings.PROVIDER_WRITE_RETRIES
    assert info.value.retry_after >= 1
    assert info.value.headers["Retry-After"] == str(info.value.retry_after)
    assert calls(funded, "POST /bet") == 1 + settings.PROVIDER_WRITE_RETRIES
    assert bets(funded) == []


def test_a_retry_after_beyond_the_maximum_gives_up_at_once_as_unreachable(
    funded, account, settings
):
    settings.PROVIDER_RETRY_AFTER_MAX = 0.5
    sleeps: list[float] = []
    client = ProviderClient(account=account, sleep=sleeps.append)
    funded.add_fault("/bet", "rate_limit", method="POST", retry_after=1, times=None)

    with pytest.raises(ProviderUnreachable) as info:
        client.bet_place(3)

    assert info.value.status == 429
    assert info.value.attempts == 1
    assert info.value.retry_after == 1
    assert sleeps == []
    assert calls(funded, "POST /bet") == 1
    assert bets(funded) == []


def test_delay_after_past_the_read_timeout_is_unknown_and_the_bet_was_placed(
    funded, provider_client, settings
):
    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    provider_client.ensure_session()
    funded.add_fault("/bet", "delay_after", method="POST", delay=0.5, times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_place(3)

    assert info.value.status is None
    assert info.value.attempts == 1
    assert calls(funded, "POST /bet") == 1
    [bet] = bets(funded)
    assert bet["stake"] == Decimal(3)


def test_delay_before_past_the_read_timeout_is_unknown_and_takes_effect_later(
    funded, provider_client, settings
):
    settings.EXTERNAL_API_READ_TIMEOUT = 0.2
    funded.configure(stake_mode="debit_on_place")
    provider_client.ensure_session()
    funded.add_fault("/bet", "delay_before", method="POST", delay=0.5, times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_place(3)

    assert info.value.status is None
    assert info.value.attempts == 1
    # Not yet at the provider when the client gave up; it acts after sleeping,
    # which the client cannot know: it must not send the bet again.
    assert bets(funded) == []
    assert wait_for(lambda: len(bets(funded)) == 1)
    assert funded.balance_of(USER) == 997
    assert calls(funded, "POST /bet") == 1


def test_malformed_json_from_placing_a_bet_is_unknown_and_the_bet_was_placed(
    funded, provider_client
):
    funded.add_fault("/bet", "malformed_json", method="POST", times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_place(3)

    assert info.value.status == 200
    assert info.value.attempts == 1
    assert calls(funded, "POST /bet") == 1
    assert len(bets(funded)) == 1
    assert log_rows("/bet", "POST") == [("/bet", "POST", 200, 1, "unknown")]


def test_malformed_json_from_a_balance_read_is_retried_and_succeeds(
    funded, provider_client
):
    funded.add_fault("/balance", "malformed_json", method="POST", times=1)

    read = provider_client.balance_read()

    assert read.balance == Decimal(1000)
    assert calls(funded, "POST /balance") == 2


@pytest.mark.parametrize(
    ("kind", "placed"), [("drop_before", False), ("drop_after", True)]
)
def test_a_dropped_connection_is_an_unknown_outcome_never_resent(
    funded, provider_client, kind, placed
):
    provider_client.ensure_session()  # the bet goes over a kept-alive connection
    funded.add_fault("/bet", kind, method="POST", times=1)

    with pytest.raises(ProviderOutcomeUnknown) as info:
        provider_client.bet_place(3)

    assert info.value.status is None
    assert info.value.attempts == 1
    assert calls(funded, "POST /bet") == 1
    assert len(bets(funded)) == (1 if placed else 0)
    assert log_rows("/bet", "POST") == [("/bet", "POST", None, 1, "unknown")]


def test_a_numeric_bet_id_is_a_string_that_gets_the_result(funded, provider_client):
    funded.configure(win_probability=0.0)
    funded.add_fault("/bet", "numeric_bet_id", method="POST", times=1)

    placed = provider_client.bet_place(4)

    assert isinstance(placed.bet_id, str)
    assert placed.bet_id == bets(funded)[0]["id"]
    assert placed.raw["bet_id"] == int(placed.bet_id)  # it came as a number
    result = provider_client.bet_result(placed.bet_id)
    assert result.win == Decimal(0)
    assert funded.balance_of(USER) == 996


def test_a_refused_connection_is_unreachable_after_every_write_retry(
    provider, provider_client, settings
):
    settings.EXTERNAL_API_URL = closed_port_url()
    session_mark(host=provider_host(settings.EXTERNAL_API_URL), external_user_id=USER)

    with pytest.raises(ProviderUnreachable) as info:
        provider_client.bet_place(3)

    # Nothing was sent, so even a write may be (and was) tried again.
    retries = settings.PROVIDER_WRITE_RETRIES
    assert info.value.attempts == 1 + retries
    assert info.value.status is None
    assert log_rows("/bet", "POST") == [
        ("/bet", "POST", None, attempt, "unreachable")
        for attempt in range(1, 2 + retries)
    ]
    assert provider.snapshot()["calls"] == {}


def test_a_refused_connection_during_auth_leaves_the_call_unsent(
    provider, provider_client, settings
):
    settings.EXTERNAL_API_URL = closed_port_url()

    with pytest.raises(ProviderUnreachable) as info:
        provider_client.bet_place(3)

    assert info.value.attempts == 0
    assert info.value.endpoint == "/bet"
    assert len(log_rows("/auth", "POST")) == 1 + settings.PROVIDER_READ_RETRIES
    assert log_rows("/bet") == []


def test_a_wrong_secret_is_refused_401_and_nothing_is_placed(funded):
    client = ProviderClient(external_user_id=USER, secret="not-the-secret-0000")

    with pytest.raises(ProviderRefused) as info:
        client.bet_place(3)

    assert info.value.status == 401
    assert info.value.endpoint == "/auth"
    assert info.value.attempts == 1
    assert calls(funded, "POST /auth") == 1
    assert calls(funded, "POST /bet") == 0
    assert bets(funded) == []
    assert funded.balance_of(USER) == 1000


def test_a_wrong_secret_on_a_remembered_session_is_refused_and_forgets_it(
    funded, settings
):
    host = provider_host(settings.EXTERNAL_API_URL)
    session_mark(host=host, external_user_id=USER)
    client = ProviderClient(external_user_id=USER, secret="not-the-secret-0000")

    with pytest.raises(ProviderRefused) as info:
        client.bet_place(3)

    assert (info.value.status, info.value.endpoint) == (401, "/bet")
    assert calls(funded, "POST /bet") == 1
    assert bets(funded) == []
    assert not session_is_fresh(host=host, external_user_id=USER)


# --- 3. the circuit breaker ---------------------------------------------------------


def test_the_breaker_opens_on_consecutive_5xx_and_then_fails_fast_unsent(
    funded, provider_client, settings
):
    settings.PROVIDER_BREAKER_THRESHOLD = 3
    settings.PROVIDER_READ_RETRIES = 0
    provider_client.ensure_session()
    funded.add_fault("/bet", "error_before", method="GET", status=500, times=None)

    for _ in range(3):
        with pytest.raises(ProviderOutcomeUnknown):
            provider_client.bet_recommend()
    assert calls(funded, "GET /bet") == 3
    assert breaker_state(settings.EXTERNAL_API_URL) == OPEN

    before = funded.snapshot()["calls"]
    logged = ApiLog.objects.count()
    with pytest.raises(ProviderUnreachable) as recommend:
        provider_client.bet_recommend()
    with pytest.raises(ProviderUnreachable) as place:
        provider_client.bet_place(3)  # the whole host is open, not one endpoint

    for info in (recommend, place):
        assert info.value.attempts == 0
        assert info.value.retry_after >= 1
    assert funded.snapshot()["calls"] == before
    assert ApiLog.objects.count() == logged
    assert bets(funded) == []


def test_the_breaker_opens_within_one_call_and_stops_its_retries(
    funded, provider_client, settings
):
    settings.PROVIDER_BREAKER_THRESHOLD = 2
    settings.PROVIDER_READ_RETRIES = 5
    provider_client.ensure_session()
    funded.add_fault("/bet", "error_before", method="GET", status=500, times=None)

    with pytest.raises(ProviderUnreachable) as info:
        provider_client.bet_recommend()

    assert info.value.attempts == 2
    assert calls(funded, "GET /bet") == 2


def test_a_success_between_5xx_restarts_the_count(funded, provider_client, settings):
    settings.PROVIDER_BREAKER_THRESHOLD = 3
    settings.PROVIDER_READ_RETRIES = 0
    provider_client.ensure_session()
    for _ in range(2):
        funded.add_fault("/bet", "error_before", method="GET", status=500, times=2)
        for _ in range(2):
            with pytest.raises(ProviderOutcomeUnknown):
                provider_client.bet_recommend()
        assert breaker_state(settings.EXTERNAL_API_URL) == CLOSED
        provider_client.bet_recommend()

    assert calls(funded, "GET /bet") == 6


def test_after_the_reset_time_a_successful_probe_closes_the_breaker(
    funded, provider_client, settings
):
    settings.PROVIDER_BREAKER_THRESHOLD = 1
    settings.PROVIDER_BREAKER_RESET = 0.2
    settings.PROVIDER_READ_RETRIES = 0
    provider_client.ensure_session()
    funded.add_fault("/bet", "error_before", method="GET", status=500, times=1)
    with pytest.raises(ProviderOutcomeUnknown):
        provider_client.bet_recommend()
    assert breaker_state(settings.EXTERNAL_API_URL) == OPEN

    time.sleep(0.25)
    recommendation = provider_client.bet_recommend()

    assert 1 <= recommendation.amount <= 5
    assert calls(funded, "GET /bet") == 2
    assert breaker_state(settings.EXTERNAL_API_URL) == CLOSED


def test_refusals_never_open_the_breaker(provider, provider_client, settings):
    settings.PROVIDER_BREAKER_THRESHOLD = 2
    # The balance was never set: each read is a definite 404.
    for _ in range(4):
        with pytest.raises(ProviderRefused) as info:
            provider_client.balance_read()
        assert info.value.status == 404
    # A wrong stake refused by the provider: 400.
    provider.set_balance(USER, 1)
    for _ in range(3):
        with pytest.raises(ProviderRefused) as info:
            provider_client.bet_place(5)
        assert info.value.status == 400

    assert breaker_state(settings.EXTERNAL_API_URL) == CLOSED
    assert calls(provider, "POST /balance") == 4
    assert calls(provider, "POST /bet") == 3
    assert provider_client.balance_read().balance == Decimal(1)


def test_429s_never_open_the_breaker(funded, provider_client, settings):
    settings.PROVIDER_BREAKER_THRESHOLD = 2
    funded.add_fault("/bet", "rate_limit", method="GET", retry_after=0, times=None)

    with pytest.raises(ProviderUnreachable):
        provider_client.bet_recommend()

    assert calls(funded, "GET /bet") == 1 + settings.PROVIDER_READ_RETRIES
    assert breaker_state(settings.EXTERNAL_API_URL) == CLOSED


# --- 4. provider sessions -----------------------------------------------------------


def test_one_auth_serves_every_signed_call_within_the_session_ttl(
    funded, provider_client, account
):
    provider_client.balance_read()
    recommendation = provider_client.bet_recommend()
    placed = provider_client.bet_place(recommendation.amount)
    provider_client.bet_result(placed.bet_id)
    provider_client.balance_check(1000)
    # Another client of the same account shares the session.
    ProviderClient(account=account).balance_read()

    assert calls(funded, "POST /auth") == 1
    assert log_rows()[0] == ("/auth", "POST", 200, 1, "ok")


def test_a_401_forgets_the_session_and_the_next_call_authenticates_again(
    funded, provider_client, settings
):
    host = provider_host(settings.EXTERNAL_API_URL)
    provider_client.balance_read()
    assert calls(funded, "POST /auth") == 1
    assert session_is_fresh(host=host, external_user_id=USER)
    funded.add_fault("/balance", "error_before", method="POST", status=401, times=1)

    with pytest.raises(ProviderRefused) as info:
        provider_client.balance_read()
    assert info.value.status == 401
    assert not session_is_fresh(host=host, external_user_id=USER)

    assert provider_client.balance_read().balance == Decimal(1000)
    provider_client.bet_recommend()
    assert calls(funded, "POST /auth") == 2
    assert calls(funded, "POST /balance") == 3


def test_without_a_session_ttl_every_signed_call_authenticates(
    funded, provider_client, settings
):
    settings.PROVIDER_SESSION_TTL = 0

    provider_client.balance_read()
    provider_client.bet_recommend()
    provider_client.balance_read()

    assert calls(funded, "POST /auth") == 3


# --- 5. the API log -----------------------------------------------------------------


def test_every_attempt_leaves_one_outbound_log_row_without_secrets(
    provider, provider_client, account
):
    provider.configure(win_probability=1.0)
    provider.add_fault("/bet", "error_before", method="GET", status=500, times=1)

    provider_client.balance_set(1000)
    provider_client.balance_read()
    stake = provider_client.bet_recommend().amount
    placed = provider_client.bet_place(stake)
    result = provider_client.bet_result(placed.bet_id)
    expected = 1000 + result.win
    provider_client.balance_check(expected)
    with pytest.raises(ProviderRefused) as refused:
        provider_client.balance_set(1000)

    assert log_rows() == [
        ("/auth", "POST", 200, 1, "ok"),
        ("/balance", "POST", 200, 1, "ok"),
        ("/balance", "POST", 200, 1, "ok"),
        ("/bet", "GET", 500, 1, "unknown"),
        ("/bet", "GET", 200, 2, "ok"),
        ("/bet", "POST", 200, 1, "ok"),
        ("/win", "POST", 200, 1, "ok"),
        ("/check-balance", "POST", 200, 1, "ok"),
        ("/balance", "POST", 400, 1, "refused"),
    ]
    # One row per request that reached the provider.
    assert sum(provider.snapshot()["calls"].values()) == len(log_rows())

    rows = list(ApiLog.objects.order_by("id"))
    assert {row.user_id for row in rows} == {account.user_id}
    assert [row.request_body for row in rows if row.method == "POST"][1:] == [
        {"balance": 1000},
        None,
        {"bet": stake},
        {"bet_id": placed.bet_id},
        {"expected_balance": int(expected)},
        {"balance": 1000},
    ]
    assert rows[-1].response_body["error"] == "Balance already set"

    bodies = [
        None,
        {},
        {"balance": Decimal(1000)},
        {"bet": stake},
        {"bet_id": placed.bet_id},
        {"expected_balance": expected},
    ]
    signatures = {sign_body(body, SECRET).signature for body in bodies}
    stored = json.dumps([model_to_dict(row) for row in rows], default=str)
    for secret in (SECRET, *signatures):
        assert secret not in stored
    for text in (str(refused.value), json.dumps(refused.value.details, default=str)):
        assert SECRET not in text
        assert not any(signature in text for signature in signatures)


def test_failed_attempts_log_their_outcome_and_error_without_secrets(
    funded, provider_client
):
    provider_client.ensure_session()
    funded.add_fault("/bet", "drop_after", method="POST", times=1)
    funded.add_fault("/balance", "error_before", method="POST", status=503, times=1)

    with pytest.raises(ProviderOutcomeUnknown):
        provider_client.bet_place(2)
    provider_client.balance_read()

    rows = list(ApiLog.objects.order_by("id"))[1:]
    assert [
        (row.endpoint, row.status_code, row.attempt, row.outcome) for row in rows
    ] == [
        ("/bet", None, 1, "unknown"),
        ("/balance", 503, 1, "unknown"),
        ("/balance", 200, 2, "ok"),
    ]
    assert rows[0].error.startswith("connection error")
    assert rows[1].error == "HTTP 503"
    signature = sign_body({"bet": 2}, SECRET).signature
    stored = json.dumps([model_to_dict(row) for row in rows], default=str)
    assert SECRET not in stored
    assert signature not in stored


# --- keep-alive connections across a provider restart -------------------------------


def test_a_provider_restart_between_calls_does_not_make_the_next_bet_unknown(
    provider, provider_client
):
    """A pooled connection the provider closed while idle is noticed before reuse:
    the bet goes over a new connection and is placed once."""
    provider.set_balance(USER, 1000)
    provider_client.balance_read()  # leaves a kept-alive connection in the pool
    port = provider.port
    provider.stop()
    restarted = ProviderSimulator("127.0.0.1", port, seed=1234).start()
    try:
        restarted.add_account(USER, SECRET, username=USERNAME, balance=1000)

        placed = provider_client.bet_place(3)

        assert calls(restarted, "POST /bet") == 1
        assert [bet["id"] for bet in bets(restarted)] == [placed.bet_id]
    finally:
        restarted.stop()
