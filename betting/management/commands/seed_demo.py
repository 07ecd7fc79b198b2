from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.services import player_create
from betting.onboarding import account_onboard
from betting_site.errors import ApplicationError
from provider.simulator.demo import DEMO_ACCOUNTS
from wallet.ledger import wallet_ensure

DEMO_INITIAL_BALANCE = Decimal("1000")
DEMO_ADMIN = ("admin", "admin-password")


def demo_password(index: int) -> str:
    return f"demo-password-{index}"


class Command(BaseCommand):
    help = (
        "Create the demo data of `make run`: players demo1..demoN linked to the "
        "simulator's demo accounts with a 1000 initial balance, and the staff user "
        "'admin'. With EXTERNAL_USER_ID and EXTERNAL_SECRET_KEY set, the player "
        "'demo' is linked to that real provider account instead of a simulated one. "
        "Re-running changes nothing. Refuses to run with DEBUG=0 unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="seed even with DEBUG=0 (the demo passwords are public)",
        )

    def handle(self, *args: Any, force: bool, **options: Any) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with published passwords; with DEBUG=0 it "
                "needs --force"
            )
        players = [
            (
                account["username"],
                demo_password(i),
                account["user_id"],
                account["secret"],
            )
            for i, account in enumerate(DEMO_ACCOUNTS, start=1)
        ]
        if settings.EXTERNAL_USER_ID and settings.EXTERNAL_SECRET_KEY:
            players = [
                (
                    "demo",
                    demo_password(0),
                    settings.EXTERNAL_USER_ID,
                    settings.EXTERNAL_SECRET_KEY,
                )
            ]
        failures = 0
        for username, password, external_user_id, secret in players:
            try:
                result = player_create(
                    username=username,
                    password=password,
                    external_user_id=external_user_id,
                    secret=secret,
                    reason="seed_demo",
                )
                wallet_ensure(user_id=result.user.pk)
                onboard = account_onboard(
                    account=result.account, initial_balance=DEMO_INITIAL_BALANCE
                )
            except ApplicationError as exc:
                failures += 1
                self.stderr.write(f"  {username}: {exc.message} ({exc.code})")
                continue
            self.stdout.write(
                f"  player {username} / {password} -> provider user "
                f"{external_user_id}, initial balance {onboard.initial_balance}"
            )
        self._ensure_admin()
        self.stdout.write(f"  staff  {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]} -> /admin/")
        if failures:
            raise CommandError(
                f"{failures} demo player(s) could not be set up at the provider; "
                "is the simulator running? Re-run seed_demo once it is."
            )
        self.stdout.write(self.style.SUCCESS("Demo data ready."))

    def _ensure_admin(self) -> None:
        username, password = DEMO_ADMIN
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not user.check_password(password):
            user.set_password(password)
            user.is_staff = user.is_superuser = True
            user.save()
