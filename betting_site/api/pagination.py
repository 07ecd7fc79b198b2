"""``?page=1&limit=10`` pagination with the contract's response shape.

``{"<items>": [...], "pagination": {"total", "page", "limit", "pages"}}``: a limit
above 100 is treated as 100; a page or limit that is not a positive integer is 400.
A page past the end answers an empty list with the true totals.
"""

import math
import re
from dataclasses import dataclass

from django.db.models import QuerySet

from betting_site.errors import ValidationFailed

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_POSITIVE_INT = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.total else 0

    def as_dict(self, items_key: str, serialized_items: list) -> dict:
        return {
            items_key: serialized_items,
            "pagination": {
                "total": self.total,
                "page": self.page,
                "limit": self.limit,
                "pages": self.pages,
            },
        }


def page_params(query_params) -> tuple[int, int]:
    errors = {}
    values = {}
    for name, default in (("page", 1), ("limit", DEFAULT_LIMIT)):
        raw = query_params.get(name)
        if raw is None:
            values[name] = default
        elif _POSITIVE_INT.match(raw):
            values[name] = int(raw)
        else:
            errors[name] = [f"{name} must be a positive integer"]
    if errors:
        raise ValidationFailed(details=errors)
    return values["page"], min(values["limit"], MAX_LIMIT)


def paginate(queryset: QuerySet, query_params) -> Page:
    """Two queries whatever the page size: a count and one slice."""
    page, limit = page_params(query_params)
    total = queryset.count()
    offset = (page - 1) * limit
    items = list(queryset[offset : offset + limit]) if offset < total else []
    return Page(items=items, total=total, page=page, limit=limit)


def choice_param(query_params, name: str, choices) -> str | None:
    """An optional list filter such as ``?status=``: one of ``choices`` or 400."""
    value = query_params.get(name)
    if value is not None and value not in choices:
        raise ValidationFailed(details={name: [f"One of: {', '.join(choices)}"]})
    return value
