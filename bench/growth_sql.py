"""The SQL under each page of ``make bench-growth``: ``python -m bench.growth_sql
--pages FILE --out FILE`` with the server's environment (``Stack.python``).

Each page is requested in-process through Django's test client (as the staff
user or the heavy player), once to warm up and then once with the queries
captured: how many there were and how long PostgreSQL took for them. On a shared
machine the time a page takes over HTTP moves with everything else running; its
SQL time and query count say what the data's size costs.
"""

import argparse
import json
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from accounts.tokens import issue_token_pair, new_session_id

    with open(args.pages) as handle:
        spec = json.loads(handle.read())
    staff = Client(HTTP_HOST="127.0.0.1", secure=True)
    staff.force_login(User.objects.get(username=spec["admin"]))
    player = User.objects.get(username=spec["player"])
    token = issue_token_pair(user=player, session_id=new_session_id()).access
    api = Client(
        HTTP_HOST="127.0.0.1", secure=True, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    figures = {}
    for name, path in spec["pages"].items():
        client = api if path.startswith("/api/") else staff
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            status = client.get(path).status_code
        times = [float(query["time"]) * 1000 for query in queries.captured_queries]
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        figures[name] = {
            "status": status,
            "queries": len(times),
            "sql_ms": round(sum(times), 1),
            "slowest_ms": round(max(times), 1),
            "slowest": slowest["sql"][:200],
        }
    with open(args.out, "w") as handle:
        json.dump(figures, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
