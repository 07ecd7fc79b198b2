from typing import Any

from betting_site.errors import ApplicationError
from wallet.exceptions import InsufficientBalance

__all__ = ["BetInProgress", "InsufficientBalance"]


class BetInProgress(ApplicationError):
    code = "BET_IN_PROGRESS"
    http_status = 409
    message = "Another operation of this user is in progress; retry shortly"

    def __init__(
        self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any
    ) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(message, **kwargs)
