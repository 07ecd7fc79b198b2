from rest_framework import serializers

from betting.models import Bet
from betting.wire import BET_FIELDS
from betting_site.api.fields import money_field


class BetSerializer(serializers.ModelSerializer[Bet]):
    """The contract's bet: money as exact JSON numbers, the server's own id."""

    amount = money_field()
    win_amount = money_field(allow_null=True)

    class Meta:
        model = Bet
        fields = list(BET_FIELDS)
        read_only_fields = fields
