"""``Idempotency-Key`` for POST endpoints that move money.

The key is claimed by inserting its row: the unique constraint on (caller, key)
decides the race across workers and machines. The same key with the same body
(compared as canonical JSON: ``3`` and ``3.0`` are one body) replays the first
response; another body is 422; a key whose request is still running is 409. Only
responses after the server acted are stored (201, and 502 with a failed bet);
anything else frees the key for a retry. A key whose first request died with its
process answers the bet's current state once its lease expired.
"""

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from betting import keeper
from betting.lease import lease_is_held
from betting.models import Bet, IdempotencyKey
from betting.wire import bet_as_dict
from betting_site.api.exceptions import exception_handler
from betting_site.api.renderers import json_dumps
from betting_site.database import UNREACHABLE, is_unreachable
from betting_site.errors import ApplicationError, ValidationFailed
from betting_site.last_commit import if_lost

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEY_LIFETIME = timedelta(hours=24)
# How long a running request holds its key before another may look at its bet.
KEY_LEASE = timedelta(seconds=120)
_VALID_KEY = re.compile(r"^[\x21-\x7e]{8,255}$")


class KeyInUse(ApplicationError):
    code = "IDEMPOTENCY_KEY_IN_USE"
    http_status = 409
    message = "A request with this Idempotency-Key is still running"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class KeyMismatch(ApplicationError):
    code = "IDEMPOTENCY_KEY_MISMATCH"
    http_status = 422
    message = "This Idempotency-Key was used with another request body"


def caller_of(request: Request) -> str:
    if request.auth == "admin-token":
        return "admin-token"
    return f"user:{request.user.pk}"


def canonical_hash(*, endpoint: str, body: Any) -> str:
    """SHA-256 of the body with sorted keys and numbers by value, so that ``3`` and
    ``3.0`` hash alike while ``"3"`` does not."""

    def normal(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): normal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normal(v) for v in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | Decimal):
            number = Decimal(value).normalize()
            return {"#number": format(number, "f")}
        return value

    text = json.dumps(
        {"endpoint": endpoint, "body": normal(body)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotent(
    request: Request,
    *,
    endpoint: str,
    run: Callable[[Callable[[Bet], None] | None], HttpResponse],
    stored_statuses: tuple[int, ...] = (201,),
    claim_with: Callable[[], None] | None = None,
) -> HttpResponse:
    """Run ``run`` at most once per key. ``run`` gets a callback to call with the bet
    just before it is inserted (it sets the bet's ``idempotency_key``, so the link
    costs no statement of its own), or None without a key. ``stored_statuses``:
    the successes that mean the server acted. ``claim_with`` runs first in the
    key's claim transaction (the caller's check: one commit for both)."""
    key = request.headers.get(HEADER)
    if key is None:
        return run(None)
    if not _VALID_KEY.match(key):
        raise ValidationFailed(
            details={HEADER: ["8 to 255 visible ASCII characters are required"]}
        )
    caller = caller_of(request)
    request_hash = canonical_hash(endpoint=endpoint, body=request.data)
    with transaction.atomic():
        if claim_with is not None:
            claim_with()
        row = _claim(
            caller=caller,
            key=key,
            endpoint=endpoint,
            request_hash=request_hash,
            user_id=request.user.pk,
        )
    if not row.claimed_now:
        return _answer_existing(row.record, request, bet=row.bet)
    record = row.record
    placed: list[Bet] = []

    def link_bet(bet: Bet) -> None:
        bet.idempotency_key_id = record.pk
        placed[:] = [bet]

    database_gone = False
    try:
        response = _rendered(run(link_bet))
        acted = response.status_code in stored_statuses
    except Exception as exc:
        response = exception_handler(exc, {"request": request})
        # A 502 that carries the bet it recorded: the provider refused, we acted.
        acted = (
            isinstance(exc, ApplicationError)
            and exc.http_status == 502
            and isinstance(exc.details, dict)
            and "bet" in exc.details
        )
        database_gone = is_unreachable(exc)
    bet_id = placed[0].pk if placed else None
    settle_later = functools.partial(_finish_unanswered, record_pk=record.pk)
    try:
        _finish(
            record=record,
            response=response,
            acted=acted,
            bet_id=bet_id,
            keep_for_any_bet=database_gone,
        )
    except UNREACHABLE:
        # The database went away (its 503 is the response): the key is settled
        # once it answers again, by the process's keeper. Until then its lock
        # (KEY_LEASE) keeps a retry from placing a second bet.
        keeper.owe(f"settle the Idempotency-Key {record.pk}", settle_later)
    else:
        # Stored in the request's last transaction: if that commit fails, the
        # answer is lost, and the key is settled the same way.
        if_lost(
            lambda: keeper.owe(f"settle the Idempotency-Key {record.pk}", settle_later)
        )
    return response


def _rendered(response: HttpResponse) -> HttpResponse:
    """A DRF ``Response`` is rendered after the view returns; the stored body is
    needed now, so render it here, the same way the JSON renderer would."""
    if isinstance(response, Response):
        return HttpResponse(
            json_dumps(response.data),
            status=response.status_code,
            content_type="application/json",
        )
    return response


class _Claim:
    def __init__(
        self, record: IdempotencyKey, claimed_now: bool, bet: Bet | None = None
    ) -> None:
        self.record = record
        self.claimed_now = claimed_now
        self.bet = bet  # the bet of a key whose first request died


def _claim(
    *, caller: str, key: str, endpoint: str, request_hash: str, user_id: int | None
) -> _Claim:
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    caller=caller,
                    user_id=user_id,
                    key=key,
                    endpoint=endpoint,
                    request_hash=request_hash,
                    locked_until=now + KEY_LEASE,
                    expires_at=now + KEY_LIFETIME,
                )
            return _Claim(record, True)
        except IntegrityError:
            # Taken: by an expired use of the key (forget it and claim it again,
            # once), or by a live one (answered below).
            expired = IdempotencyKey.objects.filter(
                caller=caller, key=key, expires_at__lt=now
            ).delete()[0]
            if not expired:
                break
    record = IdempotencyKey.objects.get(caller=caller, key=key)
    if record.request_hash != request_hash:
        raise KeyMismatch()
    if record.status_code is not None:
        return _Claim(record, False)
    bet = _bet_of(record)
    # Still running, unless its bet shows otherwise: the request holds the
    # user's lease until the bet is done, so a bet whose lease is free (or whose
    # holder stopped showing life, ``betting.lease``) belongs to a request that
    # died or is finishing; its current state is the answer.
    running = record.locked_until is not None and record.locked_until > now
    if running and (bet is None or lease_is_held(user_id=bet.user_id)):
        raise KeyInUse()
    if bet is not None:
        return _Claim(record, False, bet)
    # The first request died before recording anything: take the key over, once.
    taken = IdempotencyKey.objects.filter(
        pk=record.pk, locked_until=record.locked_until, status_code__isnull=True
    ).update(locked_until=now + KEY_LEASE)
    if not taken:
        raise KeyInUse()
    record.refresh_from_db()
    return _Claim(record, True)


def _answer_existing(
    record: IdempotencyKey, request: Request, *, bet: Bet | None = None
) -> HttpResponse:
    if record.status_code is not None:
        response = HttpResponse(
            # The rendered body stored by _finish (a JSON string) with the status.
            cast(str, record.response_body).encode("utf-8"),
            status=record.status_code,
            content_type="application/json",
        )
    else:
        # The first request died after recording its bet: its current state.
        response = HttpResponse(
            # _claim gives the bet whenever no response was stored.
            json_dumps(bet_as_dict(cast(Bet, bet))),
            status=201,
            content_type="application/json",
        )
    response["Idempotent-Replayed"] = "true"
    if response.status_code >= 400:
        # The envelope's marker (see error_response); HttpResponse declares no such
        # attribute.
        response.is_error_envelope = True  # type: ignore[attr-defined]
    return response


def _bet_of(record: IdempotencyKey) -> Bet | None:
    """The bet placed under this key: linked to the key once the response is
    stored, and by the bet's own ``idempotency_key`` from its insert on."""
    if record.bet_id is not None:
        return Bet.objects.filter(pk=record.bet_id).first()
    return Bet.objects.filter(idempotency_key_id=record.pk).first()


def _finish(
    *,
    record: IdempotencyKey,
    response: HttpResponse,
    acted: bool,
    bet_id: int | None = None,
    keep_for_any_bet: bool = False,
) -> None:
    """Store what the server acted on; free the key otherwise (a 503's bet failed
    with nothing sent, so a retry may place it). A key whose bet is still open
    (the request broke mid-flight) is kept: a retry answers that bet instead of
    placing another."""
    if acted:
        IdempotencyKey.objects.filter(pk=record.pk).update(
            status_code=response.status_code,
            response_body=response.content.decode("utf-8"),
            completed_at=timezone.now(),
            locked_until=None,
            bet_id=bet_id,
        )
        return
    # ``keep_for_any_bet``: a 503 because the database went away mid-request;
    # any bet it recorded keeps the key (the contract: a retry answers that bet),
    # whatever its state.
    _finish_unanswered(record_pk=record.pk, any_bet=keep_for_any_bet)


def _finish_unanswered(*, record_pk: int, any_bet: bool = True) -> None:
    """A key whose answer is not stored: kept, unlocked, when a bet was recorded
    under it (open, or with ``any_bet`` in any state: a retry answers that bet);
    freed otherwise (nothing was done: a retry may place it). Idempotent, so the
    keeper may run it again after a failed attempt."""
    with transaction.atomic():
        bets = Bet.objects.filter(idempotency_key_id=record_pk)
        if not any_bet:
            bets = bets.filter(status__in=Bet.OPEN_STATUSES)
        if bets.exists():
            IdempotencyKey.objects.filter(
                pk=record_pk, status_code__isnull=True
            ).update(locked_until=None)
        else:
            IdempotencyKey.objects.filter(
                pk=record_pk, status_code__isnull=True
            ).delete()
