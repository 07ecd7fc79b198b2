from django.contrib import admin
from django.db.models import Q

from auditlog.models import ApiLog
from auditlog.selectors import (
    PROVIDER_FAILURES,
    PROVIDER_OK,
    outbound_endpoints,
    provider_call_failed,
)
from betting_site.admin import LargeTableAdmin, pretty_json, user_ids_named


class FailedCallFilter(admin.SimpleListFilter):
    """Provider calls that did not get a 2xx ``ok`` answer (the dashboard's error
    rate counts these), and inbound requests answered 4xx/5xx."""

    title = "failed"
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return (("yes", "Failed"), ("no", "Succeeded"))

    def queryset(self, request, queryset):
        failed = Q(direction=ApiLog.Direction.OUTBOUND) & provider_call_failed() | Q(
            direction=ApiLog.Direction.INBOUND, status_code__gte=400
        )
        if self.value() == "yes":
            return queryset.filter(failed)
        if self.value() == "no":
            return queryset.exclude(failed)
        return queryset


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter on one column with a fixed list of values: unlike Django's
    all-values filter it never reads the (large, append-only) table for them."""

    field: str
    values: tuple[tuple[str, str], ...] = ()

    def lookups(self, request, model_admin):
        return self.values

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field: self.value()})


class OutcomeFilter(FixedChoicesFilter):
    title = "outcome"
    parameter_name = field = "outcome"
    values = tuple((name, name) for name in (PROVIDER_OK, *PROVIDER_FAILURES))


class MethodFilter(FixedChoicesFilter):
    title = "method"
    parameter_name = field = "method"
    values = tuple((name, name) for name in ("GET", "POST", "PUT", "PATCH", "DELETE"))


class ProviderEndpointFilter(FixedChoicesFilter):
    title = "provider endpoint"
    parameter_name = field = "endpoint"

    def lookups(self, request, model_admin):
        return tuple((path, path) for path in outbound_endpoints())


class StatusClassFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return (
            ("2xx", "2xx"),
            ("3xx", "3xx"),
            ("4xx", "4xx"),
            ("5xx", "5xx"),
            ("none", "No answer"),
        )

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(status_code__isnull=True)
        if value in {"2xx", "3xx", "4xx", "5xx"}:
            low = int(value[0]) * 100
            return queryset.filter(status_code__gte=low, status_code__lt=low + 100)
        return queryset


@admin.register(ApiLog)
class ApiLogAdmin(LargeTableAdmin):
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
    list_filter = (
        "direction",
        FailedCallFilter,
        OutcomeFilter,
        StatusClassFilter,
        MethodFilter,
        ProviderEndpointFilter,
    )
    list_select_related = ("user",)
    search_fields = ("request_id", "user__username", "endpoint")
    search_help_text = (
        "Exact: a request id (X-Request-ID), a username (any case) or an endpoint "
        "path. Several, separated by spaces: rows matching any."
    )
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

    def search_filter(self, terms: list[str]) -> Q:
        """The request id and the endpoint on their own indexes; usernames looked
        up first, then rows by the indexed ``user_id``."""
        return (
            Q(request_id__in=terms)
            | Q(endpoint__in=terms)
            | Q(user_id__in=user_ids_named(terms))
        )

    @admin.display(description="Request body (redacted)")
    def request_pretty(self, obj):
        return pretty_json(obj.request_body)

    @admin.display(description="Response body (redacted)")
    def response_pretty(self, obj):
        return pretty_json(obj.response_body)
