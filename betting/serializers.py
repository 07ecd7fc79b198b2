from rest_framework import serializers

from betting.models import Bet
from betting_site.api.fields import money_field


class BetSerializer(serializers.ModelSerializer):
    """The contract's bet: money as exact JSON numbers, the server's own id."""

    amount = money_field()
    win_amount = money_field(allow_null=True)

    class Meta:
        model = Bet
        fields = [
            "id",
            "external_bet_id",
            "amount",
            "status",
            "win_amount",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields


def bet_as_dict(bet: Bet) -> dict:
    return dict(BetSerializer(bet).data)
