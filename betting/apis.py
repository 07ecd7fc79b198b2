from rest_framework.response import Response
from rest_framework.views import APIView

from betting.selectors import account_for_betting
from provider.client import ProviderClient


class BetRecommendedApi(APIView):
    """The provider's recommended stake (``GET /bet``) for the caller's account."""

    def get(self, request):
        account = account_for_betting(user=request.user)
        recommendation = ProviderClient(account=account).bet_recommend()
        return Response({"recommended_amount": recommendation.amount})
