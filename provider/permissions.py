"""Who may call the internal endpoints: the static admin token or a staff JWT.

``AdminTokenAuthentication`` goes first: when ``ADMIN_TOKEN`` is set and the bearer
credential equals it (compared in constant time), the caller is the token's
principal. Anything else falls through to ``JWTAuthentication``, so a wrong static
token that is not a valid JWT is refused there (401). ``IsAdminCaller`` then lets
only staff through: no credentials 401, a player's JWT 403.

The token is never logged, echoed or stored: only the fixed scope name
``"admin-token"`` is, as ``request.auth``.
"""

import hmac
from typing import Any

from django.conf import settings
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.authentication import JWTAuthentication

ADMIN_TOKEN_SCOPE = "admin-token"  # noqa: S105 (a scope name, not the token)
_KEYWORD = b"bearer"


class AdminTokenCaller:
    """The caller that presented ``ADMIN_TOKEN``: staff, with no local user row."""

    pk = None
    id = None
    username = ADMIN_TOKEN_SCOPE
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = True
    is_superuser = False

    def __str__(self) -> str:
        return self.username


class AdminTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <ADMIN_TOKEN>``, only when ``ADMIN_TOKEN`` is set.

    Answers None (not a refusal) for any other credential, so that the next class
    (JWT) gets its turn.
    """

    def authenticate(self, request: Request) -> tuple[AdminTokenCaller, str] | None:
        expected = settings.ADMIN_TOKEN
        if not expected:
            return None
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != _KEYWORD:
            return None
        if not hmac.compare_digest(parts[1], expected.encode("utf-8")):
            return None
        return AdminTokenCaller(), ADMIN_TOKEN_SCOPE

    def authenticate_header(self, request: Request) -> str:
        # The same challenge as JWTAuthentication's: a 401 needs one.
        return JWTAuthentication().authenticate_header(request)


class IsAdminCaller(BasePermission):
    """Staff only: the admin token's caller or a user with ``is_staff``."""

    message = "Only staff or the admin token may call the internal endpoints"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user is not None
            and getattr(user, "is_authenticated", False)
            and getattr(user, "is_staff", False)
        )


INTERNAL_AUTHENTICATION = [AdminTokenAuthentication, JWTAuthentication]
INTERNAL_PERMISSIONS = [IsAdminCaller]
