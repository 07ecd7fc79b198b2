"""``POST /api/bets`` cut short by the database at each phase of a bet.

The database goes away at one of the lifecycle's checkpoints (every statement
after it fails as PostgreSQL's would). Whatever the phase:

- the answer is 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``; once the bet's
  row was committed it carries the bet, as last committed, in ``details.bet``;
- once the database answers again the process's keeper frees the lease and
  unlocks the ``Idempotency-Key`` (no wait for a TTL);
- a retry with the key answers that bet and places no second one;
- ``settle_pending`` finishes the bet, and the ledger equals the provider.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from django.db import OperationalError, connection

from betting import keeper
from betting.models import Bet, IdempotencyKey, ProviderLease
from betting.services import bet_place
from betting.services.checkpoints import Checkpoint, on_checkpoint
from betting_site.testing import database_down, run_command
from wallet.models import UserBalance

pytestmark = [pytest.mark.django_db(transaction=True)]

KEY = "retry-after-the-outage-0001"


@contextmanager
def database_down_at(point: Checkpoint | None) -> Iterator[None]:
    """Inside the block the database goes away at ``point`` (None: from the
    start) and stays away until the block ends."""
    with ExitStack() as down:

        def hook(reached: Checkpoint) -> None:
            if reached == point:
                down.enter_context(database_down())

        if point is None:
            down.enter_context(database_down())
        with on_checkpoint(hook):
            yield


def _bet(auth_client, key: str = KEY):
    return auth_client.post(
        "/api/bets", {"amount": 3}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def _provider_bets(provider) -> list[dict]:
    return provider.snapshot()["bets"]


def _assert_settled_and_mirrored(player, provider) -> None:
    code, output = run_command("settle_pending")
    assert code == 0, output
    assert not Bet.objects.filter(user=player, status__in=Bet.OPEN_STATUSES).exists()
    external_id = player.external_accounts.get(is_active=True).external_user_id
    wallet = UserBalance.objects.get(user=player)
    assert wallet.balance == provider.balance_of(external_id)
    assert wallet.held == 0
    code, output = run_command("check_ledger")
    assert code == 0, output


# After each phase: committed so far, and sent to the provider so far.
PHASES = {
    "recorded": ("pending", False),
    "placed": ("pending", False),
    "placed_recorded": ("pending", True),
    "result": ("pending", True),
}


@pytest.mark.parametrize("point", list(PHASES))
def test_a_bet_cut_short_answers_503_with_the_bet_and_keeps_its_key(
    auth_client, player, provider, stake_mode, point
):
    status, has_external_id = PHASES[point]

    with database_down_at(point):
        response = _bet(auth_client)

    assert response.status_code == 503, response.content
    assert response["Retry-After"]
    error = response.json()["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE"
    bet = Bet.objects.get(user=player)
    assert error["details"]["bet"]["id"] == bet.pk
    assert error["details"]["bet"]["status"] == status
    assert (error["details"]["bet"]["external_bet_id"] is not None) == has_external_id

    # The database is back: the keeper pays what the request could not write.
    assert keeper.owed(), "the release and the key are owed"
    keeper.beat()
    assert keeper.owed() == []
    assert ProviderLease.objects.get(user=player).holder == ""
    record = IdempotencyKey.objects.get(key=KEY)
    assert record.locked_until is None
    assert record.status_code is None

    # A retry with the key answers that bet: never a second one.
    retry = _bet(auth_client)
    assert retry.status_code == 201, retry.content
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == bet.pk
    assert Bet.objects.filter(user=player).count() == 1
    assert len(_provider_bets(provider)) <= 1

    _assert_settled_and_mirrored(player, provider)
    # The player bets again at once: no lease outlived the outage.
    after = _bet(auth_client, key="the-next-bet-0002")
    assert after.status_code == 201, after.content
    assert after.json()["status"] == "completed"


def test_the_database_down_from_the_start_leaves_nothing(auth_client, player, provider):
    with database_down_at(None):
        response = _bet(auth_client)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert response.json()["error"]["details"] is None
    assert not Bet.objects.exists()
    assert not IdempotencyKey.objects.exists()
    assert _provider_bets(provider) == []

    retry = _bet(auth_client)
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry


def test_without_a_key_the_503_still_carries_the_bet_and_frees_the_lease(
    auth_client, player, provider
):
    with database_down_at("placed_recorded"):
        response = auth_client.post("/api/bets", {"amount": 3}, format="json")

    assert response.status_code == 503
    bet = Bet.objects.get(user=player)
    assert response.json()["error"]["details"]["bet"]["id"] == bet.pk
    keeper.beat()
    assert ProviderLease.objects.get(user=player).holder == ""
    _assert_settled_and_mirrored(player, provider)


def test_a_failed_last_commit_answers_the_bet_and_its_key_is_settled(
    auth_client, player, provider, stake_mode, monkeypatch
):
    """The booking, the key's stored answer and the log rows share the request's
    last commit; when it fails they are lost, the bet is pending as committed
    before POST /win, and the key is unlocked once the database answers."""
    real_commit = connection.commit
    failing = {"armed": False}

    def commit():
        if failing["armed"]:
            failing["armed"] = False
            raise OperationalError("server closed the connection unexpectedly")
        real_commit()

    monkeypatch.setattr(connection, "commit", commit)

    def arm(point: Checkpoint) -> None:
        if point == "result":
            failing["armed"] = True

    with on_checkpoint(arm):
        response = _bet(auth_client)

    assert response.status_code == 503, response.content
    bet = Bet.objects.get(user=player)
    details = response.json()["error"]["details"]
    assert details["bet"]["id"] == bet.pk
    assert details["bet"]["status"] == "pending"
    assert details["bet"]["external_bet_id"] is not None
    assert bet.status == Bet.Status.PENDING  # the booking was lost with the commit

    keeper.beat()
    assert IdempotencyKey.objects.get(key=KEY).locked_until is None
    retry = _bet(auth_client)
    assert retry.status_code == 201
    assert retry.json()["id"] == bet.pk
    _assert_settled_and_mirrored(player, provider)


def test_the_result_endpoint_cut_short_after_post_win_leaves_it_resolvable(
    auth_client, player, provider, stake_mode
):
    """``GET /api/bets/result/{id}`` resolving a pending bet: the database goes
    away once ``POST /win`` answered. 503, the lease freed once it is back, and
    the resolution rules settle the bet from the provider's balance."""
    placed = bet_place(user=player, amount=3, settle=False).bet  # POST /win next
    assert placed.status == Bet.Status.PENDING
    bet_id = placed.pk

    with database_down_at("result"):
        response = auth_client.get(f"/api/bets/result/{bet_id}")

    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    keeper.beat()
    assert ProviderLease.objects.get(user=player).holder == ""
    _assert_settled_and_mirrored(player, provider)
    assert Bet.objects.get(pk=bet_id).status == Bet.Status.COMPLETED
