"""Onboarding a linked account: authenticated at the provider, its initial balance
set there once and recorded in the ledger."""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from accounts.models import ExternalApiAccount
from betting_site.money import to_money
from provider.client import ProviderClient
from provider.exceptions import ProviderOutcomeUnknown, ProviderRefused
from wallet.ledger import ledger_post, wallet_ensure
from wallet.models import Transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnboardResult:
    authenticated: bool
    initial_balance: Decimal | None  # what the ledger's initial entry says
    balance_was_set_here: bool  # False: it was already set at the provider
    already_recorded: bool  # True: an earlier run recorded it; nothing done


def account_onboard(
    *, account: ExternalApiAccount, initial_balance: Decimal | None
) -> OnboardResult:
    """Authenticate the account at the provider and set its balance once.

    Safe to repeat: an account whose initial balance is already in the ledger is
    only authenticated. The provider has no idempotency key, so when setting the
    balance is refused (already set) or its outcome is unknown, the balance is read
    instead, and the ledger records what the provider holds: the ledger mirrors the
    provider, not what was asked for. Unreachable: nothing is recorded; run again.
    """
    client = ProviderClient(account=account)
    client.auth()
    wallet_ensure(user_id=account.user_id)
    if initial_balance is None:
        return OnboardResult(True, None, False, False)
    recorded = Transaction.objects.filter(
        user=account.user, type=Transaction.Type.INITIAL_BALANCE
    ).first()
    if recorded is not None:
        return OnboardResult(True, recorded.amount, False, True)
    set_here = True
    try:
        balance = to_money(client.balance_set(initial_balance).balance)
    except (ProviderRefused, ProviderOutcomeUnknown) as exc:
        logger.warning(
            "Setting the balance of provider user %s gave %s: reading it instead",
            account.external_user_id,
            type(exc).__name__,
        )
        balance = to_money(client.balance_read().balance)
        set_here = False
    try:
        with transaction.atomic():  # a savepoint: a refusal is answered below
            ledger_post(
                user_id=account.user_id,
                entry_type=Transaction.Type.INITIAL_BALANCE,
                amount=balance,
                description=(
                    "Initial balance set at the provider"
                    if set_here
                    else "Initial balance as found at the provider"
                ),
                evidence={
                    "external_user_id": account.external_user_id,
                    "requested": str(initial_balance),
                    "provider_balance": str(balance),
                    "set_here": set_here,
                },
                provider_balance=balance,
            )
    except IntegrityError:  # a concurrent run recorded it first
        recorded = Transaction.objects.get(
            user=account.user, type=Transaction.Type.INITIAL_BALANCE
        )
        return OnboardResult(True, recorded.amount, False, True)
    return OnboardResult(True, balance, set_here, False)
