"""A request's last transaction: left open by the service, committed by the request."""

import pytest
from django.db import DatabaseError, connection, transaction

from accounts.models import User
from betting_site.last_commit import (
    LastCommitFailed,
    commit_before_call,
    last_transaction,
    pending,
    request_last_commit,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _names() -> set[str]:
    return set(User.objects.values_list("username", flat=True))


def _new(name: str) -> None:
    User.objects.create(username=name)


def test_outside_a_request_it_commits_at_the_end_of_its_block():
    with last_transaction():
        _new("alone")
    assert not connection.in_atomic_block
    assert "alone" in _names()


def test_inside_a_request_later_writes_join_it_and_the_request_commits_once(
    monkeypatch,
):
    commits: list[str] = []
    real_commit = connection.commit
    monkeypatch.setattr(
        connection, "commit", lambda: (commits.append("c"), real_commit())[1]
    )
    with request_last_commit():
        with last_transaction():
            _new("result")
        assert pending()
        assert connection.in_atomic_block
        _new("api-log")  # joins the open transaction: no commit of its own
        assert commits == []
    assert commits == ["c"]
    assert not connection.in_atomic_block
    assert {"result", "api-log"} <= _names()


class _Refused(Exception):
    pass


def _refused_after_a_write() -> None:
    with last_transaction():
        _new("lost")
        raise _Refused


def test_a_block_that_raises_is_rolled_back_at_once():
    with request_last_commit():
        with pytest.raises(_Refused):
            _refused_after_a_write()
        assert not pending()
        assert not connection.in_atomic_block
    assert "lost" not in _names()


def test_inside_a_callers_transaction_it_is_that_transactions():
    with request_last_commit():
        with transaction.atomic():
            with last_transaction():
                _new("inner")
            assert not pending()  # the caller's block decides
        assert not connection.in_atomic_block
    assert "inner" in _names()


def test_a_provider_call_commits_what_is_open_first():
    with request_last_commit():
        with last_transaction():
            _new("before-the-call")
        commit_before_call()
        assert not pending()
        assert not connection.in_atomic_block
        assert "before-the-call" in _names()


def test_a_provider_call_inside_a_block_of_the_open_transaction_is_refused():
    with request_last_commit():
        with last_transaction():
            _new("kept")
        with transaction.atomic(), pytest.raises(RuntimeError):
            commit_before_call()
        assert pending()  # still committed by the request, with what it holds
    assert "kept" in _names()


def test_a_failed_last_commit_is_service_unavailable(monkeypatch):
    def broken() -> None:
        raise DatabaseError("connection lost")

    def request() -> None:
        with request_last_commit():
            with last_transaction():
                _new("unsaved")
            monkeypatch.setattr(connection, "commit", broken)

    with pytest.raises(LastCommitFailed) as failed:
        request()
    monkeypatch.undo()
    assert failed.value.http_status == 503
    assert failed.value.code == "SERVICE_UNAVAILABLE"
    assert "Retry-After" in failed.value.headers
    connection.close()  # the failed commit left the connection unusable
    assert "unsaved" not in _names()
