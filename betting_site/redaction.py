"""One place that decides what is a secret in logs, API logs and error details.

Structures are redacted by key name; free text by shape (JWTs, bearer tokens, long
hex digests such as HMAC-SHA512 signatures, Fernet tokens). Everything that writes a
log line or an API log row passes through here.
"""

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|signature|authorization|api[-_]?key|cookie|"
    r"refresh|access|jwt|credential|x-signature|session",
    re.IGNORECASE,
)
_TEXT_PATTERNS = [
    # JSON Web Tokens: three base64url segments, the first a JSON header.
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Bearer credentials, whatever their shape.
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    # Hex digests of 64 characters and more (HMAC-SHA256/512 signatures).
    re.compile(r"\b[0-9a-fA-F]{64,}\b"),
    # Fernet tokens (encrypted secrets at rest).
    re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}"),
]


def is_sensitive_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SENSITIVE_KEY.search(key))


def redact_text(text: str, *, secrets: tuple[str, ...] = ()) -> str:
    """Mask secret-shaped substrings, and any of the given known secret values."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _TEXT_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any, *, secrets: tuple[str, ...] = ()) -> Any:
    """Return a copy of a JSON-like value with sensitive keys and text masked."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_sensitive_key(key) else redact(item, secrets=secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, secrets=secrets) for item in value]
    if isinstance(value, str):
        return redact_text(value, secrets=secrets)
    return value
