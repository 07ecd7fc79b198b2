from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from betting_site.health import health_report


class HealthLiveApi(APIView):
    """Liveness: answers without touching the database, the cache or the provider."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"status": "ok"})


class HealthApi(APIView):
    """Readiness: the database, the cache and the provider. 503 (with the same body,
    not the error envelope) only when the database is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        body, status = health_report()
        response = Response(body, status=status)
        response.envelope_exempt = True
        return response
