from django.contrib import admin

from betting_site.admin import ReadOnlyModelAdmin, pretty_json
from wallet.models import Transaction, UserBalance


@admin.register(UserBalance)
class UserBalanceAdmin(ReadOnlyModelAdmin):
    list_display = (
        "user",
        "balance",
        "held",
        "external_balance",
        "last_checked_at",
        "updated_at",
    )
    list_select_related = ("user",)
    search_fields = ("user__username",)
    fields = (
        "user",
        "balance",
        "held",
        "external_balance",
        "last_checked_at",
        "updated_at",
    )


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
    list_filter = ("type",)
    list_select_related = ("user", "bet", "created_by")
    search_fields = ("user__username", "description")
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
    def evidence_pretty(self, obj):
        return pretty_json(obj.evidence)
