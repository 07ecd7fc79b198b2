"""The per-user provider lease: one provider operation of a user at a time.

Any change of a user's provider balance must be attributable to the one operation
in flight, across worker processes and machines. A process-local lock cannot do
that and a row lock cannot be held over a network call, so the lease is an expiring
row claimed by one conditional UPDATE. It is renewed before each provider call, so
its TTL only has to outlive one call; a crashed holder's lease expires by itself.
"""

import logging
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from betting.exceptions import BetInProgress
from betting.models import ProviderLease

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


class LeaseLost(Exception):
    """The lease expired and another holder took it: stop before the next call."""


class Lease:
    def __init__(self, *, user_id: int, holder: str) -> None:
        self.user_id = user_id
        self.holder = holder

    def renew(self) -> None:
        """Extend the lease before a provider call; LeaseLost if it was taken."""
        updated = ProviderLease.objects.filter(
            user_id=self.user_id, holder=self.holder
        ).update(expires_at=_expiry())
        if not updated:
            raise LeaseLost(f"the provider lease of user {self.user_id} was lost")

    def release(self) -> None:
        ProviderLease.objects.filter(user_id=self.user_id, holder=self.holder).update(
            holder="", expires_at=None, operation=""
        )


def _expiry():
    return timezone.now() + timedelta(seconds=settings.PROVIDER_LEASE_TTL)


def lease_try_claim(*, user_id: int, operation: str) -> Lease | None:
    """Claim the user's lease if it is free or expired; None if someone holds it."""
    ProviderLease.objects.get_or_create(user_id=user_id)
    holder = uuid.uuid4().hex
    now = timezone.now()
    claimed = (
        ProviderLease.objects.filter(user_id=user_id)
        .filter(Q(holder="") | Q(expires_at__lt=now) | Q(expires_at__isnull=True))
        .update(holder=holder, expires_at=_expiry(), operation=operation[:100])
    )
    return Lease(user_id=user_id, holder=holder) if claimed else None


@contextmanager
def provider_lease(*, user_id: int, operation: str, wait: float | None = None):
    """Hold the user's lease for the block, waiting up to ``wait`` seconds
    (``BET_LOCK_WAIT`` by default) before 409 ``BET_IN_PROGRESS``."""
    wait = settings.BET_LOCK_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        lease = lease_try_claim(user_id=user_id, operation=operation)
        if lease is not None:
            break
        if time.monotonic() >= deadline:
            raise BetInProgress(retry_after=1)
        time.sleep(_POLL_SECONDS)
    try:
        yield lease
    finally:
        lease.release()
