"""Betting's back-office pages: bets, keys and leases (``bets``), balances with
their adjustment and reconciliation actions (``balances``), and the users' page
with the reconciliation actions (``players``)."""

from betting.admin import balances, bets, players  # noqa: F401  (registers them)
