from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiLog(models.Model):
    """One provider call (outbound) or one mutating API request (inbound).

    Bodies are stored redacted: no secret, signature, token or password reaches
    this table.
    """

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    direction = models.CharField(max_length=8, choices=Direction.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_logs",
        db_index=False,  # api_logs_user_idx below is the same index
    )
    endpoint = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    request_body = models.JSONField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    outcome = models.CharField(
        max_length=16,
        blank=True,
        help_text="Provider calls: ok, refused, unknown or unreachable",
    )
    error = models.CharField(max_length=500, blank=True)
    # The time of the call, set when the row is recorded (a request's rows are
    # written together at its end; see auditlog.services.api_log_batch).
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "api_logs"
        indexes = [
            models.Index(fields=["user"], name="api_logs_user_idx"),
            models.Index(fields=["endpoint"], name="api_logs_endpoint_idx"),
            models.Index(fields=["created_at"], name="api_logs_created_at_idx"),
            # The back office's search by request id (exact).
            models.Index(fields=["request_id"], name="api_logs_request_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.method} {self.endpoint} -> {self.status_code}"
