from accounts.exceptions import AccountNotLinked
from accounts.models import ExternalApiAccount, User
from accounts.selectors import account_active_for


def account_for_betting(*, user: User) -> ExternalApiAccount:
    """The user's active provider account, or 403 ACCOUNT_NOT_LINKED."""
    account = account_active_for(user=user)
    if account is None:
        raise AccountNotLinked()
    return account
