"""The ledger's admin: entries, read-only. The balances' admin, with its
adjustment and reconciliation actions, is betting's (``betting.admin.balances``):
those actions run under the user's provider lease."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from betting_site.admin import ReadOnlyModelAdmin, pretty_json
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
class TransactionAdmin(ReadOnlyModelAdmin):
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
    search_fields = (
        "user__username",
        "description",
        "bet__external_bet_id",
        "created_by__username",
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
