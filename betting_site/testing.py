"""Helpers shared by the test suites of every app (imported by tests only)."""

from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

from django.core.management import CommandError, call_command
from django.db import OperationalError, connection


def run_command(name: str, *args: str) -> tuple[int, str]:
    """A management command's exit status (0, or its CommandError's) and output."""
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def _refuse(execute, sql, params, many, context):
    raise OperationalError(
        "consuming input failed: server closed the connection unexpectedly"
    )


@contextmanager
def database_down() -> Iterator[None]:
    """Every statement of this thread's connection fails inside the block, as it
    does while PostgreSQL is stopped or restarting (the same exception class)."""
    with connection.execute_wrapper(_refuse):
        yield
