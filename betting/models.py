from django.conf import settings
from django.db import models
from django.db.models import Q

from betting_site.money import money_field


class Bet(models.Model):
    """A bet and where it stands in its lifecycle (see the contract's five states)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown"
        VOID = "void", "Void"

    class StakeMode(models.TextChoices):
        DEBIT_ON_LOSS = "debit_on_loss", "Debit on loss"
        DEBIT_ON_PLACE = "debit_on_place", "Debit on place"

    OPEN_STATUSES = (Status.PENDING, Status.UNKNOWN)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="bets",
        db_index=False,  # bets_user_idx (user, -id) serves every lookup by user
    )
    account = models.ForeignKey(
        "accounts.ExternalApiAccount",
        on_delete=models.PROTECT,
        related_name="bets",
        help_text="The provider account the bet was placed with",
    )
    external_bet_id = models.CharField(
        max_length=64, unique=True, null=True, blank=True
    )
    amount = money_field()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    win_amount = money_field(null=True, blank=True)
    stake_mode = models.CharField(
        max_length=16,
        choices=StakeMode.choices,
        help_text="How the provider moved money when the bet was placed",
    )
    status_reason = models.CharField(max_length=500, blank=True)
    result_in_doubt = models.BooleanField(
        default=False,
        help_text="A POST /win was sent whose outcome is unknown: resolve by balance",
    )
    idempotency_key = models.OneToOneField(
        "IdempotencyKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="placed_bet",
        help_text="The Idempotency-Key of the request that placed it, linked in the "
        "bet's own insert (a retry of a request that died answers this bet)",
    )
    unknown_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When POST /bet's outcome became unknown; debit_on_place: the "
        "balance decides only BET_UNKNOWN_GRACE seconds later",
    )
    needs_attention = models.BooleanField(
        default=False, help_text="Flagged for staff (a void bet, a discrepancy)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "bets"
        indexes = [
            models.Index(fields=["user", "-id"], name="bets_user_idx"),
            # GET /api/bets?status=: a player's bets in one status, newest first.
            models.Index(fields=["user", "status", "-id"], name="bets_user_status_idx"),
            models.Index(fields=["status"], name="bets_status_idx"),
            # The back office: the dashboard's last 24 hours and today's results,
            # the admin's date drill-down.
            models.Index(fields=["created_at"], name="bets_created_at_idx"),
            models.Index(fields=["completed_at"], name="bets_completed_at_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="bets_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(win_amount__isnull=True) | Q(win_amount__gte=0),
                name="bets_win_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["pending", "completed", "failed", "unknown", "void"]
                ),
                name="bets_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="completed")
                | Q(win_amount__isnull=False, completed_at__isnull=False),
                name="bets_completed_has_result",
            ),
            models.CheckConstraint(
                condition=~Q(status="unknown") | Q(external_bet_id__isnull=True),
                name="bets_unknown_has_no_external_id",
            ),
            models.CheckConstraint(
                condition=Q(stake_mode__in=["debit_on_loss", "debit_on_place"]),
                name="bets_stake_mode_valid",
            ),
            # At most one open bet per user: every change of the provider balance
            # can then be attributed to that one bet (see the resolution rules).
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["pending", "unknown"]),
                name="bets_one_open_bet_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"bet {self.pk} of {self.amount} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def holds_stake(self) -> bool:
        """Whether the ledger holds this bet's stake: it is open and the provider
        has not debited it (debit_on_place debits when POST /bet is answered).
        ``holding_stake()`` is the same rule as a query."""
        return self.is_open and (
            self.external_bet_id is None
            or self.stake_mode == self.StakeMode.DEBIT_ON_LOSS
        )


def holding_stake() -> Q:
    """The bets whose stake is held (``Bet.holds_stake``), as a query condition."""
    return Q(status__in=Bet.OPEN_STATUSES) & (
        Q(external_bet_id__isnull=True) | Q(stake_mode=Bet.StakeMode.DEBIT_ON_LOSS)
    )


class ProviderLease(models.Model):
    """Serialises one user's provider operations across processes and machines.

    Claimed by one conditional upsert (free, expired, or its holder dead);
    renewed before a provider call when it is getting old; released by its
    holder. ``expires_at`` bounds a lease that is not renewed before a provider
    call (``PROVIDER_LEASE_TTL``); ``alive_until`` is how long its holder's
    process has shown it is alive (``PROVIDER_LEASE_ALIVE``, kept up by that
    process's keeper thread): a lease past either may be taken (``betting.lease``).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
    )
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    alive_until = models.DateTimeField(null=True, blank=True)
    operation = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "provider_leases"

    def __str__(self) -> str:
        return f"provider lease of user {self.user_id}"


class IdempotencyKey(models.Model):
    """A claimed ``Idempotency-Key``: unique per caller, holding the first response.

    Claimed by inserting the row (the unique constraint decides the race across
    workers and machines); ``locked_until`` is the lease of the request that runs it.
    """

    caller = models.CharField(
        max_length=64, help_text="'user:<id>' or 'admin-token': the key's scope"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    bet = models.ForeignKey(
        Bet,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The bet the stored response is about, set with the response "
        "(while the request runs, the bet's own idempotency_key links them)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "idempotency_keys"
        indexes = [
            models.Index(
                fields=["user", "endpoint", "request_hash"],
                name="idempotency_composite_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["caller", "key"], name="idempotency_unique_caller_key"
            ),
        ]

    def __str__(self) -> str:
        return f"idempotency key of {self.caller} on {self.endpoint}"
