"""Money: Decimal end to end, two places, one definition of the column."""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django.db import models

MONEY_MAX_DIGITS = 14
MONEY_DECIMAL_PLACES = 2
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# The largest amount the money column holds (12 digits before the point).
MONEY_MAX = Decimal(10 ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)) - CENT


def money_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs
    )


def to_money(value: Decimal | int | str) -> Decimal:
    """Exact conversion to two places; refuses floats and anything with more places."""
    if isinstance(value, float):
        raise TypeError("money is never a float")
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{value!r} is not an amount of money") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount of money")
    quantized = amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if quantized != amount:
        raise ValueError(f"{value!r} has more than two decimal places")
    return quantized


def round_money(value: Decimal | int) -> Decimal:
    """``value`` rounded to cents. For sums the database computes: SQLite stores
    money as floating point, so its sums carry float error in the last places (on
    PostgreSQL they are exact, and this changes nothing)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN)
