"""The ledger's admin: entries, read-only. The balances' admin, with its
adjustment and reconciliation actions, is betting's (``betting.admin.balances``):
those actions run under the user's provider lease."""

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from betting_site.admin import LargeTableAdmin, pretty_json, user_ids_named
from wallet.models import Transaction


class ManualEntryFilter(admin.SimpleListFilter):
    """Entries a staff member made (adjustments, stakes booked on a void)."""

    title = "entered by"
    parameter_name = "manual"

    def lookups(
        self, request: HttpRequest, model_admin: "admin.ModelAdmin[Any]"
    ) -> tuple[tuple[str, str], ...]:
        return (("yes", "Staff"), ("no", "The system"))

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Transaction]
    ) -> QuerySet[Transaction]:
        if self.value() == "yes":
            return queryset.filter(created_by__isnull=False)
        if self.value() == "no":
            return queryset.filter(created_by__isnull=True)
        return queryset


@admin.register(Transaction)
class TransactionAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "user",
        "type",
        "amount",
        "balance_before",
        "balance_after",
        "bet",
        "created_by",
        "created_at",
    )
    list_filter = ("type", ManualEntryFilter)
    list_select_related = ("user", "bet", "created_by")
    search_fields = ("user__username", "bet__external_bet_id", "created_by__username")
    search_help_text = (
        "Exact: a username (the player's or the staff member's who made the entry), "
        "a provider bet id or a bet id. Several, separated by spaces: entries "
        "matching any."
    )
    date_hierarchy = "created_at"
    fields = (
        "user",
        "bet",
        "type",
        "amount",
        "balance_before",
        "balance_after",
        "description",
        "evidence_pretty",
        "created_by",
        "created_at",
    )
    readonly_fields = ("evidence_pretty",)

    @admin.display(description="Evidence")
    def evidence_pretty(self, obj: Transaction) -> str:
        return pretty_json(obj.evidence)

    def search_filter(self, terms: list[str]) -> Q:
        """Users and bets looked up first, then entries by their indexed
        ``user_id``, ``created_by_id`` and ``bet_id``."""
        users = user_ids_named(terms)
        bets = Transaction._meta.get_field("bet").related_model._default_manager
        bet_ids = [int(term) for term in terms if term.isdigit() and len(term) < 19]
        bet_ids += bets.filter(external_bet_id__in=terms).values_list("pk", flat=True)
        return Q(user_id__in=users) | Q(created_by_id__in=users) | Q(bet_id__in=bet_ids)
