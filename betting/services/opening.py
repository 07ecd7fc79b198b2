"""The bet's opening on PostgreSQL: one statement before ``POST /bet``.

Placement opens a bet in one transaction: the caller checked, the provider account
read, the lease claimed, the stake held and the bet recorded. On PostgreSQL that
transaction is one statement (a ``WITH`` clause of four parts and the insert),
one round trip and one commit, where it was a read of the caller at the door
(its own commit), then four statements. The parts:

- ``caller``: the user is active and the token's session is not revoked
  (``accounts.callers``; a user whose row was already read has no session to
  check and passes on being active);
- ``account``: the user's active provider account;
- ``lease``: the lease claimed if it is free or expired (``betting.lease``);
- ``hold``: the stake held if the available balance covers it
  (``wallet.ledger.hold_sql``, the wallet's own SQL);
- the insert of the bet, only if all four answered.

Anything short of a bet (a busy lease, a balance that falls short, an open bet in
the way, no account) rolls the whole transaction back, and the caller takes the
careful path that waits, resolves and explains, as before. A caller refused is
401 ``UNAUTHORIZED``, as at the door. SQLite keeps the ORM path
(``placement._bet_open_with_lease``), with the same results.
"""

import functools
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.callers import caller_verified, session_to_verify
from accounts.models import ExternalApiAccount, RevokedSession, User
from betting.lease import Lease, lease_claim_statement
from betting.models import Bet
from betting_site.sql import quoted_column
from wallet.ledger import hold_sql


class _NoBet(Exception):
    """The statement recorded no bet: roll it back."""

    def __init__(self, *, caller_ok: bool) -> None:
        self.caller_ok = caller_ok


def bet_open_in_one_statement(
    *, user: User, amount: Decimal, on_open: Any = None
) -> tuple[Bet, ExternalApiAccount, Lease] | None:
    """The bet recorded with its stake held and its lease claimed, in one
    statement; None when anything fell short (all of it rolled back)."""
    bet = Bet(
        user_id=user.pk,
        amount=amount,
        status=Bet.Status.PENDING,
        stake_mode=settings.PROVIDER_STAKE_MODE,
    )
    if on_open is not None:
        on_open(bet)  # may set fields: the idempotency key links itself here
    sql, params, lease, account_fields = _statement(user=user, bet=bet, amount=amount)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            if row is None or row[0] is None:
                raise _NoBet(caller_ok=bool(row and row[1]))
    except IntegrityError:  # the one-open-bet index: resolve that bet first
        return None
    except _NoBet as refused:
        if not refused.caller_ok:
            caller_verified(user)  # 401, with the reason, unless a race let it in
        return None
    bet.pk = row[0]
    bet._state.adding = False
    bet._state.db = connection.alias
    account = _account(account_fields, row[2:])
    bet.account = account
    return bet, account, lease


def _statement(
    *, user: User, bet: Bet, amount: Decimal
) -> tuple[str, list[Any], Lease, list[Any]]:
    sql, account_fields, bet_fields = _sql()
    _, claim_params, lease = lease_claim_statement(
        user_id=user.pk, operation="bet_place"
    )
    params = [
        user.pk,
        session_to_verify(user),
        user.pk,
        *claim_params,
        amount,
        timezone.now(),
        user.pk,
        amount,
        *(
            field.get_db_prep_save(field.pre_save(bet, True), connection)
            for field in bet_fields
        ),
    ]
    return sql, params, lease, account_fields


_LEASE_CLAIMED = "EXISTS (SELECT 1 FROM lease)"


@functools.cache
def _sql() -> tuple[str, list[Any], list[Any]]:
    """The statement's text, the account's fields it answers and the bet's fields
    it inserts: the same for every bet, so built once per process (building it
    with the ORM each time cost about 8% of the server's CPU per bet)."""
    quote = connection.ops.quote_name
    users = quote(User._meta.db_table)
    revoked = quote(RevokedSession._meta.db_table)
    caller = (
        f"SELECT u.id FROM {users} u WHERE u.id = %s AND u.is_active "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {revoked} r "
        "WHERE r.sid = %s AND r.user_id = u.id)"
    )
    account_fields = list(ExternalApiAccount._meta.concrete_fields)
    account_columns = ", ".join(quote(str(f.column)) for f in account_fields)
    account = (
        f"SELECT {account_columns} FROM "  # noqa: S608
        f"{quote(ExternalApiAccount._meta.db_table)} WHERE "
        f"{quoted_column(ExternalApiAccount, 'user')} = %s AND "
        f"{quoted_column(ExternalApiAccount, 'is_active')} "
        f"ORDER BY {quoted_column(ExternalApiAccount, 'pk')} LIMIT 1"
    )
    claim_sql = lease_claim_statement(user_id=0, operation="")[0]
    bet_fields = [
        f
        for f in Bet._meta.concrete_fields
        if not f.primary_key and f.attname != "account_id"
    ]
    insert_sql = _bet_insert(bet_fields)
    answered = ", ".join(f"a.{quote(str(f.column))}" for f in account_fields)
    sql = (
        f"WITH caller AS ({caller}), account AS ({account}), "  # noqa: S608
        f"lease AS ({claim_sql}), "
        # Only with the lease claimed: a busy lease must not wait for the balance
        # row, which its holder may have locked while it waits for the lease row
        # this statement's claim has locked (a deadlock, seen in the concurrency
        # test before this condition).
        f"hold AS ({hold_sql(returning=True, only_if=_LEASE_CLAIMED)}), "
        f"bet AS ({insert_sql}) "
        "SELECT (SELECT id FROM bet), EXISTS (SELECT 1 FROM caller), "
        f"{answered} FROM (SELECT 1) AS one LEFT JOIN account a ON TRUE"
    )
    return sql, account_fields, bet_fields


def _bet_insert(fields: list[Any]) -> str:
    """The bet's INSERT of ``fields`` (their values prepared per bet by Django's
    own fields: defaults, ``auto_now_add``), the account's id taken from the
    ``account`` part, and only if the other parts answered."""
    quote = connection.ops.quote_name
    columns = [quote(str(f.column)) for f in fields]
    account = quoted_column(Bet, "account")
    return (
        f"INSERT INTO {quote(Bet._meta.db_table)} "  # noqa: S608
        f"({', '.join(columns)}, {account}) "
        f"SELECT {', '.join('%s' for _ in fields)}, a.id FROM account a WHERE "
        "EXISTS (SELECT 1 FROM caller) AND EXISTS (SELECT 1 FROM lease) "
        "AND EXISTS (SELECT 1 FROM hold) RETURNING id"
    )


def _account(fields: list[Any], values: tuple[Any, ...]) -> ExternalApiAccount:
    """The account from its columns, each converted as the ORM would (the secret
    is decrypted by its field)."""
    converted = [
        field.from_db_value(value, None, connection)
        if hasattr(field, "from_db_value")
        else value
        for field, value in zip(fields, values, strict=True)
    ]
    return ExternalApiAccount.from_db(
        connection.alias, [field.attname for field in fields], converted
    )
