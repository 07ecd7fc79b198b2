"""The floor view (``bench/floor.py``) and its URLconf, against the simulator and
PostgreSQL."""

import json

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve

from bench import floor

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_bench_urls_add_the_floor_to_the_production_urls_only():
    assert resolve("/bench/floor", urlconf="bench.urls").func is floor.floor_view
    assert resolve("/api/health/live", urlconf="bench.urls").url_name == "health-live"
    with pytest.raises(Resolver404):
        resolve("/bench/floor")  # the production ROOT_URLCONF


def test_the_floor_makes_three_signed_calls_and_one_transaction_of_four_statements(
    simulator, settings
):
    settings.EXTERNAL_API_URL = simulator.base_url
    simulator.configure(win_probability=1)
    simulator.add_account("floor0000", "floor-secret", balance=100)
    with connection.cursor() as cursor:
        for statement in floor.TABLES:
            cursor.execute(statement)
        cursor.execute(
            "INSERT INTO bench_floor_accounts (user_id) VALUES ('floor0000')"
        )
    request = RequestFactory().post(
        floor.PATH,
        data=json.dumps(
            {"user_id": "floor0000", "secret": "floor-secret", "amount": 3}
        ),
        content_type="application/json",
    )
    with CaptureQueriesContext(connection) as queries:
        response = floor.floor_view(request)
    assert response.status_code == 201, response.content
    assert json.loads(response.content) == {
        "bet_id": "1",
        "win": "6",
        "balance": "106",
    }
    calls = simulator.snapshot()["calls"]
    assert {name: calls.get(name) for name in ("POST /bet", "POST /win")} == {
        "POST /bet": 1,
        "POST /win": 1,
    }
    assert calls["POST /balance"] == 1
    statements = [
        query["sql"].split()[0]
        for query in queries.captured_queries
        if "SAVEPOINT" not in query["sql"]  # the test's own transaction
    ]
    assert statements == ["SELECT", "INSERT", "INSERT", "UPDATE"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT balance, bets FROM bench_floor_accounts")
        assert cursor.fetchall() == [(106, 1)]
        cursor.execute("SELECT amount, balance_after FROM bench_floor_entries")
        assert cursor.fetchall() == [(3, 106)]


def test_the_floor_answers_502_when_the_provider_refuses(simulator, settings):
    settings.EXTERNAL_API_URL = simulator.base_url
    request = RequestFactory().post(
        floor.PATH,
        data=json.dumps({"user_id": "nobody", "secret": "x", "amount": 1}),
        content_type="application/json",
    )
    response = floor.floor_view(request)
    assert response.status_code == 502
    assert json.loads(response.content) == {"error": "/bet: HTTP 401"}
