"""create_player, seed_demo and account_onboard against the simulator."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ExternalApiAccount, User
from accounts.tests.factories import ExternalApiAccountFactory
from auditlog.models import ApiLog
from betting.onboarding import account_onboard
from provider.exceptions import ProviderRefused, ProviderUnreachable
from wallet.models import Transaction, UserBalance

pytestmark = pytest.mark.django_db

SECRET = "onboarding-secret-0001"


@pytest.fixture
def player_account(provider):
    provider.add_account("7001", SECRET, username="p7001")
    return ExternalApiAccountFactory(external_user_id="7001", secret=SECRET)


def run(*args, stdin: str | None = None, monkeypatch=None) -> str:
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


class TestAccountOnboard:
    @pytest.mark.parametrize("stake_mode", ["debit_on_loss", "debit_on_place"])
    def test_sets_the_balance_once_and_records_it(
        self, player_account, provider, stake_mode
    ):
        provider.configure(stake_mode=stake_mode)
        result = account_onboard(account=player_account, initial_balance=Decimal("500"))
        assert result.balance_was_set_here
        assert provider.balance_of("7001") == Decimal("500")
        entry = Transaction.objects.get(user=player_account.user)
        assert (entry.type, entry.amount, entry.balance_after) == (
            "initial_balance",
            Decimal("500"),
            Decimal("500"),
        )
        wallet = UserBalance.objects.get(user=player_account.user)
        assert wallet.balance == wallet.external_balance == Decimal("500")

        again = account_onboard(account=player_account, initial_balance=Decimal("500"))
        assert again.already_recorded
        assert Transaction.objects.filter(user=player_account.user).count() == 1
        assert provider.snapshot()["calls"].get("POST /balance") == 1

    def test_an_account_already_funded_at_the_provider_is_recorded_as_found(
        self, player_account, provider
    ):
        provider.set_balance("7001", Decimal("123.45"))
        result = account_onboard(account=player_account, initial_balance=Decimal("500"))
        assert not result.balance_was_set_here
        assert result.initial_balance == Decimal("123.45")
        assert UserBalance.objects.get(user=player_account.user).balance == Decimal(
            "123.45"
        )

    def test_a_set_balance_whose_answer_was_lost_is_not_sent_twice(
        self, player_account, provider
    ):
        provider.add_fault("/balance", "drop_after", method="POST")
        result = account_onboard(account=player_account, initial_balance=Decimal("500"))
        assert result.initial_balance == Decimal("500")
        assert provider.balance_of("7001") == Decimal("500")
        assert Transaction.objects.get(user=player_account.user).amount == Decimal(
            "500"
        )

    def test_wrong_secret_is_refused_and_nothing_is_recorded(self, provider):
        provider.add_account("7002", "the-real-secret")
        account = ExternalApiAccountFactory(external_user_id="7002", secret="wrong")
        with pytest.raises(ProviderRefused):
            account_onboard(account=account, initial_balance=Decimal("10"))
        assert not Transaction.objects.exists()

    def test_unreachable_provider_records_nothing(self, settings, player_account):
        settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
        settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
        with pytest.raises(ProviderUnreachable):
            account_onboard(account=player_account, initial_balance=Decimal("10"))
        assert not Transaction.objects.exists()

    def test_the_secret_never_reaches_the_api_log(self, player_account):
        account_onboard(account=player_account, initial_balance=Decimal("10"))
        rows = list(
            ApiLog.objects.values_list("request_body", "response_body", "error")
        )
        assert rows
        assert SECRET not in repr(rows)


class TestCreatePlayer:
    ARGS = (
        "create_player",
        "alice",
        "--password",
        "alice-pass-123",
        "--external-user-id",
        "7001",
    )

    def test_creates_links_and_funds_once(self, provider, monkeypatch):
        provider.add_account("7001", SECRET)
        output = run(
            *self.ARGS,
            "--initial-balance",
            "250",
            stdin=f"{SECRET}\n",
            monkeypatch=monkeypatch,
        )
        assert "created" in output
        assert "Initial balance set: 250.00" in output
        user = User.objects.get(username="alice")
        assert user.check_password("alice-pass-123")
        assert (
            ExternalApiAccount.objects.get(user=user, is_active=True).secret == SECRET
        )
        assert provider.balance_of("7001") == Decimal("250")

        again = run(*self.ARGS, "--initial-balance", "250", "--external-secret", SECRET)
        assert "already existed" in again
        assert "already recorded" in again
        assert Transaction.objects.filter(user=user).count() == 1
        assert ExternalApiAccount.objects.filter(user=user).count() == 1

    def test_admin_flag_makes_a_staff_user(self, provider):
        provider.add_account("7001", SECRET)
        run(*self.ARGS, "--admin", "--external-secret", SECRET)
        user = User.objects.get(username="alice")
        assert user.is_staff
        assert user.is_superuser

    def test_moving_a_player_to_another_provider_user_needs_relink(self, provider):
        provider.add_account("7001", SECRET)
        provider.add_account("7003", SECRET)
        run(*self.ARGS, "--external-secret", SECRET)
        moved = (
            "create_player",
            "alice",
            "--password",
            "alice-pass-123",
            "--external-user-id",
            "7003",
            "--external-secret",
            SECRET,
        )
        with pytest.raises(CommandError, match="--relink"):
            run(*moved)
        run(*moved, "--relink", "--reason", "support ticket 42")
        accounts = ExternalApiAccount.objects.filter(user__username="alice")
        assert accounts.get(is_active=True).external_user_id == "7003"
        old = accounts.get(is_active=False)
        assert "support ticket 42" in old.deactivation_reason

    def test_a_provider_failure_is_explained_and_exits_non_zero(self, settings):
        settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
        settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
        with pytest.raises(CommandError, match="Run the same command again"):
            run(*self.ARGS, "--external-secret", SECRET)
        assert User.objects.filter(username="alice").exists()  # saved, not onboarded

    def test_missing_secret_is_refused(self, provider, monkeypatch):
        with pytest.raises(CommandError, match="No provider secret"):
            run(*self.ARGS, stdin="", monkeypatch=monkeypatch)

    @pytest.mark.parametrize("amount", ["-5", "abc", "1.234"])
    def test_bad_initial_balance_is_refused(self, amount):
        with pytest.raises(CommandError):
            run(*self.ARGS, "--external-secret", SECRET, "--initial-balance", amount)


class TestSeedDemo:
    def test_seeds_demo_players_and_admin_and_is_rerunnable(self, provider, settings):
        settings.DEBUG = True
        first = run("seed_demo")
        assert "Demo data ready" in first
        for account in ("1001", "1002", "1003"):
            assert provider.balance_of(account) == Decimal("1000")
        assert User.objects.get(username="admin").is_staff
        run("seed_demo")
        assert Transaction.objects.count() == 3
        assert User.objects.count() == 4

    def test_links_the_real_account_when_configured(self, provider, settings):
        settings.DEBUG = True
        provider.add_account("real-9", "real-secret-9")
        settings.EXTERNAL_USER_ID = "real-9"
        settings.EXTERNAL_SECRET_KEY = "real-secret-9"
        run("seed_demo")
        account = ExternalApiAccount.objects.get(is_active=True, user__username="demo")
        assert account.external_user_id == "real-9"

    def test_refuses_production_without_force(self, settings):
        settings.DEBUG = False
        with pytest.raises(CommandError, match="--force"):
            run("seed_demo")

    def test_reports_an_unreachable_simulator(self, settings):
        settings.DEBUG = True
        settings.EXTERNAL_API_URL = "http://127.0.0.1:9/api"
        settings.EXTERNAL_API_CONNECT_TIMEOUT = 0.2
        with pytest.raises(CommandError, match="is the simulator running"):
            run("seed_demo")
