"""Fixtures for tests that talk to the bundled provider simulator over a socket."""

from collections.abc import Iterator

import pytest

from provider.simulator import ProviderSimulator


@pytest.fixture
def simulator() -> Iterator[ProviderSimulator]:
    """A fresh simulator on 127.0.0.1 (a free port), seeded, serving from a
    background thread; ``simulator.base_url`` is ``http://127.0.0.1:PORT/api``."""
    server = ProviderSimulator("127.0.0.1", 0, seed=1234).start()
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m "not simulator"` skips every test that starts one.
    for item in items:
        if "simulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.simulator)
