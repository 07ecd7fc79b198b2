from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from betting import selectors, services
from betting.exceptions import BetInProgress
from betting.idempotency import idempotent
from betting.models import Bet
from betting.serializers import BetSerializer
from betting_site.api.errors import ValidationFailed
from betting_site.api.pagination import choice_param, paginate
from betting_site.api.schema import (
    AUTHED,
    BODY,
    IDEMPOTENT,
    PAGINATION_PARAMETERS,
    PROVIDER,
    TAG_BETS,
    USER_AUTH,
    PaginationSerializer,
    api_headers,
    bet_id_path,
    error_responses,
    idempotent_headers,
)
from provider.client import ProviderClient


class BetListCreateApi(APIView):
    """``POST /api/bets`` places a bet (the full cycle); ``GET`` lists the caller's."""

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
    def post(self, request):
        if not isinstance(request.data, dict) or "amount" not in request.data:
            raise ValidationFailed(details={"amount": ["This field is required."]})

        def place(on_open):
            placed = services.bet_place(
                user=request.user, amount=request.data["amount"], on_open=on_open
            )
            return Response(
                BetSerializer(placed.bet).data, status=status.HTTP_201_CREATED
            )

        return idempotent(request, endpoint="POST /api/bets", run=place)

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
                    "pagination": PaginationSerializer(),
                },
            ),
            **error_responses(400, *AUTHED),
        },
    )
    def get(self, request):
        status_filter = choice_param(request.query_params, "status", Bet.Status.values)
        page = paginate(
            selectors.bets_of(user=request.user, status=status_filter),
            request.query_params,
        )
        return Response(page.as_dict("bets", BetSerializer(page.items, many=True).data))


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
    def get(self, request, bet_id: int):
        bet = selectors.bet_of(user=request.user, bet_id=bet_id)
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
    def get(self, request, bet_id: int):
        bet = selectors.bet_of(user=request.user, bet_id=bet_id)
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
    def get(self, request):
        account = selectors.account_for_betting(user=request.user)
        recommendation = ProviderClient(account=account).bet_recommend()
        return Response({"recommended_amount": recommendation.amount})
