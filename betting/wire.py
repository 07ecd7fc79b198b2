"""A bet as the contract shows it, built without DRF.

Domain errors carry the bet in ``details.bet`` and the idempotency replay stores
it, so the domain needs this shape without importing the HTTP layer. The bet
endpoints' ``BetSerializer`` lists the same fields; a test checks that both give
the same JSON.
"""

from datetime import UTC, datetime
from typing import Any

from betting.models import Bet

BET_FIELDS = (
    "id",
    "external_bet_id",
    "amount",
    "status",
    "win_amount",
    "created_at",
    "completed_at",
)


def _timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as DRF writes datetimes."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def bet_as_dict(bet: Bet) -> dict[str, Any]:
    """The contract's bet: money as ``Decimal`` (written as exact JSON numbers)."""
    return {
        "id": bet.pk,
        "external_bet_id": bet.external_bet_id,
        "amount": bet.amount,
        "status": bet.status,
        "win_amount": bet.win_amount,
        "created_at": _timestamp(bet.created_at),
        "completed_at": _timestamp(bet.completed_at),
    }
