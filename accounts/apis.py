from datetime import UTC, datetime

from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.selectors import user_profile


class AuthLoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_login(**data.validated_data)
        return Response(pair.as_response())


class AuthRefreshApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_refresh(refresh=data.validated_data["refresh"])
        return Response(pair.as_response())


class AuthLogoutApi(APIView):
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.auth_logout(
            user=request.user,
            access_claims=request.auth,
            refresh=data.validated_data["refresh"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuthMeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.EmailField(allow_null=True)
        is_admin = serializers.BooleanField()
        last_login = serializers.DateTimeField(allow_null=True)
        external_account = serializers.DictField(allow_null=True)

    def get(self, request):
        return Response(self.OutputSerializer(user_profile(user=request.user)).data)


class AuthValidateApi(APIView):
    def get(self, request):
        expires_at = datetime.fromtimestamp(request.auth["exp"], tz=UTC)
        return Response(
            {
                "valid": True,
                "user_id": request.user.pk,
                "expires_at": serializers.DateTimeField().to_representation(expires_at),
            }
        )
