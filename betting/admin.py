from django.contrib import admin

from betting.models import Bet, IdempotencyKey
from betting_site.admin import ReadOnlyModelAdmin, pretty_json


@admin.register(Bet)
class BetAdmin(ReadOnlyModelAdmin):
    list_display = (
        "id",
        "user",
        "amount",
        "status",
        "win_amount",
        "external_bet_id",
        "needs_attention",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "needs_attention", "stake_mode")
    list_select_related = ("user",)
    search_fields = ("user__username", "external_bet_id")
    date_hierarchy = "created_at"
    fields = (
        "user",
        "account",
        "external_bet_id",
        "amount",
        "status",
        "win_amount",
        "stake_mode",
        "status_reason",
        "needs_attention",
        "created_at",
        "updated_at",
        "completed_at",
    )


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyModelAdmin):
    list_display = (
        "caller",
        "endpoint",
        "status_code",
        "bet",
        "created_at",
        "expires_at",
    )
    list_filter = ("endpoint", "status_code")
    search_fields = ("caller", "key")
    date_hierarchy = "created_at"
    fields = (
        "caller",
        "user",
        "key",
        "endpoint",
        "request_hash",
        "status_code",
        "response_pretty",
        "bet",
        "created_at",
        "locked_until",
        "completed_at",
        "expires_at",
    )
    readonly_fields = ("response_pretty",)

    @admin.display(description="Stored response")
    def response_pretty(self, obj):
        return pretty_json(obj.response_body)
