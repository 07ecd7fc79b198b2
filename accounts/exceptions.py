from betting_site.errors import ApplicationError


class AccountNotLinked(ApplicationError):
    code = "ACCOUNT_NOT_LINKED"
    http_status = 403
    message = "No active provider account is linked to this user"


class AccountLinkConflict(ApplicationError):
    code = "VALIDATION_ERROR"
    http_status = 400
    message = "The provider account is already linked"
