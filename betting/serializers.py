from rest_framework import serializers

from betting.models import Bet
from betting_site.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        coerce_to_string=False,
        **kwargs,
    )


class BetSerializer(serializers.ModelSerializer):
    """The contract's bet: money as exact JSON numbers, the server's own id."""

    amount = _money()
    win_amount = _money(allow_null=True)

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
