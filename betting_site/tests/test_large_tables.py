"""The back office on tables that grow without bound (bets, the ledger, the API
log): searches by exact values on indexed columns, no count of the whole table,
a page count from the planner's estimate, and date links drawn without reading
the table."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from auditlog.models import ApiLog
from betting.models import Bet
from betting.staff import adjustment_post
from betting_site import admin as site_admin
from betting_site.admin import EstimatedCountPaginator
from betting_site.tests.backoffice_data import make_backoffice_data
from wallet.models import Transaction
from wallet.tests.factories import EntryFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 10, 14, 30, tzinfo=UTC)
LARGE = ("betting_bet", "wallet_transaction", "auditlog_apilog")
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the planner's estimate and EXPLAIN"
)


@pytest.fixture
def data(boss):
    data = make_backoffice_data(NOW)
    ApiLog.objects.filter(pk=data.logs[next(iter(data.logs))].pk).update(
        request_id="req-0001", user=data.players["alice"]
    )
    return data


def changelist(client, model: str, query: str = ""):
    response = client.get(reverse(f"admin:{model}_changelist") + query)
    assert response.status_code == 200, (model, query, response.status_code)
    return response


def found(client, model: str, query: str) -> list:
    return list(changelist(client, model, query).context["cl"].result_list)


def test_bets_are_found_by_exact_username_in_any_case(client, data):
    bets = found(client, "betting_bet", "?q=ALICE")
    assert {bet.user.username for bet in bets} == {"alice"}
    assert found(client, "betting_bet", "?q=ali") == []  # no contains-search


def test_bets_are_found_by_provider_user_id_bet_ids_and_several_at_once(client, data):
    alice = data.players["alice"]
    provider_user = alice.external_accounts.get().external_user_id
    assert {
        bet.user for bet in found(client, "betting_bet", f"?q={provider_user}")
    } == {alice}
    assert found(client, "betting_bet", "?q=ext-3") == [data.bets["won_from_yesterday"]]
    pending = data.bets["pending"]
    assert found(client, "betting_bet", f"?q={pending.pk}") == [pending]
    both = found(client, "betting_bet", "?q=ext-3+ext-4")
    assert set(both) == {data.bets["won_from_yesterday"], data.bets["old"]}


def test_ledger_entries_are_found_by_player_staff_and_provider_bet_id(
    client, data, boss
):
    lost = data.bets["lost_today"]
    EntryFactory(bet=lost, type=Transaction.Type.BET_LOSS, amount=Decimal("-2"))
    adjustment_post(
        user=data.players["erin"], amount=Decimal("1"), actor=boss, reason="goodwill"
    )
    bob_entries = found(client, "wallet_transaction", "?q=bob")
    assert bob_entries
    assert {entry.user.username for entry in bob_entries} == {"bob"}
    assert [entry.bet for entry in found(client, "wallet_transaction", "?q=ext-2")] == [
        lost
    ]
    assert [
        entry.bet for entry in found(client, "wallet_transaction", f"?q={lost.pk}")
    ] == [lost]
    by_staff = found(client, "wallet_transaction", "?q=boss")
    assert [(entry.user.username, entry.created_by) for entry in by_staff] == [
        ("erin", boss)
    ]


def test_api_log_rows_are_found_by_request_id_username_and_endpoint(client, data):
    assert [
        row.request_id for row in found(client, "auditlog_apilog", "?q=req-0001")
    ] == ["req-0001"]
    assert [
        row.user.username for row in found(client, "auditlog_apilog", "?q=Alice")
    ] == ["alice"]
    by_endpoint = found(client, "auditlog_apilog", "?q=/balance")
    assert by_endpoint
    assert {row.endpoint for row in by_endpoint} == {"/balance"}


@pytest.mark.parametrize("model", LARGE)
def test_large_lists_never_ask_the_table_for_its_dates(client, data, model):
    """No SELECT DISTINCT of months or days and no MIN/MAX of the date column: the
    date links come without a query, and the month link filters a date range."""
    with CaptureQueriesContext(connection) as queries:
        page = changelist(client, model).content.decode()
        month = changelist(client, model, "?created_at__year=2026&created_at__month=5")
    for query in queries.captured_queries:
        sql = query["sql"].upper()
        assert "DISTINCT" not in sql, sql
        assert "MIN(" not in sql, sql
        assert "MAX(" not in sql, sql
    assert "created_at__year=2026" in page
    assert "created_at__day=10" in month.content.decode()


@postgres_only
@pytest.mark.parametrize("model", LARGE)
def test_a_large_list_is_counted_by_the_planner(client, data, model, monkeypatch):
    """Above EXACT_BELOW rows (lowered here to 2) no COUNT runs: neither of the
    whole table nor of the filtered list."""
    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_BELOW", 2)
    with CaptureQueriesContext(connection) as queries:
        response = changelist(client, model)
    counts = [
        q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()
    ]
    assert counts == []
    assert response.context["cl"].result_count >= 2
    assert response.context["cl"].full_result_count is None


@postgres_only
def test_the_paginator_counts_small_results_exactly_and_caps_the_count(data):
    bets = Bet.objects.order_by("-id")
    assert EstimatedCountPaginator(bets, 100).count == bets.count()
    paginator = EstimatedCountPaginator(bets, 100)
    paginator.EXACT_BELOW = 3
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count >= 3
    assert all("LIMIT 3" in q["sql"] or "EXPLAIN" in q["sql"] for q in queries)


def test_without_postgresql_the_paginator_counts(data, monkeypatch):
    monkeypatch.setattr(site_admin, "planned_rows", lambda queryset: None)
    assert EstimatedCountPaginator(Bet.objects.order_by("-id"), 10).count == (
        Bet.objects.count()
    )


@postgres_only
@pytest.mark.parametrize(
    ("model", "query", "table"),
    [
        ("betting_bet", "?q=alice", "bets"),
        ("betting_bet", "?q=ext-3+5001", "bets"),
        ("wallet_transaction", "?q=bob+ext-2", "transactions"),
        ("auditlog_apilog", "?q=req-0001+alice+/balance", "api_logs"),
    ],
)
def test_searches_read_the_large_table_through_its_indexes(
    client, data, model, query, table
):
    """The search's WHERE on the large table is answered by its indexes alone
    (seq scans off: a test table this small would otherwise be read whole; an
    OR across a join, as Django's search writes it, still needs one)."""
    queryset = changelist(client, model, query).context["cl"].queryset
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Seq Scan on {table}" not in plan, plan
