"""The one place that decides what may be retried, and how long to wait.

The provider has no idempotency key. Reads are safe to send again whatever
happened. Writes (placing a bet, asking for its result, setting the balance) are
sent again only when the provider certainly did not act: the connection was never
made, or it answered 429 (it throttles before acting).
"""

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from django.conf import settings

from provider.transport import TransportError


class Outcome(StrEnum):
    """What one attempt came to; the values are the API log's ``outcome``."""

    OK = "ok"
    REFUSED = "refused"  # a definite no: a 4xx other than 429
    UNKNOWN = "unknown"  # it may have taken effect
    UNREACHABLE = "unreachable"  # it certainly did not take effect


@dataclass(frozen=True)
class Call:
    """One kind of provider call."""

    name: str
    method: str
    path: str
    is_read: bool  # reads may be sent again whatever happened
    signed: bool = True


HEALTH = Call("health", "GET", "/health", is_read=True, signed=False)
AUTH = Call("auth", "POST", "/auth", is_read=True)
BALANCE_READ = Call("balance_read", "POST", "/balance", is_read=True)
BALANCE_SET = Call("balance_set", "POST", "/balance", is_read=False)
BET_RECOMMEND = Call("bet_recommend", "GET", "/bet", is_read=True)
BET_PLACE = Call("bet_place", "POST", "/bet", is_read=False)
BET_RESULT = Call("bet_result", "POST", "/win", is_read=False)
BALANCE_CHECK = Call("balance_check", "POST", "/check-balance", is_read=True)


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    status: int | None = None  # None: no HTTP answer
    retry_after: float | None = None  # seconds, from a 429 or 503


@dataclass(frozen=True)
class Decision:
    retry: bool
    delay: float = 0.0
    # The provider asked us to wait longer than a worker may block.
    give_up_as_unreachable: bool = False


def outcome_of_transport_error(error: TransportError) -> Outcome:
    """No answer came back: unreachable only if the request certainly never left
    this machine (the transport decides, see ``provider.transport``)."""
    return Outcome.UNKNOWN if error.sent else Outcome.UNREACHABLE


def outcome_of_status(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.OK
    if status == 429:
        return Outcome.UNREACHABLE
    if 400 <= status < 500:
        return Outcome.REFUSED
    # 5xx, and redirects (never followed): it may have acted.
    return Outcome.UNKNOWN


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return max(0.0, (moment - current).total_seconds())


def retry_after_header(seconds: float | None) -> int:
    """Whole seconds for a ``Retry-After`` we send on: at least one."""
    if seconds is None:
        return 1
    return max(1, math.ceil(seconds))


class RetryPolicy:
    """When to send a call again, and how long to sleep first."""

    def __init__(
        self,
        *,
        read_retries: int,
        write_retries: int,
        backoff_base: float,
        backoff_max: float,
        retry_after_max: float,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.read_retries = max(0, read_retries)
        self.write_retries = max(0, write_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.sleep = sleep
        self.jitter = jitter

    @classmethod
    def from_settings(
        cls, *, sleep: Callable[[float], None] | None = None
    ) -> "RetryPolicy":
        read_retries = settings.PROVIDER_READ_RETRIES
        return cls(
            read_retries=read_retries,
            write_retries=settings.PROVIDER_WRITE_RETRIES,
            backoff_base=settings.PROVIDER_BACKOFF_BASE,
            backoff_max=settings.PROVIDER_BACKOFF_MAX,
            retry_after_max=settings.PROVIDER_RETRY_AFTER_MAX,
            sleep=sleep or time.sleep,
        )

    def may_retry(self, call: Call, outcome: Outcome) -> bool:
        """Whether this outcome allows sending the call again at all."""
        if outcome in (Outcome.OK, Outcome.REFUSED):
            return False
        return call.is_read or outcome is Outcome.UNREACHABLE

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform over [0, min(max, base * 2**n)], n from 0."""
        ceiling = min(self.backoff_max, self.backoff_base * 2**retry_number)
        return self.jitter(0, max(0.0, ceiling))

    def decide(self, call: Call, *, attempt: int, result: AttemptResult) -> Decision:
        """``attempt`` is how many requests were sent so far (1 after the first)."""
        if not self.may_retry(call, result.outcome):
            return Decision(retry=False)
        retries = self.read_retries if call.is_read else self.write_retries
        if attempt > retries:
            return Decision(retry=False)
        if result.retry_after is not None:
            if result.retry_after > self.retry_after_max:
                return Decision(retry=False, give_up_as_unreachable=True)
            return Decision(retry=True, delay=result.retry_after)
        return Decision(retry=True, delay=self.backoff(attempt - 1))

    def longest(self, call: Call, *, attempt_seconds: float) -> float:
        """The longest ``call`` can take, retries included: every attempt its full
        ``attempt_seconds`` (connect plus read timeout; a 429 too may come that
        late) and every wait its longest (the backoff's ceiling, or the longest
        ``Retry-After`` waited in-line)."""
        retries = self.read_retries if call.is_read else self.write_retries
        waits = sum(
            max(min(self.backoff_max, self.backoff_base * 2**n), self.retry_after_max)
            for n in range(retries)
        )
        return (retries + 1) * attempt_seconds + waits

    def wait(self, delay: float) -> None:
        if delay > 0:
            self.sleep(delay)


def call_longest(call: Call) -> float:
    """``RetryPolicy.longest`` for the configured policy and timeouts."""
    return RetryPolicy.from_settings().longest(
        call,
        attempt_seconds=settings.EXTERNAL_API_CONNECT_TIMEOUT
        + settings.EXTERNAL_API_READ_TIMEOUT,
    )
