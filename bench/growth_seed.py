"""Build the data set of ``make bench-growth`` in SQL: ``python -m bench.growth_seed``
with the server's environment (``Stack.python``), on a migrated, empty database.

What it makes (the sizes of issue 13's "data that grows"; ``--scale`` shrinks them
all for a quick try):

- 10,000 players ``g00001``..``g10000`` with one password (``GROWTH_PASSWORD``),
  each with an active provider link, a balance and an ``initial_balance`` entry,
  and one superuser ``growth-admin`` with the same password;
- 2,000,000 settled bets over the last 90 days, every tenth one the heavy player
  ``g00001``'s (200,000), the others spread over the other players; each has its
  result entry (``bet_win`` or ``bet_loss``, debit_on_loss) in a balance chain
  that ``check_ledger`` accepts;
- 5,000,000 API log rows over the same 90 days, inbound and outbound.

Every row comes from ``generate_series`` in a few ``INSERT ... SELECT``; only the
password hash and one encrypted provider secret are computed in Python, once.
"""

import argparse
import json
import os
import sys
import time

import django

GROWTH_PASSWORD = "growth-password-0123"  # noqa: S105 - bench users on 127.0.0.1 only
HEAVY_USERNAME = "g00001"
ADMIN_USERNAME = "growth-admin"

STEPS = [
    (
        "players",
        """
        INSERT INTO users (password, is_superuser, username, first_name, last_name,
                           email, is_staff, is_active, date_joined, updated_at)
        SELECT %(hash)s, false, 'g' || lpad(n::text, 5, '0'), '', '', '', false, true,
               now() - interval '100 days', now()
        FROM generate_series(1, %(players)s) AS n;
        INSERT INTO users (password, is_superuser, username, first_name, last_name,
                           email, is_staff, is_active, date_joined, updated_at)
        VALUES (%(hash)s, true, %(admin)s, '', '', '', true, true, now(), now());
        INSERT INTO external_api_accounts (external_user_id, secret, is_active,
               created_at, updated_at, link_reason, deactivation_reason, user_id)
        SELECT (700000 + substr(username, 2)::int)::text, %(secret)s, true,
               now() - interval '100 days', now(), 'growth bench', '', id
        FROM users WHERE username ~ '^g[0-9]{5}$';
        CREATE TABLE growth_players AS
        SELECT substr(u.username, 2)::int AS n, u.id AS user_id, a.id AS account_id
        FROM users u JOIN external_api_accounts a ON a.user_id = u.id;
        CREATE UNIQUE INDEX ON growth_players (n);
        """,
    ),
    (
        "bets",
        """
        INSERT INTO bets (external_bet_id, amount, status, win_amount, stake_mode,
                          status_reason, needs_attention, result_in_doubt,
                          created_at, updated_at, completed_at, account_id, user_id)
        SELECT 'pb-' || g, s.amount, 'completed',
               CASE WHEN (g * 7919) %% 13 < 6 THEN s.amount ELSE 0 END,
               'debit_on_loss', '', false, false, s.at, s.at + interval '1 second',
               s.at + interval '1 second', p.account_id, p.user_id
        FROM generate_series(1::bigint, %(bets)s) AS g
        CROSS JOIN LATERAL (
            SELECT 1 + (g / 10) %% 5 AS amount,
                   now() - interval '90 days'
                       + (g::float8 / %(bets)s) * interval '90 days' AS at,
                   CASE WHEN g %% 10 = 0 THEN 1
                        ELSE 2 + g %% (%(players)s - 1) END AS n
        ) AS s
        JOIN growth_players p ON p.n = s.n
        ORDER BY g;
        """,
    ),
    (
        "ledger",
        """
        INSERT INTO transactions (type, amount, balance_before, balance_after,
                                  description, evidence, created_at, user_id)
        SELECT 'initial_balance', 100000, 0, 100000, 'Initial balance', '{}',
               now() - interval '100 days', user_id
        FROM growth_players ORDER BY user_id;
        INSERT INTO transactions (type, amount, balance_before, balance_after,
                                  description, evidence, created_at, bet_id, user_id)
        SELECT type, amount, after - amount, after, description, '{}', at, bet_id,
               user_id
        FROM (
            SELECT CASE WHEN b.win_amount > 0 THEN 'bet_win' ELSE 'bet_loss' END
                       AS type,
                   CASE WHEN b.win_amount > 0 THEN b.win_amount ELSE -b.amount END
                       AS amount,
                   100000 + SUM(CASE WHEN b.win_amount > 0 THEN b.win_amount
                                     ELSE -b.amount END)
                       OVER (PARTITION BY b.user_id ORDER BY b.id) AS after,
                   CASE WHEN b.win_amount > 0 THEN 'Win of bet ' || b.id
                        ELSE 'Loss of bet ' || b.id END AS description,
                   b.completed_at AS at, b.id AS bet_id, b.user_id
            FROM bets b
        ) AS entries
        ORDER BY bet_id;
        INSERT INTO user_balances (balance, held, updated_at, user_id)
        SELECT DISTINCT ON (user_id) balance_after, 0, now(), user_id
        FROM transactions ORDER BY user_id, id DESC;
        """,
    ),
    (
        "api_logs",
        """
        INSERT INTO api_logs (direction, endpoint, method, request_body,
                              response_body, status_code, duration_ms, ip_address,
                              request_id, attempt, outcome, error, created_at,
                              user_id)
        SELECT CASE WHEN i %% 2 = 0 THEN 'inbound' ELSE 'outbound' END,
               (ARRAY['/api/bets', '/api/balance', '/api/transactions', '/bet',
                      '/win', '/balance'])[1 + i %% 6],
               CASE WHEN i %% 3 = 1 THEN 'GET' ELSE 'POST' END,
               '{"amount": 3}', '{"ok": true}',
               CASE WHEN i %% 50 = 0 THEN 400 ELSE 200 END, 5 + i %% 40,
               CASE WHEN i %% 2 = 0 THEN '127.0.0.1'::inet END,
               md5(i::text), 1,
               CASE WHEN i %% 2 = 1 THEN 'ok' ELSE '' END, '',
               now() - interval '90 days'
                   + (i::float8 / %(logs)s) * interval '90 days',
               p.user_id
        FROM generate_series(1::bigint, %(logs)s) AS i
        JOIN growth_players p
          ON p.n = CASE WHEN i %% 10 = 0 THEN 1 ELSE 2 + i %% (%(players)s - 1) END
        ORDER BY i;
        """,
    ),
    ("analyze", "VACUUM ANALYZE;"),
]
# --only api_logs_again: the API log anew, after a prune emptied it.
AGAIN = {"api_logs_again": ["TRUNCATE api_logs;", "api_logs", "analyze"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", action="append", choices=sorted(AGAIN))
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")
    django.setup()

    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import ExternalApiAccount

    params = {
        "players": max(10, int(10_000 * args.scale)),
        "bets": max(100, int(2_000_000 * args.scale)),
        "logs": max(100, int(5_000_000 * args.scale)),
        "hash": make_password(GROWTH_PASSWORD),
        "secret": ExternalApiAccount._meta.get_field("secret").get_prep_value(
            "growth-bench-provider-secret"
        ),
        "admin": ADMIN_USERNAME,
    }
    timings = {}
    connection.ensure_connection()
    connection.connection.autocommit = True  # VACUUM; each step commits
    steps = dict(STEPS)
    chosen = list(STEPS)
    if args.only:
        chosen = [
            (name, steps.get(name, name)) for only in args.only for name in AGAIN[only]
        ]
    for name, sql in chosen:
        started = time.monotonic()
        with connection.cursor() as cursor:
            for statement in sql.split(";"):
                if statement.strip():
                    cursor.execute(statement, params if "%(" in statement else None)
        timings[name] = round(time.monotonic() - started, 1)
        print(f"  {name}: {timings[name]} s", file=sys.stderr, flush=True)
    sizes = {}
    with connection.cursor() as cursor:
        for table in ("users", "bets", "transactions", "api_logs"):
            cursor.execute(
                "SELECT reltuples::bigint, pg_total_relation_size(oid) "
                "FROM pg_class WHERE relname = %s",
                [table],
            )
            rows, size = cursor.fetchone()
            sizes[table] = {"rows": rows, "mb": round(size / 2**20)}
    with open(args.out, "w") as handle:
        json.dump(
            {
                "params": {k: params[k] for k in ("players", "bets", "logs")},
                "build_s": timings,
                "tables": sizes,
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
