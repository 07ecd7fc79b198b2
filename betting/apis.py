from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from betting import selectors, services
from betting.exceptions import BetInProgress
from betting.idempotency import idempotent
from betting.models import Bet
from betting.serializers import BetSerializer
from betting_site.api.errors import ValidationFailed
from betting_site.api.pagination import paginate
from provider.client import ProviderClient


class BetListCreateApi(APIView):
    """``POST /api/bets`` places a bet (the full cycle); ``GET`` lists the caller's."""

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

    def get(self, request):
        status_filter = request.query_params.get("status")
        if status_filter is not None and status_filter not in Bet.Status.values:
            raise ValidationFailed(
                details={"status": [f"One of: {', '.join(Bet.Status.values)}"]}
            )
        page = paginate(
            selectors.bets_of(user=request.user, status=status_filter),
            request.query_params,
        )
        return Response(page.as_dict("bets", BetSerializer(page.items, many=True).data))


class BetDetailApi(APIView):
    def get(self, request, bet_id: int):
        bet = selectors.bet_of(user=request.user, bet_id=bet_id)
        return Response(BetSerializer(bet).data)


class BetResultApi(APIView):
    """The bet, after trying to resolve it when it is ``pending`` or ``unknown``."""

    def get(self, request, bet_id: int):
        bet = selectors.bet_of(user=request.user, bet_id=bet_id)
        try:
            bet = services.bet_resolve(bet=bet, wait=1.0)
        except BetInProgress:
            bet.refresh_from_db()  # busy with another operation: the current state
        return Response(BetSerializer(bet).data)


class BetRecommendedApi(APIView):
    """The provider's recommended stake (``GET /bet``) for the caller's account."""

    def get(self, request):
        account = selectors.account_for_betting(user=request.user)
        recommendation = ProviderClient(account=account).bet_recommend()
        return Response({"recommended_amount": recommendation.amount})
