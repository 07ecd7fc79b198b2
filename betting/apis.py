from collections.abc import Callable
from typing import Any, cast

from django.http import HttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import DeferredJWTAuthentication
from accounts.callers import caller_verified
from accounts.models import User
from betting import selectors, services
from betting.balances import balance_sync
from betting.exceptions import BetInProgress
from betting.idempotency import idempotent
from betting.models import Bet
from betting.serializers import BetSerializer
from betting_site.api.fields import money_field
from betting_site.api.pagination import choice_param, paginate
from betting_site.api.schema import (
    AUTHED,
    BODY,
    IDEMPOTENT,
    PAGINATION_PARAMETERS,
    PROVIDER,
    TAG_BETS,
    TAG_WALLET,
    USER_AUTH,
    api_headers,
    bet_id_path,
    error_responses,
    idempotent_headers,
    list_pagination,
)
from betting_site.errors import ValidationFailed
from provider.client import ProviderClient


class BetListCreateApi(APIView):
    """``POST /api/bets`` places a bet (the full cycle); ``GET`` lists the caller's.

    ``POST`` checks the caller's row and session in the bet's first statement, not
    at the door (``accounts.callers``): one commit less per bet."""

    def get_authenticators(self) -> list[Any]:
        request = getattr(self, "request", None)  # None while the schema is built
        if request is not None and request.method == "POST":
            return [DeferredJWTAuthentication()]
        return super().get_authenticators()

    @extend_schema(
        operation_id="bets_create",
        tags=[TAG_BETS],
        summary="Place a bet",
        description="Places the bet with the provider and fetches its result: 201 "
        "with a completed bet after the full cycle, or pending/unknown if the "
        "provider failed after it may have taken the bet. Refused before anything "
        "reached the provider: 400 VALIDATION_ERROR or INSUFFICIENT_BALANCE, 403 "
        "ACCOUNT_NOT_LINKED, 503 PROVIDER_UNAVAILABLE. The provider's definite "
        "refusal: 502 PROVIDER_ERROR with the failed bet in details.bet. 409 "
        "BET_IN_PROGRESS or IDEMPOTENCY_KEY_IN_USE.",
        auth=USER_AUTH,
        request=inline_serializer(
            name="BetCreateRequest",
            fields={
                "amount": serializers.IntegerField(
                    help_text="A JSON integer within the limits (3.0 is 3; 2.5, "
                    '"3", true and null are 400).'
                )
            },
        ),
        responses={
            201: BetSerializer,
            **error_responses(
                *BODY,
                *AUTHED,
                403,
                *IDEMPOTENT,
                *PROVIDER,
                e400="VALIDATION_ERROR or INSUFFICIENT_BALANCE",
                e403="ACCOUNT_NOT_LINKED: no active provider account",
                e409="BET_IN_PROGRESS or IDEMPOTENCY_KEY_IN_USE",
                e502="PROVIDER_ERROR: the provider refused; the failed bet is in "
                "details.bet",
                e503="PROVIDER_UNAVAILABLE: nothing reached the provider",
            ),
        },
        parameters=idempotent_headers(
            [201, *BODY, *AUTHED, 403, *IDEMPOTENT, *PROVIDER], replayable=[201, 502]
        ),
    )
    def post(self, request: Request) -> HttpResponse:
        if not isinstance(request.data, dict) or "amount" not in request.data:
            raise ValidationFailed(details={"amount": ["This field is required."]})

        def caller_check() -> None:
            # A key is claimed for a caller whose session was checked.
            request.user = caller_verified(cast(User, request.user))

        def place(on_open: Callable[[Bet], None] | None) -> Response:
            placed = services.bet_place(
                # IsAuthenticated (the default permission): the caller is a user,
                # its session checked by bet_place's first statement.
                user=cast(User, request.user),
                amount=cast(dict[str, Any], request.data)["amount"],  # checked above
                on_open=on_open,
            )
            return Response(
                BetSerializer(placed.bet).data, status=status.HTTP_201_CREATED
            )

        return idempotent(
            request, endpoint="POST /api/bets", run=place, claim_with=caller_check
        )

    @extend_schema(
        operation_id="bets_list",
        tags=[TAG_BETS],
        summary="The caller's bets, newest first",
        description="Paginated; optionally only one status.",
        auth=USER_AUTH,
        parameters=[
            *PAGINATION_PARAMETERS,
            OpenApiParameter(
                name="status",
                type=str,
                location=OpenApiParameter.QUERY,
                required=False,
                enum=Bet.Status.values,
                description="Only bets in this status.",
            ),
            *api_headers([200, 400, *AUTHED]),
        ],
        responses={
            200: inline_serializer(
                name="BetList",
                fields={
                    "bets": BetSerializer(many=True),
                    "pagination": list_pagination(),
                },
            ),
            **error_responses(400, *AUTHED),
        },
    )
    def get(self, request: Request) -> Response:
        status_filter = choice_param(request.query_params, "status", Bet.Status.values)
        page = paginate(
            selectors.bets_of(user=cast(User, request.user), status=status_filter),
            request.query_params,
        )
        # many=True makes a ListSerializer: its data is a list.
        items = cast(list[Any], BetSerializer(page.items, many=True).data)
        return Response(page.as_dict("bets", items))


class BetDetailApi(APIView):
    @extend_schema(
        operation_id="bets_retrieve",
        tags=[TAG_BETS],
        summary="One of the caller's bets",
        auth=USER_AUTH,
        parameters=[bet_id_path(), *api_headers([200, 404, *AUTHED])],
        responses={
            200: BetSerializer,
            **error_responses(
                404, *AUTHED, e404="NOT_FOUND: missing or someone else's bet"
            ),
        },
    )
    def get(self, request: Request, bet_id: int) -> Response:
        bet = selectors.bet_of(user=cast(User, request.user), bet_id=bet_id)
        return Response(BetSerializer(bet).data)


class BetResultApi(APIView):
    """The bet, after trying to resolve it when it is ``pending`` or ``unknown``."""

    @extend_schema(
        operation_id="bets_result",
        tags=[TAG_BETS],
        summary="A bet's result",
        description="The bet, after trying to resolve it if it is pending or "
        "unknown; a completed, failed or void bet is never changed.",
        auth=USER_AUTH,
        parameters=[bet_id_path(), *api_headers([200, 404, *AUTHED])],
        responses={
            200: BetSerializer,
            **error_responses(
                404, *AUTHED, e404="NOT_FOUND: missing or someone else's bet"
            ),
        },
    )
    def get(self, request: Request, bet_id: int) -> Response:
        bet = selectors.bet_of(user=cast(User, request.user), bet_id=bet_id)
        try:
            bet = services.bet_resolve(bet=bet, wait=1.0)
        except BetInProgress:
            bet.refresh_from_db()  # busy with another operation: the current state
        return Response(BetSerializer(bet).data)


class BetRecommendedApi(APIView):
    """The provider's recommended stake (``GET /bet``) for the caller's account."""

    @extend_schema(
        operation_id="bets_recommended",
        tags=[TAG_BETS],
        summary="The provider's recommended stake",
        auth=USER_AUTH,
        parameters=api_headers([200, *AUTHED, 403, *PROVIDER]),
        responses={
            200: inline_serializer(
                name="BetRecommendation",
                fields={"recommended_amount": serializers.IntegerField()},
            ),
            **error_responses(*AUTHED, 403, *PROVIDER, e403="ACCOUNT_NOT_LINKED"),
        },
    )
    def get(self, request: Request) -> Response:
        account = selectors.account_for_betting(user=cast(User, request.user))
        recommendation = ProviderClient(account=account).bet_recommend()
        return Response({"recommended_amount": recommendation.amount})


class BalanceApi(APIView):
    @extend_schema_serializer(component_name="Balance")
    class OutputSerializer(serializers.Serializer[dict[str, Any]]):
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
    def get(self, request: Request) -> Response:
        wallet, provider_answered = balance_sync(user=cast(User, request.user))
        data = {
            "balance": wallet.balance,
            "available": wallet.available,
            "external_balance": wallet.external_balance,
            "last_updated": wallet.updated_at,
            "last_checked_at": wallet.last_checked_at,
            "in_sync": provider_answered and wallet.external_balance == wallet.balance,
        }
        return Response(self.OutputSerializer(data).data)
