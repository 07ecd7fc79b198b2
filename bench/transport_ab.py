"""A/B of the provider transports: client CPU per signed ``POST /balance``, requests
against urllib3, each against the same simulator process (port 18490), three rounds
of 2000 calls after a warm-up. Only 127.0.0.1 is called.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.transport_ab``.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

PORT = 18490
BASE = f"http://127.0.0.1:{PORT}"
CALLS = 2000


def _post_json(url: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310  (http to 127.0.0.1 only)
        url,
        method="POST",
        data=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=2).close()  # noqa: S310


def _wait_for_simulator() -> None:
    for _ in range(50):
        try:
            urllib.request.urlopen(f"{BASE}/__control/state", timeout=1).close()  # noqa: S310
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the simulator did not start")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ["LOG_LEVEL"] = "ERROR"
    import django

    django.setup()
    from provider.signing import sign_body
    from provider.transport import RequestsTransport, Transport, Urllib3Transport

    simulator = subprocess.Popen(
        [sys.executable, "manage.py", "run_provider_simulator", "--port", str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_simulator()
        _post_json(
            f"{BASE}/__control/accounts",
            {"user_id": "77", "secret": "s3cret", "balance": 100},
        )

        def call(transport: Transport) -> None:
            signed = sign_body({}, "s3cret")
            response = transport.send(
                "POST",
                f"{BASE}/api/balance",
                body=signed.body,
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "user-id": "77",
                    "x-signature": signed.signature,
                },
                timeout=(3.0, 10.0),
            )
            assert response.status == 200, (response.status, response.text)

        results: dict[str, list[float]] = {}
        for _ in range(3):
            for name, transport in (
                ("requests", RequestsTransport()),
                ("urllib3", Urllib3Transport()),
            ):
                for _ in range(50):
                    call(transport)
                started = time.process_time()
                for _ in range(CALLS):
                    call(transport)
                spent = (time.process_time() - started) / CALLS * 1000
                results.setdefault(name, []).append(spent)
        for name, figures in results.items():
            rounds = ", ".join(f"{figure:.3f}" for figure in figures)
            print(f"{name}: client CPU ms per call {rounds} (best {min(figures):.3f})")
    finally:
        simulator.terminate()
        simulator.wait(5)


if __name__ == "__main__":
    main()
