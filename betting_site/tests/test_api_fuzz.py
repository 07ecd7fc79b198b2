"""`make fuzz` is wired into `make test` and its helpers work (the run itself is the
proof that the API keeps its schema: scripts/api-fuzz.sh)."""

import re
import runpy
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


@pytest.fixture(scope="module")
def tools() -> dict:
    return runpy.run_path(str(SCRIPTS / "fuzz_tools.py"))


def _target(makefile: str, name: str) -> str:
    match = re.search(rf"^{name}:.*?(?=^\S|\Z)", makefile, re.MULTILINE | re.DOTALL)
    assert match, name
    return match.group(0)


def test_make_test_runs_the_fuzzer_after_the_suite():
    makefile = (ROOT / "Makefile").read_text()
    test = _target(makefile, "test")
    assert test.index("pytest") < test.index("$(MAKE) --no-print-directory fuzz")
    assert "bash scripts/api-fuzz.sh" in _target(makefile, "fuzz")
    pinned = (ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^schemathesis==4\.", pinned, re.MULTILINE)


def test_the_script_bounds_the_run_and_stays_on_loopback():
    script = (SCRIPTS / "api-fuzz.sh").read_text()
    assert 'timeout --signal=INT --kill-after=15 "$FUZZ_TIMEOUT"' in script
    assert "--max-examples" in script
    for name in ("RATE_LIMIT_GLOBAL=0", "RATE_LIMIT_AUTH=0", "RATE_LIMIT_BETS=0"):
        assert name in script
    for port in re.findall(r"FUZZ_(?:SIMULATOR_)?PORT:-(\d+)", script):
        assert 18300 <= int(port) <= 18399
    hosts = set(re.findall(r"https?://([^:/\"$]+)", script))
    assert hosts == {"127.0.0.1"}


def test_the_gate_checks_server_errors_and_conformance():
    config = tomllib.loads((SCRIPTS / "schemathesis.toml").read_text())
    checks = config["checks"]
    for name in (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ):
        assert checks[name]["enabled"] is True, name
    # Only the contract's gateway errors are tolerated, never a 500.
    tolerated = checks["not_a_server_error"]["expected-statuses"]
    assert [s for s in tolerated if str(s).startswith("5")] == [502, 503]
    assert config["auth"]["dynamic"]["openapi"]["jwtAuth"]["path"] == "/api/auth/login"


def test_the_fuzz_database_is_sqlite_in_the_run_directory_without_postgres(
    tools, tmp_path
):
    url = tools["fuzz_database_url"]("", str(tmp_path))
    assert url == f"sqlite:///{tmp_path}/fuzz.sqlite3"
    url = tools["fuzz_database_url"]("sqlite:///db.sqlite3", str(tmp_path))
    assert url == f"sqlite:///{tmp_path}/fuzz.sqlite3"


def test_the_summary_ends_with_a_plain_count(tools, tmp_path):
    assert tools["summary"](tmp_path)[-1] == "fuzz: 0 passed, 1 failed"
    (tmp_path / "junit-1.xml").write_text(
        '<testsuites tests="21" failures="1" errors="0"></testsuites>'
    )
    (tmp_path / "schemathesis.log").write_text(
        "Test cases:\n  3000 generated, 2999 passed\nSeed: 7\n"
    )
    assert tools["summary"](tmp_path) == [
        "fuzz: 20 operations and the stateful phase, 3000 test cases, seed 7",
        "fuzz: 20 passed, 1 failed",
    ]


def test_faults_are_only_sent_to_a_loopback_simulator(tools):
    with pytest.raises(SystemExit, match=r"127\.0\.0\.1"):
        tools["set_faults"]("http://example.com:8081", 0.1)
