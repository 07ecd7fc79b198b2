"""A PostgreSQL cluster and a Redis server of the soak's own, on 127.0.0.1, so that
the soak can restart, crash and kill them without touching the machine's shared
servers.

``PgCluster`` runs ``initdb`` into a fresh directory and ``pg_ctl`` on its own
port; ``RedisServer`` runs ``redis-server`` on its own port without persistence.
PostgreSQL refuses to run as root: as root, both run as the ``postgres`` user
(``setpriv``), owning their directory.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import redis

PG_BIN = Path(os.environ.get("SOAK_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres"


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        # setpriv execs the command itself (no child process left behind a kill).
        return [
            "setpriv",
            f"--reuid={RUN_AS}",
            f"--regid={RUN_AS}",
            "--init-groups",
            *command,
        ]
    return command


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user=RUN_AS, group=RUN_AS)


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class PgCluster:
    """``initdb`` once, then start, stop and restart (``fast`` or ``immediate``)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "postgresql.log"
        self.port = port

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            _as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def create(self) -> "PgCluster":
        if port_is_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use on 127.0.0.1")
        if self.directory.exists():
            self.stop()
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        _chown(self.directory)
        subprocess.run(
            _as_owner(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-instructions",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "logging_collector": "off",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# the soak's own cluster\n")
            for name, value in settings.items():
                conf.write(f"{name} = {value}\n")
        return self

    def start(self) -> None:
        self._ctl("-l", str(self.log), "-w", "-t", "60", "start")

    def restart(self, mode: str) -> None:
        """``pg_ctl -m fast|immediate restart``: every connection is cut."""
        self._ctl("-l", str(self.log), "-m", mode, "-w", "-t", "60", "restart")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ctl("-m", mode, "-w", "-t", "60", "stop")

    def ready(self) -> bool:
        try:
            with psycopg.connect(f"{self.admin_url}/postgres", connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisServer:
    """``redis-server`` on its own port, no persistence: start, SIGKILL, start."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        if port_is_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use on 127.0.0.1")
        self.directory.mkdir(parents=True, exist_ok=True)
        _chown(self.directory)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            _as_owner(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL (a crash): its data is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None
