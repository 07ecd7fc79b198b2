"""The provider's HTTP layer: the one seam between the client and the network.

``provider.client`` sends every request through a ``Transport`` and sees only what
this module defines: a ``TransportResponse`` (status, case-insensitive headers,
bytes) or a ``TransportError`` (a short ``reason`` and whether the request may have
been ``sent``). No HTTP library's types reach the client, the retry policy or the
tests, so swapping the library changes only ``RequestsTransport``.

Choosing the transport (the one documented way; nothing else is patched):

- ``ProviderClient(..., transport=t)`` for one client;
- ``with transport_installed(t):`` for every client that has none of its own, in
  every thread of the process, for the duration of the block (tests, and code
  paths that build their clients themselves, such as the bet services and the
  management commands);
- otherwise ``default_transport()``: one process-wide ``Urllib3Transport``.

``Urllib3Transport`` is the production transport: against the simulator on this
machine a signed call costs 0.31 ms of client CPU through it and 0.57 ms through
``RequestsTransport`` (2026-12-03, ``python -m bench.transport_ab``: three rounds of
2000 calls each). ``RequestsTransport`` stays as the reference the error mapping
was first written for, tested the same way.
"""

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

# --- the interface -------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Read-only HTTP headers whose names are compared without case."""

    __slots__ = ("_items",)

    def __init__(
        self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()
    ) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, tuple[str, str]] = {
            name.lower(): (name, value) for name, value in pairs
        }

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class TransportResponse:
    """An HTTP answer, whatever its status (redirects are never followed)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=Headers)
    content: bytes = b""
    encoding: str | None = None  # the charset the headers name, if any

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))

    @property
    def text(self) -> str:
        """The body as text: in ``encoding``, else UTF-8; bad bytes replaced."""
        try:
            return self.content.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")


class TransportError(Exception):
    """No HTTP answer came back.

    ``reason`` is short and stable ("connect timeout", "read timeout", "connection
    error", or the library's error name). ``sent`` is False only when the request
    certainly never left this machine (a write may then be sent again); True when
    the provider may have received it and acted. ``detail`` says what the library
    reported.
    """

    def __init__(self, reason: str, *, sent: bool, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.sent = sent
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason

    def __repr__(self) -> str:
        return f"TransportError({self.reason!r}, sent={self.sent!r})"


class Transport(Protocol):
    """Sends one HTTP request and answers its response, never following redirects.

    ``timeout`` is (connect, read) in seconds. Raises ``TransportError`` when no
    answer came back; any other exception is a bug (or a test playing a crash).
    """

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> TransportResponse: ...


# --- the production transport: requests ----------------------------------------------


class RequestsTransport:
    """``requests`` with one pooled keep-alive session per thread, no proxies or
    credentials from the environment, and no hidden retries."""

    POOL_CONNECTIONS = 4
    POOL_MAXSIZE = 4

    def __init__(self) -> None:
        self._local = threading.local()

    def session(self) -> requests.Session:
        """This thread's session."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies or credentials from the environment
            adapter = HTTPAdapter(
                pool_connections=self.POOL_CONNECTIONS,
                pool_maxsize=self.POOL_MAXSIZE,
                max_retries=0,
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> TransportResponse:
        try:
            response = self.session().request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TransportError(
                _reason(exc),
                sent=not never_connected(exc),
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        return TransportResponse(
            status=response.status_code,
            headers=Headers(response.headers),
            content=response.content,
            encoding=response.encoding,
        )


def _reason(exc: requests.RequestException) -> str:
    """A short, stable description of a requests error."""
    names = {
        requests.exceptions.ConnectTimeout: "connect timeout",
        requests.exceptions.ReadTimeout: "read timeout",
        requests.exceptions.ConnectionError: "connection error",
    }
    for exc_type, name in names.items():
        if isinstance(exc, exc_type):
            return name
    return type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps, outermost first.

    requests keeps urllib3's error as its first argument, and urllib3's
    ``MaxRetryError`` keeps the underlying error as ``reason``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, MaxRetryError):
            current = current.reason
        elif (
            isinstance(current, requests.RequestException)
            and current.args
            and isinstance(current.args[0], BaseException)
        ):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__


def never_connected(exc: BaseException) -> bool:
    """True only when the request certainly never left this machine.

    A ``ConnectionError`` is not enough: requests raises it too for a connection
    reset or closed after the request was written (``ProtocolError``,
    ``RemoteDisconnected``), when the provider may have acted. The first error
    under requests' and urllib3's wrappers decides.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    for cause in _causes(exc):
        if isinstance(cause, requests.RequestException | MaxRetryError):
            continue
        # NameResolutionError subclasses NewConnectionError.
        return isinstance(cause, NewConnectionError)
    return False


# --- the lean transport: urllib3 directly ------------------------------------------


class Urllib3Transport:
    """urllib3's connection pools used directly: keep-alive, thread-safe, no
    retries and no redirects, without requests' session machinery (cookies,
    hooks, adapters, environment lookups), which cost more CPU per call than the
    call itself on a fast provider."""

    def __init__(self, *, maxsize: int = 8) -> None:
        self._pools = urllib3.PoolManager(
            num_pools=8, maxsize=maxsize, block=False, retries=False
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> TransportResponse:
        try:
            response = self._pools.request(
                method,
                url,
                body=body or None,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(
                _urllib3_reason(exc),
                # Connecting timed out or failed (NewConnectionError and name
                # resolution subclass ConnectTimeoutError): nothing was written.
                # A read timeout, a reset or a close may come after the write.
                sent=not isinstance(exc, urllib3.exceptions.ConnectTimeoutError),
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        return TransportResponse(
            status=response.status,
            headers=Headers(response.headers.items()),
            content=response.data,
            encoding=_charset(response.headers.get("Content-Type")),
        )


def _urllib3_reason(exc: urllib3.exceptions.HTTPError) -> str:
    """The same short names as ``RequestsTransport`` gives."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection error"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connect timeout"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timeout"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection error"
    return type(exc).__name__


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return None


# --- choosing the transport ----------------------------------------------------------

_production: Transport = Urllib3Transport()
_installed: Transport = _production
_installed_lock = threading.Lock()


def default_transport() -> Transport:
    """The transport of clients without their own: the one installed with
    ``transport_installed``, else the process's ``RequestsTransport``."""
    return _installed


@contextmanager
def transport_installed(transport: Transport) -> Iterator[Transport]:
    """Make ``transport`` the default for every thread while the block runs; the
    previous default comes back after it (blocks nest)."""
    global _installed
    with _installed_lock:
        previous = _installed
        _installed = transport
    try:
        yield transport
    finally:
        with _installed_lock:
            _installed = previous
