import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from accounts.fields import SecretStr, rotate
from accounts.models import ExternalApiAccount
from accounts.tests.factories import ExternalApiAccountFactory

pytestmark = pytest.mark.django_db

SECRET = "provider-hmac-secret-5f2a9c"


def raw_secret_column(account_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret FROM external_api_accounts WHERE id = %s", [account_id]
        )
        return cursor.fetchone()[0]


def test_the_secret_is_stored_encrypted():
    account = ExternalApiAccountFactory(secret=SECRET)
    raw = raw_secret_column(account.pk)
    assert SECRET not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token
    assert ExternalApiAccount.objects.get(pk=account.pk).secret == SECRET


def test_the_decrypted_secret_is_masked_in_repr():
    account = ExternalApiAccountFactory(secret=SECRET)
    loaded = ExternalApiAccount.objects.get(pk=account.pk)
    assert isinstance(loaded.secret, SecretStr)
    assert SECRET not in repr(loaded.secret)
    assert SECRET not in repr(loaded)
    assert SECRET not in str(loaded)


def test_secret_still_decrypts_after_key_rotation(settings):
    account = ExternalApiAccountFactory(secret=SECRET)
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert ExternalApiAccount.objects.get(pk=account.pk).secret == SECRET
    # New writes use the new key; rotating re-encrypts old rows with it.
    rotated = rotate(raw_secret_column(account.pk))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE external_api_accounts SET secret = %s WHERE id = %s",
            [rotated, account.pk],
        )
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert ExternalApiAccount.objects.get(pk=account.pk).secret == SECRET


def test_a_removed_key_fails_loudly_without_echoing_anything(settings):
    account = ExternalApiAccountFactory(secret=SECRET)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured) as excinfo:
        ExternalApiAccount.objects.get(pk=account.pk)
    assert SECRET not in str(excinfo.value)
    assert "rotate_secrets" in str(excinfo.value)


def test_rotate_secrets_reencrypts_every_row_with_the_first_key(settings):
    import io

    from django.core.management import call_command

    accounts = [ExternalApiAccountFactory(secret=f"{SECRET}-{i}") for i in range(3)]
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    out = io.StringIO()
    call_command("rotate_secrets", "--batch-size", "2", stdout=out)
    assert "3 secrets re-encrypted" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key can now be dropped
    for i, account in enumerate(accounts):
        assert ExternalApiAccount.objects.get(pk=account.pk).secret == f"{SECRET}-{i}"
