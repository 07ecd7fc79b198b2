"""The bet the domain puts in errors (``details.bet``) is the bet the endpoints show."""

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.tests.factories import ExternalApiAccountFactory
from betting.models import Bet
from betting.serializers import BetSerializer
from betting.wire import BET_FIELDS, bet_as_dict
from betting_site.api.renderers import json_dumps

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("completed", [True, False])
def test_bet_as_dict_gives_the_serializers_json(completed):
    account = ExternalApiAccountFactory()
    bet = Bet.objects.create(
        user=account.user,
        account=account,
        amount=Decimal("3.00"),
        status=Bet.Status.COMPLETED if completed else Bet.Status.PENDING,
        stake_mode=Bet.StakeMode.DEBIT_ON_LOSS,
        external_bet_id="wire-1" if completed else None,
        win_amount=Decimal("6.00") if completed else None,
        completed_at=timezone.now() if completed else None,
    )
    bet.refresh_from_db()
    wire = bet_as_dict(bet)
    assert tuple(wire) == BET_FIELDS
    assert json.loads(json_dumps(wire)) == json.loads(
        json_dumps(dict(BetSerializer(bet).data))
    )
