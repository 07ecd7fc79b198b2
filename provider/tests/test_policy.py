import http.client
import random
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
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
    Outcome,
    RetryPolicy,
    never_connected,
    outcome_of_exception,
    outcome_of_status,
    parse_retry_after,
    retry_after_header,
)

URL = "http://provider.test/api/bet"
READS = [HEALTH, AUTH, BALANCE_READ, BET_RECOMMEND, BALANCE_CHECK]
WRITES = [BALANCE_SET, BET_PLACE, BET_RESULT]


def wrapped(reason: Exception) -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, URL, reason=reason))


class TestNeverConnected:
    @pytest.mark.parametrize(
        "exc",
        [
            wrapped(NewConnectionError(None, "Connection refused")),
            wrapped(
                NameResolutionError(
                    "provider.test", None, socket.gaierror("Name or service unknown")
                )
            ),
            requests.ConnectTimeout(
                MaxRetryError(None, URL, reason=ConnectTimeoutError(None, "timed out"))
            ),
        ],
        ids=["refused", "dns", "connect-timeout"],
    )
    def test_the_connection_was_never_made(self, exc):
        assert never_connected(exc) is True
        assert outcome_of_exception(exc) is Outcome.UNREACHABLE

    @pytest.mark.parametrize(
        "exc",
        [
            requests.ConnectionError(
                ProtocolError(
                    "Connection aborted.",
                    http.client.RemoteDisconnected("closed without response"),
                )
            ),
            requests.ConnectionError(
                ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
            ),
            requests.ConnectionError(
                MaxRetryError(None, URL, reason=ProtocolError("Connection aborted."))
            ),
            requests.ConnectionError(OSError("broken pipe")),
            requests.ConnectionError("no cause at all"),
            requests.ReadTimeout(ReadTimeoutError(None, URL, "Read timed out.")),
            requests.exceptions.ChunkedEncodingError("truncated"),
            requests.RequestException("anything else"),
        ],
        ids=[
            "remote-disconnected",
            "reset",
            "protocol-in-max-retry",
            "os-error",
            "bare",
            "read-timeout",
            "chunked",
            "other",
        ],
    )
    def test_the_request_may_have_been_sent(self, exc):
        assert never_connected(exc) is False
        assert outcome_of_exception(exc) is Outcome.UNKNOWN

    def test_a_reset_wrapping_a_new_connection_error_deeper_is_still_unknown(self):
        inner = NewConnectionError(None, "refused")
        outer = ProtocolError("Connection aborted.", ConnectionResetError())
        outer.__cause__ = inner
        assert never_connected(requests.ConnectionError(outer)) is False

    def test_real_refused_connection(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
        with pytest.raises(requests.ConnectionError) as caught:
            session.post(f"http://127.0.0.1:{port}/api/bet", data=b"{}", timeout=2)
        assert never_connected(caught.value) is True

    def test_real_connection_closed_after_the_request(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def close_after_reading():
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)

        thread = threading.Thread(target=close_after_reading, daemon=True)
        thread.start()
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
        try:
            with pytest.raises(requests.ConnectionError) as caught:
                session.post(f"http://127.0.0.1:{port}/api/bet", data=b"{}", timeout=2)
        finally:
            thread.join(5)
            server.close()
        assert never_connected(caught.value) is False


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
