"""The PostgreSQL backend's health check: an empty query, no transaction."""

import pytest
from django.db import connection, connections

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the PostgreSQL backend only"
    ),
]


def test_the_backend_is_the_projects():
    assert type(connections["default"]).__module__ == "betting_site.postgresql.base"


def test_a_live_connection_passes_with_an_empty_query(monkeypatch):
    connection.ensure_connection()
    sent: list[str] = []
    cursor_of = connection.connection.cursor

    class Recording:
        def __init__(self) -> None:
            self.cursor = cursor_of()

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.cursor.close()

        def execute(self, query: str) -> None:
            sent.append(query)
            self.cursor.execute(query)

    monkeypatch.setattr(connection.connection, "cursor", Recording)
    assert connection.is_usable() is True
    assert sent == [""]


def test_a_closed_connection_fails_and_is_replaced():
    wrapper = connections.create_connection("default")  # outside the test's transaction
    try:
        wrapper.ensure_connection()
        wrapper.connection.pgconn.finish()  # as a server-side close looks to psycopg
        assert wrapper.is_usable() is False
        wrapper.health_check_enabled, wrapper.health_check_done = True, False
        wrapper.close_if_health_check_failed()
        assert wrapper.connection is None  # closed: the next query reconnects
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        wrapper.close()
