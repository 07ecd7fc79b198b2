from accounts.models import ExternalApiAccount, User


def account_active_for(*, user: User) -> ExternalApiAccount | None:
    return ExternalApiAccount.objects.filter(user=user, is_active=True).first()


def user_profile(*, user: User) -> dict:
    account = account_active_for(user=user)
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email or None,
        "is_admin": user.is_admin,
        "last_login": user.last_login,
        "external_account": (
            {
                "external_user_id": account.external_user_id,
                "is_active": account.is_active,
            }
            if account
            else None
        ),
    }
