from django.conf import settings
from django.db import migrations, models

from betting_site.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY: bets is large and written on every request, so the
    # index is built without locking out writes; that cannot run in a transaction.
    atomic = False

    dependencies = [
        ("accounts", "0001_initial"),
        ("betting", "0006_drop_duplicate_user_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="bet",
            index=models.Index(
                fields=["user", "status", "-id"], name="bets_user_status_idx"
            ),
        ),
    ]
