"""What one bet costs: statements per bet stay within the budget the bench
measures (bench/), and the lease is written only when it needs to be."""

import re
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from auditlog.models import ApiLog
from betting.lease import LeaseLost, lease_try_claim
from betting.models import Bet, ProviderLease

pytestmark = pytest.mark.django_db

# Statements of one POST /api/bets with an Idempotency-Key, the audit log apart
# (bench/results/bench-latest.md lists them one by one): the caller read for the
# key, the key's claim, the opening, the provider's bet id, the result, the key's
# answer. debit_on_place books the stake with the provider's id: 2 more. SQLite,
# for development, opens the bet (four) and books the result (four) with the ORM
# where PostgreSQL sends one statement each. What each commit holds:
# test_commits.py.
STATEMENTS_PER_BET = {
    "postgresql": {"debit_on_loss": 6, "debit_on_place": 8},
    "sqlite": {"debit_on_loss": 12, "debit_on_place": 14},
}
_NOT_COUNTED = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)")


@pytest.fixture
def player_provider(provider, stake_mode):
    """Every test with a player runs in both stake modes."""
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("500")


def _bet(client, key: str):
    return client.post(
        "/api/bets",
        data='{"amount": 3}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_bet_stays_within_its_statement_budget(auth_client, player, stake_mode):
    assert _bet(auth_client, "warm-up-key-0001").status_code == 201  # POST /auth
    logged_before = ApiLog.objects.order_by("pk").last().pk
    with CaptureQueriesContext(connection) as queries:
        response = _bet(auth_client, "measured-key-0002")
    assert response.status_code == 201
    assert response.json()["status"] == Bet.Status.COMPLETED
    # The test's own transaction turns each atomic block into a savepoint; in
    # production those are BEGIN/COMMIT, not statements.
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not _NOT_COUNTED.match(q["sql"]) and "api_logs" not in q["sql"]
    ]
    budget = STATEMENTS_PER_BET[connection.vendor][stake_mode]
    assert len(statements) <= budget, "\n".join(statements)
    audit = [
        q for q in queries.captured_queries if 'INSERT INTO "api_logs"' in q["sql"]
    ]
    # One INSERT at the end of the request (auditlog.services.api_log_batch)
    # carries POST /api/bets and its three provider calls.
    assert len(audit) == 1
    rows = ApiLog.objects.filter(pk__gt=logged_before).order_by("pk")
    assert [(row.direction, row.endpoint) for row in rows] == [
        (ApiLog.Direction.OUTBOUND, "/bet"),
        (ApiLog.Direction.OUTBOUND, "/win"),
        (ApiLog.Direction.OUTBOUND, "/balance"),
        (ApiLog.Direction.INBOUND, "/api/bets"),
    ]


def test_a_young_lease_is_not_written_again(user, settings):
    settings.PROVIDER_LEASE_TTL = 60
    lease = lease_try_claim(user_id=user.pk, operation="bet_place")
    with CaptureQueriesContext(connection) as queries:
        lease.renew()
    assert queries.captured_queries == []


def test_an_old_lease_is_renewed_and_a_taken_one_is_lost(user, settings):
    settings.PROVIDER_LEASE_TTL = 60
    lease = lease_try_claim(user_id=user.pk, operation="bet_place")
    lease._renewed_at = time.monotonic() - 11  # more than a sixth of the TTL ago
    before = ProviderLease.objects.get(user_id=user.pk).expires_at
    lease.renew()
    assert ProviderLease.objects.get(user_id=user.pk).expires_at > before

    ProviderLease.objects.filter(user_id=user.pk).update(holder="someone-else")
    lease._renewed_at = time.monotonic() - 11
    with pytest.raises(LeaseLost):
        lease.renew()
    with pytest.raises(LeaseLost):
        lease.renew(force=True)


def test_a_held_lease_is_not_claimed_and_an_expired_one_is(user, settings):
    settings.PROVIDER_LEASE_TTL = 60
    first = lease_try_claim(user_id=user.pk, operation="bet_place")
    assert first is not None
    assert lease_try_claim(user_id=user.pk, operation="bet_resolve") is None
    ProviderLease.objects.filter(user_id=user.pk).update(expires_at=None)
    second = lease_try_claim(user_id=user.pk, operation="bet_resolve")
    assert second is not None
    assert second.holder != first.holder
    row = ProviderLease.objects.get(user_id=user.pk)
    assert (row.holder, row.operation) == (second.holder, "bet_resolve")
