"""What one bet commits, with the database's real transactions: the result, the
key's stored answer and the API log row go in one commit, the request's last."""

from decimal import Decimal

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

from auditlog.models import ApiLog
from betting.models import Bet, IdempotencyKey, ProviderLease
from betting.tests.commits import transactions_sent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def player_provider(provider, stake_mode):
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("500")


def _bet(client, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(
        "/api/bets", data='{"amount": 3}', content_type="application/json", **headers
    )


def _names(transaction: list[str]) -> str:
    return " | ".join(transaction)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement opening"
)
def test_a_bet_without_a_key_commits_three_times(auth_client, player, stake_mode):
    """Before POST /bet: one statement checks the caller, claims the lease, holds
    the stake and records the bet. Before POST /win: the provider's bet id. Last:
    the result, the lease released and the API log rows."""
    assert _bet(auth_client).status_code == 201
    with transactions_sent() as committed:
        assert _bet(auth_client).status_code == 201
    assert len(committed) == 3, committed
    opening, placed, last = committed
    assert len(opening) == 1
    for part in ("users", "revoked_sessions", "provider_leases", "held = held +"):
        assert part in opening[0]
    assert 'INSERT INTO "bets"' in opening[0]
    assert any('"external_bet_id" = ' in s for s in placed)
    # The result, the provider's balance beside it and the lease release in one
    # statement; then the API log rows (under a savepoint: a refused log row
    # never loses the result).
    booking, *logged = last
    assert booking.startswith("WITH ")
    for part in ('INSERT INTO "transactions"', "external_balance", "completed_at"):
        assert part in booking
    assert 'UPDATE "provider_leases"' in booking
    assert [s.split(" ")[0] for s in logged] == ["SAVEPOINT", "INSERT", "RELEASE"]
    assert 'INSERT INTO "api_logs"' in logged[1]
    assert ProviderLease.objects.get(user_id=player.pk).holder == ""


@pytest.mark.parametrize("key", [None, "commit-key-0001"])
def test_the_result_the_answer_and_the_api_log_commit_together(
    auth_client, player, stake_mode, key
):
    assert _bet(auth_client).status_code == 201  # warm-up: POST /auth
    with transactions_sent() as committed:
        response = _bet(auth_client, key)
    assert response.status_code == 201
    assert response.json()["status"] == Bet.Status.COMPLETED
    last = _names(committed[-1])
    assert 'INSERT INTO "transactions"' in last
    assert 'INSERT INTO "api_logs"' in last
    assert 'UPDATE "provider_leases"' in last or "provider_leases" in last
    if key:
        assert 'UPDATE "idempotency_keys"' in last
    # Nothing is committed after the last one, and nothing is left open.
    assert not connection.in_atomic_block
    bet = Bet.objects.get(pk=response.json()["id"])
    assert bet.status == Bet.Status.COMPLETED
    assert ProviderLease.objects.get(user_id=player.pk).holder == ""
    assert ApiLog.objects.filter(endpoint="/api/bets", status_code=201).count() == 2
    if key:
        assert IdempotencyKey.objects.get(key=key).status_code == 201


def test_a_last_commit_that_fails_answers_503_and_leaves_the_bet_to_resolve(
    auth_client, player, stake_mode
):
    assert _bet(auth_client).status_code == 201
    wrapper = connections[DEFAULT_DB_ALIAS]
    real_commit = wrapper.commit

    def commit() -> None:
        if any('INSERT INTO "api_logs"' in q["sql"] for q in wrapper.queries[-3:]):
            raise DatabaseError("the server closed the connection")
        real_commit()

    wrapper.commit = commit
    wrapper.force_debug_cursor = True
    try:
        response = _bet(auth_client)
    finally:
        del wrapper.commit
        wrapper.force_debug_cursor = False
    wrapper.close()
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert response["Retry-After"]
    # The bet was committed, in doubt, before POST /win; its result was not.
    bet = Bet.objects.filter(user=player).order_by("-pk").first()
    assert bet.status == Bet.Status.PENDING
    assert bet.result_in_doubt is True
    assert not bet.transactions.filter(type__in=["bet_win", "bet_loss"]).exists()
