"""The bet the domain puts in errors (``details.bet``) is the bet the endpoints show."""

import json
from decimal import Decimal

import pytest

from betting.serializers import BetSerializer
from betting.tests.factories import BetFactory
from betting.wire import BET_FIELDS, bet_as_dict
from betting_site.api.renderers import json_dumps

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("completed", [True, False])
def test_bet_as_dict_gives_the_serializers_json(completed):
    if completed:
        bet = BetFactory(
            completed=True, external_bet_id="wire-1", win_amount=Decimal("6.00")
        )
    else:  # its player has no balance: no stake held (the JSON is the subject)
        bet = BetFactory(hold=False)
    bet.refresh_from_db()
    wire = bet_as_dict(bet)
    assert tuple(wire) == BET_FIELDS
    assert json.loads(json_dumps(wire)) == json.loads(
        json_dumps(dict(BetSerializer(bet).data))
    )
