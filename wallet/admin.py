from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from betting.admin import form_add_service_error
from betting.staff import (
    ADJUST_PERMISSION,
    REASON_MAX_LENGTH,
    adjustment_post,
    staff_can,
)
from betting_site.admin import ReadOnlyModelAdmin, pretty_json
from betting_site.api.errors import ApplicationError
from betting_site.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from wallet.models import Transaction, UserBalance


class BalanceAdjustForm(forms.Form):
    """A manual ledger adjustment: a signed amount and why."""

    amount = forms.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        help_text="Signed, at most two decimal places: negative takes money off.",
    )
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why the ledger is adjusted. Stored on the entry with your username.",
    )

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("The amount cannot be zero.")
        return amount


@admin.register(UserBalance)
class UserBalanceAdmin(ReadOnlyModelAdmin):
    list_display = (
        "user",
        "balance",
        "held",
        "available",
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
        "available",
        "external_balance",
        "last_checked_at",
        "updated_at",
    )
    readonly_fields = ("available",)
    actions = ("adjust_selected",)

    @admin.display(description="Available")
    def available(self, obj: UserBalance):
        return obj.available

    def has_staff_adjust_permission(self, request: HttpRequest) -> bool:
        """Who may adjust (the change form itself stays read-only)."""
        return staff_can(request.user, ADJUST_PERMISSION)

    @admin.action(description="Adjust balance…", permissions=("staff_adjust",))
    def adjust_selected(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one balance to adjust.", messages.WARNING
            )
            return None
        return HttpResponseRedirect(
            reverse("admin:wallet_userbalance_adjust", args=[queryset.get().pk])
        )

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="wallet_userbalance_adjust",
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if self.has_staff_adjust_permission(request):
            extra_context["adjust_url"] = reverse(
                "admin:wallet_userbalance_adjust", args=[object_id]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The adjustment form, posting through ``adjustment_post``."""
        if not self.has_staff_adjust_permission(request):
            raise PermissionDenied
        wallet = self.get_object(request, unquote(object_id))
        if wallet is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = BalanceAdjustForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                entry = adjustment_post(
                    user=wallet.user,
                    amount=form.cleaned_data["amount"],
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ApplicationError as exc:
                form_add_service_error(form, exc)
            else:
                wallet.refresh_from_db()
                self.log_change(
                    request,
                    wallet,
                    f"Adjustment {entry.amount:+} ({entry.pk}): "
                    f"{form.cleaned_data['reason']}",
                )
                self.message_user(
                    request,
                    f"Adjustment of {entry.amount:+} posted for {wallet.user}: "
                    f"balance {entry.balance_before} -> {entry.balance_after}, "
                    f"available {wallet.available}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:wallet_userbalance_change", args=[wallet.pk])
                )
        adminform = helpers.AdminForm(
            form, [(None, {"fields": ["amount", "reason"]})], {}
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust the balance of {wallet.user}",
            "subtitle": None,
            "opts": self.opts,
            "object": wallet,
            "adminform": adminform,
            "errors": form.errors,
            "media": self.media + adminform.media,
            "action_label": "Adjust balance",
            "submit_label": "Post adjustment",
            "recent_entries": Transaction.objects.filter(user=wallet.user).order_by(
                "-id"
            )[:10],
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/wallet/userbalance/adjust.html", context
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
