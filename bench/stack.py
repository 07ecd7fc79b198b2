"""Start and stop what a bench or soak run measures: the provider simulator and the
server under gunicorn (the production ``gunicorn.conf.py``) against a fresh
PostgreSQL database and a flushed Redis database, all on 127.0.0.1.

Every process is started in its own session, so that it and its children (the
gunicorn workers) can be signalled as one process group, and nothing is left
running when the run ends.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_BASE_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Fixed bench-only secrets: the settings refuse DEBUG=0 without real-looking ones.
BENCH_SECRETS = {
    "DJANGO_SECRET_KEY": "bench-only-django-secret-key-not-for-production-4f9a1c",
    "JWT_SIGNING_KEY": "bench-only-jwt-signing-key-not-for-production-7d2e8b",
    "FIELD_ENCRYPTION_KEYS": "YmVuY2gtb25seS1mZXJuZXQta2V5LTAxMjM0NTY3ODk=",
}


@dataclass
class StackConfig:
    name: str  # "bench" or "soak": names the run directory
    database: str
    redis_db: int
    simulator_port: int
    server_port: int
    stake_mode: str = "debit_on_loss"
    workers: int | None = None  # None: gunicorn.conf.py's default
    threads: int | None = None
    simulator_seed: int | None = 1
    # The simulator's answer latency (``run_provider_simulator --latency-ms``); the
    # bench changes it at run time through ``POST /__control/latency``.
    simulator_latency_ms: float = 0.0
    simulator_jitter_ms: float = 0.0
    log_level: str = "WARNING"  # the server's LOG_LEVEL
    # GUNICORN_LOG_LEVEL; None: gunicorn.conf.py's own default ("info").
    gunicorn_log_level: str | None = "warning"
    extra_env: dict[str, str] = field(default_factory=dict)
    # The PostgreSQL server (admin URL, no database) and Redis server to use: the
    # machine's shared ones unless the run brings its own (the soak does).
    pg_admin_url: str = PG_ADMIN_URL
    redis_base_url: str = REDIS_BASE_URL

    def __post_init__(self) -> None:
        for port in (self.simulator_port, self.server_port):
            if not 18400 <= port <= 18499:
                raise ValueError(f"port {port} is outside the bench range 18400-18499")


class Stack:
    """The simulator and the server of one run. ``start()``/``stop()``, or use it
    as a context manager."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = ROOT / "bench" / ".run" / config.name
        self.stats_dir = self.run_dir / "stats"
        self.simulator: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.server_starts = 0
        self.answering_since: float | None = None  # monotonic, last start_server
        self._logs: list[Any] = []

    # --- addresses -------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return f"{self.config.pg_admin_url}/{self.config.database}"

    @property
    def redis_url(self) -> str:
        return f"{self.config.redis_base_url}/{self.config.redis_db}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.config.simulator_port}"

    @property
    def control_url(self) -> str:
        return f"{self.simulator_url}/__control"

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.config.server_port}"

    def env(self) -> dict[str, str]:
        """The server's environment: production settings but for the stores, the
        simulator, rate limits off and (unless the config says otherwise) quieter
        logs."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "GUNICORN_", "PROVIDER_", "RATE_LIMIT"))
        }
        env.update(BENCH_SECRETS)
        env.update(
            {
                "DEBUG": "0",
                "DJANGO_SETTINGS_MODULE": "betting_site.settings",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "SECURE_SSL_REDIRECT": "0",
                "STATIC_MANIFEST": "0",
                "LOG_LEVEL": self.config.log_level,
                "LOG_FORMAT": "json",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "CACHE_KEY_PREFIX": f"betting-{self.config.name}",
                "EXTERNAL_API_URL": f"{self.simulator_url}/api",
                "PROVIDER_STAKE_MODE": self.config.stake_mode,
                "RATE_LIMIT_GLOBAL": "0",
                "RATE_LIMIT_AUTH": "0",
                "RATE_LIMIT_BETS": "0",
                "JWT_ACCESS_TTL": "3h",
                "GUNICORN_BIND": f"127.0.0.1:{self.config.server_port}",
                "BENCH_STATS_DIR": str(self.stats_dir),
                # gunicorn.conf.py's multiprocess metrics, as in production.
                "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "prometheus"),
                "PYTHONPATH": str(ROOT),
            }
        )
        if self.config.gunicorn_log_level:
            env["GUNICORN_LOG_LEVEL"] = self.config.gunicorn_log_level
        if self.config.workers:
            env["WEB_CONCURRENCY"] = str(self.config.workers)
        if self.config.threads:
            env["GUNICORN_THREADS"] = str(self.config.threads)
        env.update(self.config.extra_env)
        return env

    # --- the stores ------------------------------------------------------------------

    def prepare(self, *, keep_database: bool = False) -> None:
        """A fresh database (dropped and created; ``keep_database``: the one there
        is, migrated), a flushed Redis database, the migrations, and an empty run
        directory."""
        self._clean_run_dir()
        name = self.config.database
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        if not keep_database:
            admin = f"{self.config.pg_admin_url}/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        redis.Redis.from_url(self.redis_url).flushdb()
        self.manage("migrate", "--no-input", check=True, timeout=3600)

    def _clean_run_dir(self) -> None:
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "prometheus").mkdir(exist_ok=True)
        for path in self.stats_dir.iterdir():
            path.unlink()
        for path in self.run_dir.glob("*.log"):
            path.unlink()

    def reset_stats(self) -> None:
        for path in self.stats_dir.glob("*.json"):
            path.unlink()

    # --- processes -------------------------------------------------------------------

    def _log(self, name: str):
        handle = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115
        self._logs.append(handle)
        return handle

    def start_simulator(self) -> None:
        _ensure_free(self.config.simulator_port)
        command = [
            PYTHON,
            "manage.py",
            "run_provider_simulator",
            "--port",
            str(self.config.simulator_port),
            "--stake-mode",
            self.config.stake_mode,
        ]
        if self.config.simulator_seed is not None:
            command += ["--seed", str(self.config.simulator_seed)]
        if self.config.simulator_latency_ms:
            command += [
                "--latency-ms",
                str(self.config.simulator_latency_ms),
                "--jitter-ms",
                str(self.config.simulator_jitter_ms),
            ]
        log = self._log("simulator")
        self.simulator = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{self.simulator_url}/api/health", process=self.simulator)

    def start_server(self) -> None:
        _ensure_free(self.config.server_port)
        command = [
            PYTHON,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "bench" / "gunicorn_bench.py"),
            "bench.wsgi:application",
        ]
        access, errors = self._log("server-access"), self._log("server")
        self.server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(),
            stdout=access,
            stderr=errors,
            start_new_session=True,
        )
        self.server_starts += 1
        wait_http(f"{self.server_url}/api/health/live", process=self.server)
        self.answering_since = time.monotonic()
        deadline = time.monotonic() + 30
        expected = self.worker_count()
        while len(self.server_pids()) < expected + 1 and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self) -> "Stack":
        self.start_simulator()
        self.start_server()
        return self

    def kill_server(self) -> int:
        """SIGKILL the gunicorn master and every worker at once (a crash); answers
        how many processes were killed."""
        if self.server is None:
            return 0
        pids = self.server_pids()
        _signal_group(self.server, signal.SIGKILL)
        self.server.wait()
        # Workers are in the master's process group; make sure none survived.
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server = None
        return len(pids)

    def terminate_server(self, timeout: float = 300) -> float:
        """SIGTERM the gunicorn master only, as a rolling deploy does, and wait for
        it to exit: it stops listening and lets running requests finish (up to its
        ``graceful_timeout``). Answers the seconds it took."""
        if self.server is None:
            return 0.0
        started = time.monotonic()
        pids = self.server_pids()
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=timeout)
        finally:
            _signal_group(self.server, signal.SIGKILL)  # nothing may outlive it
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server = None
        return time.monotonic() - started

    def kill_worker(self) -> int | None:
        """SIGKILL one worker (the master starts another); answers its pid."""
        workers = self.server_pids()[1:]
        if not workers:
            return None
        os.kill(workers[0], signal.SIGKILL)
        return workers[0]

    def stop_server(self) -> None:
        if self.server is not None:
            _stop(self.server, timeout=20)
            self.server = None

    def stop(self) -> None:
        self.stop_server()
        if self.simulator is not None:
            _stop(self.simulator, timeout=10)
            self.simulator = None
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def worker_count(self) -> int:
        if self.config.workers:
            return self.config.workers
        return min(2 * len(os.sched_getaffinity(0)) + 1, 8)

    def thread_count(self) -> int:
        return self.config.threads or 4

    def server_pids(self) -> list[int]:
        """The master first, then its live workers."""
        if self.server is None or self.server.poll() is not None:
            return []
        return [self.server.pid, *children_of(self.server.pid)]

    # --- commands --------------------------------------------------------------------

    def manage(
        self, *args: str, check: bool = False, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        return result

    def python(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``python -m ...`` with the server's environment (bench scripts that use
        the application's services)."""
        return subprocess.run(
            [PYTHON, *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # --- the simulator's control endpoints --------------------------------------------

    def control(self, method: str, name: str, body: Any = None) -> Any:
        return http_json(method, f"{self.control_url}/{name}", body)

    def server_stats(self) -> dict[str, dict[str, Any]]:
        """Every worker's bench counters, summed per request kind (dead workers'
        last files included)."""
        totals: dict[str, dict[str, Any]] = {}
        for path in self.stats_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for kind, counters in data.items():
                merged = totals.setdefault(kind, {})
                for name, value in counters.items():
                    if isinstance(value, dict):
                        bucket = merged.setdefault(name, {})
                        for key, count in value.items():
                            bucket[key] = bucket.get(key, 0) + count
                    else:
                        merged[name] = merged.get(name, 0) + value
        return totals


# --- helpers --------------------------------------------------------------------------


def http_json(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def wait_http(url: str, *, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode})")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _ensure_free(port: int) -> None:
    """Refuse to start on a port something else (a stale run?) already serves."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(
                f"port {port} is already in use on 127.0.0.1 (a stale bench run?)"
            )


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _stop(process: subprocess.Popen, *, timeout: float) -> None:
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    # Any child left behind in the group (a worker that outlived its master).
    _signal_group(process, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat.rsplit(")", 1)[1].split()[0]


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry.name))
    return sorted(children)


def process_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process itself, of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def group_cpu(master: int | None) -> float:
    """CPU seconds of a master and all its workers, the dead ones included (their
    time is in the master's reaped-children figure)."""
    if master is None:
        return 0.0
    own, reaped = process_cpu(master)
    return own + reaped + sum(process_cpu(pid)[0] for pid in children_of(master))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLOCK_TICKS, sum(fields) / CLOCK_TICKS
