import logging

import pytest
from django.core.cache import cache

from accounts.tests.factories import ExternalApiAccountFactory
from provider import breaker as breaker_module
from provider.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerOpen,
    CircuitBreaker,
    Permit,
    breaker_state,
    provider_host,
)
from provider.client import ProviderClient
from provider.exceptions import (
    ProviderOutcomeUnknown,
    ProviderRefused,
    ProviderUnreachable,
)
from provider.sessions import session_mark
from provider.testing import ScriptedTransport
from provider.transport import TransportError, transport_installed

BASE = "http://provider.test/api"
HOST = "http://provider.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def breaker_settings(settings):
    settings.EXTERNAL_API_URL = BASE
    settings.PROVIDER_BREAKER_THRESHOLD = 3
    settings.PROVIDER_BREAKER_RESET = 30.0
    settings.PROVIDER_READ_RETRIES = 0
    settings.PROVIDER_BACKOFF_BASE = 0.0
    settings.PROVIDER_BACKOFF_MAX = 0.0
    return settings


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock) -> CircuitBreaker:
    return CircuitBreaker(HOST, clock=clock)


def fail(breaker: CircuitBreaker, times: int, status: int | None = None) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), status=status)


class TestStates:
    def test_closed_by_default(self, breaker):
        assert breaker.state() == CLOSED
        assert breaker.acquire() == Permit(probe=False, streak=False)
        assert breaker.retry_after() is None

    def test_opens_after_threshold_consecutive_failures(self, breaker):
        fail(breaker, 2)
        assert breaker.state() == CLOSED
        fail(breaker, 1, status=500)
        assert breaker.state() == OPEN
        with pytest.raises(BreakerOpen) as caught:
            breaker.acquire()
        assert caught.value.retry_after == 30

    def test_a_success_resets_the_streak(self, breaker):
        fail(breaker, 2)
        breaker.record(breaker.acquire(), status=200)
        fail(breaker, 2)
        assert breaker.state() == CLOSED

    def test_a_success_without_a_streak_writes_nothing(self, breaker, monkeypatch):
        permit = breaker.acquire()
        writes = []
        monkeypatch.setattr(cache, "delete", lambda *args, **kw: writes.append(args))
        breaker.record(permit, status=200)
        assert writes == []

    @pytest.mark.parametrize("status", [400, 401, 404, 422])
    def test_refusals_never_count(self, breaker, status):
        fail(breaker, 10, status=status)
        assert breaker.state() == CLOSED

    def test_429_never_counts(self, breaker):
        fail(breaker, 2)
        fail(breaker, 5, status=429)
        assert breaker.state() == CLOSED
        fail(breaker, 1)
        assert breaker.state() == OPEN

    def test_half_open_after_reset_lets_one_probe_through(self, breaker, clock):
        fail(breaker, 3)
        clock.now += 29
        assert breaker.state() == OPEN
        assert breaker.retry_after() == 1
        clock.now += 1
        assert breaker.state() == HALF_OPEN
        assert breaker.acquire() == Permit(probe=True)
        with pytest.raises(BreakerOpen):
            breaker.acquire()

    def test_probe_success_closes(self, breaker, clock):
        fail(breaker, 3)
        clock.now += 30
        breaker.record(breaker.acquire(), status=200)
        assert breaker.state() == CLOSED
        fail(breaker, 2)
        assert breaker.state() == CLOSED  # the old streak was forgotten

    def test_probe_refusal_closes_too(self, breaker, clock):
        fail(breaker, 3)
        clock.now += 30
        breaker.record(breaker.acquire(), status=400)
        assert breaker.state() == CLOSED

    def test_probe_failure_reopens(self, breaker, clock):
        fail(breaker, 3)
        clock.now += 30
        breaker.record(breaker.acquire(), status=502)
        assert breaker.state() == OPEN
        clock.now += 30
        assert breaker.acquire().probe is True

    def test_a_throttled_probe_gives_its_turn_back(self, breaker, clock):
        fail(breaker, 3)
        clock.now += 30
        breaker.record(breaker.acquire(), status=429)
        assert breaker.state() == HALF_OPEN
        assert breaker.acquire().probe is True

    def test_state_is_shared_through_the_cache(self, clock):
        worker_a = CircuitBreaker(HOST, clock=clock)
        worker_b = CircuitBreaker(HOST, clock=clock)
        other_host = CircuitBreaker("http://elsewhere.test", clock=clock)
        fail(worker_a, 2)
        fail(worker_b, 1)
        assert worker_a.state() == worker_b.state() == OPEN
        assert other_host.state() == CLOSED
        clock.now += 30
        assert worker_a.acquire().probe is True
        with pytest.raises(BreakerOpen):
            worker_b.acquire()

    def test_failures_of_calls_in_flight_do_not_prolong_the_open_period(
        self, breaker, clock
    ):
        permits = [breaker.acquire() for _ in range(5)]
        for permit in permits[:3]:
            breaker.record(permit, status=None)
        clock.now += 20
        for permit in permits[3:]:
            breaker.record(permit, status=None)
        clock.now += 10
        assert breaker.state() == HALF_OPEN

    def test_reset_closes(self, breaker):
        fail(breaker, 3)
        breaker.reset()
        assert breaker.state() == CLOSED

    def test_breaker_state_uses_the_provider_url(self, settings):
        assert breaker_state() == CLOSED
        fail(CircuitBreaker.for_url(), 3)
        assert breaker_state() == OPEN
        assert breaker_state("http://elsewhere.test/api") == CLOSED

    def test_host_is_scheme_and_netloc(self):
        assert provider_host("HTTP://Provider.Test:8081/api/") == (
            "http://provider.test:8081"
        )


class BrokenCache:
    def __getattr__(self, name):
        def broken(*args, **kwargs):
            raise ConnectionError("redis is down")

        return broken


class TestCacheFailure:
    def test_a_broken_cache_fails_open_with_a_warning(
        self, breaker, monkeypatch, caplog
    ):
        monkeypatch.setattr(breaker_module, "cache", BrokenCache())
        with caplog.at_level(logging.WARNING, logger="provider.breaker"):
            permit = breaker.acquire()
            breaker.record(permit, status=None)
            breaker.record(permit, status=200)
            breaker.record(Permit(probe=True), status=None)
            breaker.release(Permit(probe=True))
            assert breaker.state() == CLOSED
            assert breaker.retry_after() is None
        assert permit == Permit()
        assert "failing open" in caplog.text

    @pytest.mark.django_db
    def test_calls_go_through_when_the_cache_is_down(self, monkeypatch):
        monkeypatch.setattr(breaker_module, "cache", BrokenCache())
        account = ExternalApiAccountFactory(secret="a-provider-secret")
        session_mark(host=HOST, external_user_id=account.external_user_id)
        with transport_installed(ScriptedTransport()) as mocked:
            mocked.add("GET", f"{BASE}/bet", json={"bet": 2})
            assert ProviderClient(account=account).bet_recommend().amount == 2


def refused() -> TransportError:
    return TransportError("connection error", sent=False)


@pytest.mark.django_db
class TestWithTheClient:
    @pytest.fixture
    def client(self):
        account = ExternalApiAccountFactory(secret="a-provider-secret")
        session_mark(host=HOST, external_user_id=account.external_user_id)
        return ProviderClient(account=account, sleep=lambda seconds: None)

    def test_open_breaker_fails_fast_with_nothing_sent(self, client):
        with transport_installed(ScriptedTransport()) as mocked:
            mocked.add("POST", f"{BASE}/win", status=500)
            mocked.add("POST", f"{BASE}/bet", error=refused())
            for _ in range(2):
                with pytest.raises(ProviderOutcomeUnknown):
                    client.bet_result("1")
            # A write that never connected is retried; this one opens the breaker.
            with pytest.raises(ProviderUnreachable):
                client.bet_place(3)
            sent = len(mocked.calls)
            assert sent == 3
            with pytest.raises(ProviderUnreachable) as caught:
                client.bet_place(3)
            assert len(mocked.calls) == sent
        error = caught.value
        assert error.attempts == 0
        assert 1 <= int(error.headers["Retry-After"]) <= 30
        assert breaker_state() == OPEN

    def test_refusals_never_open_the_breaker(self, client):
        with transport_installed(ScriptedTransport()) as mocked:
            mocked.add("POST", f"{BASE}/bet", status=400, json={"error": "no"})
            for _ in range(5):
                with pytest.raises(ProviderRefused):
                    client.bet_place(3)
            assert len(mocked.calls) == 5
        assert breaker_state() == CLOSED

    def test_half_open_probe_success_closes_for_every_client(self, client, settings):
        settings.PROVIDER_BREAKER_RESET = 0.0
        fail(CircuitBreaker.for_url(), 3)
        assert breaker_state() == HALF_OPEN
        with transport_installed(ScriptedTransport()) as mocked:
            mocked.add("GET", f"{BASE}/bet", json={"bet": 1})
            assert client.bet_recommend().amount == 1
        assert breaker_state() == CLOSED
        assert cache.get(f"provider:breaker:{HOST}:probe") is None
