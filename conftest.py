"""Fixtures shared by every app's tests."""

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

if TYPE_CHECKING:
    from accounts.models import User


@pytest.fixture(autouse=True)
def _no_lease_keeper_thread(settings):
    """Tests run the keeper's rounds themselves (``betting.keeper.beat``); a
    thread of its own would write beside a test's transaction."""
    settings.LEASE_KEEPER_THREAD = False
    yield
    from betting import keeper

    keeper.reset()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-staple"


@pytest.fixture
def user(db, password):
    from accounts.tests.factories import UserFactory

    return UserFactory(password=password)


@pytest.fixture
def tokens(api_client, user, password) -> dict:
    response = api_client.post(
        "/api/auth/login",
        {"username": user.username, "password": password},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def auth_client(tokens) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['token']}")
    return client


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    skip_pg = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgres://... (row locks and "
        "concurrent transactions are not meaningful on SQLite)"
    )
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://...")
    for item in items:
        # `-m "not simulator"` skips every test that starts one.
        if "simulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.simulator)
        if "postgres" in item.keywords and "postgresql" not in engine:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)


@pytest.fixture
def simulator() -> Iterator:
    """A fresh provider simulator on 127.0.0.1 (a free port), seeded, serving from a
    background thread; ``simulator.base_url`` is ``http://127.0.0.1:PORT/api``."""
    from provider.simulator import ProviderSimulator

    server = ProviderSimulator("127.0.0.1", 0, seed=1234).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def provider(simulator, settings):
    """The simulator, with the server's client pointed at it and short timeouts and
    backoffs so that failure paths stay fast."""
    settings.EXTERNAL_API_URL = simulator.base_url
    settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.5
    settings.EXTERNAL_API_READ_TIMEOUT = 0.5
    settings.PROVIDER_BACKOFF_BASE = 0.01
    settings.PROVIDER_BACKOFF_MAX = 0.05
    # Unknown bets are decided at once here; the grace for a late POST /bet has
    # its own tests (betting/tests/test_unknown_grace.py).
    settings.BET_UNKNOWN_GRACE = 0
    return simulator


@pytest.fixture(params=["debit_on_loss", "debit_on_place"])
def stake_mode(request, settings, provider) -> str:
    """Runs the test once per provider stake mode, server and simulator agreeing."""
    settings.PROVIDER_STAKE_MODE = request.param
    provider.configure(stake_mode=request.param)
    return request.param


def _player_link(
    user: "User", *, external_id: str, secret: str, balance: Decimal, provider
) -> "User":
    """Links ``user`` to the provider account ``external_id`` (opened at the
    simulator ``provider`` with ``balance`` unless it is None) and posts ``balance``
    as the user's initial balance."""
    from accounts.tests.factories import ExternalApiAccountFactory
    from wallet.tests.factories import fund

    if provider is not None:
        provider.add_account(external_id, secret, balance=balance)
    ExternalApiAccountFactory(user=user, external_user_id=external_id, secret=secret)
    fund(user, balance)
    return user


@pytest.fixture
def make_player(provider):
    """``make_player(external_id)``: a user linked to a simulator account (unless
    ``at_provider=False``), provider and ledger both starting at ``balance``;
    ``user=`` links that user instead of a new one."""
    from accounts.tests.factories import UserFactory

    def make(
        external_id: str,
        *,
        balance=Decimal("100"),
        at_provider: bool = True,
        user: "User | None" = None,
    ) -> "User":
        return _player_link(
            user if user is not None else cast("User", UserFactory()),
            external_id=external_id,
            secret=f"secret-{external_id}",
            balance=balance,
            provider=provider if at_provider else None,
        )

    return make


# --- the player: ``user``, linked and funded -----------------------------------------
# A module that needs other figures overrides the small fixtures below, never
# ``player`` itself: ``player_balance``, ``player_external_id``, ``player_secret``,
# and ``player_provider`` to configure the simulator first (request ``stake_mode``
# there to run every test with a player in both stake modes) or to return None.


@pytest.fixture
def player_external_id() -> str:
    return "9001"


@pytest.fixture
def player_secret(player_external_id) -> str:
    return f"secret-{player_external_id}"


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("100")


@pytest.fixture
def player_provider(provider):
    """The simulator the player's account is opened at; None: the account is
    linked in the database only, and no simulator is started for it."""
    return provider


@pytest.fixture
def player(user, player_provider, player_external_id, player_secret, player_balance):
    """``user`` (who ``auth_client`` logs in), linked to the provider account
    ``player_external_id``, the simulator and the ledger both starting at
    ``player_balance``."""
    return _player_link(
        user,
        external_id=player_external_id,
        secret=player_secret,
        balance=player_balance,
        provider=player_provider,
    )


@pytest.fixture
def boss(client):
    """A superuser named ``boss``, logged in on ``client`` (the admin's test client)."""
    from accounts.tests.factories import UserFactory

    admin_user = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    return admin_user


# --- Hypothesis (the property-based tests) ------------------------------------------
# "ci", the default: a small, derandomized budget, so CI is fast and a failure
# reproduces on every run. HYPOTHESIS_PROFILE=thorough runs five times the examples,
# twice as long, with fresh random examples each run (failures are kept in
# .hypothesis/ and tried first next time): minutes, for local runs.
def _register_hypothesis_profiles() -> None:
    import os

    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings

    common: dict[str, Any] = {
        "deadline": None,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow],
    }
    hypothesis_settings.register_profile(
        "ci", max_examples=40, stateful_step_count=25, derandomize=True, **common
    )
    hypothesis_settings.register_profile(
        "thorough", max_examples=200, stateful_step_count=50, **common
    )
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_register_hypothesis_profiles()
