"""Typed results of provider calls, parsed strictly from the provider's JSON.

Amounts are ``Decimal`` (the JSON is parsed with ``parse_float=Decimal``, never
through a float). Each result keeps the provider's JSON as a read-only ``raw`` for
the internal endpoints and the API log. A body that does not have the expected
shape raises ``MalformedResponse``; the retry policy decides what that means.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

# The provider takes and recommends whole stakes in this range (contract section 4).
PROVIDER_BET_MIN = 1
PROVIDER_BET_MAX = 5


class MalformedResponse(ValueError):
    """A 2xx answer whose body is not the JSON the protocol describes."""


def parse_json(content: bytes) -> Any:
    """Parse a provider body: decimals as ``Decimal``, NaN and Infinity refused."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(
        content.decode("utf-8"), parse_float=Decimal, parse_constant=refuse_constant
    )


def freeze(value: Any) -> Any:
    """A read-only deep copy: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of a frozen value (dicts and lists)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(item) for item in value]
    return value


def _object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    return data


def _decimal(
    data: Mapping[str, Any], key: str, *, minimum: int | None = None
) -> Decimal:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise MalformedResponse(f"{key!r} is missing or not a number")
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError):
        raise MalformedResponse(f"{key!r} is not a number") from None
    if not amount.is_finite():
        raise MalformedResponse(f"{key!r} is not a finite number")
    if minimum is not None and amount < minimum:
        raise MalformedResponse(f"{key!r} is below {minimum}")
    return amount


def _identifier(data: Mapping[str, Any], key: str) -> str:
    """An opaque id sent as a string or a number, normalised to a string."""
    value = data.get(key)
    if isinstance(value, bool):
        raise MalformedResponse(f"{key!r} is not an id")
    if isinstance(value, Decimal) and value.is_finite():
        if value == value.to_integral_value():
            value = int(value)
        else:
            raise MalformedResponse(f"{key!r} is not an id")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise MalformedResponse(f"{key!r} is missing or empty")
    return value.strip()


@dataclass(frozen=True)
class ProviderResult:
    raw: Mapping[str, Any] = field(repr=False, compare=False, kw_only=True)

    def raw_dict(self) -> dict[str, Any]:
        """The provider's JSON as a plain (mutable) dict."""
        return thaw(self.raw)


@dataclass(frozen=True)
class Health(ProviderResult):
    @classmethod
    def from_json(cls, data: Any) -> "Health":
        # Any JSON value is a healthy answer; non-objects are kept under "value".
        raw = data if isinstance(data, Mapping) else {"value": data}
        return cls(raw=freeze(raw))


@dataclass(frozen=True)
class AuthResult(ProviderResult):
    user_id: str
    username: str

    @classmethod
    def from_json(cls, data: Any) -> "AuthResult":
        data = _object(data)
        username = data.get("username")
        return cls(
            user_id=_identifier(data, "user_id"),
            username=username if isinstance(username, str) else "",
            raw=freeze(data),
        )


@dataclass(frozen=True)
class BalanceResult(ProviderResult):
    balance: Decimal

    @classmethod
    def from_json(cls, data: Any) -> "BalanceResult":
        data = _object(data)
        return cls(balance=_decimal(data, "balance"), raw=freeze(data))


@dataclass(frozen=True)
class BalanceSetResult(ProviderResult):
    balance: Decimal

    @classmethod
    def from_json(cls, data: Any) -> "BalanceSetResult":
        data = _object(data)
        return cls(balance=_decimal(data, "balance"), raw=freeze(data))


@dataclass(frozen=True)
class Recommendation(ProviderResult):
    amount: int

    @classmethod
    def from_json(cls, data: Any) -> "Recommendation":
        data = _object(data)
        value = _decimal(data, "bet")
        if value != value.to_integral_value() or not (
            PROVIDER_BET_MIN <= value <= PROVIDER_BET_MAX
        ):
            raise MalformedResponse(
                f"'bet' is not a whole number from {PROVIDER_BET_MIN} to "
                f"{PROVIDER_BET_MAX}"
            )
        return cls(amount=int(value), raw=freeze(data))


@dataclass(frozen=True)
class BetPlaced(ProviderResult):
    bet_id: str

    @classmethod
    def from_json(cls, data: Any) -> "BetPlaced":
        data = _object(data)
        return cls(bet_id=_identifier(data, "bet_id"), raw=freeze(data))


@dataclass(frozen=True)
class BetResult(ProviderResult):
    win: Decimal  # the gross payout; 0 for a loss

    @classmethod
    def from_json(cls, data: Any) -> "BetResult":
        data = _object(data)
        return cls(win=_decimal(data, "win", minimum=0), raw=freeze(data))


@dataclass(frozen=True)
class BalanceCheck(ProviderResult):
    is_correct: bool
    balance: Decimal  # the provider's actual balance

    @classmethod
    def from_json(cls, data: Any) -> "BalanceCheck":
        data = _object(data)
        is_correct = data.get("is_correct")
        if not isinstance(is_correct, bool):
            raise MalformedResponse("'is_correct' is missing or not a boolean")
        # A correct check names it "balance", an incorrect one "correct_balance".
        key = "balance" if "balance" in data else "correct_balance"
        return cls(is_correct=is_correct, balance=_decimal(data, key), raw=freeze(data))
