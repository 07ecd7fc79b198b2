"""The helpers of `make fuzz` (scripts/api-fuzz.sh).

``python scripts/fuzz_setup.py database TMPDIR``: with ``DATABASE_URL=postgres://
.../NAME``, drops ``NAME_fuzz`` (closing its connections), creates it again empty
on the same server and prints its URL; it is left in place after the run for
inspection and replaced by the next one. Otherwise (unset, or SQLite) prints the
URL of a SQLite file in TMPDIR.

``python scripts/fuzz_setup.py faults SIMULATOR_URL PROBABILITY``: makes every
provider endpoint of the simulator misbehave now and then (each kind of fault with
PROBABILITY), so that the fuzzer also meets the server's answers to a failing
provider: 5xx before and after acting, a refusal, a 429 (with a short and a long
Retry-After), a malformed answer and a dropped connection. No delays: the run must
stay short.

``python scripts/fuzz_tools.py summary OUTPUT_DIR``: the run's totals from the JUnit
report (one test per operation, plus the stateful phase), ending with the plain
line ``fuzz: N passed, M failed``.
"""

import json
import os
import re
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import psycopg
from psycopg import sql

SUFFIX = "_fuzz"
PROVIDER_PATHS = ("/auth", "/balance", "/bet", "/win", "/check-balance")
FAULTS = (
    {"kind": "error_before", "status": 500},
    {"kind": "error_after", "status": 500},
    {"kind": "error_before", "status": 400},
    {"kind": "rate_limit"},
    # Longer than PROVIDER_RETRY_AFTER_MAX: given up at once, 503 PROVIDER_UNAVAILABLE.
    {"kind": "rate_limit", "retry_after": 60},
    {"kind": "malformed_json"},
    {"kind": "drop_after"},
)


def fuzz_database_url(database_url: str, tmpdir: str) -> str:
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        return f"sqlite:///{os.path.join(tmpdir, 'fuzz.sqlite3')}"
    name = parts.path.lstrip("/") + SUFFIX
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(parts._replace(path=f"/{name}"))


def _control(simulator_url: str, method: str, name: str, body: dict | None) -> None:
    if not simulator_url.startswith("http://127.0.0.1:"):
        raise SystemExit("fuzz_tools: the simulator must be on 127.0.0.1")
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
        f"{simulator_url}/__control/{name}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        response.read()


def set_faults(simulator_url: str, probability: float) -> int:
    """Replace the simulator's fault rules; probability 0 clears them."""
    _control(simulator_url, "DELETE", "faults", None)
    if probability == 0:
        return 0
    added = 0
    for path in PROVIDER_PATHS:
        for fault in FAULTS:
            rule = {"path": path, "times": None, "probability": probability, **fault}
            _control(simulator_url, "POST", "faults", rule)
            added += 1
    return added


def summary(output: Path) -> list[str]:
    reports = sorted(output.glob("junit-*.xml"))
    if not reports:
        return [
            "fuzz: no report (schemathesis did not finish)",
            "fuzz: 0 passed, 1 failed",
        ]
    suite = ElementTree.parse(reports[-1]).getroot()  # noqa: S314 (our own file)
    tests = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    log = (output / "schemathesis.log").read_text(errors="replace")
    cases = re.search(r"(\d+) generated", log)
    seed = re.search(r"Seed: (\d+)", log)
    return [
        f"fuzz: {tests - 1} operations and the stateful phase, "
        f"{cases.group(1) if cases else '?'} test cases, "
        f"seed {seed.group(1) if seed else '?'}",
        f"fuzz: {tests - failed} passed, {failed} failed",
    ]


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["database", tmpdir]:
            url = fuzz_database_url(os.environ.get("DATABASE_URL", ""), tmpdir)
            sys.stdout.write(url + "\n")
        case ["faults", simulator_url, probability]:
            count = set_faults(simulator_url, float(probability))
            sys.stdout.write(f"{count} fault rules, each with p={probability}\n")
        case ["summary", output]:
            sys.stdout.write("\n".join(summary(Path(output))) + "\n")
        case _:
            raise SystemExit(__doc__)
