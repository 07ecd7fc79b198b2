from typing import Any, cast

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from betting_site.api.fields import money_field
from betting_site.api.pagination import choice_param, paginate
from betting_site.api.schema import (
    AUTHED,
    PAGINATION_PARAMETERS,
    TAG_WALLET,
    USER_AUTH,
    api_headers,
    error_responses,
    list_pagination,
)
from wallet.models import Transaction
from wallet.selectors import transactions_of


class TransactionListApi(APIView):
    @extend_schema_serializer(component_name="Transaction")
    class OutputSerializer(serializers.ModelSerializer[Transaction]):
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
                    "pagination": list_pagination(),
                },
            ),
            **error_responses(400, *AUTHED),
        },
    )
    def get(self, request: Request) -> Response:
        entry_type = choice_param(request.query_params, "type", Transaction.Type.values)
        page = paginate(
            # IsAuthenticated (the default permission): the caller is a user.
            transactions_of(user=cast(User, request.user), entry_type=entry_type),
            request.query_params,
        )
        return Response(
            page.as_dict(
                "transactions",
                # many=True makes a ListSerializer: its data is a list.
                cast(list[Any], self.OutputSerializer(page.items, many=True).data),
            )
        )
