"""Views that fail in every way a view can, for the envelope tests."""

from decimal import Decimal

from django.http import Http404, HttpResponse, HttpResponseServerError
from django.urls import include, path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from betting_site.urls import urlpatterns as project_patterns


class _Open(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


class BoomApi(_Open):
    def get(self, request):
        raise RuntimeError("secret detail that must not leak")


class Django404Api(_Open):
    def get(self, request):
        raise Http404("missing")


class MoneyApi(_Open):
    class AmountSerializer(serializers.Serializer):
        amount = serializers.DecimalField(max_digits=14, decimal_places=2)

    def get(self, request):
        return Response(
            {
                "amount": Decimal("1006.10"),
                "tiny": Decimal("0.01"),
                "big": Decimal("123456789012.34"),
                "serialized": self.AmountSerializer({"amount": Decimal("0.30")}).data,
            }
        )

    def post(self, request):
        data = self.AmountSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"echo": data.validated_data["amount"]})


def plain_django_500(request):
    return HttpResponseServerError("<h1>Server Error</h1>")


def plain_django_boom(request):
    raise ValueError("boom in a plain view")


def plain_ok(request):
    return HttpResponse("ok")


test_patterns = [
    path("boom", BoomApi.as_view()),
    path("django-404", Django404Api.as_view()),
    path("money", MoneyApi.as_view()),
    path("plain-500", plain_django_500),
    path("plain-boom", plain_django_boom),
    path("plain-ok", plain_ok),
]

urlpatterns = [path("api/_test/", include(test_patterns)), *project_patterns]


class FailingMiddleware:
    """Raises when asked to, to prove errors raised in middleware get the envelope."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.headers.get("X-Fail-In-Middleware"):
            raise RuntimeError("middleware failure")
        return self.get_response(request)
