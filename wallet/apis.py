from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from betting_site.api.fields import money_field
from betting_site.api.pagination import choice_param, paginate
from betting_site.api.schema import (
    AUTHED,
    PAGINATION_PARAMETERS,
    TAG_WALLET,
    USER_AUTH,
    PaginationSerializer,
    api_headers,
    error_responses,
)
from wallet.models import Transaction
from wallet.selectors import transactions_of
from wallet.services import balance_sync


class BalanceApi(APIView):
    @extend_schema_serializer(component_name="Balance")
    class OutputSerializer(serializers.Serializer):
        balance = money_field()
        available = money_field()
        external_balance = money_field(allow_null=True)
        last_updated = serializers.DateTimeField()
        last_checked_at = serializers.DateTimeField(allow_null=True)
        in_sync = serializers.BooleanField()

    @extend_schema(
        operation_id="balance_retrieve",
        tags=[TAG_WALLET],
        summary="The caller's balance",
        description="balance is the ledger's; available is balance less the stakes "
        "held for unsettled bets. Re-reads the provider when the last check is "
        "older than BALANCE_SYNC_TTL; if the provider is down, answers the local "
        "figures with in_sync false.",
        auth=USER_AUTH,
        parameters=api_headers([200, *AUTHED]),
        responses={200: OutputSerializer, **error_responses(*AUTHED)},
    )
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
    @extend_schema_serializer(component_name="Transaction")
    class OutputSerializer(serializers.ModelSerializer):
        amount = money_field()
        balance_before = money_field()
        balance_after = money_field()

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

    @extend_schema(
        operation_id="transactions_list",
        tags=[TAG_WALLET],
        summary="The caller's ledger entries, newest first",
        description="Amounts are signed.",
        auth=USER_AUTH,
        parameters=[
            *PAGINATION_PARAMETERS,
            OpenApiParameter(
                name="type",
                type=str,
                location=OpenApiParameter.QUERY,
                required=False,
                enum=Transaction.Type.values,
                description="Only entries of this type.",
            ),
            *api_headers([200, 400, *AUTHED]),
        ],
        responses={
            200: inline_serializer(
                name="TransactionList",
                fields={
                    "transactions": OutputSerializer(many=True),
                    "pagination": PaginationSerializer(),
                },
            ),
            **error_responses(400, *AUTHED),
        },
    )
    def get(self, request):
        entry_type = choice_param(request.query_params, "type", Transaction.Type.values)
        page = paginate(
            transactions_of(user=request.user, entry_type=entry_type),
            request.query_params,
        )
        return Response(
            page.as_dict(
                "transactions", self.OutputSerializer(page.items, many=True).data
            )
        )
