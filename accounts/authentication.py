from django.db.models import Exists, OuterRef
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from accounts.models import RevokedSession, User
from accounts.tokens import SESSION_CLAIM
from betting_site.logging import user_id_var


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's access-token authentication, plus the session deny-list.

    The user and the revocation check come from one query.
    """

    def authenticate(self, request):
        try:
            result = super().authenticate(request)
        except InvalidToken:
            raise AuthenticationFailed(
                "The token is invalid, expired or not an access token"
            ) from None
        if result is not None:
            user_id_var.set(result[0].pk)
        return result

    def get_user(self, validated_token):
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        session_id = validated_token.get(SESSION_CLAIM)
        if not user_id or not session_id:
            raise AuthenticationFailed("The token is missing required claims")
        user = (
            User.objects.filter(pk=user_id)
            .annotate(
                session_revoked=Exists(
                    RevokedSession.objects.filter(sid=session_id, user=OuterRef("pk"))
                )
            )
            .first()
        )
        if user is None or not user.is_active:
            raise AuthenticationFailed("The user of this token is unknown or inactive")
        if user.session_revoked:
            raise AuthenticationFailed("The token has been revoked")
        return user
