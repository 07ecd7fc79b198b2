from betting_site.api.errors import ApplicationError


class InsufficientBalance(ApplicationError):
    code = "INSUFFICIENT_BALANCE"
    http_status = 400
    message = "The available balance does not cover this bet"


class BetInProgress(ApplicationError):
    code = "BET_IN_PROGRESS"
    http_status = 409
    message = "Another operation of this user is in progress; retry shortly"

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs):
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(message, **kwargs)
