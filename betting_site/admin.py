"""Admin helpers shared by the apps."""

import datetime
import json
from collections.abc import Iterable
from functools import cached_property

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.html import format_html
from django_admin_lightweight_date_hierarchy.templatetags.ldh_admin_list import (
    default_date_hierarchy_drilldown,
)

from betting_site.sql import planned_rows


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


class EstimatedCountPaginator(Paginator):
    """Django's paginator, but a large result is counted by PostgreSQL's planner
    (``EXPLAIN``) instead of ``COUNT(*)``, which reads every matching row.

    Below ``EXACT_BELOW`` rows it counts exactly, with a ``COUNT`` capped at that
    many rows, so small and filtered lists show their true size. The usual way
    to do it (Django's documentation leaves the paginator to the project; the
    packages that do it target unfiltered counts through ``pg_class.reltuples``),
    written here because the estimate must follow the admin's filters too.
    """

    EXACT_BELOW = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        estimate = planned_rows(queryset)
        if estimate is None:
            return super().count
        if estimate < self.EXACT_BELOW:
            exact = queryset[: self.EXACT_BELOW].count()
            if exact < self.EXACT_BELOW:
                return exact
        return max(estimate, self.EXACT_BELOW)


def user_ids_named(terms: Iterable[str]) -> list[int]:
    """The users whose username is one of ``terms``, ignoring case (the users
    table is small: thousands, not millions)."""
    names = Q()
    for term in terms:
        names |= Q(username__iexact=term)
    return list(get_user_model().objects.filter(names).values_list("pk", flat=True))


class LargeTableAdmin(ReadOnlyModelAdmin):
    """The changelist of a table that grows without bound (bets, the ledger, the
    API log): every query it runs reads a page through an index, never the whole
    table.

    - No exact count of the whole table (``show_full_result_count``), and the
      page count from the planner's estimate (``EstimatedCountPaginator``).
    - The date hierarchy draws its links without reading the table
      (django-admin-lightweight-date-hierarchy); a link filters on a range of the
      indexed date column.
    - The search box looks up exact values in indexed columns: each subclass says
      which in ``search_filter``; several words find rows matching any of them.
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    date_hierarchy_drilldown = False

    def get_date_hierarchy_drilldown(
        self, year_lookup: int | None, month_lookup: int | None
    ) -> Iterable[datetime.date]:
        """The top level: this year and the two before (not the package's
        three years either side of today)."""
        if year_lookup is None:
            year = timezone.localdate().year
            return (datetime.date(y, 1, 1) for y in range(year - 2, year + 1))
        return default_date_hierarchy_drilldown(year_lookup, month_lookup)

    def search_filter(self, terms: list[str]) -> Q:
        raise NotImplementedError

    def get_search_results(self, request, queryset, search_term):
        terms = search_term.split()
        if not terms:
            return queryset, False
        return queryset.filter(self.search_filter(terms)), False
