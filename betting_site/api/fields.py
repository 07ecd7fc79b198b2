"""Serializer fields shared by the apps' APIs."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from betting_site.money import (
    MONEY_DECIMAL_PLACES,
    MONEY_MAX_DIGITS,
    MoneyInvalid,
    money_parse,
)


def money_field(**kwargs) -> serializers.DecimalField:
    """Money on the wire: the column's digits and places, a ``Decimal`` that the
    renderer writes as an exact JSON number (never a string or a float)."""
    return serializers.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        coerce_to_string=False,
        **kwargs,
    )


_MONEY_LIMIT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)
# money_parse's rules, in this field's (DRF's) words.
_MONEY_ERRORS = {"places": "max_places", "too_large": "too_large"}


class MoneyField(serializers.Field[Decimal, Any, Decimal, Any]):
    """A JSON number with at most two decimal places, as an exact ``Decimal``.

    The project's JSON parser gives ``int`` or ``Decimal``; strings, booleans and
    floats are refused, never coerced.
    """

    default_error_messages = {
        "invalid": "A JSON number is required.",
        "max_places": "Ensure that there are no more than 2 decimal places.",
        "too_large": "Ensure this value is less than {limit}.",
        "not_positive": "Ensure this value is greater than 0.",
        "negative": "Ensure this value is greater than or equal to 0.",
    }

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            amount = money_parse(data)
        except MoneyInvalid as exc:
            self.fail(_MONEY_ERRORS.get(exc.code, "invalid"), limit=_MONEY_LIMIT)
        if amount < 0 or (amount == 0 and not self.allow_zero):
            self.fail("negative" if self.allow_zero else "not_positive")
        return amount

    def to_representation(self, value: Decimal) -> Decimal:
        return value
