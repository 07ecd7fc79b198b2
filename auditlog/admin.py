from django.contrib import admin

from auditlog.models import ApiLog
from betting_site.admin import ReadOnlyModelAdmin, pretty_json


@admin.register(ApiLog)
class ApiLogAdmin(ReadOnlyModelAdmin):
    list_display = (
        "created_at",
        "direction",
        "method",
        "endpoint",
        "status_code",
        "outcome",
        "duration_ms",
        "attempt",
        "user",
        "ip_address",
    )
    list_filter = ("direction", "method", "outcome", "status_code")
    list_select_related = ("user",)
    search_fields = ("endpoint", "request_id", "user__username")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "direction",
        "method",
        "endpoint",
        "status_code",
        "outcome",
        "error",
        "duration_ms",
        "attempt",
        "user",
        "ip_address",
        "request_id",
        "request_pretty",
        "response_pretty",
    )
    readonly_fields = ("request_pretty", "response_pretty")

    @admin.display(description="Request body (redacted)")
    def request_pretty(self, obj):
        return pretty_json(obj.request_body)

    @admin.display(description="Response body (redacted)")
    def response_pretty(self, obj):
        return pretty_json(obj.response_body)
