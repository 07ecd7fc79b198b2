from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from betting_site.api.errors import ValidationFailed
from betting_site.api.pagination import paginate
from betting_site.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from wallet.models import Transaction
from wallet.selectors import transactions_of
from wallet.services import balance_sync


def _money(**kwargs):
    return serializers.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        coerce_to_string=False,
        **kwargs,
    )


class BalanceApi(APIView):
    class OutputSerializer(serializers.Serializer):
        balance = _money()
        available = _money()
        external_balance = _money(allow_null=True)
        last_updated = serializers.DateTimeField()
        last_checked_at = serializers.DateTimeField(allow_null=True)
        in_sync = serializers.BooleanField()

    def get(self, request):
        wallet, provider_answered = balance_sync(user=request.user)
        data = {
            "balance": wallet.balance,
            "available": wallet.available,
            "external_balance": wallet.external_balance,
            "last_updated": wallet.updated_at,
            "last_checked_at": wallet.last_checked_at,
            "in_sync": provider_answered and wallet.external_balance == wallet.balance,
        }
        return Response(self.OutputSerializer(data).data)


class TransactionListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        amount = _money()
        balance_before = _money()
        balance_after = _money()

        class Meta:
            model = Transaction
            fields = [
                "id",
                "type",
                "amount",
                "balance_before",
                "balance_after",
                "description",
                "bet_id",
                "created_at",
            ]

    def get(self, request):
        entry_type = request.query_params.get("type")
        if entry_type is not None and entry_type not in Transaction.Type.values:
            raise ValidationFailed(
                details={"type": [f"One of: {', '.join(Transaction.Type.values)}"]}
            )
        page = paginate(
            transactions_of(user=request.user, entry_type=entry_type),
            request.query_params,
        )
        return Response(
            page.as_dict(
                "transactions", self.OutputSerializer(page.items, many=True).data
            )
        )
