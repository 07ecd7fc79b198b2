import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

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
    Outcome,
    RetryPolicy,
    outcome_of_status,
    outcome_of_transport_error,
    parse_retry_after,
    retry_after_header,
)
from provider.transport import TransportError

READS = [HEALTH, AUTH, BALANCE_READ, BET_RECOMMEND, BALANCE_CHECK]
WRITES = [BALANCE_SET, BET_PLACE, BET_RESULT]


# Which requests' errors mean "never sent": provider/tests/test_transport.py.
@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (TransportError("connection error", sent=False), Outcome.UNREACHABLE),
        (TransportError("connect timeout", sent=False), Outcome.UNREACHABLE),
        (TransportError("connection error", sent=True), Outcome.UNKNOWN),
        (TransportError("read timeout", sent=True), Outcome.UNKNOWN),
        (TransportError("ChunkedEncodingError", sent=True), Outcome.UNKNOWN),
    ],
)
def test_outcome_of_transport_error_follows_whether_it_was_sent(error, outcome):
    assert outcome_of_transport_error(error) is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (201, Outcome.OK),
        (302, Outcome.UNKNOWN),
        (400, Outcome.REFUSED),
        (401, Outcome.REFUSED),
        (404, Outcome.REFUSED),
        (429, Outcome.UNREACHABLE),
        (500, Outcome.UNKNOWN),
        (503, Outcome.UNKNOWN),
    ],
)
def test_outcome_of_status(status, outcome):
    assert outcome_of_status(status) is outcome


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [("3", 3.0), (" 0 ", 0.0), ("", None), (None, None), ("soon", None)],
    )
    def test_seconds_form(self, value, seconds):
        assert parse_retry_after(value) == seconds

    def test_http_date_form(self):
        now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
        later = format_datetime(now + timedelta(seconds=5), usegmt=True)
        assert parse_retry_after(later, now=now.timestamp()) == 5.0
        earlier = format_datetime(now - timedelta(seconds=5), usegmt=True)
        assert parse_retry_after(earlier, now=now.timestamp()) == 0.0

    def test_header_value_is_whole_seconds_at_least_one(self):
        assert retry_after_header(None) == 1
        assert retry_after_header(0.2) == 1
        assert retry_after_header(2.1) == 3


def make_policy(**overrides) -> RetryPolicy:
    options = {
        "read_retries": 2,
        "write_retries": 2,
        "backoff_base": 0.1,
        "backoff_max": 0.3,
        "retry_after_max": 2.0,
        "sleep": lambda seconds: None,
        "jitter": lambda low, high: high,  # the ceiling, to see it
    }
    options.update(overrides)
    return RetryPolicy(**options)


class TestDecide:
    unknown = AttemptResult(Outcome.UNKNOWN, status=500)
    unreachable = AttemptResult(Outcome.UNREACHABLE)
    refused = AttemptResult(Outcome.REFUSED, status=400)

    @pytest.mark.parametrize("call", READS, ids=lambda c: c.name)
    def test_reads_retry_unknown_and_unreachable(self, call):
        policy = make_policy()
        for result in (self.unknown, self.unreachable):
            assert policy.decide(call, attempt=1, result=result).retry is True
            assert policy.decide(call, attempt=2, result=result).retry is True
            assert policy.decide(call, attempt=3, result=result).retry is False

    @pytest.mark.parametrize("call", WRITES, ids=lambda c: c.name)
    def test_writes_retry_only_what_never_took_effect(self, call):
        policy = make_policy()
        assert policy.decide(call, attempt=1, result=self.unknown).retry is False
        assert policy.decide(call, attempt=1, result=self.unreachable).retry is True
        assert policy.decide(call, attempt=3, result=self.unreachable).retry is False

    @pytest.mark.parametrize("call", READS + WRITES, ids=lambda c: c.name)
    def test_refusals_and_successes_are_final(self, call):
        policy = make_policy()
        assert policy.decide(call, attempt=1, result=self.refused).retry is False
        ok = AttemptResult(Outcome.OK, status=200)
        assert policy.decide(call, attempt=1, result=ok).retry is False

    def test_backoff_is_capped_exponential_with_full_jitter(self):
        bounds = []
        policy = make_policy(jitter=lambda low, high: bounds.append((low, high)) or 0)
        for attempt in (1, 2, 3):
            policy.read_retries = 5
            policy.decide(BET_RECOMMEND, attempt=attempt, result=self.unknown)
        assert bounds == [(0, 0.1), (0, 0.2), (0, 0.3)]

    def test_default_jitter_stays_within_bounds(self):
        policy = make_policy(jitter=random.uniform)
        for _ in range(50):
            delay = policy.decide(BET_RECOMMEND, attempt=2, result=self.unknown).delay
            assert 0 <= delay <= 0.2

    def test_retry_after_is_honoured(self):
        throttled = AttemptResult(Outcome.UNREACHABLE, status=429, retry_after=1.5)
        decision = make_policy().decide(BET_PLACE, attempt=1, result=throttled)
        assert (decision.retry, decision.delay) == (True, 1.5)

    def test_too_long_retry_after_gives_up_as_unreachable(self):
        throttled = AttemptResult(Outcome.UNREACHABLE, status=429, retry_after=30)
        decision = make_policy().decide(BET_RECOMMEND, attempt=1, result=throttled)
        assert decision.retry is False
        assert decision.give_up_as_unreachable is True

    def test_write_503_is_not_retried_even_with_retry_after(self):
        busy = AttemptResult(Outcome.UNKNOWN, status=503, retry_after=1)
        decision = make_policy().decide(BET_RESULT, attempt=1, result=busy)
        assert decision == decision.__class__(retry=False)

    def test_from_settings_reads_settings_at_call_time(self, settings):
        settings.PROVIDER_READ_RETRIES = 4
        settings.PROVIDER_WRITE_RETRIES = 4
        settings.PROVIDER_BACKOFF_BASE = 0.5
        settings.PROVIDER_BACKOFF_MAX = 8
        settings.PROVIDER_RETRY_AFTER_MAX = 3
        sleeps = []
        policy = RetryPolicy.from_settings(sleep=sleeps.append)
        assert (policy.read_retries, policy.write_retries) == (4, 4)
        assert (policy.backoff_base, policy.backoff_max) == (0.5, 8)
        assert policy.retry_after_max == 3
        policy.wait(0.25)
        policy.wait(0)
        assert sleeps == [0.25]


def test_longest_call_is_every_attempt_at_its_timeout_and_every_wait_at_its_most():
    policy = make_policy(read_retries=2, write_retries=1, backoff_max=0.3)
    # Waits: the larger of the backoff's ceiling (0.1, 0.2) and Retry-After's (2).
    assert policy.longest(AUTH, attempt_seconds=13) == 3 * 13 + 2 + 2
    assert policy.longest(BET_PLACE, attempt_seconds=13) == 2 * 13 + 2
    policy = make_policy(retry_after_max=0.0, backoff_max=5.0, backoff_base=1.0)
    assert policy.longest(BALANCE_READ, attempt_seconds=1) == 3 * 1 + 1 + 2
    assert make_policy(read_retries=0).longest(AUTH, attempt_seconds=4) == 4


def test_call_longest_follows_the_settings(settings):
    from provider.policy import call_longest

    settings.EXTERNAL_API_CONNECT_TIMEOUT = 3.0
    settings.EXTERNAL_API_READ_TIMEOUT = 10.0
    settings.PROVIDER_READ_RETRIES = 2
    settings.PROVIDER_WRITE_RETRIES = 2
    settings.PROVIDER_BACKOFF_BASE = 0.1
    settings.PROVIDER_BACKOFF_MAX = 2.0
    settings.PROVIDER_RETRY_AFTER_MAX = 2.0
    assert call_longest(BET_RESULT) == 43.0
    settings.EXTERNAL_API_READ_TIMEOUT = 2.0
    settings.PROVIDER_WRITE_RETRIES = 0
    assert call_longest(BET_RESULT) == 5.0
