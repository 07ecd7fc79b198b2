"""The PostgreSQL backend's health check: the socket looked at, nothing sent."""

import time

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


def test_a_live_connection_passes_without_a_round_trip(monkeypatch):
    connection.ensure_connection()
    calls: list[str] = []
    monkeypatch.setattr(
        connection.connection, "execute", lambda *a, **k: calls.append("execute")
    )
    monkeypatch.setattr(
        connection.connection, "cursor", lambda *a, **k: calls.append("cursor")
    )
    assert connection.is_usable() is True
    assert calls == []


def _wrapper():
    wrapper = connections.create_connection("default")  # outside the test's transaction
    wrapper.ensure_connection()
    return wrapper


def _replaced(wrapper) -> bool:
    wrapper.health_check_enabled, wrapper.health_check_done = True, False
    wrapper.close_if_health_check_failed()
    closed = wrapper.connection is None
    with wrapper.cursor() as cursor:  # the next query reconnects
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    return closed


def test_a_connection_the_server_ended_fails_and_is_replaced():
    wrapper = _wrapper()
    try:
        pid = wrapper.connection.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(50):  # the goodbye reaches the socket
            if not wrapper.is_usable():
                break
            time.sleep(0.02)
        assert wrapper.is_usable() is False
        assert _replaced(wrapper) is True
    finally:
        wrapper.close()


def test_a_connection_closed_here_fails():
    wrapper = _wrapper()
    try:
        wrapper.connection.pgconn.finish()
        assert wrapper.is_usable() is False
        assert _replaced(wrapper) is True
    finally:
        wrapper.close()


def test_a_healthy_idle_connection_is_kept():
    wrapper = _wrapper()
    try:
        assert wrapper.is_usable() is True
        assert _replaced(wrapper) is False
    finally:
        wrapper.close()
