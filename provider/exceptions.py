"""The three kinds of provider failure. Callers branch on the class, never on text.

- ``ProviderUnreachable``: nothing took effect (never sent, breaker open, or a 429,
  which the provider answers before acting). Safe to try again later.
- ``ProviderOutcomeUnknown``: the request may have reached the provider and taken
  effect (read timeout, reset after sending, 5xx, a malformed answer to a write).
- ``ProviderRefused``: the provider answered a definite no (a 4xx other than 429).

Messages and details never carry the secret or the signature.
"""

from typing import Any

from betting_site.errors import ApplicationError
from betting_site.redaction import redact


class ProviderError(ApplicationError):
    """Base of the three kinds; ``endpoint`` is the provider path, ``attempts`` how
    many requests were sent (0 when none was)."""

    code = "PROVIDER_ERROR"
    http_status = 502
    message = "The betting provider answered with an error"
    outcome = "unknown"  # the API log's word for this kind

    def __init__(
        self,
        message: str | None = None,
        *,
        endpoint: str,
        method: str = "",
        attempts: int = 1,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, details=details, headers=headers)
        self.endpoint = endpoint
        self.method = method
        self.attempts = attempts
        self.status = status


class ProviderUnreachable(ProviderError):
    code = "PROVIDER_UNAVAILABLE"
    http_status = 503
    message = "The betting provider is unavailable"
    outcome = "unreachable"

    def __init__(
        self,
        message: str | None = None,
        *,
        endpoint: str,
        method: str = "",
        attempts: int = 1,
        status: int | None = None,
        retry_after: int = 1,
    ) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            message,
            endpoint=endpoint,
            method=method,
            attempts=attempts,
            status=status,
            headers={"Retry-After": str(self.retry_after)},
        )


class ProviderOutcomeUnknown(ProviderError):
    message = "The betting provider did not confirm the outcome"
    outcome = "unknown"

    def __init__(
        self,
        message: str | None = None,
        *,
        endpoint: str,
        method: str = "",
        attempts: int = 1,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        self.body = redact(body)
        details = None if status is None else {"status": status, "body": self.body}
        super().__init__(
            message,
            endpoint=endpoint,
            method=method,
            attempts=attempts,
            status=status,
            details=details,
        )


class ProviderRefused(ProviderError):
    message = "The betting provider refused the request"
    outcome = "refused"

    def __init__(
        self,
        message: str | None = None,
        *,
        endpoint: str,
        method: str = "",
        attempts: int = 1,
        status: int,
        body: Any = None,
    ) -> None:
        self.body = redact(body)
        super().__init__(
            message,
            endpoint=endpoint,
            method=method,
            attempts=attempts,
            status=status,
            details={"status": status, "body": self.body},
        )
