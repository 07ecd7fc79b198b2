"""The balances' admin: adjustments and reconciliation with the provider, each
under the user's provider lease, with who did it and why."""

from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, F, Model, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.models import User
from betting.admin.bets import form_add_service_error
from betting.models import Bet
from betting.reconciliation import ReconcileResult, ReconcileStatus
from betting.selectors import balances_with_discrepancy
from betting.staff import (
    ADJUST_PERMISSION,
    REASON_MAX_LENGTH,
    RECONCILE_CHECK_PERMISSION,
    ReconcileSummary,
    adjustment_post,
    balances_reconcile_by_staff,
    staff_can,
)
from betting_site.admin import ReadOnlyModelAdmin
from betting_site.errors import ApplicationError
from betting_site.money import (
    MONEY_DECIMAL_PLACES,
    MONEY_MAX_DIGITS,
    MoneyInvalid,
    money_parse,
)
from wallet.models import Transaction, UserBalance

# One admin request reconciles at most this many accounts (each is a provider
# call); manage.py reconcile is the tool for all of them.
RECONCILE_ACTION_MAX = 100


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

    def clean_amount(self) -> Decimal:
        try:
            return money_parse(self.cleaned_data["amount"], allow_zero=False)
        except MoneyInvalid as exc:
            raise forms.ValidationError(f"{exc}.") from None


class ProviderBalanceFilter(admin.SimpleListFilter):
    """Balances by how the provider's last figure compares with the ledger."""

    title = "provider balance"
    parameter_name = "provider"

    def lookups(
        self, request: HttpRequest, model_admin: "admin.ModelAdmin[Any]"
    ) -> tuple[tuple[str, str], ...]:
        return (
            ("differs", "Differs (no open bets)"),
            ("open_bets", "User has open bets"),
            ("matches", "Matches"),
            ("unchecked", "Never read"),
        )

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[UserBalance]
    ) -> QuerySet[UserBalance]:
        open_bets = Exists(
            Bet.objects.filter(
                user_id=OuterRef("user_id"), status__in=Bet.OPEN_STATUSES
            )
        )
        match self.value():
            case "differs":
                return queryset.filter(pk__in=balances_with_discrepancy().values("pk"))
            case "open_bets":
                return queryset.filter(open_bets)
            case "matches":
                return queryset.filter(external_balance=F("balance"))
            case "unchecked":
                return queryset.filter(external_balance__isnull=True)
        return queryset


def reconcile_messages(summary: ReconcileSummary) -> list[tuple[int, str]]:
    """Admin messages for a bulk reconciliation: one per outcome, naming each
    account with its figures."""

    def who(result: ReconcileResult) -> str:
        return result.account.user.username

    def figures(result: ReconcileResult) -> str:
        return (
            f"ledger {result.ledger_balance}, provider {result.provider_balance}, "
            f"difference {result.difference:+}"
        )

    groups: dict[ReconcileStatus, list[str]] = {}
    for result in summary.results:
        if result.status == ReconcileStatus.FIXED:
            text = (
                f"{who(result)} ({figures(result)}; adjustment "
                f"{cast(Transaction, result.adjustment).pk} posted)"  # FIXED has one
            )
        elif result.status == ReconcileStatus.DRIFT:
            text = f"{who(result)} ({figures(result)})"
        elif result.status == ReconcileStatus.IN_SYNC:
            text = f"{who(result)} ({result.ledger_balance})"
        elif result.status == ReconcileStatus.OPEN_BETS:
            bets = ", ".join(map(str, result.open_bet_ids))
            text = f"{who(result)} (open bets {bets})"
        else:
            text = f"{who(result)} ({result.detail})"
        groups.setdefault(result.status, []).append(text)

    headings = (
        (ReconcileStatus.FIXED, messages.SUCCESS, "Fixed, drift booked as adjustment"),
        (
            ReconcileStatus.DRIFT,
            messages.WARNING,
            "Drift found, not booked (the reconcile action books it)",
        ),
        (ReconcileStatus.IN_SYNC, messages.INFO, "In sync"),
        (
            ReconcileStatus.OPEN_BETS,
            messages.WARNING,
            "Skipped, open bets: settle or void them first",
        ),
        (ReconcileStatus.BUSY, messages.WARNING, "Skipped, busy: retry shortly"),
        (
            ReconcileStatus.ERROR,
            messages.ERROR,
            "Not reconciled, provider unreachable or error",
        ),
    )
    lines = []
    for status, level, heading in headings:
        if status in groups:
            names = groups[status]
            lines.append((level, f"{heading} ({len(names)}): {'; '.join(names)}."))
    if summary.unlinked:
        unlinked = ", ".join(user.username for user in summary.unlinked)
        lines.append(
            (
                messages.WARNING,
                f"Skipped, no active provider account ({len(summary.unlinked)}): "
                f"{unlinked}.",
            )
        )
    if not lines:
        lines.append((messages.INFO, "Nothing to reconcile."))
    return lines


# The mixin's admin methods (message_user, log_change) come from the ModelAdmin it
# is mixed into; that base is declared for mypy only.
if TYPE_CHECKING:
    _MixinBase = admin.ModelAdmin[Any]
else:
    _MixinBase = object


class ReconcileActionsMixin(_MixinBase):
    """The bulk reconcile actions, for admins whose rows belong to users."""

    reconcile_fixed_message = (
        "Reconciled with the provider: adjustment {amount:+} ({pk})"
    )

    def reconcile_users_of(self, queryset: QuerySet[Any]) -> list[User]:
        raise NotImplementedError

    def reconcile_log_object(
        self, result: ReconcileResult, queryset: QuerySet[Any]
    ) -> Model:
        raise NotImplementedError

    def has_staff_adjust_permission(self, request: HttpRequest) -> bool:
        """Who may book drift (the change form itself stays read-only)."""
        return staff_can(request.user, ADJUST_PERMISSION)

    def has_staff_check_permission(self, request: HttpRequest) -> bool:
        return staff_can(request.user, RECONCILE_CHECK_PERMISSION)

    @admin.action(
        description="Reconcile selected with the provider (book drift as adjustment)",
        permissions=("staff_adjust",),
    )
    def reconcile_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._reconcile(request, queryset, fix=True)

    @admin.action(
        description="Check selected against the provider (book nothing)",
        permissions=("staff_check",),
    )
    def check_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._reconcile(request, queryset, fix=False)

    def _reconcile(
        self, request: HttpRequest, queryset: QuerySet[Any], *, fix: bool
    ) -> None:
        users = self.reconcile_users_of(queryset)
        if len(users) > RECONCILE_ACTION_MAX:
            self.message_user(
                request,
                f"Select at most {RECONCILE_ACTION_MAX} at a time (each is a "
                "provider call), or run manage.py reconcile.",
                messages.WARNING,
            )
            return
        try:
            summary = balances_reconcile_by_staff(
                users=users,
                # An admin action: the request's user is an authenticated staff user.
                actor=cast(User, request.user),
                fix=fix,
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        for result in summary.results:
            if result.status == ReconcileStatus.FIXED:
                self.log_change(
                    request,
                    self.reconcile_log_object(result, queryset),
                    self.reconcile_fixed_message.format(
                        amount=result.difference,
                        pk=cast(Transaction, result.adjustment).pk,  # FIXED has one
                    ),
                )
        for level, text in reconcile_messages(summary):
            self.message_user(request, text, level)


@admin.register(UserBalance)
class UserBalanceAdmin(ReconcileActionsMixin, ReadOnlyModelAdmin):
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
    list_filter = (
        ProviderBalanceFilter,
        ("last_checked_at", admin.DateFieldListFilter),
    )
    search_fields = ("user__username", "user__external_accounts__external_user_id")
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
    actions = ("adjust_selected", "reconcile_selected", "check_selected")

    @admin.display(description="Available")
    def available(self, obj: UserBalance) -> Decimal:
        return obj.available

    def reconcile_users_of(self, queryset: QuerySet[UserBalance]) -> list[User]:
        return [wallet.user for wallet in queryset.select_related("user")]

    def reconcile_log_object(
        self, result: ReconcileResult, queryset: QuerySet[UserBalance]
    ) -> UserBalance:
        return queryset.get(user_id=result.account.user_id)

    @admin.action(description="Adjust balance…", permissions=("staff_adjust",))
    def adjust_selected(
        self, request: HttpRequest, queryset: QuerySet[UserBalance]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one balance to adjust.", messages.WARNING
            )
            return None
        return HttpResponseRedirect(
            reverse("admin:wallet_userbalance_adjust", args=[queryset.get().pk])
        )

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="wallet_userbalance_adjust",
            ),
        ]
        return custom + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
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
            # A private ModelAdmin helper (Django 5.2 has it) that django-stubs lacks.
            missing: HttpResponse = self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
            return missing
        form = BalanceAdjustForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                entry = adjustment_post(
                    user=wallet.user,
                    amount=form.cleaned_data["amount"],
                    # Checked by staff_can() above: an authenticated staff user.
                    actor=cast(User, request.user),
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
        # django-stubs wants a ModelForm; Django's own admin passes plain forms too.
        adminform = helpers.AdminForm(
            form,  # type: ignore[arg-type]
            [(None, {"fields": ["amount", "reason"]})],
            {},
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
