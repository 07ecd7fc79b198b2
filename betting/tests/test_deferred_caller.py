"""POST /api/bets checks its caller in the bet's first statement, not at the door:
an unknown, inactive or revoked caller is still 401 and leaves nothing behind."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import RevokedSession
from accounts.services import _revoke_session
from auditlog.models import ApiLog
from betting.models import Bet, IdempotencyKey, ProviderLease
from wallet.models import UserBalance

pytestmark = pytest.mark.django_db


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("100")


def _bet(client, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(
        "/api/bets", data='{"amount": 3}', content_type="application/json", **headers
    )


def _assert_nothing_left(user) -> None:
    assert not Bet.objects.filter(user=user).exists()
    assert UserBalance.objects.get(user=user).held == 0
    lease = ProviderLease.objects.filter(user=user).first()
    assert lease is None or lease.holder == ""


def _session_of(tokens) -> str:
    return AccessToken(tokens["token"])["sid"]


@pytest.mark.parametrize("key", [None, "deferred-key-0001"])
def test_a_revoked_session_is_refused_and_leaves_nothing(
    auth_client, tokens, player, key
):
    _revoke_session(user_id=player.pk, session_id=_session_of(tokens))
    response = _bet(auth_client, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert "revoked" in response.json()["error"]["message"]
    assert response["WWW-Authenticate"]
    _assert_nothing_left(player)
    assert not IdempotencyKey.objects.exists()
    row = ApiLog.objects.get(endpoint="/api/bets")
    assert row.status_code == 401
    assert row.user_id is None  # not authenticated, whatever the token said


def test_an_inactive_user_is_refused(auth_client, player):
    type(player).objects.filter(pk=player.pk).update(is_active=False)
    response = _bet(auth_client)
    assert response.status_code == 401
    assert "inactive" in response.json()["error"]["message"]
    _assert_nothing_left(player)


def test_a_deleted_user_is_refused(api_client, tokens, user):
    token = AccessToken(tokens["token"])
    token["user_id"] = user.pk + 1000  # a user that does not exist
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = _bet(api_client)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert ApiLog.objects.get(endpoint="/api/bets").user_id is None


def test_a_revoked_session_with_a_busy_lease_is_still_refused(
    auth_client, tokens, player
):
    """Refused by the careful path too (the fast one gave up on the lease)."""
    ProviderLease.objects.update_or_create(
        user=player,
        defaults={
            "holder": "someone",
            "expires_at": timezone.now() + timedelta(minutes=1),
            "operation": "bet_resolve",
        },
    )
    RevokedSession.objects.all().delete()
    _revoke_session(user_id=player.pk, session_id=_session_of(tokens))
    response = _bet(auth_client)
    assert response.status_code == 401
    assert not Bet.objects.filter(user=player).exists()


def test_the_list_still_reads_the_caller_at_the_door(auth_client, tokens, player):
    _revoke_session(user_id=player.pk, session_id=_session_of(tokens))
    assert auth_client.get("/api/bets").status_code == 401


def test_a_valid_caller_places_its_bet(auth_client, player):
    response = _bet(auth_client)
    assert response.status_code == 201
    assert Bet.objects.get(pk=response.json()["id"]).user_id == player.pk
    assert ApiLog.objects.filter(endpoint="/api/bets").get().user_id == player.pk
