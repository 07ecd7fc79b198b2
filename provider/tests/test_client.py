"""The provider client against the provider scripted at its transport
(``provider.testing.ScriptedTransport``, installed through the transport seam), and,
for the transport failures that matter most, against real sockets."""

import json
import logging
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from accounts.tests.factories import ExternalApiAccountFactory
from auditlog.models import ApiLog
from betting_site.logging import request_id_var
from provider import sessions as sessions_module
from provider.client import ProviderClient
from provider.exceptions import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRefused,
    ProviderUnreachable,
)
from provider.sessions import session_is_fresh, session_mark
from provider.signing import sign_body
from provider.testing import ScriptedTransport
from provider.transport import TransportError, transport_installed
from provider.types import (
    AuthResult,
    BalanceCheck,
    BalanceResult,
    BetPlaced,
    BetResult,
    Health,
    MalformedResponse,
    Recommendation,
    parse_json,
)

BASE = "http://provider.test/api"
HOST = "http://provider.test"
SECRET = "test-secret-key"  # the contract's test vectors are signed with it
SIG_EMPTY = (
    "cd53f52548f5098786169ab7d2daa62d400d67ab45ad7de8d96c56c34a29110a"
    "209b3823a3983c467a627b9f3875740b4d5d5198aa9c80dddd704bf5d5ea4a15"
)
SIG_BET_3 = (
    "fff232f3a175e5746e42356d7b43f76a4baa5ea03898cd6f6fbb4489450a8726"
    "04d1d4007f1f02cca3275ca8e91c0bb9af7308ddaef9a23fc1a9096a44badbfe"
)
SIG_BALANCE_1000 = (
    "53a8e68f8103b3b9936b7f2430e67759db5f1b6512bff3c24bcad637cadf81d7"
    "71848b48db2a931d9d6fdf92f14cf84356cac08a8d13e0044a11046ffc48abc3"
)


# --- transport errors as the transport reports them (how requests' errors map to
# these: provider/tests/test_transport.py) ------------------------------------------


def refused() -> TransportError:
    return TransportError(
        "connection error", sent=False, detail="ConnectionError: refused"
    )


def connect_timeout() -> TransportError:
    return TransportError("connect timeout", sent=False)


def reset_after_send() -> TransportError:
    return TransportError("connection error", sent=True, detail="RemoteDisconnected")


def read_timeout() -> TransportError:
    return TransportError("read timeout", sent=True)


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def provider_settings(settings):
    settings.EXTERNAL_API_URL = BASE
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 1.5
    settings.EXTERNAL_API_READ_TIMEOUT = 4.0
    settings.PROVIDER_READ_RETRIES = 2
    settings.PROVIDER_BACKOFF_BASE = 0.01
    settings.PROVIDER_BACKOFF_MAX = 0.05
    settings.PROVIDER_RETRY_AFTER_MAX = 2.0
    settings.PROVIDER_BREAKER_THRESHOLD = 100
    settings.PROVIDER_BREAKER_RESET = 30.0
    settings.PROVIDER_SESSION_TTL = 300
    return settings


@pytest.fixture
def mocked() -> Iterator[ScriptedTransport]:
    """The provider, scripted; every client without its own transport uses it."""
    with transport_installed(ScriptedTransport()) as transport:
        yield transport


@pytest.fixture
def account(db):
    return ExternalApiAccountFactory(external_user_id="5", secret=SECRET)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(account, sleeps) -> ProviderClient:
    """A client whose account authenticated recently (no POST /auth first)."""
    session_mark(host=HOST, external_user_id=account.external_user_id)
    return ProviderClient(account=account, sleep=sleeps.append)


def sent(transport: ScriptedTransport, index: int = -1):
    return transport.calls[index]


def paths(transport: ScriptedTransport) -> list[str]:
    return transport.paths()


# --- every call and its shape ------------------------------------------------------


@pytest.mark.django_db
class TestCalls:
    def test_health_is_unsigned_get(self, mocked, sleeps):
        mocked.add("GET", f"{BASE}/health", json={"status": "ok"})
        result = ProviderClient(sleep=sleeps.append).health()
        assert result.raw["status"] == "ok"
        request = sent(mocked)
        assert request.method == "GET"
        assert "user-id" not in request.headers
        assert "x-signature" not in request.headers
        assert "Content-Type" not in request.headers
        assert not request.body

    def test_auth_posts_signed_empty_object(self, mocked, account, sleeps):
        mocked.add(
            "POST",
            f"{BASE}/auth",
            json={
                "message": "Successfully authenticated",
                "user_id": "5",
                "username": "user5",
            },
        )
        result = ProviderClient(account=account, sleep=sleeps.append).auth()
        assert (result.user_id, result.username) == ("5", "user5")
        request = sent(mocked)
        assert request.body == b"{}"
        assert request.headers["user-id"] == "5"
        assert request.headers["x-signature"] == SIG_EMPTY
        assert request.headers["Content-Type"] == "application/json"

    def test_balance_set_sends_exactly_the_signed_bytes(self, mocked, client):
        mocked.add(
            "POST",
            f"{BASE}/balance",
            json={"message": "Balance set successfully", "balance": 1000},
        )
        result = client.balance_set(Decimal("1000.00"))
        assert result.balance == Decimal("1000")
        request = sent(mocked)
        assert request.body == b'{"balance":1000}'
        assert request.headers["x-signature"] == SIG_BALANCE_1000

    def test_balance_read_sends_no_body_and_signs_empty_object(self, mocked, client):
        mocked.add("POST", f"{BASE}/balance", body=b'{"balance":1006.10}')
        result = client.balance_read()
        assert result.balance == Decimal("1006.10")
        assert isinstance(result.balance, Decimal)
        request = sent(mocked)
        assert not request.body
        assert request.headers["x-signature"] == SIG_EMPTY

    def test_bet_recommend_is_a_signed_get_without_body(self, mocked, client):
        mocked.add("GET", f"{BASE}/bet", json={"bet": 3})
        assert client.bet_recommend().amount == 3
        request = sent(mocked)
        assert request.method == "GET"
        assert not request.body
        assert request.headers["x-signature"] == SIG_EMPTY

    def test_bet_place_posts_whole_stake(self, mocked, client):
        mocked.add(
            "POST",
            f"{BASE}/bet",
            json={"message": "Bet placed successfully", "bet_id": "456"},
        )
        result = client.bet_place(Decimal("3.00"))
        assert result == BetPlaced(bet_id="456", raw={})
        request = sent(mocked)
        assert request.body == b'{"bet":3}'
        assert request.headers["x-signature"] == SIG_BET_3

    def test_numeric_bet_id_is_normalised_to_a_string(self, mocked, client):
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": 456})
        assert client.bet_place(3).bet_id == "456"

    @pytest.mark.parametrize("amount", [0, 6, Decimal("2.5"), True, 2.0, "3"])
    def test_invalid_stakes_are_never_sent(self, mocked, client, amount):
        with pytest.raises((TypeError, ValueError)):
            client.bet_place(amount)
        assert len(mocked.calls) == 0

    def test_bet_result_win_and_loss(self, mocked, client):
        mocked.add("POST", f"{BASE}/win", json={"win": 6, "message": "You won!"})
        mocked.add("POST", f"{BASE}/win", json={"win": 0, "message": "You lost"})
        assert client.bet_result("456").win == Decimal("6")
        assert client.bet_result("456").win == Decimal("0")
        request = sent(mocked)
        assert request.body == b'{"bet_id":"456"}'
        assert (
            request.headers["x-signature"]
            == sign_body({"bet_id": "456"}, SECRET).signature
        )

    def test_balance_check_correct_and_incorrect(self, mocked, client):
        mocked.add(
            "POST", f"{BASE}/check-balance", json={"is_correct": True, "balance": 1006}
        )
        mocked.add(
            "POST",
            f"{BASE}/check-balance",
            json={
                "is_correct": False,
                "message": "Incorrect balance. Expected: 1010, Actual: 1006",
                "correct_balance": 1006,
            },
        )
        assert client.balance_check(Decimal("1006")) == BalanceCheck(
            is_correct=True, balance=Decimal("1006"), raw={}
        )
        wrong = client.balance_check(Decimal("1010.50"))
        assert (wrong.is_correct, wrong.balance) == (False, Decimal("1006"))
        assert sent(mocked).body == b'{"expected_balance":1010.5}'

    def test_raw_is_read_only_and_keeps_decimals(self, mocked, client):
        mocked.add("POST", f"{BASE}/balance", body=b'{"balance":1006.10,"extra":[1,2]}')
        result = client.balance_read()
        with pytest.raises(TypeError):
            result.raw["balance"] = 1
        with pytest.raises(AttributeError):
            result.balance = Decimal(1)
        assert result.raw_dict() == {"balance": Decimal("1006.10"), "extra": [1, 2]}

    def test_timeouts_and_url_are_read_at_call_time(self, mocked, client, settings):
        settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.25
        settings.EXTERNAL_API_READ_TIMEOUT = 0.75
        mocked.add("GET", f"{BASE}/bet", json={"bet": 2})
        client.bet_recommend()
        assert sent(mocked).timeout == (0.25, 0.75)
        settings.EXTERNAL_API_URL = "http://other.test/v2/"
        session_mark(host="http://other.test", external_user_id="5")
        mocked.add("GET", "http://other.test/v2/bet", json={"bet": 4})
        assert client.bet_recommend().amount == 4

    def test_redirects_are_not_followed(self, mocked, client):
        mocked.add(
            "POST", f"{BASE}/bet", status=302, headers={"Location": f"{BASE}/elsewhere"}
        )
        mocked.add("POST", f"{BASE}/elsewhere", json={"bet_id": "1"})
        with pytest.raises(ProviderOutcomeUnknown):
            client.bet_place(1)
        assert paths(mocked) == ["/api/bet"]

    def test_signed_call_without_credentials_is_a_programming_error(self, mocked):
        with pytest.raises(ValueError, match="external user id"):
            ProviderClient().bet_recommend()
        assert len(mocked.calls) == 0

    def test_a_client_given_a_transport_uses_it_not_the_installed_one(
        self, mocked, account, sleeps
    ):
        own = ScriptedTransport()
        own.add("GET", "/bet", json={"bet": 5})
        session_mark(host=HOST, external_user_id=account.external_user_id)
        client = ProviderClient(account=account, sleep=sleeps.append, transport=own)
        assert client.bet_recommend().amount == 5
        assert own.paths() == ["/api/bet"]
        assert mocked.calls == []

    def test_what_nothing_was_scripted_for_fails_the_test(self, mocked, client):
        from provider.testing import UnscriptedRequest

        with pytest.raises(UnscriptedRequest):
            client.bet_recommend()


# --- what is retried ---------------------------------------------------------------


@pytest.mark.django_db
class TestWritesAreNeverRetriedBlindly:
    def test_read_timeout_on_bet_place_is_never_retried_and_outcome_unknown(
        self, mocked, client, sleeps
    ):
        mocked.add("POST", f"{BASE}/bet", error=read_timeout())
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": "2"})
        with pytest.raises(ProviderOutcomeUnknown) as caught:
            client.bet_place(3)
        assert len(mocked.calls) == 1
        assert sleeps == []
        assert caught.value.attempts == 1
        assert caught.value.endpoint == "/bet"
        assert (caught.value.code, caught.value.http_status) == ("PROVIDER_ERROR", 502)

    def test_reset_after_sending_bet_place_is_outcome_unknown(self, mocked, client):
        mocked.add("POST", f"{BASE}/bet", error=reset_after_send())
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": "2"})
        with pytest.raises(ProviderOutcomeUnknown):
            client.bet_place(3)
        assert len(mocked.calls) == 1

    def test_refused_connection_on_bet_place_is_retried(self, mocked, client, sleeps):
        mocked.add("POST", f"{BASE}/bet", error=refused())
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": "77"})
        assert client.bet_place(3).bet_id == "77"
        assert len(mocked.calls) == 2
        assert len(sleeps) == 1

    def test_connect_timeout_on_bet_place_is_retried(self, mocked, client):
        mocked.add("POST", f"{BASE}/bet", error=connect_timeout())
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": "78"})
        assert client.bet_place(3).bet_id == "78"
        assert len(mocked.calls) == 2

    def test_never_connecting_gives_unreachable_after_the_retries(
        self, mocked, client, sleeps
    ):
        mocked.add("POST", f"{BASE}/bet", error=refused())
        with pytest.raises(ProviderUnreachable) as caught:
            client.bet_place(3)
        assert len(mocked.calls) == 3
        assert len(sleeps) == 2
        error = caught.value
        assert (error.code, error.http_status, error.attempts) == (
            "PROVIDER_UNAVAILABLE",
            503,
            3,
        )
        assert int(error.headers["Retry-After"]) >= 1

    def test_5xx_on_win_is_outcome_unknown_and_not_retried(self, mocked, client):
        mocked.add("POST", f"{BASE}/win", status=500, json={"error": "boom"})
        mocked.add("POST", f"{BASE}/win", json={"win": 6})
        with pytest.raises(ProviderOutcomeUnknown) as caught:
            client.bet_result("456")
        assert len(mocked.calls) == 1
        assert caught.value.details == {"status": 500, "body": {"error": "boom"}}

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_5xx_on_set_balance_is_outcome_unknown(self, mocked, client, status):
        mocked.add("POST", f"{BASE}/balance", status=status, body="upstream error")
        with pytest.raises(ProviderOutcomeUnknown):
            client.balance_set(Decimal("1000"))
        assert len(mocked.calls) == 1

    def test_429_on_bet_place_is_retried_after_retry_after(
        self, mocked, client, sleeps
    ):
        mocked.add("POST", f"{BASE}/bet", status=429, headers={"Retry-After": "1"})
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": "9"})
        assert client.bet_place(3).bet_id == "9"
        assert sleeps == [1.0]

    def test_429_with_a_long_retry_after_gives_up_as_unreachable(
        self, mocked, client, sleeps
    ):
        mocked.add("POST", f"{BASE}/bet", status=429, headers={"Retry-After": "60"})
        with pytest.raises(ProviderUnreachable) as caught:
            client.bet_place(3)
        assert len(mocked.calls) == 1
        assert sleeps == []
        assert caught.value.headers["Retry-After"] == "60"
        assert caught.value.status == 429

    def test_persistent_429_is_unreachable(self, mocked, client, sleeps):
        mocked.add("POST", f"{BASE}/win", status=429, json={"error": "slow down"})
        with pytest.raises(ProviderUnreachable):
            client.bet_result("1")
        assert len(mocked.calls) == 3
        assert len(sleeps) == 2

    @pytest.mark.parametrize(
        "body",
        [
            {"message": "Bet placed successfully"},
            {"bet_id": ""},
            {"bet_id": None},
            {"bet_id": True},
            [1, 2],
        ],
    )
    def test_bet_place_answer_without_bet_id_is_outcome_unknown(
        self, mocked, client, body
    ):
        mocked.add("POST", f"{BASE}/bet", json=body)
        with pytest.raises(ProviderOutcomeUnknown, match="malformed"):
            client.bet_place(3)
        assert len(mocked.calls) == 1

    @pytest.mark.parametrize(
        ("path", "call"),
        [
            ("/win", lambda c: c.bet_result("1")),
            ("/balance", lambda c: c.balance_set(Decimal(10))),
        ],
    )
    def test_malformed_answers_to_writes_are_outcome_unknown(
        self, mocked, client, path, call
    ):
        mocked.add("POST", f"{BASE}{path}", body="<html>ok</html>")
        with pytest.raises(ProviderOutcomeUnknown):
            call(client)
        assert len(mocked.calls) == 1


@pytest.mark.django_db
class TestReadsAreRetried:
    def test_reads_are_retried_on_5xx_with_capped_jittered_backoff(
        self, mocked, client, sleeps
    ):
        mocked.add("GET", f"{BASE}/bet", status=500)
        mocked.add("GET", f"{BASE}/bet", status=502)
        mocked.add("GET", f"{BASE}/bet", json={"bet": 4})
        assert client.bet_recommend().amount == 4
        assert len(mocked.calls) == 3
        assert len(sleeps) == 2
        assert 0 <= sleeps[0] <= 0.01
        assert 0 <= sleeps[1] <= 0.02

    def test_reads_are_retried_on_timeouts_and_resets(self, mocked, client):
        mocked.add("POST", f"{BASE}/balance", error=read_timeout())
        mocked.add("POST", f"{BASE}/balance", error=reset_after_send())
        mocked.add("POST", f"{BASE}/balance", json={"balance": 7})
        assert client.balance_read().balance == Decimal(7)

    def test_503_retry_after_is_honoured_for_reads(self, mocked, client, sleeps):
        mocked.add(
            "POST", f"{BASE}/check-balance", status=503, headers={"Retry-After": "2"}
        )
        mocked.add(
            "POST", f"{BASE}/check-balance", json={"is_correct": True, "balance": 1}
        )
        assert client.balance_check(Decimal(1)).is_correct is True
        assert sleeps == [2.0]

    def test_read_retries_exhausted_on_5xx_is_a_provider_error(self, mocked, client):
        mocked.add("POST", f"{BASE}/auth", status=500, json={"error": "down"})
        with pytest.raises(ProviderOutcomeUnknown) as caught:
            client.auth()
        assert len(mocked.calls) == 3
        assert caught.value.attempts == 3

    def test_read_retries_exhausted_on_refusals_is_unreachable(self, mocked, client):
        mocked.add("GET", f"{BASE}/health", error=refused())
        with pytest.raises(ProviderUnreachable):
            client.health()
        assert len(mocked.calls) == 3

    def test_malformed_read_is_retried(self, mocked, client):
        mocked.add("GET", f"{BASE}/bet", json={"bet": 9})
        mocked.add("GET", f"{BASE}/bet", body="not json")
        mocked.add("GET", f"{BASE}/bet", json={"bet": 5})
        assert client.bet_recommend().amount == 5
        assert len(mocked.calls) == 3

    def test_retry_count_follows_the_setting(self, mocked, client, settings):
        settings.PROVIDER_READ_RETRIES = 0
        mocked.add("GET", f"{BASE}/bet", status=500)
        with pytest.raises(ProviderOutcomeUnknown):
            client.bet_recommend()
        assert len(mocked.calls) == 1


@pytest.mark.django_db
class TestRefusals:
    @pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
    def test_4xx_is_refused_and_not_retried(self, mocked, client, sleeps, status):
        mocked.add(
            "POST",
            f"{BASE}/bet",
            status=status,
            json={"error": "Insufficient balance", "message": "no"},
        )
        with pytest.raises(ProviderRefused) as caught:
            client.bet_place(3)
        assert len(mocked.calls) == 1
        assert sleeps == []
        error = caught.value
        assert error.status == status
        assert error.body == {"error": "Insufficient balance", "message": "no"}
        assert error.details == {"status": status, "body": error.body}
        assert (error.code, error.http_status) == ("PROVIDER_ERROR", 502)

    def test_4xx_on_a_read_is_not_retried(self, mocked, client):
        mocked.add("GET", f"{BASE}/bet", status=400, body="bad request")
        with pytest.raises(ProviderRefused) as caught:
            client.bet_recommend()
        assert len(mocked.calls) == 1
        assert caught.value.body == "bad request"

    def test_the_three_kinds_share_one_base(self):
        for kind in (ProviderUnreachable, ProviderOutcomeUnknown, ProviderRefused):
            assert issubclass(kind, ProviderError)


# --- provider sessions -------------------------------------------------------------

AUTH_OK = {"message": "Successfully authenticated", "user_id": "5", "username": "u"}


@pytest.mark.django_db
class TestSessions:
    @pytest.fixture
    def fresh_client(self, account, sleeps):
        return ProviderClient(account=account, sleep=sleeps.append)

    def test_auth_once_per_ttl_not_before_every_call(self, mocked, fresh_client):
        mocked.add("POST", f"{BASE}/auth", json=AUTH_OK)
        mocked.add("GET", f"{BASE}/bet", json={"bet": 2})
        fresh_client.bet_recommend()
        fresh_client.bet_recommend()
        assert paths(mocked) == ["/api/auth", "/api/bet", "/api/bet"]

    def test_the_session_is_shared_by_clients_of_the_account(
        self, mocked, account, fresh_client
    ):
        mocked.add("POST", f"{BASE}/auth", json=AUTH_OK)
        mocked.add("GET", f"{BASE}/bet", json={"bet": 2})
        fresh_client.bet_recommend()
        ProviderClient(account=account).bet_recommend()
        assert paths(mocked).count("/api/auth") == 1

    def test_zero_ttl_authenticates_every_time(self, mocked, fresh_client, settings):
        settings.PROVIDER_SESSION_TTL = 0
        mocked.add("POST", f"{BASE}/auth", json=AUTH_OK)
        mocked.add("GET", f"{BASE}/bet", json={"bet": 2})
        fresh_client.bet_recommend()
        fresh_client.bet_recommend()
        assert paths(mocked).count("/api/auth") == 2

    def test_one_client_reads_the_shared_session_once_per_recheck(
        self, mocked, fresh_client, monkeypatch
    ):
        from provider import client as client_module

        reads = []
        real = client_module.session_is_fresh
        monkeypatch.setattr(
            client_module,
            "session_is_fresh",
            lambda **kw: reads.append(kw) or real(**kw),
        )
        mocked.add("POST", f"{BASE}/auth", json=AUTH_OK)
        mocked.add("GET", f"{BASE}/bet", json={"bet": 2})
        for _ in range(3):
            fresh_client.bet_recommend()
        assert len(reads) == 1
        assert paths(mocked).count("/api/auth") == 1
        monkeypatch.setattr(client_module, "SESSION_RECHECK", 0.0)
        fresh_client.bet_recommend()
        assert len(reads) == 2  # asked again once the recheck time passed

    def test_a_401_clears_the_session_and_is_refused(
        self, mocked, account, fresh_client
    ):
        mocked.add("POST", f"{BASE}/auth", json=AUTH_OK)
        mocked.add("POST", f"{BASE}/win", status=401, json={"error": "Unauthorized"})
        mocked.add("POST", f"{BASE}/win", json={"win": 0})
        with pytest.raises(ProviderRefused) as caught:
            fresh_client.bet_result("1")
        assert caught.value.status == 401
        assert not session_is_fresh(host=HOST, external_user_id="5")
        fresh_client.bet_result("1")
        assert paths(mocked) == ["/api/auth", "/api/win", "/api/auth", "/api/win"]

    def test_failed_auth_means_the_bet_was_not_sent(self, mocked, fresh_client):
        mocked.add("POST", f"{BASE}/auth", status=500)
        with pytest.raises(ProviderUnreachable) as caught:
            fresh_client.bet_place(3)
        assert "/api/bet" not in paths(mocked)
        assert caught.value.endpoint == "/bet"
        assert caught.value.attempts == 0

    def test_refused_auth_refuses_the_call(self, mocked, fresh_client):
        mocked.add("POST", f"{BASE}/auth", status=401, json={"error": "bad signature"})
        with pytest.raises(ProviderRefused):
            fresh_client.bet_place(3)
        assert paths(mocked) == ["/api/auth"]


# --- the API log -------------------------------------------------------------------


@pytest.mark.django_db
class TestApiLog:
    def test_each_attempt_is_one_row(self, mocked, client, account):
        token = request_id_var.set("req-12345678")
        try:
            mocked.add("POST", f"{BASE}/bet", error=refused())
            mocked.add("POST", f"{BASE}/bet", json={"bet_id": "31", "message": "ok"})
            client.bet_place(3)
        finally:
            request_id_var.reset(token)
        first, second = ApiLog.objects.order_by("pk")
        assert (first.attempt, first.outcome, first.status_code) == (
            1,
            "unreachable",
            None,
        )
        assert "connection error" in first.error
        assert (second.attempt, second.outcome, second.status_code) == (2, "ok", 200)
        for row in (first, second):
            assert row.direction == ApiLog.Direction.OUTBOUND
            assert (row.method, row.endpoint) == ("POST", "/bet")
            assert row.request_body == {"bet": 3}
            assert row.user_id == account.user_id
            assert row.request_id == "req-12345678"
        assert second.response_body == {"bet_id": "31", "message": "ok"}

    def test_outcomes_are_recorded(self, mocked, client):
        mocked.add("POST", f"{BASE}/win", status=400, json={"error": "settled"})
        mocked.add("POST", f"{BASE}/bet", error=read_timeout())
        with pytest.raises(ProviderRefused):
            client.bet_result("1")
        with pytest.raises(ProviderOutcomeUnknown):
            client.bet_place(1)
        assert list(
            ApiLog.objects.order_by("pk").values_list("outcome", "status_code")
        ) == [("refused", 400), ("unknown", None)]

    def test_secret_and_signature_never_reach_the_log_table_or_logging(
        self, mocked, client, caplog
    ):
        caplog.set_level(logging.DEBUG)
        echo = {
            "error": f"bad signature {SIG_BET_3}",
            "secret": SECRET,
            "hint": f"key was {SECRET}",
        }
        mocked.add("POST", f"{BASE}/bet", status=400, json=echo)
        mocked.add("POST", f"{BASE}/win", status=500, json=echo)
        mocked.add("POST", f"{BASE}/balance", body=f"oops {SECRET} {SIG_EMPTY}")
        mocked.add("POST", f"{BASE}/check-balance", error=refused())
        errors = []
        for call in (
            lambda: client.bet_place(3),
            lambda: client.bet_result("1"),
            lambda: client.balance_set(Decimal(5)),
            lambda: client.balance_check(Decimal(5)),
        ):
            with pytest.raises(ProviderError) as caught:
                call()
            errors.append(caught.value)
        rows = json.dumps(list(ApiLog.objects.values()), default=str)
        assert ApiLog.objects.count() >= 4
        for secret in (SECRET, SIG_BET_3, SIG_EMPTY):
            assert secret not in rows
            assert secret not in caplog.text
            for error in errors:
                assert secret not in str(error)
                assert secret not in json.dumps(error.details, default=str)

    def test_a_log_write_failure_does_not_fail_the_call(
        self, mocked, client, monkeypatch, caplog
    ):
        def broken(**kwargs):
            raise RuntimeError("database is gone")

        monkeypatch.setattr(ApiLog.objects, "create", broken)
        mocked.add("POST", f"{BASE}/bet", json={"bet_id": "5"})
        with caplog.at_level(logging.WARNING, logger="auditlog.services"):
            assert client.bet_place(2).bet_id == "5"
        assert "Could not write the API log row" in caplog.text


# --- real sockets: what the mocks stand for ----------------------------------------


class _Server:
    """A TCP server on 127.0.0.1 that reads a request, then misbehaves."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                except OSError:
                    continue
                self.requests += 1
                if self.behaviour == "hang":
                    self.stop.wait(3)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.django_db
class TestRealSockets:
    @pytest.fixture
    def serve(self, settings):
        servers = []

        def start(behaviour: str) -> _Server:
            server = _Server(behaviour)
            servers.append(server)
            settings.EXTERNAL_API_URL = f"http://127.0.0.1:{server.port}/api"
            return server

        yield start
        for server in servers:
            server.close()

    def _client(self, account, sleeps, port_url) -> ProviderClient:
        host = port_url.rsplit("/api", 1)[0]
        session_mark(host=host, external_user_id=account.external_user_id)
        return ProviderClient(account=account, sleep=sleeps.append)

    def test_connection_closed_after_sending_a_bet_is_outcome_unknown(
        self, serve, account, sleeps, settings
    ):
        server = serve("close")
        client = self._client(account, sleeps, settings.EXTERNAL_API_URL)
        with pytest.raises(ProviderOutcomeUnknown):
            client.bet_place(3)
        assert server.requests == 1
        assert sleeps == []

    def test_read_timeout_on_a_real_socket_is_outcome_unknown(
        self, serve, account, sleeps, settings
    ):
        settings.EXTERNAL_API_READ_TIMEOUT = 0.2
        server = serve("hang")
        client = self._client(account, sleeps, settings.EXTERNAL_API_URL)
        with pytest.raises(ProviderOutcomeUnknown):
            client.bet_place(3)
        assert server.requests == 1

    def test_refused_connection_on_a_real_socket_is_retried(
        self, account, sleeps, settings
    ):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings.EXTERNAL_API_URL = f"http://127.0.0.1:{port}/api"
        client = self._client(account, sleeps, settings.EXTERNAL_API_URL)
        with pytest.raises(ProviderUnreachable) as caught:
            client.bet_place(3)
        assert caught.value.attempts == 3
        assert (
            list(ApiLog.objects.values_list("outcome", flat=True))
            == ["unreachable"] * 3
        )


# --- parsing and argument edges ----------------------------------------------------


class TestParsing:
    @pytest.mark.parametrize(
        ("parse", "data"),
        [
            (BetResult.from_json, {"win": -1}),
            (BetResult.from_json, {"win": "lots"}),
            (BetResult.from_json, {"win": None}),
            (BalanceResult.from_json, {"balance": True}),
            (BalanceResult.from_json, {"balance": "Infinity"}),
            (BalanceResult.from_json, []),
            (BetPlaced.from_json, {"bet_id": Decimal("4.5")}),
            (BalanceCheck.from_json, {"is_correct": "yes", "balance": 1}),
            (BalanceCheck.from_json, {"is_correct": True}),
            (Recommendation.from_json, {"bet": Decimal("2.5")}),
            (Recommendation.from_json, {"bet": 0}),
            (AuthResult.from_json, {"username": "u"}),
        ],
    )
    def test_unexpected_shapes_are_malformed(self, parse, data):
        with pytest.raises(MalformedResponse):
            parse(data)

    def test_lenient_where_harmless(self):
        assert BalanceResult.from_json({"balance": "12.50"}).balance == Decimal("12.50")
        assert BetPlaced.from_json({"bet_id": Decimal("456.0")}).bet_id == "456"
        assert Recommendation.from_json({"bet": Decimal("2.0")}).amount == 2
        assert AuthResult.from_json({"user_id": 5}).username == ""
        assert Health.from_json([1, 2]).raw_dict() == {"value": [1, 2]}

    def test_json_is_parsed_without_floats_and_refuses_nan(self):
        assert parse_json(b'{"a":0.1}') == {"a": Decimal("0.1")}
        with pytest.raises(ValueError, match="NaN"):
            parse_json(b'{"a":NaN}')

    @pytest.mark.parametrize("amount", [1.5, "10", None])
    def test_amounts_are_decimal_or_int(self, amount):
        with pytest.raises(TypeError):
            ProviderClient(external_user_id="5", secret=SECRET).balance_set(amount)

    @pytest.mark.parametrize("amount", [Decimal(-1), Decimal("NaN")])
    def test_amounts_are_finite_and_not_negative(self, amount):
        with pytest.raises(ValueError, match="finite"):
            ProviderClient(external_user_id="5", secret=SECRET).balance_check(amount)

    def test_a_nan_stake_and_an_empty_bet_id_are_refused(self):
        client = ProviderClient(external_user_id="5", secret=SECRET)
        with pytest.raises(ValueError, match="finite"):
            client.bet_place(Decimal("NaN"))
        with pytest.raises(ValueError, match="bet id"):
            client.bet_result("  ")

    def test_repr_shows_no_secret(self):
        assert SECRET not in repr(ProviderClient(external_user_id="5", secret=SECRET))


class BrokenCache:
    def __getattr__(self, name):
        def broken(*args, **kwargs):
            raise ConnectionError("redis is down")

        return broken


@pytest.mark.django_db
def test_a_broken_session_cache_only_costs_an_extra_auth(
    mocked, account, monkeypatch, caplog
):
    monkeypatch.setattr(sessions_module, "cache", BrokenCache())
    mocked.add("POST", f"{BASE}/auth", json=AUTH_OK)
    mocked.add("POST", f"{BASE}/win", status=401, json={"error": "expired"})
    client = ProviderClient(account=account)
    with (
        caplog.at_level(logging.WARNING, logger="provider.sessions"),
        pytest.raises(ProviderRefused),
    ):
        client.bet_result("1")
    assert paths(mocked) == ["/api/auth", "/api/win"]
    assert "Provider session cache unavailable" in caplog.text
