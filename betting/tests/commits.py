"""What PostgreSQL commits, as the server sends it: each COMMIT, and each statement
sent in autocommit mode (a transaction of its own). For tests that run with
``django_db(transaction=True)``, where Django's transactions are the real ones."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections


@contextmanager
def transactions_sent() -> Iterator[list[list[str]]]:
    """The committed transactions of the block, each as its statements."""
    connection = connections[DEFAULT_DB_ALIAS]
    committed: list[list[str]] = []
    current: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if connection.get_autocommit():
            committed.append([sql])
        else:
            current.append(sql)
        return execute(sql, params, many, context)

    real_commit = connection.commit

    def commit() -> None:
        real_commit()
        committed.append(current[:])
        current.clear()

    connection.commit = commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(record):
            yield committed
    finally:
        del connection.commit  # the class's own again
