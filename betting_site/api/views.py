from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from betting_site.api.schema import HEALTH_BODY, TAG_OPERATIONS, api_headers
from betting_site.health import health_report


class HealthLiveApi(APIView):
    """Liveness: answers without touching the database, the cache or the provider."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health_live",
        tags=[TAG_OPERATIONS],
        summary="Liveness",
        description="Answers without touching the database, the cache or the provider.",
        auth=[],
        parameters=api_headers([200]),
        responses={
            200: inline_serializer(
                name="HealthLive",
                fields={"status": serializers.CharField(help_text='Always "ok".')},
            )
        },
    )
    def get(self, request):
        return Response({"status": "ok"})


class HealthApi(APIView):
    """Readiness: the database, the cache and the provider. 503 (with the same body,
    not the error envelope) only when the database is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        tags=[TAG_OPERATIONS],
        summary="Readiness",
        description="Each service is ok or down; status is down (503) only when the "
        "database is down, degraded when another service is.",
        auth=[],
        parameters=api_headers([200]),
        responses={
            200: HEALTH_BODY,
            503: OpenApiResponse(
                HEALTH_BODY,
                description="The database is down (the health body, not the "
                "error envelope).",
            ),
        },
    )
    def get(self, request):
        body, status = health_report()
        response = Response(body, status=status)
        # A marker read back with getattr(); Response declares no such attribute.
        response.envelope_exempt = True  # type: ignore[attr-defined]
        return response
