"""One ``POST /api/bets`` through the whole Django stack, in process, with every SQL
statement, transaction end and provider call in the order they happen:
``python -m bench.sql_trace --token JWT`` with the server's environment and the
simulator up. Prints JSON: ``{"events": [...], "status": ..., "body": ...}``.

What the bench counts per bet in the workers (``bench.instrument``), shown one
bet long, so that redundant statements can be read off.
"""

import argparse
import json
import os
import sys
import uuid
from urllib.parse import urlsplit

import django


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--amount", type=int, default=2)
    parser.add_argument("--no-key", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")
    django.setup()

    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.signals import connection_created
    from django.test import Client

    from bench.instrument import fingerprint, patch_transports

    events: list[dict[str, str]] = []

    def wrapper(execute, sql, params, many, context):
        events.append({"event": "sql", "shape": fingerprint(sql), "sql": sql[:300]})
        return execute(sql, params, many, context)

    def on_connection(sender, connection, **kwargs):
        connection.execute_wrappers.append(wrapper)

    connection_created.connect(on_connection, weak=False)
    from django.db import connection

    if connection.connection is not None:
        connection.execute_wrappers.append(wrapper)

    original_commit = BaseDatabaseWrapper._commit
    original_rollback = BaseDatabaseWrapper._rollback
    original_autocommit = BaseDatabaseWrapper.set_autocommit

    def set_autocommit(self, autocommit, *args, **kwargs):
        if not autocommit and self.get_autocommit():
            events.append({"event": "begin", "shape": "BEGIN"})
        return original_autocommit(self, autocommit, *args, **kwargs)

    def commit(self):
        events.append({"event": "commit", "shape": "COMMIT"})
        return original_commit(self)

    def rollback(self):
        events.append({"event": "rollback", "shape": "ROLLBACK"})
        return original_rollback(self)

    def provider_call(method, url, seconds):
        path = urlsplit(url).path
        events.append({"event": "provider", "shape": f"{method} {path}"})

    BaseDatabaseWrapper.set_autocommit = set_autocommit
    BaseDatabaseWrapper._commit = commit
    BaseDatabaseWrapper._rollback = rollback
    patch_transports(provider_call)

    client = Client(SERVER_NAME="127.0.0.1")
    headers = {"Authorization": f"Bearer {args.token}"}
    if not args.no_key:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    response = client.post(
        "/api/bets",
        data=json.dumps({"amount": args.amount}),
        content_type="application/json",
        headers=headers,
    )
    json.dump(
        {
            "status": response.status_code,
            "body": response.content.decode()[:500],
            "events": events,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
