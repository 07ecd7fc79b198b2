"""JWT issuing and checking on top of simplejwt.

Every token carries a session id (``sid``) shared by the access and refresh tokens
of one login and by every token rotated from them. Logout revokes the session in the
database (``RevokedSession``), which every worker reads and which no cache restart
can forget; simplejwt's own blacklist only covers refresh tokens.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

SESSION_CLAIM = "sid"


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int

    def as_response(self) -> dict:
        return {
            "token": self.access,
            "refresh": self.refresh,
            "expiresIn": self.expires_in,
            "tokenType": "Bearer",
        }


def new_session_id() -> str:
    return uuid.uuid4().hex


def issue_token_pair(*, user, session_id: str) -> TokenPair:
    """Issue a refresh token (recorded as outstanding) and its access token."""
    refresh = RefreshToken()
    refresh[api_settings.USER_ID_CLAIM] = user.pk
    refresh[SESSION_CLAIM] = session_id
    # The outstanding row is what rotation and logout lock and blacklist. The token
    # text itself is not stored: a database read must not yield a usable credential.
    OutstandingToken.objects.create(
        user=user,
        jti=refresh[api_settings.JTI_CLAIM],
        token="",
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
    )
    access = refresh.access_token
    return TokenPair(
        access=str(access),
        refresh=str(refresh),
        expires_in=int(settings.JWT_ACCESS_TTL.total_seconds()),
    )


def decode_refresh(raw: str) -> dict | None:
    """The verified claims of a refresh token, or None (bad signature, algorithm,
    issuer, audience, expiry, type or shape). Revocation is checked by the caller."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        # simplejwt annotates the encoded token (a str) as a Token object.
        payload = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]
    except TokenBackendError:
        return None
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != "refresh":
        return None
    required = (
        api_settings.JTI_CLAIM,
        api_settings.USER_ID_CLAIM,
        SESSION_CLAIM,
        "exp",
    )
    if any(not payload.get(claim) for claim in required):
        return None
    return payload


def session_expiry() -> datetime:
    """The latest moment any token of a session revoked now could still be valid."""
    return timezone.now() + settings.JWT_REFRESH_TTL
