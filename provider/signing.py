"""The one signing function: the exact bytes to send and their HMAC-SHA512.

The provider verifies ``x-signature`` over ``JSON.stringify(body || {})``: compact,
keys in insertion order, whole numbers without ``.0``, non-ASCII kept as UTF-8. This
module produces those bytes, and the caller sends exactly the bytes it signed.
"""

import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import simplejson


@dataclass(frozen=True)
class SignedBody:
    body: bytes  # what goes on the wire; b"" for a call without a body
    signed: bytes  # what was signed: the body, or b"{}" for no body
    signature: str  # lowercase hex HMAC-SHA512

    def __repr__(self) -> str:  # the signature never reaches a log through repr
        return f"SignedBody(body={self.body!r}, signature='[REDACTED]')"


def _js_value(value: Any) -> Any:
    """Map a value to what ``JSON.stringify`` would write for it."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and infinity cannot be sent to the provider")
        if value == value.to_integral_value():
            return int(value)
        return Decimal(format(value.normalize(), "f"))
    if isinstance(value, float):
        raise TypeError("floats are never sent to the provider: use int or Decimal")
    if isinstance(value, dict):
        return {str(key): _js_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_js_value(item) for item in value]
    raise TypeError(f"cannot send a {type(value).__name__} to the provider")


def js_stringify(body: dict | None) -> bytes:
    """``JSON.stringify(body || {})`` as UTF-8 bytes."""
    return simplejson.dumps(
        _js_value(body or {}),
        separators=(",", ":"),
        ensure_ascii=False,
        use_decimal=True,
        allow_nan=False,
    ).encode("utf-8")


def sign_bytes(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha512).hexdigest()


def sign_body(body: dict | None, secret: str) -> SignedBody:
    """Sign a request body. ``None`` means a call without a body: nothing is sent and
    ``{}`` is signed, as the provider expects."""
    signed = js_stringify(body)
    return SignedBody(
        body=b"" if body is None else signed,
        signed=signed,
        signature=sign_bytes(signed, secret),
    )


def verify_signature(payload: bytes, secret: str, signature: str) -> bool:
    """Constant-time check of a signature over exactly ``payload``."""
    return hmac.compare_digest(sign_bytes(payload, secret), signature.lower())
