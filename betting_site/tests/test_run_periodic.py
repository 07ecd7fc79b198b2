import io
import logging
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from betting.models import Bet
from betting.services import bet_place
from betting_site.testing import database_down

pytestmark = pytest.mark.django_db


def test_once_runs_every_task_and_settles_open_bets(provider, make_player):
    user = make_player("9401", balance=Decimal("20"))
    provider.add_fault("/win", "error_after", method="POST", status=500)
    bet = bet_place(user=user, amount=2).bet
    assert bet.status == "pending"
    out = io.StringIO()
    call_command("run_periodic", "--once", stdout=out)
    text = out.getvalue()
    for task in ("settle_pending", "reconcile", "prune_logs --older-than 30d"):
        assert task in text
    assert "3 task runs, 0 failed" in text
    assert Bet.objects.get(pk=bet.pk).status == "completed"
    assert cache.get("run_periodic:lock") is None


def test_a_failing_task_is_reported_and_the_others_still_run(
    provider, make_player, settings
):
    make_player("9402", balance=Decimal("10"))
    provider.set_balance("9402", Decimal("20"))  # drift
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 task"):
        call_command("run_periodic", "--once", stdout=out, stderr=io.StringIO())
    assert "prune_logs" in out.getvalue()


def test_a_second_scheduler_does_not_run(db):
    cache.set("run_periodic:lock", "someone-else", timeout=60)
    with pytest.raises(CommandError, match="holds the lock"):
        call_command("run_periodic", "--once", stdout=io.StringIO())


def test_bad_intervals_are_refused(db):
    with pytest.raises(CommandError, match="invalid duration"):
        call_command("run_periodic", "--once", "--settle-every", "often")


@pytest.mark.django_db(transaction=True)
def test_the_database_unreachable_fails_the_tasks_in_one_line_each(caplog):
    """Not a crash: each task is reported in one line, no traceback, and runs
    again at its next turn; the scheduler itself keeps going."""
    out, err = io.StringIO(), io.StringIO()
    with (
        caplog.at_level(logging.WARNING),
        database_down(),
        pytest.raises(CommandError, match="3 task"),
    ):
        call_command("run_periodic", "--once", stdout=out, stderr=err)
    assert err.getvalue().count("is unreachable; the next run tries again") == 3
    assert not [r for r in caplog.records if r.exc_info]


def test_the_scheduler_runs_without_its_lock_while_the_cache_is_down(
    db, monkeypatch, caplog
):
    def down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    for name in ("add", "get", "set", "delete"):
        monkeypatch.setattr(cache, name, down)
    out = io.StringIO()
    with caplog.at_level(logging.WARNING):
        call_command("run_periodic", "--once", stdout=out)
    assert "3 task runs, 0 failed" in out.getvalue()
    assert "running without the one-scheduler lock" in caplog.text
