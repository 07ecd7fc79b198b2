"""The users' admin with the reconciliation actions.

``accounts`` registers the user admin; reconciling a player with the provider
runs under betting's provider lease, so betting registers the page again with
those actions added (its admin is loaded after accounts', by INSTALLED_APPS).
"""

from typing import Any

from django.contrib import admin

from accounts.admin import UserAdmin
from accounts.models import User
from betting.admin.balances import ReconcileActionsMixin
from betting.reconciliation import ReconcileResult

admin.site.unregister(User)


@admin.register(User)
class PlayerAdmin(ReconcileActionsMixin, UserAdmin):
    actions = ("reconcile_selected", "check_selected")

    def reconcile_users_of(self, queryset: Any) -> list[User]:
        return list(queryset)

    def reconcile_log_object(self, result: ReconcileResult, queryset: Any) -> User:
        return result.account.user
