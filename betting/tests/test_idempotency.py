from decimal import Decimal

import pytest

from betting.idempotency import canonical_hash
from betting.models import Bet, IdempotencyKey
from betting.tests.factories import BetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def player_provider(provider, stake_mode):
    """Every test with a player runs in both stake modes."""
    return provider


@pytest.fixture
def player_balance() -> Decimal:
    return Decimal("50")


def post(client, body, key):
    return client.post(
        "/api/bets",
        data=body,
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


def test_same_key_same_body_replays_the_first_response(auth_client, player, provider):
    first = post(auth_client, '{"amount": 3}', "key-0000001")
    second = post(auth_client, '{"amount": 3.0}', "key-0000001")
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Bet.objects.count() == 1
    assert provider.snapshot()["calls"]["POST /bet"] == 1


def test_same_key_other_body_is_422(auth_client, player):
    post(auth_client, '{"amount": 3}', "key-0000002")
    response = post(auth_client, '{"amount": 4}', "key-0000002")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert Bet.objects.count() == 1


def test_keys_are_scoped_to_the_caller(auth_client, player, api_client, password):
    from accounts.tests.factories import UserFactory

    post(auth_client, '{"amount": 3}', "key-0000003")
    other = UserFactory(password=password)
    token = api_client.post(
        "/api/auth/login",
        {"username": other.username, "password": password},
        format="json",
    ).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = post(api_client, '{"amount": 3}', "key-0000003")
    assert response.json()["error"]["code"] == "ACCOUNT_NOT_LINKED"  # ran, not replayed


def test_a_validation_error_leaves_the_key_free(auth_client, player):
    assert post(auth_client, '{"amount": 9}', "key-0000004").status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert post(auth_client, '{"amount": 9}', "key-0000004").status_code == 400


def test_a_503_leaves_the_key_free_for_a_retry(auth_client, player, settings, provider):
    url = settings.EXTERNAL_API_URL
    settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
    assert post(auth_client, '{"amount": 3}', "key-0000005").status_code == 503
    settings.EXTERNAL_API_URL = url
    retry = post(auth_client, '{"amount": 3}', "key-0000005")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry


def test_a_502_with_a_failed_bet_is_stored_and_replayed(auth_client, player, provider):
    provider.add_fault("/bet", "error_before", method="POST", status=400)
    first = post(auth_client, '{"amount": 3}', "key-0000006")
    assert first.status_code == 502
    second = post(auth_client, '{"amount": 3}', "key-0000006")
    assert second.status_code == 502
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert provider.snapshot()["calls"]["POST /bet"] == 1


def test_a_running_request_makes_the_key_in_use(auth_client, player, user):
    from datetime import timedelta

    from django.utils import timezone

    IdempotencyKey.objects.create(
        caller=f"user:{user.pk}",
        user=user,
        key="key-0000007",
        endpoint="POST /api/bets",
        request_hash=canonical_hash(endpoint="POST /api/bets", body={"amount": 3}),
        locked_until=timezone.now() + timedelta(seconds=60),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    response = post(auth_client, '{"amount": 3}', "key-0000007")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert response["Retry-After"]


def test_a_key_whose_request_died_answers_the_bet_state(auth_client, player, user):
    from datetime import timedelta

    from django.utils import timezone

    bet = BetFactory(account=user.external_accounts.get())
    IdempotencyKey.objects.create(
        caller=f"user:{user.pk}",
        user=user,
        key="key-0000008",
        endpoint="POST /api/bets",
        request_hash=canonical_hash(endpoint="POST /api/bets", body={"amount": 3}),
        bet=bet,
        locked_until=timezone.now() - timedelta(seconds=1),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    response = post(auth_client, '{"amount": 3}', "key-0000008")
    assert response.status_code == 201
    assert response.json()["id"] == bet.pk
    assert response.json()["status"] == "pending"
    assert response["Idempotent-Replayed"] == "true"
    assert Bet.objects.count() == 1


def killed_once_post_bet_was_sent(auth_client, key: str) -> None:
    """``POST /api/bets`` with ``key``, its process killed during the provider
    call, once POST /bet reached the provider."""
    from provider.testing import ScriptedTransport
    from provider.transport import default_transport, transport_installed

    class Killed(BaseException):  # not an Exception: nothing catches it
        pass

    dying = ScriptedTransport(passthrough=default_transport())
    dying.add("POST", "/bet", error=Killed(), sent=True)
    with transport_installed(dying), pytest.raises(Killed):
        post(auth_client, '{"amount": 3}', key)


def test_a_request_killed_after_recording_its_bet_is_answered_from_the_bet(
    auth_client, player, user, provider
):
    """The key is linked in the bet's own insert: a process killed right after it
    (here: during the provider call, once POST /bet reached the provider, before
    its answer or anything else is written) leaves a key whose retry answers that
    bet instead of placing another."""
    from datetime import timedelta

    from django.utils import timezone

    killed_once_post_bet_was_sent(auth_client, "key-0000009")
    assert provider.snapshot()["calls"]["POST /bet"] == 1
    record = IdempotencyKey.objects.get(key="key-0000009")
    bet = Bet.objects.get()
    assert bet.idempotency_key_id == record.pk
    assert record.bet_id is None  # its response was never stored
    assert record.status_code is None
    IdempotencyKey.objects.filter(pk=record.pk).update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    response = post(auth_client, '{"amount": 3}', "key-0000009")
    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"
    assert response.json()["id"] == bet.pk
    assert Bet.objects.count() == 1
    assert provider.snapshot()["calls"]["POST /bet"] == 1


def test_a_stored_response_names_its_bet(auth_client, player):
    response = post(auth_client, '{"amount": 3}', "key-0000010")
    assert response.status_code == 201
    record = IdempotencyKey.objects.get(key="key-0000010")
    assert record.bet_id == response.json()["id"]
    assert Bet.objects.get().idempotency_key_id == record.pk


@pytest.mark.parametrize("key", ["short", "x" * 256, "has space 123", "ключ-12345"])
def test_malformed_keys_are_400(auth_client, player, key):
    response = auth_client.post(
        "/api/bets",
        data='{"amount": 3}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 400
    assert not Bet.objects.exists()


def test_canonical_hash_treats_equal_numbers_alike_and_strings_apart():
    h = lambda body: canonical_hash(endpoint="e", body=body)  # noqa: E731
    assert (
        h({"amount": 3})
        == h({"amount": Decimal("3.0")})
        == h({"amount": Decimal("3.00")})
    )
    assert h({"amount": 3}) != h({"amount": "3"})
    assert h({"a": 1, "b": 2}) == h({"b": 2, "a": 1})


def test_a_retry_of_a_killed_request_waits_only_for_its_lease(
    auth_client, player, user, provider
):
    """The key's own hold is 120 s, but the bet's lease says sooner whether its
    request is alive: 409 while the lease is held and alive, the bet's state as
    soon as its holder stops showing life (a process killed)."""
    from datetime import timedelta

    from django.utils import timezone

    from betting.models import ProviderLease

    killed_once_post_bet_was_sent(auth_client, "key-0000010")
    bet = Bet.objects.get()
    # The process died holding the lease (nothing released it).
    soon = timezone.now() + timedelta(seconds=30)
    ProviderLease.objects.filter(user=user).update(
        holder="the-dead-worker", expires_at=soon, alive_until=soon
    )
    assert IdempotencyKey.objects.get(key="key-0000010").locked_until > timezone.now()

    busy = post(auth_client, '{"amount": 3}', "key-0000010")
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_USE"

    ProviderLease.objects.filter(user=user).update(
        alive_until=timezone.now() - timedelta(seconds=1)
    )
    response = post(auth_client, '{"amount": 3}', "key-0000010")
    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"
    assert response.json()["id"] == bet.pk
    assert Bet.objects.count() == 1
