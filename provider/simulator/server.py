"""The simulator's HTTP server: the provider protocol under ``/api``, and the
unsigned control endpoints under ``/__control/``.

Standard library only (plus ``provider.signing``), so it runs without Django
settings. HTTP/1.1 with keep-alive; every response has a Content-Length and leaves
in one send (a buffered writer flushed once per request) on a TCP_NODELAY socket.
"""

import contextlib
import json
import logging
import random
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from provider.signing import js_stringify, verify_signature
from provider.simulator.demo import DEMO_ACCOUNTS
from provider.simulator.faults import (
    DEFAULT_DELAY,
    DEFAULT_RETRY_AFTER,
    FaultKind,
    FaultRule,
    FaultTable,
)
from provider.simulator.latency import Latency
from provider.simulator.persistence import StateStore
from provider.simulator.state import (
    UNSET,
    ProviderState,
    Refused,
    SimulatorConfig,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
CONTROL_PREFIX = "/__control/"
MAX_BODY_BYTES = 1024 * 1024
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
INJECTED_ERROR = {
    "error": "Injected error",
    "message": "Fault injected by the simulator",
}
RATE_LIMITED = {"error": "Too Many Requests", "message": "Rate limit exceeded"}

# path -> method -> the state's operation (None: answered without a signature)
ROUTES: dict[str, dict[str, Any]] = {
    "/health": {"GET": None},
    "/auth": {"POST": ProviderState.authenticate},
    "/balance": {"POST": ProviderState.balance},
    "/bet": {"GET": ProviderState.bet_recommend, "POST": ProviderState.bet_place},
    "/win": {"POST": ProviderState.bet_settle},
    "/check-balance": {"POST": ProviderState.balance_check},
}

FAULT_FIELDS = (
    "path",
    "kind",
    "method",
    "status",
    "times",
    "probability",
    "delay",
    "retry_after",
)
CONFIG_FIELDS = ("stake_mode", "win_probability", "seed", "repeat_win")
ACCOUNT_FIELDS = ("user_id", "secret", "username", "balance")
LATENCY_FIELDS = ("latency_ms", "jitter_ms")

Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (``{}`` when empty), numbers with a fraction or an
    exponent as ``Decimal``; raises ``ValueError`` for anything else."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _fields(
    data: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    return dict(data)


def _jsonable(value: Any) -> Any:
    """Floats (probabilities, delays) as ``Decimal``: js_stringify takes none."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _endpoint(path: str) -> str:
    return "/" + path.strip("/")


class SimulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ProviderSimulator/1.0"
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted socket
    wbufsize = -1  # buffered: headers and body leave in one send at the flush
    timeout = 300  # an idle keep-alive connection is closed after this
    server: "ProviderSimulator"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.verbose:
            logger.info('%s "%s" %s', self.client_address[0], self.requestline, code)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            message = format % args
            logger.info("%s %s", self.client_address[0], message)

    # --- plumbing ------------------------------------------------------------------

    def _handle(self) -> None:
        self.server.count_request()
        path = self.path.partition("?")[0]
        body = self._read_body()
        if body is None:
            return
        try:
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._serve_api(_endpoint(path[len(API_PREFIX) :]), body)
            elif path.startswith(CONTROL_PREFIX):
                self._serve_control(path[len(CONTROL_PREFIX) :].strip("/"), body)
            else:
                message = f"Cannot {self.command} {path}"
                self._reply(404, {"error": "Not Found", "message": message})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            logger.exception("Provider simulator failed on %s %s", self.command, path)
            self.close_connection = True
            self._reply(500, {"error": "Internal Server Error", "message": "Bug"})

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a body it will not read."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            message = "Send the body with a Content-Length"
            self._reply(411, {"error": "Length Required", "message": message})
            return None
        header = self.headers.get("Content-Length")
        if not header:
            return b""
        try:
            length = int(header)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            message = "Invalid Content-Length"
            self._reply(400, {"error": "Bad Request", "message": message})
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            message = f"The body exceeds {MAX_BODY_BYTES} bytes"
            self._reply(413, {"error": "Payload Too Large", "message": message})
            return None
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, data: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _reply(
        self,
        status: int,
        payload: dict[str, Any],
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._send(status, js_stringify(payload), headers)

    def _drop(self) -> None:
        # Nothing has been written: closing now, the client gets no response.
        self.close_connection = True

    # --- the provider protocol -----------------------------------------------------

    def _serve_api(self, path: str, body: bytes) -> None:
        method = self.command
        self.server.state.count_call(f"{method} {path}")
        self.server.wait_latency()
        picked = self.server.faults.pick(method, path)
        kind = picked.kind if picked is not None else None
        # Only the branches of a kind read the rule: there it is never None.
        rule = cast(FaultRule, picked)
        if kind is FaultKind.DROP_BEFORE:
            self._drop()
            return
        if kind is FaultKind.ERROR_BEFORE:
            self._reply(rule.status, INJECTED_ERROR)
            return
        if kind is FaultKind.RATE_LIMIT:
            headers = []
            if rule.retry_after is not None:
                headers.append(("Retry-After", str(rule.retry_after)))
            self._reply(rule.status, RATE_LIMITED, headers)
            return
        if kind is FaultKind.DELAY_BEFORE:
            time.sleep(rule.delay)

        status, payload, headers = self._operate(method, path, body)

        if kind is FaultKind.DROP_AFTER:
            self._drop()
            return
        if kind is FaultKind.ERROR_AFTER:
            self._reply(rule.status, INJECTED_ERROR)
            return
        if kind is FaultKind.MALFORMED_JSON:
            data = js_stringify(payload)
            self._send(200, data[: len(data) // 2])  # a JSON object cut short
            return
        if kind is FaultKind.DELAY_AFTER:
            time.sleep(rule.delay)
        elif kind is FaultKind.NUMERIC_BET_ID:
            bet_id = payload.get("bet_id")
            if isinstance(bet_id, str) and bet_id.isdigit():
                payload["bet_id"] = int(bet_id)
        self._reply(status, payload, headers)

    def _operate(self, method: str, path: str, body: bytes) -> Answer:
        methods = ROUTES.get(path)
        if methods is None:
            message = f"Cannot {method} {API_PREFIX}{path}"
            return 404, {"error": "Not Found", "message": message}, []
        if method not in methods:
            message = f"{method} is not allowed on {API_PREFIX}{path}"
            allow = [("Allow", ", ".join(methods))]
            return 405, {"error": "Method Not Allowed", "message": message}, allow
        operation = methods[method]
        if operation is None:
            return 200, {"status": "ok"}, []
        state = self.server.state
        user_id = self.headers.get("user-id")
        if not user_id:
            return _unauthorized("Missing user-id header")
        secret = state.secret_for(user_id)
        if secret is None:
            return _unauthorized("Unknown user")
        signature = self.headers.get("x-signature")
        if not signature:
            return _unauthorized("Missing x-signature header")
        # A call without a body is signed over "{}", as JSON.stringify(body || {}).
        if not signature.isascii() or not verify_signature(
            body or b"{}", secret, signature
        ):
            return _unauthorized("Invalid signature")
        try:
            data = parse_object(body)
        except ValueError as exc:
            return 400, {"error": "Bad Request", "message": str(exc)}, []
        try:
            return 200, operation(state, user_id, data), []
        except Refused as refusal:
            return refusal.status, refusal.body(), []

    # --- control -------------------------------------------------------------------

    def _serve_control(self, name: str, body: bytes) -> None:
        try:
            status, payload = self._control(self.command, name, parse_object(body))
        except ValueError as exc:
            status, payload = 400, {"error": "Bad Request", "message": str(exc)}
        self._reply(status, _jsonable(payload))

    def _control(
        self, method: str, name: str, data: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        server = self.server
        match method, name:
            case "POST", "faults":
                fields = _fields(data, FAULT_FIELDS, required=("path", "kind"))
                return 201, server.add_fault(**fields).describe()
            case "GET", "faults":
                return 200, {"faults": server.faults.describe()}
            case "DELETE", "faults":
                return 200, {"cleared": server.clear_faults()}
            case "GET", "state":
                return 200, server.snapshot()
            case "POST", "reset":
                server.reset()
                return 200, {"message": "Simulator reset"}
            case "POST", "config":
                return 200, {"config": server.configure(**_fields(data, CONFIG_FIELDS))}
            case "POST", "accounts":
                fields = _fields(data, ACCOUNT_FIELDS, required=("user_id", "secret"))
                return 201, server.add_account(**fields)
            case "POST", "balance":
                required = ("user_id", "balance")
                server.set_balance(**_fields(data, required, required=required))
                return 200, {"user_id": data["user_id"], "balance": data["balance"]}
            case "GET", "latency":
                return 200, server.latency.describe()
            case "POST", "latency":
                fields = _fields(data, LATENCY_FIELDS, required=("latency_ms",))
                return 200, server.set_latency(**fields)
        message = f"No control endpoint {method} {CONTROL_PREFIX}{name}"
        return 404, {"error": "Not Found", "message": message}


def _unauthorized(message: str) -> Answer:
    return 401, {"error": "Unauthorized", "message": message}, []


class ProviderSimulator(ThreadingHTTPServer):
    """A fake betting provider on a real socket.

    ``start()`` serves from a daemon thread (or call ``serve_forever()``), ``stop()``
    ends it; also a context manager. ``base_url`` is what ``EXTERNAL_API_URL``
    should be. The control methods mirror the ``/__control/`` endpoints.

    With a ``state_file`` the accounts, balances, bets, bet id counter and config
    survive a restart (see ``persistence``); without one, state lives in memory.

    ``latency_ms`` and ``jitter_ms`` make every ``/api`` request wait
    ``latency_ms`` +/- a uniform ``jitter_ms`` before it is handled (see
    ``latency``); ``set_latency`` and ``POST /__control/latency`` change them.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8081,
        *,
        stake_mode: str = "debit_on_loss",
        win_probability: float = 0.5,
        seed: int | None = None,
        repeat_win: str = "refuse",
        accounts: Iterable[Mapping[str, str]] | None = None,
        first_bet_id: int | None = 1,
        verbose: bool = False,
        state_file: str | Path | None = None,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
    ) -> None:
        """``first_bet_id`` None starts the bet ids from the clock (milliseconds),
        so that a restarted simulator never repeats an id it gave before.

        ``state_file`` (None: in memory) is loaded if it exists, and kept up to date
        from then on; one that cannot be loaded raises
        ``persistence.StateFileError`` (a ``ValueError``) naming it.

        An invalid ``latency_ms`` or ``jitter_ms`` raises ``ValueError``."""
        self._initial_latency = Latency(latency_ms, jitter_ms).validated()
        self.latency = self._initial_latency
        self._latency_rng = random.Random(  # noqa: S311 - not for security
            None if seed is None else f"latency:{seed}"
        )
        config = SimulatorConfig(stake_mode, win_probability, seed, repeat_win)
        self.state = ProviderState(
            config=config,
            accounts=DEMO_ACCOUNTS if accounts is None else accounts,
            first_bet_id=first_bet_id,
        )
        self.store: StateStore | None = None
        self.restored = False  # whether the state came from the state file
        if state_file is not None:
            self.store = StateStore(state_file, self.state)
            self.restored = self.store.load()
        self.faults = FaultTable(self.state.config.seed)
        self.verbose = verbose
        self._served = 0
        self._served_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), SimulatorRequestHandler)
        if self.store is not None:
            self.store.start()

    @property
    def state_file(self) -> Path | None:
        return None if self.store is None else self.store.path

    # --- server plumbing -----------------------------------------------------------

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        # An AF_INET(6) server: its address starts with the host and the port.
        self.server_name, self.server_port = cast(
            tuple[str, int], self.server_address[:2]
        )

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Called by socketserver while handling the exception.
        error = sys.exc_info()
        if isinstance(error[1], ConnectionError | TimeoutError):
            return  # the client went away: nothing to report
        logger.error(
            "Provider simulator: error serving %s", client_address, exc_info=error
        )

    def wait_latency(self) -> None:
        """Sleep this request's latency, if any (in its own thread, no lock held)."""
        latency = self.latency
        if latency.active:
            time.sleep(latency.seconds(self._latency_rng))

    def count_request(self) -> None:
        with self._served_lock:
            self._served += 1

    @property
    def requests_served(self) -> int:
        return self._served

    @property
    def host(self) -> str:
        return cast(str, self.server_address[0])

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{API_PREFIX}"

    @property
    def control_url(self) -> str:
        return self.base_url[: -len(API_PREFIX)] + CONTROL_PREFIX.rstrip("/")

    def start(self) -> "ProviderSimulator":
        """Serve from a daemon thread; answers self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"provider-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open keep-alive connections, close the socket, and save
        the last changes to the state file (``StateFileError`` if that fails)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
        if self.store is not None:
            self.store.close()

    def save_state(self) -> bool:
        """Write the state file now if the state changed; answers whether it did."""
        return self.store is not None and self.store.save()

    def __enter__(self) -> "ProviderSimulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- control (the same operations as the /__control/ endpoints) ----------------

    def add_fault(
        self,
        path: str,
        kind: FaultKind | str,
        *,
        method: str | None = None,
        status: int | None = None,
        times: int | None = 1,
        probability: float = 1.0,
        delay: float = DEFAULT_DELAY,
        retry_after: int | None = DEFAULT_RETRY_AFTER,
    ) -> FaultRule:
        """Make ``method`` (None: any) on ``path`` (relative to /api) misbehave."""
        return self.faults.add(
            path,
            kind,
            method=method,
            status=status,
            times=times,
            probability=probability,
            delay=delay,
            retry_after=retry_after,
        )

    def clear_faults(self) -> int:
        return self.faults.clear()

    def reset(self) -> None:
        """The initial state: demo accounts, no balances, bets or faults, and the
        configuration and seed the simulator started with. Deletes the state file:
        a restart after a reset starts from that initial state too."""
        self.faults.clear()
        if self.store is not None:
            self.store.reset()
        else:
            self.state.reset()
        self.faults.reseed(self.state.config.seed)
        self.latency = self._initial_latency

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> dict[str, Any]:
        """Make every ``/api`` request wait ``latency_ms`` +/- ``jitter_ms`` from now
        on (0: answer at once); answers the setting. ``ValueError`` if invalid."""
        self.latency = Latency(latency_ms, jitter_ms).validated()
        return self.latency.describe()

    def configure(
        self,
        *,
        stake_mode: str = UNSET,
        win_probability: float = UNSET,
        seed: int | None = UNSET,
        repeat_win: str = UNSET,
    ) -> dict[str, Any]:
        """Change the configuration; answers it. A ``seed`` reseeds every RNG."""
        config = self.state.configure(
            stake_mode=stake_mode,
            win_probability=win_probability,
            seed=seed,
            repeat_win=repeat_win,
        )
        if seed is not UNSET:
            self.faults.reseed(config.seed)
        return config.describe()

    def add_account(
        self,
        user_id: str,
        secret: str,
        username: str | None = None,
        balance: Any = None,
    ) -> dict[str, Any]:
        account = self.state.add_account(user_id, secret, username, balance)
        return {
            "user_id": account.user_id,
            "username": account.username,
            "balance": account.balance,
        }

    def set_balance(self, user_id: str, balance: Any) -> None:
        """Force a balance (None: never set), as if it changed at the provider."""
        self.state.set_balance(user_id, balance)

    def balance_of(self, user_id: str) -> Decimal | None:
        with self.state.lock:
            account = self.state.accounts.get(user_id)
            return None if account is None else account.balance

    def snapshot(self) -> dict[str, Any]:
        """Configuration, accounts, bets, faults and call counts, as plain data."""
        snapshot = self.state.snapshot()
        snapshot["faults"] = self.faults.describe()
        snapshot["latency"] = self.latency.describe()
        snapshot["requests_served"] = self.requests_served
        return snapshot
