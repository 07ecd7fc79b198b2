from django.conf import settings
from django.db import migrations, models

from betting_site.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY: transactions is large and written on every request, so the
    # index is built without locking out writes; that cannot run in a transaction.
    atomic = False

    dependencies = [
        ("wallet", "0003_drop_duplicate_user_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="transaction",
            index=models.Index(
                fields=["user", "type", "-id"], name="transactions_user_type_idx"
            ),
        ),
    ]
