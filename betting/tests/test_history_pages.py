"""A player's history (``GET /api/bets``, ``GET /api/transactions``) by page
number, as the contract has it, and by cursor beside it: pages that follow each
other without gap or repeat, stable while new rows arrive, and errors in the
contract's envelope."""

import base64

import pytest
from django.db import connection

from accounts.tests.factories import ExternalApiAccountFactory
from betting.tests.factories import BetFactory
from betting_site.api import pagination
from wallet.models import Transaction
from wallet.tests.factories import EntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(user):
    """25 completed bets of ``user`` (who ``auth_client`` logs in), each with a
    ledger entry, and another player's bets in between."""
    account = ExternalApiAccountFactory(user=user)
    stranger = ExternalApiAccountFactory()
    EntryFactory(user=user, amount=1000)
    bets = []
    for _ in range(25):
        bets.append(BetFactory(account=account, completed=True, hold=False))
        BetFactory(account=stranger, completed=True, hold=False)
        EntryFactory(bet=bets[-1], type=Transaction.Type.BET_LOSS, amount=-3)
    return [bet.pk for bet in reversed(bets)]  # newest first


def walk(client, path: str, limit: int) -> tuple[list[int], list[dict]]:
    """Follow next_cursor from the first page to the end."""
    key = path.strip("/").split("/")[-1].split("?")[0]
    ids, paginations, cursor = [], [], ""
    while cursor is not None:
        body = client.get(f"/api/{key}?cursor={cursor}&limit={limit}").json()
        ids += [row["id"] for row in body[key]]
        paginations.append(body["pagination"])
        cursor = body["pagination"]["next_cursor"]
    return ids, paginations


def test_cursor_pages_are_contiguous_and_end_with_a_null_cursor(auth_client, history):
    ids, paginations = walk(auth_client, "bets", limit=10)
    assert ids == history
    assert [len(p) for p in paginations] == [3, 3, 3]
    assert paginations[0] == {
        "limit": 10,
        "next_cursor": paginations[0]["next_cursor"],
        "prev_cursor": None,
    }
    assert paginations[-1]["next_cursor"] is None


def test_cursor_pages_match_the_page_numbers(auth_client, history):
    by_cursor, _ = walk(auth_client, "transactions", limit=7)
    by_page = []
    for page in range(1, 5):
        body = auth_client.get(f"/api/transactions?page={page}&limit=7").json()
        by_page += [row["id"] for row in body["transactions"]]
    assert by_cursor == by_page
    assert len(by_cursor) == 26


def test_a_cursor_is_stable_while_new_bets_arrive(auth_client, history, user):
    first = auth_client.get("/api/bets?cursor=&limit=10").json()
    BetFactory(account=user.external_accounts.get(), completed=True, hold=False)
    cursor = first["pagination"]["next_cursor"]
    second = auth_client.get(f"/api/bets?cursor={cursor}&limit=10").json()
    assert [bet["id"] for bet in second["bets"]] == history[10:20]


def test_prev_cursor_goes_back_to_the_same_page(auth_client, history):
    first = auth_client.get("/api/bets?cursor=&limit=10").json()
    cursor = first["pagination"]["next_cursor"]
    second = auth_client.get(f"/api/bets?cursor={cursor}&limit=10").json()
    back = auth_client.get(
        f"/api/bets?cursor={second['pagination']['prev_cursor']}&limit=10"
    ).json()
    assert back["bets"] == first["bets"]
    assert back["pagination"]["prev_cursor"] is None
    assert back["pagination"]["next_cursor"] == cursor


def test_cursor_and_status_filter_together(auth_client, history, user):
    BetFactory(account=user.external_accounts.get(), placed=True, hold=False)
    body = auth_client.get("/api/bets?status=completed&cursor=&limit=10").json()
    assert [bet["id"] for bet in body["bets"]] == history[:10]
    cursor = body["pagination"]["next_cursor"]
    rest = auth_client.get(f"/api/bets?status=completed&cursor={cursor}&limit=100")
    assert [bet["id"] for bet in rest.json()["bets"]] == history[10:]


def test_cursor_pages_never_count(auth_client, history, django_assert_max_num_queries):
    cursor = pagination.encode_cursor("after", history[5])
    with django_assert_max_num_queries(6) as queries:
        body = auth_client.get(f"/api/bets?cursor={cursor}&limit=10").json()
    assert [bet["id"] for bet in body["bets"]] == history[6:16]
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "!!!",
        base64.urlsafe_b64encode(b'{"after": "3"}').decode(),
        base64.urlsafe_b64encode(b'{"after": -1}').decode(),
        base64.urlsafe_b64encode(b'{"after": true}').decode(),
        base64.urlsafe_b64encode(b'{"sideways": 3}').decode(),
        base64.urlsafe_b64encode(b'{"after": 3, "before": 9}').decode(),
        base64.urlsafe_b64encode(b"[3]").decode(),
    ],
)
def test_an_invalid_cursor_is_400_in_the_envelope(auth_client, history, cursor):
    for path in ("bets", "transactions"):
        response = auth_client.get(f"/api/{path}", {"cursor": cursor})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert "cursor" in error["details"]


def test_page_and_cursor_together_is_400(auth_client, history):
    response = auth_client.get("/api/bets?page=2&cursor=")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_page_numbers_answer_as_the_contract_says(auth_client, history):
    body = auth_client.get("/api/bets?page=3&limit=10").json()
    assert body["pagination"] == {"total": 25, "page": 3, "limit": 10, "pages": 3}
    assert [bet["id"] for bet in body["bets"]] == history[20:]


def test_deep_page_numbers_read_ids_first_and_answer_the_same(
    auth_client, history, monkeypatch, django_assert_max_num_queries
):
    """From DEFERRED_JOIN_FROM on, a page finds its ids first (the skipped rows
    only in the index), then reads its rows: the same rows in the same order."""
    shallow = auth_client.get("/api/bets?page=2&limit=10").json()
    monkeypatch.setattr(pagination, "DEFERRED_JOIN_FROM", 1)
    with django_assert_max_num_queries(7) as queries:
        deep = auth_client.get("/api/bets?page=2&limit=10").json()
    assert deep == shallow
    selects = [
        q["sql"] for q in queries.captured_queries if '"bets"."id" IN' in q["sql"]
    ]
    assert len(selects) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN")
@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (
            "SELECT id FROM bets WHERE user_id = %s AND status = 'completed' "
            "ORDER BY id DESC LIMIT 10",
            "bets_user_status_idx",
        ),
        (
            "SELECT count(*) FROM bets WHERE user_id = %s AND status = 'completed'",
            "bets_user_status_idx",
        ),
        (
            "SELECT id FROM transactions WHERE user_id = %s AND type = 'bet_loss' "
            "ORDER BY id DESC LIMIT 10",
            "transactions_user_type_idx",
        ),
    ],
)
def test_history_queries_read_one_index_range(history, user, sql, index):
    """A filtered history is a range of an index led by the player and the
    filter, never a scan of everyone's rows. Other players' rows (5,000 of each)
    make the player's few selective, as a real table does."""
    other = ExternalApiAccountFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bets (amount, status, win_amount, stake_mode, status_reason,"
            " needs_attention, result_in_doubt, created_at, updated_at, completed_at,"
            " account_id, user_id) SELECT 3, 'completed', 0, 'debit_on_loss', '',"
            " false, false, now(), now(), now(), %s, %s"
            " FROM generate_series(1, 5000)",
            [other.pk, other.user_id],
        )
        cursor.execute(
            "INSERT INTO transactions (type, amount, balance_before, balance_after,"
            " description, evidence, created_at, user_id) SELECT 'adjustment', 1,"
            " 0, 1, '', '{}', now(), %s FROM generate_series(1, 5000)",
            [other.user_id],
        )
        cursor.execute("ANALYZE bets, transactions")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}", [user.pk])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan
    assert "Seq Scan" not in plan
