"""The bet lifecycle: a state machine persisted before every side effect.

Every provider operation of a user runs under that user's lease (``betting.lease``)
and a user has at most one open (``pending`` or ``unknown``) bet, enforced by the
database. So whenever the provider balance moves, the move belongs to the one open
bet, and the resolution rules of the contract can attribute it exactly. No database
transaction stays open across a provider call: each step commits its state first.
Money moves only through ``wallet.ledger``.

    pending (stake held, nothing sent)
      -- POST /bet refused or never sent --> failed (hold released)
      -- POST /bet outcome unknown --------> unknown (hold kept) --> failed | void
           (debit_on_place: decided by the balance only after BET_UNKNOWN_GRACE,
           when a late POST /bet can no longer land)
      -- POST /bet answered --------------> pending with external id
           (debit_on_place: bet_place entry, hold released)
           -- POST /win answered / balance shows the result --> completed
    any open bet the evidence cannot decide: flagged, left open for staff (void)

The stages, one module each:

- ``placement``: record and hold, POST /bet, save the answer;
- ``settlement``: POST /win, book the result once, check the balance;
- ``resolution``: finish an open bet from the provider's evidence;
- ``transitions``: fail, unknown, void, flag, shared with the staff actions;
- ``checkpoints``: the one seam where tests stop a bet between two steps.
"""

from betting.services.placement import Placed, bet_amount_validate, bet_place
from betting.services.resolution import bet_resolve, unknown_grace_left
from betting.services.settlement import bet_settle_by_external_id

__all__ = [
    "Placed",
    "bet_amount_validate",
    "bet_place",
    "bet_resolve",
    "bet_settle_by_external_id",
    "unknown_grace_left",
]
