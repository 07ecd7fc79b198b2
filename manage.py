#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as exc:
        # The database unreachable is no bug: one line naming it, exit 1, no
        # traceback (betting_site.database). Anything else keeps its traceback.
        from betting_site.database import describe_database, first_line, is_unreachable

        if not is_unreachable(exc):
            raise
        sys.stderr.write(
            f"error: the {describe_database()} is unreachable: {first_line(exc)}\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
