"""Names for SQL written by hand: tables and columns from the models' ``_meta``,
quoted for the connection, so that a renamed column breaks loudly here rather
than in a statement."""

import json
from typing import Any

from django.db import connection, connections
from django.db.models import Field, Model, QuerySet


def concrete_field(model: type[Model], name: str) -> "Field[Any, Any]":
    """The field ``name`` (``"pk"``: the primary key) that is a column of
    ``model``'s table."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete or field.column is None:
        raise LookupError(f"{model.__name__}.{name} is not a column")
    return field


def quoted_column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(str(concrete_field(model, name).column))


def quoted_table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def planned_rows(queryset: "QuerySet[Any]") -> int | None:
    """How many rows PostgreSQL's planner expects ``queryset`` to return (its
    EXPLAIN, which runs nothing); None on another database."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])
