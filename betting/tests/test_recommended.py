import pytest

from accounts.tests.factories import ExternalApiAccountFactory

pytestmark = pytest.mark.django_db


def test_recommended_amount_comes_from_the_provider(auth_client, user, provider):
    provider.add_account("8001", "rec-secret")
    ExternalApiAccountFactory(user=user, external_user_id="8001", secret="rec-secret")
    response = auth_client.get("/api/bets/recommended")
    assert response.status_code == 200
    amount = response.json()["recommended_amount"]
    assert isinstance(amount, int)
    assert 1 <= amount <= 5
    # Authenticated once, then GET /bet: the session is reused for the next call.
    auth_client.get("/api/bets/recommended")
    calls = provider.snapshot()["calls"]
    assert calls.get("POST /auth") == 1
    assert calls.get("GET /bet") == 2


def test_recommended_needs_a_linked_account(auth_client):
    response = auth_client.get("/api/bets/recommended")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ACCOUNT_NOT_LINKED"


def test_recommended_when_the_provider_is_down(auth_client, user, settings):
    ExternalApiAccountFactory(user=user)
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
    settings.PROVIDER_BACKOFF_BASE = 0.01
    response = auth_client.get("/api/bets/recommended")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
    assert response["Retry-After"]


def test_recommended_needs_authentication(api_client):
    assert api_client.get("/api/bets/recommended").status_code == 401
