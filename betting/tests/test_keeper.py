"""No lease outlives its holder: the keeper keeps a living holder's lease alive,
a dead holder's lease is taken ``PROVIDER_LEASE_ALIVE`` after it stopped, and a
release the database could not take is paid as soon as it answers."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from betting import keeper
from betting.lease import LeaseLost, lease_held, lease_try_claim
from betting.models import ProviderLease
from betting_site.testing import database_down

pytestmark = pytest.mark.django_db


def _row(user) -> ProviderLease:
    return ProviderLease.objects.get(user=user)


def _holder_stopped(user, seconds_ago: float) -> None:
    """Its holder showed life last ``seconds_ago`` before its alive_until ran out."""
    past = timezone.now() - timedelta(seconds=seconds_ago)
    ProviderLease.objects.filter(user=user).update(alive_until=past)


def test_a_lease_whose_holder_stopped_showing_life_is_taken(user):
    dead = lease_try_claim(user_id=user.pk, operation="a worker that died")
    assert dead is not None
    assert lease_try_claim(user_id=user.pk, operation="next bet") is None

    _holder_stopped(user, seconds_ago=0.1)

    taken = lease_try_claim(user_id=user.pk, operation="next bet")
    assert taken is not None
    assert _row(user).holder == taken.holder
    with pytest.raises(LeaseLost):
        dead.renew(force=True)


def test_the_keeper_keeps_a_held_lease_alive(user, settings):
    lease = lease_try_claim(user_id=user.pk, operation="a long call")
    assert lease is not None
    with lease_held(lease):
        first = _row(user).alive_until
        lease.alive_written -= settings.LEASE_KEEPER_INTERVAL  # a beat has passed
        keeper.beat()
        kept = _row(user).alive_until
        assert kept > first
        # Nothing due yet: the keeper writes each lease at most once a beat.
        keeper.beat()
        assert _row(user).alive_until == kept
    assert keeper.held_count() == 0
    assert _row(user).holder == ""


def test_a_short_bet_costs_the_keeper_no_write(user, django_assert_num_queries):
    lease = lease_try_claim(user_id=user.pk, operation="a fast bet")
    assert lease is not None
    with lease_held(lease), django_assert_num_queries(0):
        keeper.beat()


def test_the_keeper_finds_a_lease_taken_and_the_holder_stops(user):
    lease = lease_try_claim(user_id=user.pk, operation="a slow call")
    assert lease is not None
    keeper.hold(lease)
    _holder_stopped(user, seconds_ago=0.1)
    assert lease_try_claim(user_id=user.pk, operation="another") is not None
    lease.alive_written -= 10

    keeper.beat()

    assert lease.lost
    with pytest.raises(LeaseLost):
        lease.renew()  # before its next provider call: nothing is sent


def test_a_holder_whose_keeper_is_late_shows_life_itself_before_a_call(
    user, settings, django_assert_num_queries
):
    lease = lease_try_claim(user_id=user.pk, operation="bet")
    assert lease is not None
    with django_assert_num_queries(0):
        lease.renew()  # fresh: nothing to write
    before = _row(user).alive_until
    lease.alive_written -= settings.PROVIDER_LEASE_ALIVE / 2

    with django_assert_num_queries(1):
        lease.renew()
    assert _row(user).alive_until > before


@pytest.mark.django_db(transaction=True)
def test_a_release_the_database_refused_is_paid_when_it_answers(user):
    lease = lease_try_claim(user_id=user.pk, operation="bet")
    assert lease is not None
    with database_down():
        lease.release()
        assert keeper.owed() == [f"release the provider lease of user {user.pk}"]
        keeper.beat()  # still down: kept
        assert len(keeper.owed()) == 1
    assert _row(user).holder == lease.holder  # not released yet

    keeper.beat()

    assert keeper.owed() == []
    assert _row(user).holder == ""
    assert lease_try_claim(user_id=user.pk, operation="next bet") is not None


@pytest.mark.postgres
def test_after_a_server_restart_no_lease_is_taken_for_its_holder_being_silent(
    user, settings
):
    """Every keeper stopped while PostgreSQL was down: each gets
    ``PROVIDER_LEASE_ALIVE`` after the server started to show life again. Played
    with an ALIVE longer than this server has been up."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now() - pg_postmaster_start_time()")
        up = cursor.fetchone()[0].total_seconds()
    lease = lease_try_claim(user_id=user.pk, operation="held across the restart")
    assert lease is not None
    _holder_stopped(user, seconds_ago=1)

    settings.PROVIDER_LEASE_ALIVE = up + 3600
    assert lease_try_claim(user_id=user.pk, operation="too early") is None
    settings.PROVIDER_LEASE_ALIVE = 4.0
    assert lease_try_claim(user_id=user.pk, operation="after the grace") is not None


@pytest.mark.django_db(transaction=True)
def test_the_keeper_thread_keeps_a_lease_alive_through_a_long_call(user, settings):
    settings.LEASE_KEEPER_THREAD = True
    settings.LEASE_KEEPER_INTERVAL = 0.1
    settings.PROVIDER_LEASE_ALIVE = 0.5
    lease = lease_try_claim(user_id=user.pk, operation="a long provider call")
    assert lease is not None
    with lease_held(lease):
        time.sleep(1.0)  # two ALIVE periods, the foreground writes nothing
        assert lease_try_claim(user_id=user.pk, operation="another") is None
        assert _row(user).alive_until > timezone.now()
    settings.LEASE_KEEPER_THREAD = False
    threads = [t for t in threading.enumerate() if t.name == "lease-keeper"]
    for thread in threads:
        thread.join(timeout=2)
    assert not any(t.is_alive() for t in threads)
