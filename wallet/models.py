from decimal import Decimal
from typing import cast

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round

from betting_site.money import MONEY_DECIMAL_PLACES, ZERO, money_field


class UserBalance(models.Model):
    """The cached ledger balance of one user, updated under a row lock.

    ``balance`` always equals the sum of the user's transactions (contract invariant
    1); ``held`` is the stake held for unsettled bets the provider has not debited;
    ``external_balance`` is the provider's figure as last read.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet"
    )
    balance = money_field(default=ZERO)
    held = money_field(default=ZERO)
    external_balance = money_field(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_balances"
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0), name="user_balances_balance_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(held__gte=0), name="user_balances_held_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"balance of user {self.user_id}: {self.balance}"

    @property
    def available(self) -> Decimal:
        # money_field() returns an untyped DecimalField: its values are Any.
        return cast(Decimal, self.balance - self.held)


class Transaction(models.Model):
    """One append-only ledger entry with a signed amount."""

    class Type(models.TextChoices):
        INITIAL_BALANCE = "initial_balance", "Initial balance"
        BET_PLACE = "bet_place", "Bet placed"
        BET_WIN = "bet_win", "Bet won"
        BET_LOSS = "bet_loss", "Bet lost"
        ADJUSTMENT = "adjustment", "Adjustment"

    BET_TYPES = (Type.BET_PLACE, Type.BET_WIN, Type.BET_LOSS)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="transactions",
        db_index=False,  # transactions_user_idx (user, -id) serves lookups by user
    )
    bet = models.ForeignKey(
        "betting.Bet",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transactions",
    )
    type = models.CharField(max_length=20, choices=Type.choices)
    amount = money_field()
    balance_before = money_field()
    balance_after = money_field()
    description = models.CharField(max_length=500, blank=True)
    evidence = models.JSONField(
        default=dict,
        blank=True,
        help_text="What justified the entry: provider figures, the bet, the reason",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Staff member for manual entries; empty for automatic ones",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "transactions"
        indexes = [
            models.Index(fields=["user", "-id"], name="transactions_user_idx"),
            # GET /api/transactions?type=: a player's entries of one type.
            models.Index(
                fields=["user", "type", "-id"], name="transactions_user_type_idx"
            ),
            models.Index(fields=["type"], name="transactions_type_idx"),
            models.Index(fields=["created_at"], name="transactions_created_at_idx"),
        ]
        constraints = [
            # Rounded to cents: on SQLite (local development only) money is stored
            # as floating point, where 0.10 + 0.20 != 0.30; on PostgreSQL's
            # numeric(14, 2) the rounding changes nothing.
            models.CheckConstraint(
                condition=Q(
                    balance_after=Round(
                        F("balance_before") + F("amount"), MONEY_DECIMAL_PLACES
                    )
                ),
                name="transactions_balance_chain",
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0),
                name="transactions_balance_after_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    type__in=[
                        "initial_balance",
                        "bet_place",
                        "bet_win",
                        "bet_loss",
                        "adjustment",
                    ]
                ),
                name="transactions_type_valid",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["bet_place", "bet_win", "bet_loss"])
                | Q(bet__isnull=False),
                name="transactions_bet_entry_has_bet",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["bet_place", "bet_loss"]) | Q(amount__lte=0),
                name="transactions_debits_not_positive",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["bet_win", "initial_balance"])
                | Q(amount__gte=0),
                name="transactions_credits_not_negative",
            ),
            # The same ledger event can never be posted twice.
            models.UniqueConstraint(
                fields=["bet", "type"],
                condition=Q(type__in=["bet_place", "bet_win", "bet_loss"]),
                name="transactions_one_entry_per_bet_event",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(type="initial_balance"),
                name="transactions_one_initial_balance_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.amount} (user {self.user_id})"
