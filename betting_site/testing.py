"""Helpers shared by the test suites of every app (imported by tests only)."""

from io import StringIO

from django.core.management import CommandError, call_command


def run_command(name: str, *args: str) -> tuple[int, str]:
    """A management command's exit status (0, or its CommandError's) and output."""
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()
