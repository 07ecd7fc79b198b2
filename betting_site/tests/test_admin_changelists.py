"""Back-office lists: every filter, search and date drill-down staff use answers,
and the custom filters select the right rows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from betting.lease import lease_try_claim
from betting.staff import adjustment_post
from betting_site.tests.backoffice_data import make_backoffice_data

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 10, 14, 30, tzinfo=UTC)


@pytest.fixture
def data(boss):
    data = make_backoffice_data(NOW)
    adjustment_post(
        user=data.players["erin"], amount=Decimal("1"), actor=boss, reason="goodwill"
    )
    lease_try_claim(user_id=data.players["alice"].pk, operation="bet_place")
    return data


def changelist(client, model: str, query: str = ""):
    response = client.get(reverse(f"admin:{model}_changelist") + query)
    assert response.status_code == 200, (model, query, response.status_code)
    return response


def rows(response) -> list:
    return list(response.context["cl"].result_list)


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("betting_bet", "?q=alice"),
        ("betting_bet", "?q=ext-1"),
        ("betting_bet", "?status__exact=pending&needs_attention__exact=0"),
        ("betting_bet", "?created_at__gte=2026-05-10T00:00:00%2B00:00"),
        ("betting_bet", "?created_at__year=2026&created_at__month=5"),
        ("betting_idempotencykey", "?q=user:1&status_code__exact=201"),
        ("betting_providerlease", "?q=alice&operation=bet_place"),
        ("wallet_transaction", "?type__exact=adjustment&manual=yes&q=erin"),
        ("wallet_transaction", "?q=ext-2&manual=no"),
        ("wallet_userbalance", "?provider=differs&q=alice"),
        ("wallet_userbalance", "?provider=open_bets"),
        ("wallet_userbalance", "?provider=matches"),
        ("wallet_userbalance", "?provider=unchecked"),
        ("auditlog_apilog", "?direction__exact=outbound&failed=yes"),
        ("auditlog_apilog", "?failed=no&endpoint=/balance&q=/balance"),
        ("auditlog_apilog", "?outcome=unknown&method=POST&status=none"),
        ("auditlog_apilog", "?status=4xx&status_code__exact=400"),
        ("auditlog_apilog", "?created_at__year=2026&created_at__month=5"),
        ("accounts_user", "?linked=yes&q=alice"),
        ("accounts_user", "?linked=no&is_staff__exact=1"),
        ("accounts_externalapiaccount", "?is_active__exact=1&q=alice"),
        ("accounts_revokedsession", "?q=alice"),
    ],
)
def test_filters_and_search_answer(client, data, model, query):
    changelist(client, model, query)


def test_bets_are_found_by_username_external_id_and_status(client, data):
    assert rows(changelist(client, "betting_bet", "?q=ext-3")) == [
        data.bets["won_from_yesterday"]
    ]
    assert {
        bet.user.username for bet in rows(changelist(client, "betting_bet", "?q=bob"))
    } == {"bob"}
    pending = rows(changelist(client, "betting_bet", "?status__exact=pending"))
    assert pending == [data.bets["pending"]]


def test_balances_that_differ_are_those_the_dashboard_counts(client, data):
    differs = rows(changelist(client, "wallet_userbalance", "?provider=differs"))
    assert [wallet.user.username for wallet in differs] == ["alice"]
    open_bets = rows(changelist(client, "wallet_userbalance", "?provider=open_bets"))
    assert {wallet.user.username for wallet in open_bets} == {"carol", "dave"}
    unchecked = rows(changelist(client, "wallet_userbalance", "?provider=unchecked"))
    assert {wallet.user.username for wallet in unchecked} == {"dave", "erin"}


def test_failed_calls_are_provider_failures_and_inbound_errors(client, data):
    failed = rows(changelist(client, "auditlog_apilog", "?failed=yes"))
    logs = data.logs
    assert set(failed) == {logs["unknown"], logs["refused"], logs["inbound"]}
    succeeded = rows(changelist(client, "auditlog_apilog", "?failed=no"))
    assert logs["ok_1"] in succeeded
    assert logs["unknown"] not in succeeded


def test_api_logs_filter_by_outcome_status_class_and_provider_endpoint(client, data):
    logs = data.logs
    found = rows(changelist(client, "auditlog_apilog", "?status=4xx"))
    assert found == [logs["refused"]]
    found = rows(changelist(client, "auditlog_apilog", "?status=none&outcome=unknown"))
    assert found == [logs["unknown"]]
    found = rows(changelist(client, "auditlog_apilog", "?endpoint=/bet&method=POST"))
    assert found == [logs["refused"]]
    page = changelist(client, "auditlog_apilog").content.decode()
    for path in ("/auth", "/balance", "/bet", "/check-balance", "/win"):
        assert f"?endpoint={path.replace('/', '%2F')}" in page


def test_api_log_filters_never_read_the_log_for_their_choices(
    client, data, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12) as queries:
        changelist(client, "auditlog_apilog")
    # (the date drill-down's own DISTINCT over days is Django's date_hierarchy)
    distinct = [
        query["sql"]
        for query in queries.captured_queries
        if "DISTINCT" in query["sql"] and "datetimefield" not in query["sql"]
    ]
    assert distinct == []


def test_manual_ledger_entries_are_those_staff_made(client, data, boss):
    manual = rows(changelist(client, "wallet_transaction", "?manual=yes"))
    assert [(entry.type, entry.created_by) for entry in manual] == [
        ("adjustment", boss)
    ]


def test_users_are_found_by_provider_link(client, data, boss):
    linked = rows(changelist(client, "accounts_user", "?linked=yes"))
    assert "boss" not in {user.username for user in linked}
    unlinked = rows(changelist(client, "accounts_user", "?linked=no"))
    assert {user.username for user in unlinked} == {"boss"}


def test_the_lease_list_shows_who_is_busy(client, data):
    response = changelist(client, "betting_providerlease")
    leases = {lease.user.username: lease for lease in rows(response)}
    assert leases["alice"].holder
    assert leases["alice"].expires_at > timezone.now() - timedelta(seconds=1)
    assert not leases["erin"].holder  # released after the adjustment
    html = response.content.decode()
    assert html.count('alt="True"') == 1
    assert html.count('alt="False"') == len(leases) - 1


def test_changelists_take_a_fixed_number_of_queries(
    client, data, django_assert_max_num_queries
):
    for model in (
        "betting_bet",
        "betting_idempotencykey",
        "wallet_transaction",
        "wallet_userbalance",
        "auditlog_apilog",
        "accounts_externalapiaccount",
    ):
        with django_assert_max_num_queries(15):
            changelist(client, model)
