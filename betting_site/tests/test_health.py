import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_health_is_ok_when_everything_answers(client, provider):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["services"] == {
        "api": "ok",
        "database": "ok",
        "cache": "ok",
        "external_api": "ok",
    }
    assert body["version"]
    assert body["timestamp"].endswith("Z")


def test_health_is_degraded_when_the_provider_is_down(client, settings):
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"  # nothing listens there
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
    response = client.get("/api/health/")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["services"]["external_api"] == "down"


def test_health_trusts_an_open_breaker_without_probing(client, provider, settings):
    from provider.breaker import CircuitBreaker

    breaker = CircuitBreaker.for_url(provider.base_url)
    for _ in range(settings.PROVIDER_BREAKER_THRESHOLD):
        breaker.record_failure(breaker.acquire())
    calls_before = provider.snapshot()["requests_served"]
    body = client.get("/api/health").json()
    assert body["services"]["external_api"] == "down"
    assert provider.snapshot()["requests_served"] == calls_before


def test_health_is_503_with_the_same_body_when_the_database_is_down(
    client, provider, monkeypatch
):
    from django.db.backends.utils import CursorWrapper

    def broken(*args, **kwargs):
        raise OperationalError("database unavailable")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["services"]["database"] == "down"
    assert "success" not in body


def test_liveness_touches_nothing(client, django_assert_num_queries, settings):
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    with django_assert_num_queries(0):
        response = client.get("/api/health/live")
    assert response.json() == {"status": "ok"}
