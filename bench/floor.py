"""The floor under a bet: ``POST /bench/floor``, a bench-only Django view.

What any bet must cost, measured in the same run on the same server: the request
goes through gunicorn, the WSGI handler and the production middleware like a bet,
but the view authenticates nobody and uses no serializer, model or ORM. It makes
the same three signed provider calls as a bet (``POST /bet``, ``POST /win``,
``POST /balance``) to the same simulator, through the project's transport
(``provider.transport.default_transport()``: ``requests`` with one keep-alive
session per thread) with the client's headers and ``provider.signing.sign_body``,
then one short transaction of four statements on tables the bench owns (lock the
account row, insert the bet, insert its entry, update the account).

The body names a provider account at the simulator and the stake:
``{"user_id": "...", "secret": "...", "amount": 1..5}``. The bench creates those
accounts at the simulator for the floor alone: the seeded players' provider
balances must stay equal to their ledgers for ``reconcile``, and the floor books
nothing in the ledger. Answers 201 with the provider's bet id, win and balance,
or 502 when the provider did not answer 200.

Never routed in production: ``bench/wsgi.py`` sets ``ROOT_URLCONF`` to
``bench.urls`` (the production URLs plus this view) only when ``BENCH_FLOOR=1``,
which only the bench's stack sets.
"""

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from provider.signing import sign_body
from provider.transport import TransportError, default_transport

PATH = "/bench/floor"
KIND = f"POST {PATH}"

# Created by the bench in its own database (``create_tables``); no model, no
# migration, nothing the ledger checks read.
TABLES = (
    "CREATE TABLE bench_floor_accounts ("
    " user_id text PRIMARY KEY,"
    " balance numeric(14, 2) NOT NULL DEFAULT 0,"
    " bets integer NOT NULL DEFAULT 0,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE bench_floor_bets ("
    " id bigserial PRIMARY KEY,"
    " user_id text NOT NULL,"
    " amount numeric(14, 2) NOT NULL,"
    " provider_bet_id text NOT NULL,"
    " win numeric(14, 2) NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE bench_floor_entries ("
    " id bigserial PRIMARY KEY,"
    " bet_id bigint NOT NULL,"
    " amount numeric(14, 2) NOT NULL,"
    " balance_after numeric(14, 2) NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now())",
)

# The transaction: four statements between BEGIN and COMMIT.
LOCK_ACCOUNT = "SELECT balance FROM bench_floor_accounts WHERE user_id = %s FOR UPDATE"
INSERT_BET = (
    "INSERT INTO bench_floor_bets (user_id, amount, provider_bet_id, win) "
    "VALUES (%s, %s, %s, %s) RETURNING id"
)
INSERT_ENTRY = (
    "INSERT INTO bench_floor_entries (bet_id, amount, balance_after) "
    "VALUES (%s, %s, %s)"
)
UPDATE_ACCOUNT = (
    "UPDATE bench_floor_accounts SET balance = %s, bets = bets + 1, "
    "updated_at = now() WHERE user_id = %s"
)
STATEMENTS = 4


def create_tables(conn: Any, user_ids: list[str]) -> None:
    """The floor's tables and one account row per user (``conn``: a psycopg
    connection to the bench database, in autocommit)."""
    for statement in TABLES:
        conn.execute(statement)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bench_floor_accounts (user_id) VALUES (%s)",
            [(user_id,) for user_id in user_ids],
        )


class ProviderFailed(Exception):
    pass


def _provider_call(path: str, body: dict | None, user_id: str, secret: str) -> Any:
    """One signed ``POST`` to the provider, as ``ProviderClient`` sends it."""
    signed = sign_body(body, secret)
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "user-id": user_id,
        "x-signature": signed.signature,
    }
    try:
        response = default_transport().send(
            "POST",
            settings.EXTERNAL_API_URL.rstrip("/") + path,
            body=signed.body or None,
            headers=headers,
            timeout=(
                float(settings.EXTERNAL_API_CONNECT_TIMEOUT),
                float(settings.EXTERNAL_API_READ_TIMEOUT),
            ),
        )
    except TransportError as exc:
        raise ProviderFailed(f"{path}: {exc.reason}") from exc
    if response.status != 200:
        raise ProviderFailed(f"{path}: HTTP {response.status}")
    return json.loads(response.content, parse_float=Decimal)


@csrf_exempt
@require_POST
def floor_view(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body)
        user_id, secret = str(data["user_id"]), str(data["secret"])
        amount = int(data["amount"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "user_id, secret and amount"}, status=400)
    try:
        bet_id = str(_provider_call("/bet", {"bet": amount}, user_id, secret)["bet_id"])
        win = Decimal(
            _provider_call("/win", {"bet_id": bet_id}, user_id, secret)["win"]
        )
        balance = Decimal(_provider_call("/balance", None, user_id, secret)["balance"])
    except ProviderFailed as exc:
        return JsonResponse({"error": str(exc)}, status=502)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_ACCOUNT, [user_id])
        if cursor.fetchone() is None:
            return JsonResponse({"error": "no floor account"}, status=404)
        cursor.execute(INSERT_BET, [user_id, amount, bet_id, win])
        (row_id,) = cursor.fetchone()
        cursor.execute(INSERT_ENTRY, [row_id, win - amount, balance])
        cursor.execute(UPDATE_ACCOUNT, [balance, user_id])
    return JsonResponse(
        {"bet_id": bet_id, "win": str(win), "balance": str(balance)}, status=201
    )
