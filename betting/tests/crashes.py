"""Playing a process killed between two steps of a bet, through the lifecycle's
one seam (``betting.services.checkpoints``): no private function is patched."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest

from accounts.models import User
from betting.models import Bet
from betting.services import bet_place
from betting.services.checkpoints import Checkpoint, on_checkpoint


class Crash(BaseException):
    """A process dying mid-step: not an Exception, so nothing on the way catches
    it."""


@contextmanager
def crash_at(point: Checkpoint) -> Iterator[None]:
    """The block's bet operation dies at ``point``; its lease is gone with it."""

    def hook(reached: Checkpoint) -> None:
        if reached == point:
            raise Crash(point)

    with on_checkpoint(hook), pytest.raises(Crash):
        yield


def bet_left_at(point: Checkpoint, *, user: User, amount: int | Decimal = 3) -> Bet:
    """Place a bet whose process dies at ``point``; the bet as it was left."""
    with crash_at(point):
        bet_place(user=user, amount=amount)
    return Bet.objects.filter(user=user).latest("id")
