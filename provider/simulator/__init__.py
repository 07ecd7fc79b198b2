"""The bundled provider simulator: a faithful, standalone fake of the external
betting provider, for development (``make run``), demos, integration tests over a
real socket, and benchmarks. Development only: its control endpoints are unsigned,
so it binds 127.0.0.1 by default.

It speaks the protocol of CONTRACT.md section 4 under ``/api``: ``GET /health``
unsigned; every other call needs ``user-id`` and ``x-signature`` (lowercase hex
HMAC-SHA512 of the raw body, or of ``{}`` without a body) or gets 401, and a body
that is not a JSON object gets 400. Where the real provider is unknown it chooses
(see ``state``): a never-set balance reads as 404 "Balance not set", a second
set-balance is 400 "Balance already set", a repeated ``/win`` is refused with 400
"Bet already settled" (or, with ``repeat_win="replay"``, answered again without
moving money), and a bet before the balance is set is 400 "Insufficient balance".

Faults are injected per endpoint and method (``faults``), through
``ProviderSimulator.add_fault`` in-process or ``POST /__control/faults`` over HTTP.
State lives in memory unless ``state_file`` keeps it in a JSON file across
restarts (``persistence``). ``latency_ms`` and ``jitter_ms`` (``latency``) make
every ``/api`` request wait as it would across a network.
Importing this package needs no Django settings; ``manage.py
run_provider_simulator`` wraps it.
"""

from provider.simulator.demo import DEMO_ACCOUNTS
from provider.simulator.faults import FaultKind, FaultRule
from provider.simulator.server import ProviderSimulator
from provider.simulator.state import STAKE_MODES, SimulatorConfig

__all__ = [
    "DEMO_ACCOUNTS",
    "STAKE_MODES",
    "FaultKind",
    "FaultRule",
    "ProviderSimulator",
    "SimulatorConfig",
]
