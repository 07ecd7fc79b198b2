from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from accounts.models import ExternalApiAccount, User
from betting.models import Bet, IdempotencyKey, ProviderLease
from betting.staff import (
    REASON_MAX_LENGTH,
    VOID_PERMISSION,
    bet_void_by_staff,
    bets_resolve_by_staff,
    staff_can,
)
from betting_site.admin import (
    LargeTableAdmin,
    ReadOnlyAdminMixin,
    ReadOnlyModelAdmin,
    pretty_json,
    user_ids_named,
)
from betting_site.errors import ApplicationError
from wallet.models import Transaction


class BetVoidForm(forms.Form):
    """What staff must state to void a bet by hand."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why the bet is voided (what you checked at the provider). "
        "Stored on the bet with your username.",
    )
    provider_debited = forms.BooleanField(
        required=False,
        label="The provider took the stake",
        help_text="Tick only if the provider's records show the stake was debited: "
        "the stake is then booked as a bet_place entry (unless it already is).",
    )


def form_add_service_error(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's refusal on the form: details on their fields when the form
    has them, otherwise the message (and the other details) above the form."""
    mapped = False
    if isinstance(exc.details, dict):
        for name, problems in exc.details.items():
            problems = problems if isinstance(problems, list) else [problems]
            if name in form.fields:
                form.add_error(name, [str(p) for p in problems])
                mapped = True
            else:
                form.add_error(None, [f"{name}: {p}" for p in problems])
    if not mapped:
        form.add_error(None, exc.message)


# Django's admin classes are not subscriptable at runtime: parametrised for mypy only.
if TYPE_CHECKING:
    _TransactionInline = admin.TabularInline[Transaction, Bet]
else:
    _TransactionInline = admin.TabularInline


class BetTransactionInline(ReadOnlyAdminMixin, _TransactionInline):
    model = Transaction
    fk_name = "bet"
    fields = (
        "type",
        "amount",
        "balance_before",
        "balance_after",
        "description",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("id",)
    verbose_name_plural = "Ledger entries of this bet"


@admin.register(Bet)
class BetAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "user",
        "amount",
        "status",
        "win_amount",
        "external_bet_id",
        "needs_attention",
        "result_in_doubt",
        "created_at",
        "completed_at",
    )
    list_filter = (
        "status",
        "needs_attention",
        "result_in_doubt",
        "stake_mode",
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("user",)
    search_fields = ("user__username", "account__external_user_id", "external_bet_id")
    search_help_text = (
        "Exact: a username (any case), a provider user id, a provider bet id or a "
        "bet id. Several, separated by spaces: bets matching any."
    )
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
        "result_in_doubt",
        "unknown_since",
        "idempotency_key",
        "created_at",
        "updated_at",
        "completed_at",
    )
    inlines = (BetTransactionInline,)
    actions = ("resolve_with_provider", "void_selected")

    def search_filter(self, terms: list[str]) -> Q:
        """Each value looked up on its own indexed column of bets: the users and
        provider accounts first (small tables), then bets by their ids, so that
        PostgreSQL combines bets' indexes instead of joining every bet."""
        accounts = ExternalApiAccount.objects.filter(external_user_id__in=terms)
        found = (
            Q(user_id__in=user_ids_named(terms))
            | Q(account_id__in=list(accounts.values_list("pk", flat=True)))
            | Q(external_bet_id__in=terms)
        )
        bet_ids = [int(term) for term in terms if term.isdigit() and len(term) < 19]
        return found | Q(pk__in=bet_ids) if bet_ids else found

    def has_staff_repair_permission(self, request: HttpRequest) -> bool:
        """Who may run the repair actions (the change form itself stays
        read-only: history is never edited)."""
        return staff_can(request.user, VOID_PERMISSION)

    @admin.action(
        description="Settle selected open bets with the provider (resolve)",
        permissions=("staff_repair",),
    )
    def resolve_with_provider(
        self, request: HttpRequest, queryset: QuerySet[Bet]
    ) -> None:
        if not self.has_staff_repair_permission(request):
            self.message_user(request, "You may not resolve bets.", messages.ERROR)
            return
        summary = bets_resolve_by_staff(
            bets=queryset.select_related("account").order_by("id"),
            # Checked by staff_can() above: an authenticated staff user.
            actor=cast(User, request.user),
        )
        for bet in summary.resolved:
            if bet.status not in Bet.OPEN_STATUSES:
                self.log_change(request, bet, f"Resolved with the provider: {bet}")
        level = messages.WARNING if summary.busy or summary.errors else messages.INFO
        self.message_user(request, summary.as_text(), level)

    @admin.action(description="Void selected bet…", permissions=("staff_repair",))
    def void_selected(
        self, request: HttpRequest, queryset: QuerySet[Bet]
    ) -> HttpResponse | None:
        if not self.has_staff_repair_permission(request):
            self.message_user(request, "You may not void bets.", messages.ERROR)
            return None
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one bet to void.", messages.WARNING
            )
            return None
        return HttpResponseRedirect(
            reverse("admin:betting_bet_void", args=[queryset.get().pk])
        )

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/void/",
                self.admin_site.admin_view(self.void_view),
                name="betting_bet_void",
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
        bet = self.get_object(request, unquote(object_id))
        if (
            bet is not None
            and bet.status in Bet.OPEN_STATUSES
            and self.has_staff_repair_permission(request)
        ):
            extra_context["void_url"] = reverse("admin:betting_bet_void", args=[bet.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    def void_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirmation page: a reason is required, then ``bet_void_by_staff``."""
        if not self.has_staff_repair_permission(request):
            raise PermissionDenied
        bet = self.get_object(request, unquote(object_id))
        if bet is None:
            # A private ModelAdmin helper (Django 5.2 has it) that django-stubs lacks.
            missing: HttpResponse = self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
            return missing
        change_url = reverse("admin:betting_bet_change", args=[bet.pk])
        if request.method == "POST":
            form = BetVoidForm(request.POST)
            if form.is_valid():
                try:
                    bet = bet_void_by_staff(
                        bet=bet,
                        # Checked by staff_can() above: an authenticated staff user.
                        actor=cast(User, request.user),
                        reason=form.cleaned_data["reason"],
                        provider_debited=form.cleaned_data["provider_debited"],
                    )
                except ApplicationError as exc:
                    form_add_service_error(form, exc)
                else:
                    self.log_change(request, bet, f"Voided: {bet.status_reason}")
                    self.message_user(
                        request,
                        f"Bet {bet.pk} is void. {bet.status_reason}",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(change_url)
        elif bet.status not in Bet.OPEN_STATUSES:
            self.message_user(
                request,
                f"Bet {bet.pk} is {bet.status}: only a pending or unknown bet can be "
                "voided.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        else:
            form = BetVoidForm()
        # django-stubs wants a ModelForm; Django's own admin passes plain forms too.
        adminform = helpers.AdminForm(
            form,  # type: ignore[arg-type]
            [(None, {"fields": ["reason", "provider_debited"]})],
            {},
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Void bet {bet.pk}",
            "subtitle": None,
            "opts": self.opts,
            "object": bet,
            "adminform": adminform,
            "errors": form.errors,
            "media": self.media + adminform.media,
            "action_label": "Void",
            "submit_label": "Void this bet",
            "releases_hold": bet.external_bet_id is None
            or bet.stake_mode == Bet.StakeMode.DEBIT_ON_LOSS,
            "entries": Transaction.objects.filter(bet=bet).order_by("id"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/betting/bet/void_confirmation.html", context
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
    list_select_related = ("bet",)
    search_fields = ("caller", "key", "user__username")
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
    def response_pretty(self, obj: IdempotencyKey) -> str:
        return pretty_json(obj.response_body)


@admin.register(ProviderLease)
class ProviderLeaseAdmin(ReadOnlyModelAdmin):
    """Who holds each user's provider lease: a busy user's operation in flight."""

    list_display = ("user", "operation", "holder", "expires_at", "is_held")
    list_select_related = ("user",)
    list_filter = ("operation",)
    search_fields = ("user__username", "holder")
    fields = ("user", "operation", "holder", "expires_at")

    @admin.display(boolean=True, description="Held now")
    def is_held(self, obj: ProviderLease) -> bool:
        return bool(obj.holder and obj.expires_at and obj.expires_at > timezone.now())
