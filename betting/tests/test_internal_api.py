"""The internal endpoints against the bundled simulator."""

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient

from accounts.models import ExternalApiAccount
from accounts.tests.factories import ExternalApiAccountFactory, UserFactory
from auditlog.models import ApiLog
from provider.permissions import AdminTokenAuthentication
from wallet.models import Transaction

pytestmark = pytest.mark.django_db

ADMIN_TOKEN = "internal-admin-token-for-the-tests-0123456789"
EXTERNAL_ID = "9001"
SECRET = "internal-api-secret-0001"

# (method, path, a valid body or query) for every internal endpoint served here.
ENDPOINTS = [
    ("post", "/api/internal/auth", {"user_id": EXTERNAL_ID}),
    ("get", "/api/internal/bet", {"user_id": EXTERNAL_ID}),
    ("post", "/api/internal/balance", {"user_id": EXTERNAL_ID}),
    (
        "post",
        "/api/internal/check-balance",
        {"user_id": EXTERNAL_ID, "expected_balance": 1000},
    ),
]
ENDPOINT_IDS = ["auth", "bet", "balance", "check-balance"]


def call(client: APIClient, method: str, path: str, data: dict) -> Any:
    if method == "get":
        return client.get(path, data)
    return client.post(path, data, format="json")


def post_raw(client: APIClient, path: str, raw: str) -> Any:
    return client.post(path, data=raw, content_type="application/json")


def exact(response: Any) -> Any:
    """The response body with decimals kept exact."""
    return json.loads(response.content, parse_float=Decimal)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture(autouse=True)
def admin_token(settings) -> str:
    settings.ADMIN_TOKEN = ADMIN_TOKEN
    return ADMIN_TOKEN


@pytest.fixture
def account(provider) -> ExternalApiAccount:
    provider.add_account(EXTERNAL_ID, SECRET, username="p9001")
    return ExternalApiAccountFactory(external_user_id=EXTERNAL_ID, secret=SECRET)


@pytest.fixture
def token_client() -> APIClient:
    return bearer(ADMIN_TOKEN)


@pytest.fixture
def staff_client(api_client, password) -> APIClient:
    staff = UserFactory(username="staff", password=password, is_staff=True)
    response = api_client.post(
        "/api/auth/login",
        {"username": staff.username, "password": password},
        format="json",
    )
    assert response.status_code == 200, response.content
    return bearer(response.json()["token"])


@pytest.fixture(params=["admin_token", "staff_jwt"])
def admin_client(request) -> APIClient:
    """Each test using it runs with the static token and with a staff JWT."""
    name = "token_client" if request.param == "admin_token" else "staff_client"
    return request.getfixturevalue(name)


@pytest.fixture
def all_logs(caplog) -> Iterator[Any]:
    """caplog, also fed by the ``django`` loggers (which do not propagate)."""
    caplog.set_level(logging.DEBUG)
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        django_logger.removeHandler(caplog.handler)


def assert_error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    return body["error"]


class TestSuccess:
    def test_auth_answers_the_providers_json(self, admin_client, account):
        response = admin_client.post(
            "/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json"
        )
        assert response.status_code == 200, response.content
        assert response.json() == {
            "success": True,
            "external_response": {
                "message": "Successfully authenticated",
                "user_id": EXTERNAL_ID,
                "username": "p9001",
            },
        }

    def test_provider_calls_are_logged_with_the_accounts_local_user(
        self, token_client, account
    ):
        token_client.post(
            "/api/internal/auth/", {"user_id": EXTERNAL_ID}, format="json"
        )
        row = ApiLog.objects.get(direction=ApiLog.Direction.OUTBOUND)
        assert (row.endpoint, row.outcome, row.user_id) == (
            "/auth",
            "ok",
            account.user_id,
        )

    def test_bet_recommendation(self, admin_client, account):
        for path in ("/api/internal/bet", "/api/internal/bet/"):
            response = admin_client.get(path, {"user_id": EXTERNAL_ID})
            assert response.status_code == 200, response.content
            body = response.json()
            assert body["success"] is True
            assert set(body["external_response"]) == {"bet"}
            assert 1 <= body["external_response"]["bet"] <= 5

    def test_balance_read_keeps_money_exact(self, admin_client, account, provider):
        provider.set_balance(EXTERNAL_ID, Decimal("1006.10"))
        response = admin_client.post(
            "/api/internal/balance", {"user_id": EXTERNAL_ID}, format="json"
        )
        assert response.status_code == 200, response.content
        assert exact(response) == {
            "success": True,
            "external_response": {"balance": Decimal("1006.1")},
        }
        assert not Transaction.objects.exists()  # a read records nothing

    def test_balance_set_records_the_initial_balance_once(
        self, admin_client, account, provider
    ):
        body = {"user_id": EXTERNAL_ID, "balance": 500}
        response = admin_client.post("/api/internal/balance", body, format="json")
        assert response.status_code == 200, response.content
        assert exact(response) == {
            "success": True,
            "external_response": {"balance": Decimal("500")},
        }
        assert provider.balance_of(EXTERNAL_ID) == Decimal("500")
        entry = Transaction.objects.get(user=account.user)
        assert (entry.type, entry.amount) == ("initial_balance", Decimal("500"))

        again = admin_client.post("/api/internal/balance/", body, format="json")
        assert again.status_code == 200, again.content
        answer = exact(again)
        assert answer["external_response"] == {"balance": Decimal("500")}
        assert "already recorded" in answer["note"]
        assert Transaction.objects.count() == 1
        assert provider.snapshot()["calls"].get("POST /balance") == 1

    def test_balance_set_when_already_set_at_the_provider_records_what_it_holds(
        self, token_client, account, provider
    ):
        provider.set_balance(EXTERNAL_ID, Decimal("123.45"))
        response = post_raw(
            token_client,
            "/api/internal/balance",
            '{"user_id": "9001", "balance": 500.50}',
        )
        assert response.status_code == 200, response.content
        answer = exact(response)
        assert answer["external_response"] == {"balance": Decimal("123.45")}
        assert "already set at the provider" in answer["note"]
        entry = Transaction.objects.get(user=account.user)
        assert (entry.type, entry.amount) == ("initial_balance", Decimal("123.45"))
        assert provider.balance_of(EXTERNAL_ID) == Decimal("123.45")

    @pytest.mark.parametrize(
        ("expected", "correct"), [(Decimal("1000.00"), True), (1010, False)]
    )
    def test_check_balance(self, admin_client, account, provider, expected, correct):
        provider.set_balance(EXTERNAL_ID, Decimal("1000"))
        response = admin_client.post(
            "/api/internal/check-balance",
            {"user_id": EXTERNAL_ID, "expected_balance": expected},
            format="json",
        )
        assert response.status_code == 200, response.content
        external = exact(response)["external_response"]
        assert external["is_correct"] is correct
        balance = external["balance" if correct else "correct_balance"]
        assert balance == Decimal("1000")


class TestAccess:
    @pytest.mark.parametrize(("method", "path", "data"), ENDPOINTS, ids=ENDPOINT_IDS)
    def test_no_credentials_is_401(self, api_client, account, method, path, data):
        response = call(api_client, method, path, data)
        assert_error(response, 401, "UNAUTHORIZED")
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert ApiLog.objects.filter(direction=ApiLog.Direction.OUTBOUND).count() == 0

    @pytest.mark.parametrize(("method", "path", "data"), ENDPOINTS, ids=ENDPOINT_IDS)
    def test_a_wrong_static_token_is_401(self, account, method, path, data):
        response = call(bearer(ADMIN_TOKEN[:-1] + "x"), method, path, data)
        assert_error(response, 401, "UNAUTHORIZED")
        assert response["WWW-Authenticate"].startswith("Bearer")

    @pytest.mark.parametrize(("method", "path", "data"), ENDPOINTS, ids=ENDPOINT_IDS)
    def test_a_players_jwt_is_403(self, auth_client, account, method, path, data):
        response = call(auth_client, method, path, data)
        assert_error(response, 403, "FORBIDDEN")
        assert ApiLog.objects.filter(direction=ApiLog.Direction.OUTBOUND).count() == 0

    def test_the_static_token_is_refused_when_admin_token_is_unset(
        self, settings, token_client, account
    ):
        settings.ADMIN_TOKEN = None
        response = token_client.post(
            "/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json"
        )
        assert_error(response, 401, "UNAUTHORIZED")

    def test_the_static_token_authenticates_a_staff_principal_without_a_user_row(
        self, rf, settings
    ):
        request = Request(rf.get("/", HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}"))
        caller, scope = AdminTokenAuthentication().authenticate(request)
        assert (caller.pk, caller.is_staff, caller.is_authenticated) == (
            None,
            True,
            True,
        )
        assert (scope, str(caller)) == ("admin-token", "admin-token")
        settings.ADMIN_TOKEN = None
        assert AdminTokenAuthentication().authenticate(request) is None

    def test_a_staff_jwt_still_works_when_admin_token_is_unset(
        self, settings, staff_client, account
    ):
        settings.ADMIN_TOKEN = None
        response = staff_client.post(
            "/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json"
        )
        assert response.status_code == 200, response.content

    def test_the_admin_token_under_another_scheme_is_refused(self, account):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {ADMIN_TOKEN}")
        response = client.post(
            "/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json"
        )
        assert_error(response, 401, "UNAUTHORIZED")


class TestNotFound:
    def test_an_unknown_user_id_is_404(self, token_client, account):
        response = token_client.post(
            "/api/internal/auth", {"user_id": "no-such-user"}, format="json"
        )
        assert_error(response, 404, "NOT_FOUND")

    @pytest.mark.parametrize(("method", "path", "data"), ENDPOINTS, ids=ENDPOINT_IDS)
    def test_an_inactive_link_is_404(self, token_client, provider, method, path, data):
        provider.add_account(EXTERNAL_ID, SECRET)
        ExternalApiAccountFactory(
            external_user_id=EXTERNAL_ID,
            secret=SECRET,
            is_active=False,
            deactivated_at=timezone.now(),
        )
        response = call(token_client, method, path, data)
        assert_error(response, 404, "NOT_FOUND")
        assert provider.snapshot()["calls"] == {}

    def test_the_local_user_id_is_not_the_user_id(self, token_client, account):
        response = token_client.post(
            "/api/internal/auth", {"user_id": str(account.user_id)}, format="json"
        )
        assert_error(response, 404, "NOT_FOUND")


class TestValidation:
    @pytest.mark.parametrize(
        ("path", "raw", "field"),
        [
            ("/api/internal/auth", "{}", "user_id"),
            ("/api/internal/auth", '{"user_id": ""}', "user_id"),
            ("/api/internal/balance", '{"balance": 10}', "user_id"),
            (
                "/api/internal/balance",
                '{"user_id": "9001", "balance": "10"}',
                "balance",
            ),
            (
                "/api/internal/balance",
                '{"user_id": "9001", "balance": true}',
                "balance",
            ),
            (
                "/api/internal/balance",
                '{"user_id": "9001", "balance": null}',
                "balance",
            ),
            (
                "/api/internal/balance",
                '{"user_id": "9001", "balance": 2.555}',
                "balance",
            ),
            ("/api/internal/balance", '{"user_id": "9001", "balance": 0}', "balance"),
            ("/api/internal/balance", '{"user_id": "9001", "balance": -5}', "balance"),
            (
                "/api/internal/balance",
                '{"user_id": "9001", "balance": 1e30}',
                "balance",
            ),
            ("/api/internal/check-balance", '{"user_id": "9001"}', "expected_balance"),
            (
                "/api/internal/check-balance",
                '{"user_id": "9001", "expected_balance": "1000"}',
                "expected_balance",
            ),
        ],
    )
    def test_bad_bodies_are_400_with_the_field(
        self, token_client, account, path, raw, field
    ):
        response = post_raw(token_client, path, raw)
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert set(error["details"]) == {field}
        assert isinstance(error["details"][field], list)
        assert not Transaction.objects.exists()

    def test_bet_without_user_id_is_400(self, token_client, account):
        response = token_client.get("/api/internal/bet")
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "user_id" in error["details"]

    def test_malformed_json_is_400(self, token_client, account):
        response = post_raw(token_client, "/api/internal/auth", '{"user_id": ')
        assert_error(response, 400, "VALIDATION_ERROR")


class TestProviderFailures:
    def test_a_refusal_is_502_with_the_providers_status_and_body(
        self, token_client, account
    ):
        # The simulator refuses to read a balance that was never set.
        response = token_client.post(
            "/api/internal/balance", {"user_id": EXTERNAL_ID}, format="json"
        )
        error = assert_error(response, 502, "PROVIDER_ERROR")
        assert error["details"] == {
            "status": 404,
            "body": {
                "error": "Balance not set",
                "message": "The balance has not been set",
            },
        }

    def test_wrong_credentials_at_the_provider_are_502_not_401(
        self, token_client, provider
    ):
        provider.add_account(EXTERNAL_ID, "the-real-secret")
        ExternalApiAccountFactory(external_user_id=EXTERNAL_ID, secret="wrong")
        response = token_client.post(
            "/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json"
        )
        error = assert_error(response, 502, "PROVIDER_ERROR")
        assert error["details"]["status"] == 401
        assert "error" in error["details"]["body"]

    @pytest.mark.parametrize(("method", "path", "data"), ENDPOINTS, ids=ENDPOINT_IDS)
    def test_provider_down_is_503_with_retry_after(
        self, settings, token_client, account, method, path, data
    ):
        settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
        settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
        response = call(token_client, method, path, data)
        assert_error(response, 503, "PROVIDER_UNAVAILABLE")
        assert int(response["Retry-After"]) >= 1

    def test_set_balance_with_the_provider_down_records_nothing(
        self, settings, token_client, account
    ):
        settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
        settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
        response = token_client.post(
            "/api/internal/balance",
            {"user_id": EXTERNAL_ID, "balance": 100},
            format="json",
        )
        assert_error(response, 503, "PROVIDER_UNAVAILABLE")
        assert not Transaction.objects.exists()


def test_the_admin_token_never_reaches_logs_or_the_api_log(
    token_client, account, all_logs
):
    token_client.post("/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json")
    token_client.post(  # refused: the balance was never set
        "/api/internal/balance", {"user_id": EXTERNAL_ID}, format="json"
    )
    token_client.post("/api/internal/balance", {"balance": "x"}, format="json")
    token_client.post("/api/internal/auth", {"user_id": "unknown"}, format="json")
    wrong = bearer(ADMIN_TOKEN + "-wrong")
    response = wrong.post("/api/internal/auth", {"user_id": EXTERNAL_ID}, format="json")
    assert response.status_code == 401
    assert ADMIN_TOKEN not in response.content.decode()

    rows = list(ApiLog.objects.values())
    assert any(row["direction"] == ApiLog.Direction.INBOUND for row in rows)
    assert any(row["direction"] == ApiLog.Direction.OUTBOUND for row in rows)
    assert ADMIN_TOKEN not in repr(rows)
    assert all_logs.records  # something was logged, and none of it is the token
    assert ADMIN_TOKEN not in all_logs.text
    assert all(ADMIN_TOKEN not in repr(record.__dict__) for record in all_logs.records)


class TestBetAndWin:
    """POST /api/internal/bet and /win go through the bet lifecycle."""

    @pytest.fixture(params=["debit_on_loss", "debit_on_place"])
    def funded(self, request, settings, provider, account, token_client):
        settings.PROVIDER_STAKE_MODE = request.param
        provider.configure(stake_mode=request.param, win_probability=1.0)
        response = call(
            token_client,
            "post",
            "/api/internal/balance",
            {"user_id": EXTERNAL_ID, "balance": 100},
        )
        assert response.status_code == 200, response.content
        return account

    def test_place_then_win_books_the_ledger_once(self, admin_client, funded, provider):
        from betting.models import Bet
        from wallet.models import UserBalance

        placed = call(
            admin_client,
            "post",
            "/api/internal/bet",
            {"user_id": EXTERNAL_ID, "bet": 3},
        )
        assert placed.status_code == 201, placed.content
        body = placed.json()
        assert body["success"] is True
        bet_id = body["external_response"]["bet_id"]
        assert body["bet"]["status"] == "pending"
        won = call(
            admin_client,
            "post",
            "/api/internal/win",
            {"user_id": EXTERNAL_ID, "bet_id": bet_id},
        )
        assert won.status_code == 201, won.content
        assert won.json()["external_response"]["win"] == 6
        bet = Bet.objects.get(external_bet_id=bet_id)
        assert bet.status == "completed"
        wallet = UserBalance.objects.get(user=funded.user)
        assert wallet.balance == provider.balance_of(EXTERNAL_ID)
        assert wallet.held == 0
        again = call(
            admin_client,
            "post",
            "/api/internal/win",
            {"user_id": EXTERNAL_ID, "bet_id": bet_id},
        )
        assert again.status_code == 201
        assert "already completed" in again.json()["note"]
        assert provider.snapshot()["calls"]["POST /win"] == 1

    def test_place_with_an_idempotency_key_places_once(
        self, token_client, funded, provider
    ):
        def place():
            return token_client.post(
                "/api/internal/bet",
                {"user_id": EXTERNAL_ID, "bet": 2},
                format="json",
                headers={"Idempotency-Key": "internal-key-1"},
            )

        first, second = place(), place()
        assert first.status_code == second.status_code == 201
        assert second["Idempotent-Replayed"] == "true"
        assert provider.snapshot()["calls"]["POST /bet"] == 1

    @pytest.mark.parametrize("bet", ["3", True, 2.5, 0, 9, None])
    def test_invalid_bets_are_400(self, token_client, funded, bet):
        response = post_raw(
            token_client,
            "/api/internal/bet",
            json.dumps({"user_id": EXTERNAL_ID, "bet": bet}),
        )
        assert_error(response, 400, "VALIDATION_ERROR")

    def test_win_for_an_unknown_bet_id_is_400(self, token_client, funded):
        response = call(
            token_client,
            "post",
            "/api/internal/win",
            {"user_id": EXTERNAL_ID, "bet_id": "no-such-bet"},
        )
        assert_error(response, 400, "VALIDATION_ERROR")

    def test_unknown_placement_is_502_with_the_bet(
        self, token_client, funded, provider
    ):
        provider.add_fault("/bet", "error_after", method="POST", status=500)
        response = call(
            token_client,
            "post",
            "/api/internal/bet",
            {"user_id": EXTERNAL_ID, "bet": 1},
        )
        error = assert_error(response, 502, "PROVIDER_ERROR")
        assert error["details"]["bet"]["status"] == "unknown"


def test_setting_a_balance_with_an_idempotency_key_replays(token_client, account):
    def set_balance():
        return token_client.post(
            "/api/internal/balance",
            {"user_id": EXTERNAL_ID, "balance": 40},
            format="json",
            headers={"Idempotency-Key": "internal-balance-1"},
        )

    first, second = set_balance(), set_balance()
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert "note" not in second.json()
