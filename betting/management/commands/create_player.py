import getpass
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import player_create
from betting.onboarding import account_onboard
from betting_site.errors import ApplicationError
from betting_site.money import CENT, MoneyInvalid, money_parse
from wallet.ledger import wallet_ensure


def _amount(value: str) -> Decimal:
    try:
        return money_parse(Decimal(value), low=CENT)
    except MoneyInvalid as exc:
        if exc.code == "range":
            raise CommandError("--initial-balance must be positive") from None
        raise CommandError(f"--initial-balance {value!r}: {exc}") from None
    except InvalidOperation:
        raise CommandError(f"--initial-balance {value!r} is not an amount") from None


class Command(BaseCommand):
    help = (
        "Create a player (or bring an existing one to the given state), link it to "
        "its provider account, authenticate there and set the initial balance once. "
        "The provider secret comes from --external-secret, else from standard input. "
        "Re-running with the same arguments changes nothing and exits 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--external-user-id", required=True)
        parser.add_argument(
            "--external-secret",
            help="The provider HMAC secret. Prefer standard input: arguments are "
            "visible to other users of the machine.",
        )
        parser.add_argument("--initial-balance", type=_amount)
        parser.add_argument("--admin", action="store_true", help="staff superuser")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--relink",
            action="store_true",
            help="allow moving an existing player to another provider user id",
        )
        parser.add_argument("--reason", default="create_player")

    def handle(self, *args: Any, **options: Any) -> None:
        secret = options["external_secret"] or self._read_secret()
        try:
            result = player_create(
                username=options["username"],
                password=options["password"],
                external_user_id=options["external_user_id"],
                secret=secret,
                is_admin=options["admin"],
                email=options["email"],
                relink=options["relink"],
                reason=options["reason"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        user, account = result.user, result.account
        wallet_ensure(user_id=user.pk)
        self.stdout.write(
            f"User {user.username} (id {user.pk}) "
            f"{'created' if result.user_created else 'already existed'}; "
            f"provider user {account.external_user_id} "
            f"{'linked' if result.account_changed else 'already linked'}."
        )
        try:
            onboard = account_onboard(
                account=account, initial_balance=options["initial_balance"]
            )
        except ApplicationError as exc:
            raise CommandError(
                f"The player is saved, but the provider step failed: {exc.message} "
                f"({exc.code}). Run the same command again once the provider answers."
            ) from None
        self.stdout.write("Authenticated at the provider.")
        if onboard.initial_balance is None:
            self.stdout.write("No initial balance requested.")
        elif onboard.already_recorded:
            self.stdout.write(
                f"Initial balance already recorded: {onboard.initial_balance}."
            )
        elif onboard.balance_was_set_here:
            self.stdout.write(f"Initial balance set: {onboard.initial_balance}.")
        else:
            self.stdout.write(
                self.style.WARNING(
                    "The provider balance was already set; the ledger starts from "
                    f"the provider's figure {onboard.initial_balance}."
                )
            )
        self.stdout.write(self.style.SUCCESS("Done."))

    def _read_secret(self) -> str:
        if sys.stdin.isatty():
            secret = getpass.getpass("Provider secret: ")
        else:
            secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise CommandError(
                "No provider secret: pass --external-secret or give it on stdin"
            )
        return secret
