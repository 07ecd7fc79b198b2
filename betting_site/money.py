"""Money: Decimal end to end, two places, one definition of the column."""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import cast

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


class MoneyInvalid(ValueError):
    """An amount refused by ``money_parse``; ``code`` says which rule, the message
    says it to a person."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def money_parse(
    value: object,
    *,
    whole: bool = False,
    low: Decimal | int | None = None,
    high: Decimal | int | None = None,
    allow_zero: bool = True,
) -> Decimal:
    """The one validator of amounts that come from outside (the API, the admin,
    the command line): an exact number (``int`` or ``Decimal``, never a float, a
    string or a boolean), finite, with at most two places (or ``whole``), within
    the money column and within ``low``..``high``. Returns it with two places;
    raises ``MoneyInvalid``. Codes: ``invalid``, ``whole``, ``places``,
    ``too_large``, ``zero``, ``range``."""
    not_a_number = isinstance(value, bool) or not isinstance(value, int | Decimal)
    if not_a_number or (isinstance(value, Decimal) and not value.is_finite()):
        if whole:
            raise MoneyInvalid("whole", "A whole number is required")
        raise MoneyInvalid("invalid", "An exact number is required")
    amount = Decimal(cast(int | Decimal, value))  # checked just above
    if whole and amount != amount.to_integral_value():
        raise MoneyInvalid("whole", "A whole number is required")
    if (low is not None and amount < low) or (high is not None and amount > high):
        if low is not None and high is not None:
            message = f"The amount must be between {low} and {high}"
        elif low is not None:
            message = f"The amount must be at least {low}"
        else:
            message = f"The amount must be at most {high}"
        raise MoneyInvalid("range", message)
    if abs(amount) > MONEY_MAX:  # checked first: quantizing it would overflow
        raise MoneyInvalid("too_large", f"The amount cannot exceed {MONEY_MAX}")
    try:
        amount = to_money(amount)
    except ValueError:
        raise MoneyInvalid(
            "places", "An amount with at most two decimal places"
        ) from None
    if amount == 0 and not allow_zero:
        raise MoneyInvalid("zero", "The amount cannot be zero")
    return amount
