"""A text column encrypted at rest with the keys of ``FIELD_ENCRYPTION_KEYS``.

Written by hand because the maintained libraries either derive their keys from
``SECRET_KEY`` (django-fernet-encrypted-fields) or take a single key
(django-encrypted-model-fields); the contract asks for a list of Fernet keys where
the first encrypts and all decrypt. ``cryptography``'s ``MultiFernet`` does the
cryptography; this is only the Django glue.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class SecretStr(str):
    """A decrypted secret: a usable string, masked in ``repr`` (tracebacks, dumps)."""

    def __repr__(self) -> str:
        return "SecretStr('**********')"


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def field_cipher() -> MultiFernet:
    return _multi_fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return field_cipher().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> SecretStr:
    try:
        return SecretStr(field_cipher().decrypt(token.encode("ascii")).decode("utf-8"))
    except InvalidToken:
        raise ImproperlyConfigured(
            "An encrypted secret cannot be decrypted with any key of "
            "FIELD_ENCRYPTION_KEYS: a key was removed before rotate_secrets ran"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a stored token with the first key."""
    return field_cipher().rotate(token.encode("ascii")).decode("ascii")


class EncryptedTextField(models.TextField):
    """Stores Fernet ciphertext; Python code sees a ``SecretStr``.

    Not searchable: each encryption has a fresh IV, so lookups on this column cannot
    match. Never put it in an admin form, a serializer or a log.
    """

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return value
        return encrypt(str(value))

    def to_python(self, value):
        if value is None or isinstance(value, SecretStr):
            return value
        return SecretStr(value)
