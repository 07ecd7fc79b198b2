"""The one seam for stopping a bet between two of its steps.

Each step of the lifecycle commits before the next provider call. ``reached`` is
called at the points where a process could die with something committed and
something not: production passes straight through. Tests install a hook with
``on_checkpoint`` that raises, to play a process killed there, and then check that
the resolution rules finish the bet. No test patches a private function.

The points, in the order a bet reaches them:

- ``recorded``: the bet row and its stake hold are committed; POST /bet not sent.
- ``placed``: POST /bet answered; the provider's bet id not yet saved.
- ``placed_recorded``: the id is saved; POST /win not sent.
- ``result``: POST /win answered; the result not yet booked.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

Checkpoint = Literal["recorded", "placed", "placed_recorded", "result"]

_hook: Callable[[Checkpoint], None] | None = None


def reached(point: Checkpoint) -> None:
    if _hook is not None:
        _hook(point)


@contextmanager
def on_checkpoint(hook: Callable[[Checkpoint], None]) -> Iterator[None]:
    """Call ``hook`` at every checkpoint inside the block (tests only)."""
    global _hook
    previous, _hook = _hook, hook
    try:
        yield
    finally:
        _hook = previous
