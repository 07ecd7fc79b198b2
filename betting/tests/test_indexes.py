"""The indexes written with every bet: none twice, and the ones that hold the
invariants in place."""

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_indexes"),
]


def _indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.parametrize(
    ("table", "kept", "dropped"),
    [
        (
            "bets",
            {"bets_user_idx", "bets_one_open_bet_per_user"},
            "bets_user_id_04d855c1",
        ),
        ("transactions", {"transactions_user_idx"}, "transactions_user_id_766cc893"),
        ("api_logs", {"api_logs_user_idx"}, "api_logs_user_id_60d5c658"),
    ],
)
def test_the_foreign_keys_duplicate_user_index_is_gone_and_the_rest_stay(
    table, kept, dropped
):
    indexes = _indexes(table)
    assert kept <= indexes
    assert dropped not in indexes


@pytest.mark.parametrize(
    ("table", "index", "migration"),
    [
        (
            "bets",
            "bets_user_status_idx",
            "betting.migrations.0007_bets_user_status_index",
        ),
        (
            "transactions",
            "transactions_user_type_idx",
            "wallet.migrations.0004_transactions_user_type_index",
        ),
        (
            "api_logs",
            "api_logs_request_id_idx",
            "auditlog.migrations.0004_api_logs_request_id_index",
        ),
    ],
)
def test_indexes_on_large_tables_are_built_concurrently_and_valid(
    table, index, migration
):
    """Built by CREATE INDEX CONCURRENTLY (no lock on writes while it builds),
    which cannot run in a transaction, and left valid."""
    import importlib

    from django.contrib.postgres.operations import AddIndexConcurrently

    module = importlib.import_module(migration)
    assert module.Migration.atomic is False
    assert all(
        isinstance(op, AddIndexConcurrently) for op in module.Migration.operations
    )
    assert index in _indexes(table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid WHERE c.relname = %s",
            [index],
        )
        assert cursor.fetchone() == (True,)
