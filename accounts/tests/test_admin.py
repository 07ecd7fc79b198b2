import pytest
from django.urls import reverse

from accounts.models import ExternalApiAccount
from accounts.tests.factories import ExternalApiAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "provider-hmac-secret-admin-check"


def pages_of(account):
    return [
        reverse("admin:accounts_externalapiaccount_changelist"),
        reverse("admin:accounts_externalapiaccount_change", args=[account.pk]),
        reverse("admin:accounts_user_change", args=[account.user_id]),
        reverse("admin:accounts_user_changelist"),
    ]


def test_admin_never_shows_the_secret_nor_its_ciphertext(client, boss):
    account = ExternalApiAccountFactory(secret=SECRET)
    from accounts.tests.test_encryption import raw_secret_column

    ciphertext = raw_secret_column(account.pk)
    for url in pages_of(account):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert SECRET not in html, url
        assert ciphertext not in html, url


def test_add_form_takes_the_secret_write_only_and_records_who_and_why(client, boss):
    player = UserFactory()
    url = reverse("admin:accounts_externalapiaccount_add")
    form = client.get(url).content.decode()
    assert 'type="password"' in form
    response = client.post(
        url,
        {
            "user": player.pk,
            "external_user_id": "4242",
            "new_secret": SECRET,
            "link_reason": "new player",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account = ExternalApiAccount.objects.get(external_user_id="4242")
    assert account.secret == SECRET
    assert account.created_by == boss
    assert account.link_reason == "new player"


def test_a_new_link_replaces_the_old_one_and_keeps_it_as_history(client, boss):
    old = ExternalApiAccountFactory(external_user_id="1")
    client.post(
        reverse("admin:accounts_externalapiaccount_add"),
        {
            "user": old.user_id,
            "external_user_id": "2",
            "new_secret": SECRET,
            "link_reason": "moved account",
        },
    )
    old.refresh_from_db()
    assert not old.is_active
    assert old.deactivated_by == boss
    assert "moved account" in old.deactivation_reason
    assert ExternalApiAccount.objects.get(external_user_id="2", is_active=True)


@pytest.mark.parametrize(
    "model",
    [
        "wallet_transaction",
        "wallet_userbalance",
        "betting_bet",
        "betting_idempotencykey",
        "auditlog_apilog",
        "accounts_revokedsession",
        "token_blacklist_outstandingtoken",
        "token_blacklist_blacklistedtoken",
    ],
)
def test_history_is_listed_but_cannot_be_added(client, boss, model):
    app, name = (
        model.split("_", 1)
        if not model.startswith("token")
        else (
            "token_blacklist",
            model.removeprefix("token_blacklist_"),
        )
    )
    assert client.get(reverse(f"admin:{app}_{name}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:{app}_{name}_add")).status_code == 403


def test_token_admin_does_not_show_token_text(client, boss, tokens):
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    token = OutstandingToken.objects.first()
    html = client.get(
        reverse("admin:token_blacklist_outstandingtoken_change", args=[token.pk])
    ).content.decode()
    assert tokens["refresh"] not in html
    assert token.jti in html


def test_every_history_change_page_renders(client, boss):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from auditlog.models import ApiLog
    from betting.models import IdempotencyKey
    from betting.tests.factories import BetFactory
    from wallet.models import UserBalance
    from wallet.tests.factories import EntryFactory

    account = ExternalApiAccountFactory()
    entry = EntryFactory(
        user=account.user, amount=Decimal("10"), evidence={"provider_balance": "10"}
    )
    bet = BetFactory(account=account)
    rows = {
        "wallet_userbalance": UserBalance.objects.get(user=account.user),
        "wallet_transaction": entry,
        "betting_bet": bet,
        "betting_idempotencykey": IdempotencyKey.objects.create(
            caller=f"user:{account.user_id}",
            key="k" * 10,
            endpoint="bets",
            request_hash="0" * 64,
            response_body={"id": bet.pk},
            expires_at=timezone.now() + timedelta(days=1),
        ),
        "auditlog_apilog": ApiLog.objects.create(
            direction="outbound",
            endpoint="/bet",
            method="POST",
            request_body={"bet": 3},
            response_body={"bet_id": "1"},
            status_code=200,
        ),
    }
    for model, row in rows.items():
        app, name = model.split("_", 1)
        response = client.get(reverse(f"admin:{app}_{name}_change", args=[row.pk]))
        assert response.status_code == 200, model
    html = client.get(
        reverse("admin:auditlog_apilog_change", args=[rows["auditlog_apilog"].pk])
    ).content.decode()
    assert "&quot;bet&quot;: 3" in html
