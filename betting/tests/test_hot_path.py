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
# (bench/results/bench-latest.md lists them one by one). debit_on_place books the
# stake in its own step when the provider takes the bet: 2 more. On PostgreSQL the
# result is booked in one statement (the balance, the entry, the bet and the
# lease); SQLite, for development, books it in four.
STATEMENTS_PER_BET = {
    "postgresql": {"debit_on_loss": 9, "debit_on_place": 11},
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


def _block_around(sql: list[str], index: int) -> list[str]:
    """The statements of the atomic block holding ``sql[index]``: in the test's
    own transaction an atomic block is a savepoint."""
    opened = max(i for i in range(index) if sql[i].startswith("SAVEPOINT"))
    closed = next(
        i for i in range(index, len(sql)) if sql[i].startswith("RELEASE SAVEPOINT")
    )
    return sql[opened:closed]


def test_a_bet_commits_three_times_the_lease_going_with_the_first_and_the_last(
    auth_client, player, stake_mode
):
    """Before POST /bet one transaction claims the lease, holds the stake and
    records the bet; after POST /win one holds the result, the provider's balance
    read after it and the lease release."""
    assert _bet(auth_client, "warm-up-key-0003").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert _bet(auth_client, "measured-key-0004").status_code == 201
    sql = [q["sql"] for q in queries.captured_queries]
    claim = next(
        i for i, s in enumerate(sql) if "INSERT INTO" in s and "provider_leases" in s
    )
    opening = _block_around(sql, claim)
    assert any(s.startswith('INSERT INTO "bets"') for s in opening)
    assert any("held = held +" in s for s in opening)
    if connection.vendor == "postgresql":
        # The result, the provider's balance beside it and the lease release:
        # one statement, alone in its transaction.
        booking = next(i for i, s in enumerate(sql) if s.startswith("WITH "))
        closing = _block_around(sql, booking)[1:]  # the SAVEPOINT apart
        assert closing == [sql[booking]]
        statement = sql[booking]
        assert 'INSERT INTO "transactions"' in statement
        assert 'UPDATE "user_balances"' in statement
        assert "external_balance" in statement
        assert 'UPDATE "bets"' in statement
        assert "completed_at" in statement
        assert 'UPDATE "provider_leases"' in statement
    else:
        release = next(
            i for i, s in enumerate(sql) if s.startswith('UPDATE "provider_leases"')
        )
        closing = _block_around(sql, release)
        assert any(s.startswith('INSERT INTO "transactions"') for s in closing)
        assert any("external_balance" in s and "user_balances" in s for s in closing)
        assert any(
            s.startswith('UPDATE "bets"') and "completed_at" in s for s in closing
        )
    assert sum("provider_leases" in s for s in sql) == 2  # claimed, released
    assert ProviderLease.objects.get(user_id=player.pk).holder == ""
