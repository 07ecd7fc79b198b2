"""Serializer fields shared by the apps' APIs."""

from rest_framework import serializers

from betting_site.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS


def money_field(**kwargs) -> serializers.DecimalField:
    """Money on the wire: the column's digits and places, a ``Decimal`` that the
    renderer writes as an exact JSON number (never a string or a float)."""
    return serializers.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        coerce_to_string=False,
        **kwargs,
    )
