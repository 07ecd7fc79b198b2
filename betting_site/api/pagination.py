"""``?page=1&limit=10`` pagination with the contract's response shape, and
``?cursor=`` (keyset) pagination beside it.

``{"<items>": [...], "pagination": {"total", "page", "limit", "pages"}}``: a limit
above 100 is treated as 100; a page or limit that is not a positive integer is 400.
A page past the end answers an empty list with the true totals.

With ``cursor`` (empty for the first page, then a ``next_cursor`` or
``prev_cursor`` from an answer) the answer is ``{"<items>": [...], "pagination":
{"limit", "next_cursor", "prev_cursor"}}``: no count, and every page costs the
same however deep, because it starts from the last row seen instead of skipping
the ones before (OFFSET). An unreadable cursor is 400.
"""

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from betting_site.errors import ValidationFailed

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# From this offset on, a page first finds its rows' ids alone (an index-only scan
# of the rows before it), then reads those rows: not every skipped row.
DEFERRED_JOIN_FROM = 200
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


def paginate(queryset: QuerySet, query_params) -> "Page | CursorPage":
    """The page the query asks for: by cursor if it has ``cursor``, else by page
    number. Page numbers: a count and one slice (deep pages: a slice of ids,
    then their rows)."""
    if "cursor" in query_params:
        return paginate_by_cursor(queryset, query_params)
    page, limit = page_params(query_params)
    total = queryset.count()
    offset = (page - 1) * limit
    if offset >= total:
        items = []
    elif offset < DEFERRED_JOIN_FROM:
        items = list(queryset[offset : offset + limit])
    else:
        ids = list(queryset.values_list("pk", flat=True)[offset : offset + limit])
        items = list(queryset.filter(pk__in=ids))
    return Page(items=items, total=total, page=page, limit=limit)


@dataclass(frozen=True)
class CursorPage:
    items: list
    limit: int
    next_cursor: str | None
    prev_cursor: str | None

    def as_dict(self, items_key: str, serialized_items: list) -> dict:
        return {
            items_key: serialized_items,
            "pagination": {
                "limit": self.limit,
                "next_cursor": self.next_cursor,
                "prev_cursor": self.prev_cursor,
            },
        }


def encode_cursor(direction: str, pk: int) -> str:
    """``after``: the rows older than ``pk``; ``before``: the rows newer."""
    raw = json.dumps({direction: pk}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[str, int] | None:
    """``(direction, pk)``, None for the empty cursor (the first page); 400 for
    anything that is not a cursor this module wrote."""
    if value == "":
        return None
    try:
        decoded: Any = json.loads(
            base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        )
    except (binascii.Error, ValueError):
        decoded = None
    if isinstance(decoded, dict) and len(decoded) == 1:
        ((direction, pk),) = decoded.items()
        if direction in ("after", "before") and type(pk) is int and 0 < pk < 2**63:
            return direction, pk
    raise ValidationFailed(
        details={"cursor": ["Not a cursor: use a next_cursor or prev_cursor as given"]}
    )


def paginate_by_cursor(queryset: QuerySet, query_params) -> CursorPage:
    """Keyset pagination of a queryset ordered newest first (``-id``).

    DRF has a ``CursorPagination``, but it answers an unreadable cursor with 404,
    writes links rather than the contract's ``pagination`` object, and needs a
    DRF request; the keyset itself is these few lines."""
    if tuple(queryset.query.order_by) not in (("-id",), ("-pk",)):
        raise ValueError("cursor pagination needs a queryset ordered by -id")
    if "page" in query_params:
        raise ValidationFailed(details={"cursor": ["Send page or cursor, not both"]})
    _, limit = page_params(query_params)
    position = decode_cursor(query_params["cursor"])
    if position is None or position[0] == "after":
        if position is not None:
            queryset = queryset.filter(pk__lt=position[1])
        rows = list(queryset[: limit + 1])
        items = rows[:limit]
        more_after, more_before = len(rows) > limit, position is not None
    else:
        rows = list(queryset.filter(pk__gt=position[1]).order_by("pk")[: limit + 1])
        items = rows[:limit][::-1]
        more_after, more_before = True, len(rows) > limit
    return CursorPage(
        items=items,
        limit=limit,
        next_cursor=encode_cursor("after", items[-1].pk)
        if items and more_after
        else None,
        prev_cursor=encode_cursor("before", items[0].pk)
        if items and more_before
        else None,
    )


def choice_param(query_params, name: str, choices) -> str | None:
    """An optional list filter such as ``?status=``: one of ``choices`` or 400."""
    value = query_params.get(name)
    if value is not None and value not in choices:
        raise ValidationFailed(details={name: [f"One of: {', '.join(choices)}"]})
    return value
