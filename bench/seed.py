"""Seed bench players: ``python -m bench.seed --players N --out FILE`` with the
server's environment (``Stack.python``).

For each player: a provider account at the simulator (its control endpoint), the
local user, its provider link (``accounts.services.account_link``), onboarding at
the provider (``betting.onboarding.account_onboard``: ``POST /auth`` and the initial
balance, recorded in the ledger) and a login session (``issue_token_pair``), as
``create_player`` and ``POST /api/auth/login`` would do. Every user gets one
password hash computed once, so seeding hundreds of players does not spend
minutes in PBKDF2; logging in with ``BENCH_PASSWORD`` works for each of them.
"""

import argparse
import json
import os
import secrets
import sys
import time
from decimal import Decimal

import django

BENCH_PASSWORD = "bench-password-0123"  # noqa: S105 - bench users on 127.0.0.1 only


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, required=True)
    parser.add_argument("--balance", default="100000")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--first-external-id", type=int, default=500000)
    parser.add_argument("--control-url", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")
    django.setup()

    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from accounts.services import account_link
    from accounts.tokens import issue_token_pair, new_session_id
    from bench.stack import http_json
    from betting.onboarding import account_onboard

    started = time.monotonic()
    password_hash = make_password(BENCH_PASSWORD)
    players = []
    for index in range(args.players):
        username = f"{args.prefix}{index:04d}"
        external_user_id = str(args.first_external_id + index)
        secret = secrets.token_hex(24)
        http_json(
            "POST",
            f"{args.control_url}/accounts",
            {"user_id": external_user_id, "secret": secret, "username": username},
        )
        user = User.objects.create(username=username, password=password_hash)
        account, _ = account_link(
            user=user,
            external_user_id=external_user_id,
            secret=secret,
            actor=None,
            reason="bench seed",
        )
        account_onboard(account=account, initial_balance=Decimal(args.balance))
        tokens = issue_token_pair(user=user, session_id=new_session_id())
        players.append(
            {
                "username": username,
                "user_id": user.pk,
                "external_user_id": external_user_id,
                "token": tokens.access,
            }
        )
    with open(args.out, "w") as handle:
        json.dump(players, handle)
    elapsed = time.monotonic() - started
    print(f"Seeded {len(players)} players in {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
