"""Writes for users, provider links and login sessions."""

import logging
from dataclasses import dataclass

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts.exceptions import AccountLinkConflict
from accounts.models import ExternalApiAccount, RevokedSession, User
from accounts.tokens import (
    SESSION_CLAIM,
    TokenPair,
    decode_refresh,
    issue_token_pair,
    new_session_id,
    session_expiry,
)
from betting_site.errors import InvalidCredentials, Unauthorized, ValidationFailed

logger = logging.getLogger(__name__)


# --- Login sessions ----------------------------------------------------------------


@transaction.atomic
def auth_login(*, username: str, password: str) -> TokenPair:
    """Check the credentials and open a new session.

    An unknown user, a wrong password and an inactive user give the same error;
    Django's backend hashes a dummy password for unknown users, so timing does not
    tell them apart either.
    """
    user = authenticate(username=username, password=password)
    if user is None:
        logger.info("Login refused")
        raise InvalidCredentials()
    # The receiver ignores its sender (simplejwt calls it with None as well).
    update_last_login(None, user)  # type: ignore[arg-type]
    logger.info("Login of user %s", user.pk)
    return issue_token_pair(user=user, session_id=new_session_id())


def auth_refresh(*, refresh: str) -> TokenPair:
    """Rotate a refresh token: the presented one is blacklisted, a new pair issued.

    The outstanding row is locked, so two concurrent refreshes with one token cannot
    both succeed. Presenting an already rotated token again means it leaked or was
    replayed: the whole session is revoked (refresh-token reuse detection), in its
    own transaction so that the refusal does not roll the revocation back.
    """
    claims = decode_refresh(refresh)
    if claims is None:
        raise Unauthorized("The refresh token is invalid or expired")
    with transaction.atomic():
        pair = _rotate(claims)
    if pair is None:
        _revoke_session(
            user_id=claims[api_settings.USER_ID_CLAIM], session_id=claims[SESSION_CLAIM]
        )
        logger.warning(
            "Reuse of a rotated refresh token by user %s: session revoked",
            claims[api_settings.USER_ID_CLAIM],
        )
        raise Unauthorized("The refresh token has already been used")
    return pair


def _rotate(claims: dict) -> TokenPair | None:
    """Blacklist the presented token and issue the next pair; None on reuse."""
    outstanding = (
        OutstandingToken.objects.select_for_update()
        .filter(jti=claims[api_settings.JTI_CLAIM])
        .first()
    )
    if outstanding is None:
        raise Unauthorized("The refresh token is unknown")
    session_id = claims[SESSION_CLAIM]
    if BlacklistedToken.objects.filter(token=outstanding).exists():
        return None
    if RevokedSession.objects.filter(sid=session_id).exists():
        raise Unauthorized("The refresh token has been revoked")
    user = User.objects.filter(
        pk=claims[api_settings.USER_ID_CLAIM], is_active=True
    ).first()
    if user is None or user.pk != outstanding.user_id:
        raise Unauthorized("The user of this token is unknown or inactive")
    BlacklistedToken.objects.create(token=outstanding)
    return issue_token_pair(user=user, session_id=session_id)


@transaction.atomic
def auth_logout(*, user: User, access_claims, refresh: str) -> None:
    """Revoke the session of the access token and of the given refresh token."""
    claims = decode_refresh(refresh)
    if claims is None or str(claims[api_settings.USER_ID_CLAIM]) != str(user.pk):
        raise ValidationFailed(
            details={"refresh": ["Not a valid refresh token of this user"]}
        )
    outstanding = OutstandingToken.objects.filter(
        jti=claims[api_settings.JTI_CLAIM]
    ).first()
    if outstanding is not None:
        BlacklistedToken.objects.get_or_create(token=outstanding)
    for session_id in {access_claims[SESSION_CLAIM], claims[SESSION_CLAIM]}:
        _revoke_session(user_id=user.pk, session_id=session_id)
    logger.info("Logout of user %s", user.pk)


def _revoke_session(*, user_id: int, session_id: str) -> None:
    RevokedSession.objects.get_or_create(
        sid=session_id, defaults={"user_id": user_id, "expires_at": session_expiry()}
    )


def revoked_sessions_prune() -> int:
    """Forget revocations whose tokens have all expired; returns how many."""
    deleted, _ = RevokedSession.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


# --- Players and provider links ----------------------------------------------------


@dataclass(frozen=True)
class PlayerResult:
    user: User
    account: ExternalApiAccount
    user_created: bool
    account_changed: bool


@transaction.atomic
def account_link(
    *,
    user: User,
    external_user_id: str,
    secret: str,
    actor: User | None,
    reason: str,
) -> tuple[ExternalApiAccount, bool]:
    """Make ``external_user_id`` the user's active provider account.

    Idempotent: the same id and secret change nothing. A new secret for the same id
    replaces the link; another id deactivates the old link. Each change records who
    made it and why. Returns the active link and whether anything changed.
    """
    external_user_id = external_user_id.strip()
    if not external_user_id or not secret:
        raise ValidationFailed("The external user id and secret are required")
    if not reason.strip():
        raise ValidationFailed("A reason is required to link a provider account")
    current = (
        ExternalApiAccount.objects.select_for_update()
        .filter(user=user, is_active=True)
        .first()
    )
    if (
        current is not None
        and current.external_user_id == external_user_id
        and current.secret == secret
    ):
        return current, False
    taken = (
        ExternalApiAccount.objects.filter(
            external_user_id=external_user_id, is_active=True
        )
        .exclude(user=user)
        .exists()
    )
    if taken:
        raise AccountLinkConflict(
            f"Provider user {external_user_id} is already linked to another user"
        )
    if current is not None:
        account_unlink(account=current, actor=actor, reason=f"replaced: {reason}")
    try:
        with transaction.atomic():
            account = ExternalApiAccount.objects.create(
                user=user,
                external_user_id=external_user_id,
                secret=secret,
                created_by=actor,
                link_reason=reason[:255],
            )
    except IntegrityError:  # a concurrent link won the unique constraint
        raise AccountLinkConflict(
            f"Provider user {external_user_id} is already linked to another user"
        ) from None
    logger.info(
        "Provider user %s linked to user %s by %s",
        external_user_id,
        user.pk,
        actor.pk if actor else "operator",
    )
    return account, True


def account_unlink(
    *, account: ExternalApiAccount, actor: User | None, reason: str
) -> None:
    account.is_active = False
    account.deactivated_at = timezone.now()
    account.deactivated_by = actor
    account.deactivation_reason = reason[:255]
    account.save(
        update_fields=[
            "is_active",
            "deactivated_at",
            "deactivated_by",
            "deactivation_reason",
            "updated_at",
        ]
    )


@transaction.atomic
def player_create(
    *,
    username: str,
    password: str,
    external_user_id: str,
    secret: str,
    is_admin: bool = False,
    email: str = "",
    relink: bool = False,
    reason: str = "create_player",
) -> PlayerResult:
    """Create or converge a player: the user, its password and its provider link.

    Re-running with the same arguments changes nothing. A different provider user id
    for an existing player is refused unless ``relink`` is set, so that a typo cannot
    silently move a player to another provider account.
    """
    user = User.objects.select_for_update().filter(username=username).first()
    user_created = user is None
    if user is None:  # user_created
        user = User(username=username, email=email)
        user.set_password(password)
    elif not user.check_password(password):
        user.set_password(password)
    if email and user.email != email:
        user.email = email
    if is_admin:
        user.is_staff = True
        user.is_superuser = True
    user.save()
    current = ExternalApiAccount.objects.filter(user=user, is_active=True).first()
    if (
        current is not None
        and current.external_user_id != external_user_id.strip()
        and not relink
    ):
        raise AccountLinkConflict(
            f"User {username} is linked to provider user "
            f"{current.external_user_id}; pass --relink with a --reason to move it"
        )
    account, changed = account_link(
        user=user,
        external_user_id=external_user_id,
        secret=secret,
        actor=None,
        reason=reason,
    )
    return PlayerResult(
        user=user, account=account, user_created=user_created, account_changed=changed
    )


def secrets_rotate(*, batch_size: int = 500, progress=None) -> int:
    """Re-encrypt every provider secret with the first key of FIELD_ENCRYPTION_KEYS.

    Each row is decrypted with whichever key fits and saved again, which encrypts
    with the first key; afterwards the older keys can be dropped. Returns the count.
    """
    rotated = 0
    last_id = 0
    while True:
        with transaction.atomic():
            batch = list(
                ExternalApiAccount.objects.select_for_update()
                .filter(pk__gt=last_id)
                .order_by("pk")[:batch_size]
            )
            for account in batch:
                account.save(update_fields=["secret"])
        if not batch:
            return rotated
        rotated += len(batch)
        last_id = batch[-1].pk
        if progress is not None:
            progress(rotated)
