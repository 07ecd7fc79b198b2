import itertools
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from betting.models import Bet

pytestmark = pytest.mark.django_db


@pytest.fixture
def player_provider(provider, stake_mode):
    """Every test with a player runs in both stake modes."""
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("50")


def post_bet(client, body, **headers):
    return client.post(
        "/api/bets", data=body, content_type="application/json", **headers
    )


@pytest.mark.parametrize(
    "body", ['{"amount": 3}', '{"amount": 3.0}', '{"amount": 3.00}']
)
def test_place_bet_runs_the_full_cycle(auth_client, player, body):
    response = post_bet(auth_client, body)
    assert response.status_code == 201, response.content
    bet = response.json()
    assert set(bet) == {
        "id",
        "external_bet_id",
        "amount",
        "status",
        "win_amount",
        "created_at",
        "completed_at",
    }
    assert bet["status"] == "completed"
    assert '"amount":3.00' in response.content.decode()


@pytest.mark.parametrize(
    "body",
    [
        '{"amount": 2.5}',
        '{"amount": "3"}',
        '{"amount": true}',
        '{"amount": null}',
        '{"amount": 0}',
        '{"amount": 6}',
        '{"amount": -1}',
        "{}",
        "[3]",
    ],
)
def test_invalid_amounts_are_400_and_nothing_is_recorded(auth_client, player, body):
    response = post_bet(auth_client, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "amount" in error["details"]
    assert not Bet.objects.exists()


def test_place_bet_without_a_linked_account_is_403(auth_client):
    response = post_bet(auth_client, '{"amount": 3}')
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ACCOUNT_NOT_LINKED"


def test_insufficient_balance_is_400(auth_client, user, make_player):
    make_player("9102", balance=Decimal("2"), user=user)
    response = post_bet(auth_client, '{"amount": 3}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INSUFFICIENT_BALANCE"


def test_provider_refusal_is_502_with_the_failed_bet(auth_client, player, provider):
    provider.add_fault("/bet", "error_before", method="POST", status=400)
    response = post_bet(auth_client, '{"amount": 3}')
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "PROVIDER_ERROR"
    assert error["details"]["bet"]["status"] == "failed"


def test_provider_down_is_503_with_retry_after(auth_client, player, settings):
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    response = post_bet(auth_client, '{"amount": 3}')
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["error"]["details"]["bet"]["status"] == "failed"


def test_unknown_outcome_is_201_unknown(auth_client, player, provider):
    provider.add_fault("/bet", "error_after", method="POST", status=500)
    response = post_bet(auth_client, '{"amount": 3}')
    assert response.status_code == 201
    assert response.json()["status"] == "unknown"


def test_list_detail_and_result(auth_client, player, provider):
    ids = [post_bet(auth_client, '{"amount": 1}').json()["id"] for _ in range(3)]
    listing = auth_client.get("/api/bets?page=1&limit=2").json()
    assert [b["id"] for b in listing["bets"]] == ids[::-1][:2]
    assert listing["pagination"] == {"total": 3, "page": 1, "limit": 2, "pages": 2}
    assert auth_client.get("/api/bets?status=failed").json()["bets"] == []
    assert auth_client.get("/api/bets?status=nope").status_code == 400
    assert auth_client.get(f"/api/bets/{ids[0]}").json()["id"] == ids[0]
    assert (
        auth_client.get(f"/api/bets/result/{ids[0]}/").json()["status"] == "completed"
    )


def test_result_resolves_a_pending_bet(auth_client, player, provider):
    provider.add_fault("/win", "error_after", method="POST", status=500)
    bet = post_bet(auth_client, '{"amount": 3}').json()
    assert bet["status"] == "pending"
    assert (
        auth_client.get(f"/api/bets/result/{bet['id']}").json()["status"] == "completed"
    )


def test_someone_elses_bet_is_404(auth_client, player, api_client, password):
    bet_id = post_bet(auth_client, '{"amount": 1}').json()["id"]
    other = UserFactory(password=password)
    token = api_client.post(
        "/api/auth/login",
        {"username": other.username, "password": password},
        format="json",
    ).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get(f"/api/bets/{bet_id}").status_code == 404
    assert api_client.get(f"/api/bets/result/{bet_id}").status_code == 404
    assert api_client.get("/api/bets/999999").status_code == 404


def test_list_query_count_does_not_grow_with_page_size(
    auth_client, player, django_assert_max_num_queries
):
    for _ in range(5):
        post_bet(auth_client, '{"amount": 1}')
    with django_assert_max_num_queries(6):
        small = auth_client.get("/api/bets?limit=1")
    with django_assert_max_num_queries(6):
        large = auth_client.get("/api/bets?limit=100")
    assert len(large.json()["bets"]) == 5
    assert len(small.json()["bets"]) == 1


class TestBalanceAndTransactions:
    def test_balance_reads_the_provider_and_is_in_sync(
        self, auth_client, player, provider
    ):
        body = auth_client.get("/api/balance").json()
        assert body["balance"] == 50
        assert body["available"] == 50
        assert body["external_balance"] == 50
        assert body["in_sync"] is True
        assert body["last_checked_at"].endswith("Z")
        calls = provider.snapshot()["calls"].get("POST /balance", 0)
        auth_client.get("/api/balance")  # within BALANCE_SYNC_TTL: not read again
        assert provider.snapshot()["calls"].get("POST /balance", 0) == calls

    def test_balance_when_the_provider_is_down(self, auth_client, player, settings):
        settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
        body = auth_client.get("/api/balance").json()
        assert body["balance"] == 50
        assert body["in_sync"] is False

    def test_transactions_are_signed_chained_and_filtered(
        self, auth_client, player, provider, stake_mode
    ):
        provider.configure(win_probability=0.0)
        post_bet(auth_client, '{"amount": 3}')
        body = auth_client.get("/api/transactions").json()
        entries = body["transactions"]
        assert entries[0]["type"] == "bet_loss"
        assert entries[0]["balance_after"] == 47
        if stake_mode == "debit_on_loss":
            assert [e["amount"] for e in entries] == [-3, 50]
        else:
            assert [e["type"] for e in entries] == [
                "bet_loss",
                "bet_place",
                "initial_balance",
            ]
            assert [e["amount"] for e in entries] == [0, -3, 50]
        for newer, older in itertools.pairwise(entries):
            assert newer["balance_before"] == older["balance_after"]
        assert entries[-1]["type"] == "initial_balance"
        only = auth_client.get("/api/transactions?type=initial_balance").json()
        assert [e["type"] for e in only["transactions"]] == ["initial_balance"]
        assert auth_client.get("/api/transactions?type=x").status_code == 400
        assert auth_client.get("/api/transactions?limit=0").status_code == 400


def test_transaction_list_query_count_does_not_grow_with_page_size(
    auth_client, player, django_assert_max_num_queries
):
    for _ in range(5):
        post_bet(auth_client, '{"amount": 1}')
    with django_assert_max_num_queries(6):
        small = auth_client.get("/api/transactions?limit=1")
    with django_assert_max_num_queries(6):
        large = auth_client.get("/api/transactions?limit=100")
    assert len(small.json()["transactions"]) == 1
    assert len(large.json()["transactions"]) == large.json()["pagination"]["total"]
