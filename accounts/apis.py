from datetime import UTC, datetime

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.selectors import user_profile
from betting_site.api.schema import (
    AUTHED,
    BODY,
    TAG_AUTH,
    USER_AUTH,
    TokenPairSerializer,
    api_headers,
    error_responses,
)

_EXTERNAL_ACCOUNT = inline_serializer(
    name="ExternalAccount",
    fields={
        "external_user_id": serializers.CharField(),
        "is_active": serializers.BooleanField(),
    },
    allow_null=True,
)


class AuthLoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="Login")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    @extend_schema(
        operation_id="auth_login",
        tags=[TAG_AUTH],
        summary="Log in",
        description="Exchange a username and password for an access and a refresh "
        "token; updates last_login. An unknown user and a wrong password look the "
        "same (401 INVALID_CREDENTIALS).",
        auth=[],
        request=InputSerializer,
        responses={
            200: TokenPairSerializer,
            **error_responses(400, 401, 413, 415, 429, 500, e401="INVALID_CREDENTIALS"),
        },
        parameters=api_headers([200, 400, 401, 413, 415, 429, 500]),
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_login(**data.validated_data)
        return Response(pair.as_response())


class AuthRefreshApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="Refresh")
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    @extend_schema(
        operation_id="auth_refresh",
        tags=[TAG_AUTH],
        summary="Refresh the tokens",
        description="A new token pair for a refresh token; the old refresh token is "
        "revoked (rotation).",
        auth=[],
        request=InputSerializer,
        responses={
            200: TokenPairSerializer,
            **error_responses(*BODY, *AUTHED),
        },
        parameters=api_headers([200, *BODY, *AUTHED]),
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_refresh(refresh=data.validated_data["refresh"])
        return Response(pair.as_response())


class AuthLogoutApi(APIView):
    @extend_schema_serializer(component_name="Logout")
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    @extend_schema(
        operation_id="auth_logout",
        tags=[TAG_AUTH],
        summary="Log out",
        description="Revokes this access token and this refresh token (both answer "
        "401 afterwards).",
        auth=USER_AUTH,
        request=InputSerializer,
        responses={
            204: OpenApiResponse(description="Logged out (no body)."),
            **error_responses(*BODY, *AUTHED),
        },
        parameters=api_headers([204, *BODY, *AUTHED]),
    )
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

    @extend_schema(
        operation_id="auth_me",
        tags=[TAG_AUTH],
        summary="The caller's profile",
        auth=USER_AUTH,
        responses={
            200: inline_serializer(
                name="Me",
                fields={
                    "id": serializers.IntegerField(),
                    "username": serializers.CharField(),
                    "email": serializers.EmailField(allow_null=True),
                    "is_admin": serializers.BooleanField(),
                    "last_login": serializers.DateTimeField(allow_null=True),
                    "external_account": _EXTERNAL_ACCOUNT,
                },
            ),
            **error_responses(*AUTHED),
        },
        parameters=api_headers([200, *AUTHED]),
    )
    def get(self, request):
        return Response(self.OutputSerializer(user_profile(user=request.user)).data)


class AuthValidateApi(APIView):
    @extend_schema(
        operation_id="auth_validate",
        tags=[TAG_AUTH],
        summary="Validate the access token",
        description="200 for a valid access token in Authorization, else 401.",
        auth=USER_AUTH,
        responses={
            200: inline_serializer(
                name="TokenValidation",
                fields={
                    "valid": serializers.BooleanField(help_text="Always true."),
                    "user_id": serializers.IntegerField(),
                    "expires_at": serializers.DateTimeField(),
                },
            ),
            **error_responses(*AUTHED),
        },
        parameters=api_headers([200, *AUTHED]),
    )
    def get(self, request):
        expires_at = datetime.fromtimestamp(request.auth["exp"], tz=UTC)
        return Response(
            {
                "valid": True,
                "user_id": request.user.pk,
                "expires_at": serializers.DateTimeField().to_representation(expires_at),
            }
        )
