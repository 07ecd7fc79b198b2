"""Admin helpers shared by the apps."""

import json

from django.contrib import admin
from django.utils.html import format_html


class ReadOnlyAdminMixin:
    """For history that must not be edited: staff can look, never add, change or
    delete. Changes happen through services (admin actions call them)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def pretty_json(value) -> str:
    """A JSON value as an indented block for read-only admin fields."""
    if value in (None, "", {}, []):
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="backoffice-json">{}</pre>', text)


class ReadOnlyModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass
