"""The one error type of the project: every domain error subclasses it."""

from typing import Any


class ApplicationError(Exception):
    """An error with a stable code, a human message and optional details.

    Rendered by the exception handler as the contract's envelope. ``headers`` lets
    an error carry ``Retry-After`` and similar.
    """

    code = "INTERNAL_ERROR"
    http_status = 500
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        http_status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.http_status = http_status or self.http_status
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    code = "VALIDATION_ERROR"
    http_status = 400
    message = "The request is not valid"


class InvalidCredentials(ApplicationError):
    code = "INVALID_CREDENTIALS"
    http_status = 401
    message = "Invalid username or password"


class Unauthorized(ApplicationError):
    code = "UNAUTHORIZED"
    http_status = 401
    message = "Authentication credentials are missing, expired, revoked or malformed"


class Forbidden(ApplicationError):
    code = "FORBIDDEN"
    http_status = 403
    message = "You do not have permission to perform this action"


class NotFound(ApplicationError):
    code = "NOT_FOUND"
    http_status = 404
    message = "Not found"
