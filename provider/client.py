"""The only code that talks HTTP to the provider, through ``provider.transport``.

One ``ProviderClient`` per provider account, one method per provider call. Each
call is signed once (``provider.signing``) and the signed bytes are what is sent;
``provider.policy`` decides whether a failed attempt is sent again,
``provider.breaker`` stops calls while the provider is down, and every attempt is
written to the API log, redacted.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings

from auditlog.models import ApiLog
from auditlog.services import api_log_record
from betting_site.last_commit import commit_before_call
from betting_site.metrics import provider_request_record
from betting_site.redaction import redact, redact_text
from provider.breaker import BreakerOpen, CircuitBreaker, provider_host
from provider.exceptions import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRefused,
    ProviderUnreachable,
)
from provider.policy import (
    AUTH,
    BALANCE_CHECK,
    BALANCE_READ,
    BALANCE_SET,
    BET_PLACE,
    BET_RECOMMEND,
    BET_RESULT,
    HEALTH,
    AttemptResult,
    Call,
    Decision,
    Outcome,
    RetryPolicy,
    outcome_of_status,
    outcome_of_transport_error,
    parse_retry_after,
    retry_after_header,
)
from provider.sessions import session_clear, session_is_fresh, session_mark
from provider.signing import sign_body
from provider.transport import Transport, TransportError, default_transport
from provider.types import (
    PROVIDER_BET_MAX,
    PROVIDER_BET_MIN,
    AuthResult,
    BalanceCheck,
    BalanceResult,
    BalanceSetResult,
    BetPlaced,
    BetResult,
    Health,
    MalformedResponse,
    Recommendation,
    parse_json,
)

if TYPE_CHECKING:
    from accounts.models import ExternalApiAccount

logger = logging.getLogger(__name__)

T = TypeVar("T")

_NOT_JSON = object()
_MAX_TEXT = 2000


def _timeouts() -> tuple[float, float]:
    return (
        float(settings.EXTERNAL_API_CONNECT_TIMEOUT),
        float(settings.EXTERNAL_API_READ_TIMEOUT),
    )


def _whole_stake(amount: int | Decimal) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise TypeError("a stake is an int or a Decimal")
    if isinstance(amount, Decimal) and not amount.is_finite():
        raise ValueError("a stake is a finite number")
    if amount != int(amount) or not PROVIDER_BET_MIN <= amount <= PROVIDER_BET_MAX:
        raise ValueError(
            f"a stake is a whole number from {PROVIDER_BET_MIN} to {PROVIDER_BET_MAX}"
        )
    return int(amount)


def _money(amount: int | Decimal) -> Decimal:
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise TypeError("an amount is an int or a Decimal, never a float")
    amount = Decimal(amount)
    if not amount.is_finite() or amount < 0:
        raise ValueError("an amount is a finite number, not negative")
    return amount


@dataclass(frozen=True)
class _AttemptReport:
    result: AttemptResult
    value: Any = None  # the typed result, when the outcome is ok
    body: Any = None  # the response body (JSON or text), redacted
    reason: str = ""  # short: "HTTP 500", "read timeout", "malformed response"


# Within one client (one operation's calls) the shared session flag is read again
# only after this many seconds (never more often than PROVIDER_SESSION_TTL).
SESSION_RECHECK = 5.0


class ProviderClient:
    """The provider's calls for one provider account.

    Give ``account`` (an ``ExternalApiAccount``), or ``external_user_id`` and
    ``secret`` (and ``user``, the local user for the API log). ``health()`` needs
    neither. ``sleep`` replaces ``time.sleep`` between retries (tests).
    ``transport`` sends the requests; without one, ``default_transport()`` at the
    time of each request (see ``provider.transport``, the one seam for the
    provider's HTTP layer).
    """

    def __init__(
        self,
        *,
        account: "ExternalApiAccount | None" = None,
        external_user_id: str | None = None,
        secret: str | None = None,
        user: Any = None,
        sleep: Callable[[float], None] | None = None,
        retry_policy: RetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        if account is not None:
            external_user_id = account.external_user_id
            secret = account.secret
            user = account.user_id
        self.external_user_id = external_user_id
        self._secret = secret
        self._user = user
        self._sleep = sleep
        self._retry_policy = retry_policy
        self._transport = transport
        # When this client last found the session fresh (monotonic), so that the
        # calls of one operation ask the cache once; a 401 forgets it.
        self._session_seen_at: float | None = None

    def __repr__(self) -> str:
        return f"ProviderClient(external_user_id={self.external_user_id!r})"

    # --- the provider's calls -------------------------------------------------------

    def health(self) -> Health:
        """``GET /health``, unsigned."""
        return self._execute(HEALTH, None, Health.from_json)

    def auth(self) -> AuthResult:
        """``POST /auth``; remembers the session for ``PROVIDER_SESSION_TTL``."""
        result = self._execute(AUTH, {}, AuthResult.from_json)
        session_mark(host=self._host(), external_user_id=self._account_id())
        return result

    def ensure_session(self) -> None:
        """``POST /auth`` unless this account authenticated recently (asked of the
        shared cache at most every ``SESSION_RECHECK`` seconds per client)."""
        seen = self._session_seen_at
        recheck = min(SESSION_RECHECK, float(settings.PROVIDER_SESSION_TTL))
        if seen is not None and time.monotonic() - seen < recheck:
            return
        if not session_is_fresh(host=self._host(), external_user_id=self._account_id()):
            self.auth()
        self._session_seen_at = time.monotonic()

    def balance_set(self, amount: int | Decimal) -> BalanceSetResult:
        """``POST /balance {"balance": N}``: a write, never sent twice blindly."""
        body = {"balance": _money(amount)}
        return self._signed(BALANCE_SET, body, BalanceSetResult.from_json)

    def balance_read(self) -> BalanceResult:
        """``POST /balance`` without a body (``{}`` is signed)."""
        return self._signed(BALANCE_READ, None, BalanceResult.from_json)

    def bet_recommend(self) -> Recommendation:
        """``GET /bet``: the provider's recommended stake."""
        return self._signed(BET_RECOMMEND, None, Recommendation.from_json)

    def bet_place(self, amount: int | Decimal) -> BetPlaced:
        """``POST /bet {"bet": k}``; a missing ``bet_id`` is an unknown outcome."""
        body = {"bet": _whole_stake(amount)}
        return self._signed(BET_PLACE, body, BetPlaced.from_json)

    def bet_result(self, bet_id: str) -> BetResult:
        """``POST /win {"bet_id": "..."}``."""
        bet_id = str(bet_id).strip()
        if not bet_id:
            raise ValueError("a bet id is required")
        return self._signed(BET_RESULT, {"bet_id": bet_id}, BetResult.from_json)

    def balance_check(self, expected: int | Decimal) -> BalanceCheck:
        """``POST /check-balance {"expected_balance": X}``."""
        body = {"expected_balance": _money(expected)}
        return self._signed(BALANCE_CHECK, body, BalanceCheck.from_json)

    # --- plumbing -------------------------------------------------------------------

    def _account_id(self) -> str:
        if not self.external_user_id or not self._secret:
            raise ValueError(
                "signed provider calls need an external user id and secret"
            )
        return self.external_user_id

    @staticmethod
    def _host() -> str:
        return provider_host(settings.EXTERNAL_API_URL)

    def _signed(self, call: Call, body: dict | None, parse: Callable[[Any], T]) -> T:
        """A signed call other than ``/auth``: authenticate first if needed."""
        try:
            self.ensure_session()
        except ProviderRefused:
            raise  # the credentials were refused: a definite no for this call too
        except ProviderError as exc:
            # Whatever happened to /auth, nothing of this call was sent.
            raise ProviderUnreachable(
                f"Could not authenticate at the betting provider; "
                f"{call.method} {call.path} was not sent",
                endpoint=call.path,
                method=call.method,
                attempts=0,
                retry_after=getattr(exc, "retry_after", 1),
            ) from exc
        return self._execute(call, body, parse)

    def _execute(self, call: Call, body: dict | None, parse: Callable[[Any], T]) -> T:
        # Whatever this call changes at the provider, the state before it is
        # committed first (a request's last transaction may still be open).
        commit_before_call()
        headers = {"Accept": "application/json"}
        payload = b""
        if call.signed:
            signed = sign_body(body, self._secret or "")
            headers["Content-Type"] = "application/json"
            headers["user-id"] = self._account_id()
            headers["x-signature"] = signed.signature
            payload = signed.body
        retry_policy = self._retry_policy or RetryPolicy.from_settings(
            sleep=self._sleep
        )
        url = settings.EXTERNAL_API_URL.rstrip("/") + call.path
        breaker = CircuitBreaker.for_url(url)
        attempt = 0
        while True:
            try:
                permit = breaker.acquire()
            except BreakerOpen as exc:
                logger.info(
                    "Provider circuit open: %s %s not sent", call.method, call.path
                )
                provider_request_record(
                    method=call.method, endpoint=call.path, outcome="breaker_open"
                )
                raise ProviderUnreachable(
                    "The betting provider is unavailable (circuit open); "
                    f"{call.method} {call.path} was not sent",
                    endpoint=call.path,
                    method=call.method,
                    attempts=attempt,
                    retry_after=exc.retry_after,
                ) from None
            attempt += 1
            report = self._attempt(call, url, payload, headers, body, attempt, parse)
            breaker.record(permit, status=report.result.status)
            if report.result.outcome is Outcome.OK:
                return report.value
            if report.result.status == 401 and call.signed:
                self._session_seen_at = None
                session_clear(host=self._host(), external_user_id=self._account_id())
            decision = retry_policy.decide(call, attempt=attempt, result=report.result)
            if not decision.retry:
                raise self._failure(call, attempt, report, decision, breaker)
            logger.info(
                "Retrying provider %s %s in %.2fs after attempt %s (%s)",
                call.method,
                call.path,
                decision.delay,
                attempt,
                report.reason,
            )
            retry_policy.wait(decision.delay)

    def _attempt(
        self,
        call: Call,
        url: str,
        payload: bytes,
        headers: dict[str, str],
        body: dict | None,
        attempt: int,
        parse: Callable[[Any], Any],
    ) -> _AttemptReport:
        """Send one request, classify it, and write its API log row."""
        known = (self._secret, headers.get("x-signature"))
        secrets = tuple(str(value) for value in known if value)
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        response_body: Any = None
        value: Any = None
        error = ""
        transport = self._transport
        if transport is None:
            transport = default_transport()
        try:
            response = transport.send(
                call.method,
                url,
                body=payload or None,
                headers=headers,
                timeout=_timeouts(),
            )
        except TransportError as exc:
            outcome = outcome_of_transport_error(exc)
            reason = exc.reason
            error = str(exc)
        else:
            status = response.status
            parsed = self._parse_body(response.content)
            response_body = response.text[:_MAX_TEXT] if parsed is _NOT_JSON else parsed
            outcome = outcome_of_status(status)
            reason = f"HTTP {status}"
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if outcome is Outcome.OK:
                try:
                    if parsed is _NOT_JSON:
                        raise MalformedResponse("the body is not JSON")
                    value = parse(parsed)
                except MalformedResponse as exc:
                    outcome = Outcome.UNKNOWN
                    reason = "malformed response"
                    error = f"malformed response: {exc}"
            else:
                error = reason
        duration_ms = (time.monotonic() - started) * 1000
        provider_request_record(
            method=call.method,
            endpoint=call.path,
            outcome=outcome.value,
            seconds=duration_ms / 1000,
        )
        api_log_record(
            direction=ApiLog.Direction.OUTBOUND,
            endpoint=call.path,
            method=call.method,
            request_body=body,
            response_body=response_body,
            status_code=status,
            duration_ms=duration_ms,
            attempt=attempt,
            outcome=outcome.value,
            error=error,
            user=self._user,
            secrets=secrets,
        )
        if outcome is not Outcome.OK:
            logger.warning(
                "Provider %s %s attempt %s: %s (%s)",
                call.method,
                call.path,
                attempt,
                outcome.value,
                redact_text(reason, secrets=secrets),
            )
        return _AttemptReport(
            result=AttemptResult(
                outcome=outcome, status=status, retry_after=retry_after
            ),
            value=value,
            body=self._redacted(response_body, secrets),
            reason=reason,
        )

    @staticmethod
    def _parse_body(content: bytes) -> Any:
        if not content:
            return _NOT_JSON
        try:
            return parse_json(content)
        except (ValueError, UnicodeDecodeError):
            return _NOT_JSON

    @staticmethod
    def _redacted(body: Any, secrets: tuple[str, ...]) -> Any:
        if isinstance(body, str):
            return redact_text(body, secrets=secrets)
        return redact(body, secrets=secrets)

    def _failure(
        self,
        call: Call,
        attempt: int,
        report: _AttemptReport,
        decision: Decision,
        breaker: CircuitBreaker,
    ) -> ProviderError:
        result = report.result
        where = f"{call.method} {call.path}"
        if decision.give_up_as_unreachable or result.outcome is Outcome.UNREACHABLE:
            retry_after = result.retry_after
            if retry_after is None:
                retry_after = breaker.retry_after()
            return ProviderUnreachable(
                f"The betting provider is unavailable ({where}: {report.reason})",
                endpoint=call.path,
                method=call.method,
                attempts=attempt,
                status=result.status,
                retry_after=retry_after_header(retry_after),
            )
        if result.outcome is Outcome.REFUSED:
            return ProviderRefused(
                f"The betting provider refused {where} ({report.reason})",
                endpoint=call.path,
                method=call.method,
                attempts=attempt,
                status=result.status or 400,
                body=report.body,
            )
        return ProviderOutcomeUnknown(
            f"The outcome of {where} at the betting provider is unknown "
            f"({report.reason})",
            endpoint=call.path,
            method=call.method,
            attempts=attempt,
            status=result.status,
            body=report.body if result.status is not None else None,
        )
