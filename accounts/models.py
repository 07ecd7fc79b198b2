from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from accounts.fields import EncryptedTextField


class User(AbstractUser):
    """A local user. ``is_staff`` is the contract's ``is_admin``: back-office access,
    the internal endpoints and staff-only actions."""

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "users"
        constraints = [
            models.UniqueConstraint(
                Lower("email"), condition=~Q(email=""), name="users_email_unique_ci"
            ),
        ]

    @property
    def is_admin(self) -> bool:
        return self.is_staff


class ExternalApiAccount(models.Model):
    """A link between a local user and a provider account.

    One active link per user and per external user id; earlier links stay, inactive,
    with who ended them and why (contract invariant 6).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="external_accounts",
    )
    external_user_id = models.CharField(max_length=64)
    secret = EncryptedTextField(help_text="HMAC secret, Fernet-encrypted at rest")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Staff member who linked it; empty when an operator command did",
    )
    link_reason = models.CharField(max_length=255, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    deactivation_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "external_api_accounts"
        indexes = [
            models.Index(fields=["user"], name="ext_accounts_user_idx"),
            models.Index(fields=["external_user_id"], name="ext_accounts_ext_user_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_user_id"],
                condition=Q(is_active=True),
                name="ext_accounts_one_active_per_external_id",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(is_active=True),
                name="ext_accounts_one_active_per_user",
            ),
            models.CheckConstraint(
                condition=~Q(external_user_id=""), name="ext_accounts_external_id_set"
            ),
            models.CheckConstraint(
                condition=Q(is_active=True) | Q(deactivated_at__isnull=False),
                name="ext_accounts_inactive_has_deactivated_at",
            ),
        ]

    def __str__(self) -> str:
        state = "active" if self.is_active else "inactive"
        return f"provider user {self.external_user_id} ({state})"


class RevokedSession(models.Model):
    """A login session ended by logout: every token carrying its ``sid`` is refused.

    Kept in the database, so that every worker sees it and it survives a cache
    restart; rows are pruned once the longest-lived token of the session expired.
    """

    sid = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    revoked_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "revoked_sessions"

    def __str__(self) -> str:
        return f"session of user {self.user_id} revoked at {self.revoked_at}"
