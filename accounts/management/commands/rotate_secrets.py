from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import ExternalApiAccount
from accounts.services import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider secret with the first key of "
        "FIELD_ENCRYPTION_KEYS. Rotation: put the new key first, keep the old ones "
        "after it, run this, then remove the old keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        total = ExternalApiAccount.objects.count()
        self.stdout.write(
            f"Re-encrypting {total} provider secrets with key 1 of "
            f"{len(settings.FIELD_ENCRYPTION_KEYS)}"
        )
        count = secrets_rotate(
            batch_size=batch_size,
            progress=lambda done: self.stdout.write(f"  {done}/{total}"),
        )
        self.stdout.write(self.style.SUCCESS(f"Done: {count} secrets re-encrypted."))
