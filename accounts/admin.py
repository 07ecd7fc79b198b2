from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Exists, OuterRef
from rest_framework_simplejwt.token_blacklist.admin import (
    BlacklistedTokenAdmin as _BlacklistedTokenAdmin,
)
from rest_framework_simplejwt.token_blacklist.admin import (
    OutstandingTokenAdmin as _OutstandingTokenAdmin,
)
from rest_framework_simplejwt.token_blacklist.models import (
    BlacklistedToken,
    OutstandingToken,
)

from accounts import services
from accounts.models import ExternalApiAccount, RevokedSession, User
from betting_site.admin import ReadOnlyAdminMixin, ReadOnlyModelAdmin

# Every column that could hold a secret is left out of these admins: the provider
# secret is write-only (set through a password input, never rendered back).
ACCOUNT_HISTORY_FIELDS = (
    "user",
    "external_user_id",
    "is_active",
    "created_at",
    "created_by",
    "link_reason",
    "deactivated_at",
    "deactivated_by",
    "deactivation_reason",
)


class ExternalApiAccountInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ExternalApiAccount
    fk_name = "user"
    fields = ("external_user_id", "is_active", "created_at", "link_reason")
    readonly_fields = fields
    extra = 0
    ordering = ("-is_active", "-created_at")


class ProviderLinkFilter(admin.SimpleListFilter):
    title = "provider account"
    parameter_name = "linked"

    def lookups(self, request, model_admin):
        return (("yes", "Linked"), ("no", "Not linked"))

    def queryset(self, request, queryset):
        linked = Exists(
            ExternalApiAccount.objects.filter(user_id=OuterRef("pk"), is_active=True)
        )
        if self.value() == "yes":
            return queryset.filter(linked)
        if self.value() == "no":
            return queryset.exclude(linked)
        return queryset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "is_staff", "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", ProviderLinkFilter)
    search_fields = (
        *DjangoUserAdmin.search_fields,
        "external_accounts__external_user_id",
    )
    date_hierarchy = "date_joined"
    inlines = [ExternalApiAccountInline]


class ExternalApiAccountLinkForm(forms.ModelForm):
    """Links a provider account: the secret is typed once and never shown again."""

    new_secret = forms.CharField(
        label="Provider secret",
        widget=forms.PasswordInput(render_value=False),
        strip=False,
        help_text="Stored encrypted; it cannot be displayed afterwards.",
    )

    class Meta:
        model = ExternalApiAccount
        fields = ("user", "external_user_id", "link_reason")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["link_reason"].required = True


@admin.register(ExternalApiAccount)
class ExternalApiAccountAdmin(admin.ModelAdmin):
    list_display = ("external_user_id", "user", "is_active", "created_at", "created_by")
    list_filter = ("is_active",)
    search_fields = ("external_user_id", "user__username")
    list_select_related = ("user", "created_by")
    autocomplete_fields = ("user",)
    date_hierarchy = "created_at"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ExternalApiAccountLinkForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "external_user_id", "new_secret", "link_reason")
        return ACCOUNT_HISTORY_FIELDS

    def get_readonly_fields(self, request, obj=None):
        return ACCOUNT_HISTORY_FIELDS if obj is not None else ()

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # history: a link is replaced by a new one, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        account, _ = services.account_link(
            user=form.cleaned_data["user"],
            external_user_id=form.cleaned_data["external_user_id"],
            secret=form.cleaned_data["new_secret"],
            actor=request.user,
            reason=form.cleaned_data["link_reason"],
        )
        obj.pk = account.pk
        obj.created_at = account.created_at


@admin.register(RevokedSession)
class RevokedSessionAdmin(ReadOnlyModelAdmin):
    list_display = ("user", "revoked_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "sid")
    date_hierarchy = "revoked_at"
    fields = ("user", "sid", "revoked_at", "expires_at")


# simplejwt's own admins show the token text; ours show everything but that.
admin.site.unregister(OutstandingToken)
admin.site.unregister(BlacklistedToken)


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(ReadOnlyAdminMixin, _OutstandingTokenAdmin):
    list_display = ("jti", "user", "created_at", "expires_at")
    fields = ("jti", "user", "created_at", "expires_at")
    readonly_fields = fields


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(ReadOnlyAdminMixin, _BlacklistedTokenAdmin):
    # simplejwt's admin is unannotated, so mypy takes its five-column tuple as the
    # attribute's type.
    list_display = ("token_jti", "token_user", "token_created_at", "blacklisted_at")  # type: ignore[assignment]
    fields = ("token", "blacklisted_at")
    readonly_fields = fields
