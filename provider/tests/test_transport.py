"""The transport seam: ``RequestsTransport`` (requests' errors and answers mapped to
the project's types; this file alone may use requests, urllib3 and ``responses``,
since it tests that adapter), choosing the transport, and the tests' fake."""

import http.client
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
import responses
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from provider.testing import ScriptedTransport, UnscriptedRequest
from provider.transport import (
    Headers,
    RequestsTransport,
    TransportError,
    TransportResponse,
    Urllib3Transport,
    default_transport,
    never_connected,
    transport_installed,
)

URL = "http://provider.test/api/bet"
TIMEOUT = (1.5, 4.0)


def wrapped(reason: Exception) -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, URL, reason=reason))


def send(transport: RequestsTransport, url: str = URL, body: bytes | None = b"{}"):
    return transport.send(
        "POST",
        url,
        body=body,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


NEVER_SENT = [
    wrapped(NewConnectionError(None, "Connection refused")),
    wrapped(
        NameResolutionError(
            "provider.test", None, socket.gaierror("Name or service unknown")
        )
    ),
    requests.ConnectTimeout(
        MaxRetryError(None, URL, reason=ConnectTimeoutError(None, "timed out"))
    ),
]
NEVER_SENT_IDS = ["refused", "dns", "connect-timeout"]
MAYBE_SENT = [
    requests.ConnectionError(
        ProtocolError(
            "Connection aborted.",
            http.client.RemoteDisconnected("closed without response"),
        )
    ),
    requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    ),
    requests.ConnectionError(
        MaxRetryError(None, URL, reason=ProtocolError("Connection aborted."))
    ),
    requests.ConnectionError(OSError("broken pipe")),
    requests.ConnectionError("no cause at all"),
    requests.ReadTimeout(ReadTimeoutError(None, URL, "Read timed out.")),
    requests.exceptions.ChunkedEncodingError("truncated"),
    requests.RequestException("anything else"),
]
MAYBE_SENT_IDS = [
    "remote-disconnected",
    "reset",
    "protocol-in-max-retry",
    "os-error",
    "bare",
    "read-timeout",
    "chunked",
    "other",
]


class TestNeverConnected:
    @pytest.mark.parametrize("exc", NEVER_SENT, ids=NEVER_SENT_IDS)
    def test_the_connection_was_never_made(self, exc):
        assert never_connected(exc) is True

    @pytest.mark.parametrize("exc", MAYBE_SENT, ids=MAYBE_SENT_IDS)
    def test_the_request_may_have_been_sent(self, exc):
        assert never_connected(exc) is False

    def test_a_reset_wrapping_a_new_connection_error_deeper_is_still_unknown(self):
        inner = NewConnectionError(None, "refused")
        outer = ProtocolError("Connection aborted.", ConnectionResetError())
        outer.__cause__ = inner
        assert never_connected(requests.ConnectionError(outer)) is False


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("exc", "reason", "sent"),
        [
            (NEVER_SENT[0], "connection error", False),
            (NEVER_SENT[1], "connection error", False),
            (NEVER_SENT[2], "connect timeout", False),
            (MAYBE_SENT[0], "connection error", True),
            (MAYBE_SENT[5], "read timeout", True),
            (MAYBE_SENT[6], "ChunkedEncodingError", True),
            (MAYBE_SENT[7], "RequestException", True),
        ],
        ids=[
            "refused",
            "dns",
            "connect-timeout",
            "remote-disconnected",
            "read-timeout",
            "chunked",
            "other",
        ],
    )
    def test_every_requests_error_becomes_a_transport_error(
        self, mocked, exc, reason, sent
    ):
        mocked.post(URL, body=exc)
        with pytest.raises(TransportError) as caught:
            send(RequestsTransport())
        error = caught.value
        assert (error.reason, error.sent) == (reason, sent)
        assert error.__cause__ is exc
        # What the API log's ``error`` column has always said.
        assert str(error) == f"{reason}: {type(exc).__name__}: {exc}"


class TestResponses:
    def test_status_headers_and_body(self, mocked):
        mocked.post(
            URL,
            status=429,
            body=b'{"error":"slow"}',
            headers={"Retry-After": "2"},
            content_type="application/json",
        )
        response = send(RequestsTransport())
        assert response.status == 429
        assert response.headers["retry-after"] == "2"
        assert response.headers.get("RETRY-AFTER") == "2"
        assert response.content == b'{"error":"slow"}'
        assert response.text == '{"error":"slow"}'

    def test_the_request_goes_out_as_given(self, mocked):
        mocked.post(URL, json={})
        send(RequestsTransport(), body=b'{"bet":3}')
        send(RequestsTransport(), body=None)
        first, second = mocked.calls
        assert first.request.body == b'{"bet":3}'
        assert first.request.headers["Content-Type"] == "application/json"
        assert first.request.req_kwargs["timeout"] == TIMEOUT
        assert not second.request.body

    def test_redirects_are_not_followed(self, mocked):
        mocked.post(URL, status=302, headers={"Location": f"{URL}/elsewhere"})
        mocked.post(f"{URL}/elsewhere", json={"bet_id": "1"})
        assert send(RequestsTransport()).status == 302
        assert [call.request.url for call in mocked.calls] == [URL]

    def test_text_uses_the_charset_of_the_headers(self, mocked):
        mocked.post(URL, body="Grüße".encode("latin-1"), content_type="text/plain")
        response = send(RequestsTransport())
        assert response.encoding == "ISO-8859-1"
        assert response.text == "Grüße"


class TestSessions:
    def test_one_pooled_session_per_thread_without_hidden_retries(self):
        transport = RequestsTransport()
        session = transport.session()
        assert transport.session() is session
        assert session.trust_env is False
        adapter = session.get_adapter(URL)
        assert adapter.max_retries.total == 0
        assert adapter._pool_connections == adapter._pool_maxsize == 4
        others = []
        thread = threading.Thread(target=lambda: others.append(transport.session()))
        thread.start()
        thread.join()
        assert others[0] is not session


# --- real sockets ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _OneShot:
    """Accepts one connection on 127.0.0.1, reads the request, then closes it
    (``hang`` seconds later)."""

    def __init__(self, hang: float = 0.0) -> None:
        self.hang = hang
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/bet"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            self.done.wait(self.hang)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()


BOTH = pytest.mark.parametrize(
    "transport_type", [RequestsTransport, Urllib3Transport], ids=["requests", "urllib3"]
)


@BOTH
class TestRealSockets:
    def test_refused_connection_was_never_sent(self, transport_type):
        url = f"http://127.0.0.1:{_free_port()}/api/bet"
        with pytest.raises(TransportError) as caught:
            send(transport_type(), url)
        assert (caught.value.reason, caught.value.sent) == ("connection error", False)

    def test_connection_closed_after_the_request_may_have_been_sent(
        self, transport_type
    ):
        server = _OneShot()
        try:
            with pytest.raises(TransportError) as caught:
                send(transport_type(), server.url)
        finally:
            server.close()
        assert (caught.value.reason, caught.value.sent) == ("connection error", True)

    def test_read_timeout_may_have_been_sent(self, transport_type):
        server = _OneShot(hang=3)
        try:
            with pytest.raises(TransportError) as caught:
                transport_type().send(
                    "POST", server.url, body=b"{}", headers={}, timeout=(1, 0.2)
                )
        finally:
            server.close()
        assert (caught.value.reason, caught.value.sent) == ("read timeout", True)


# --- choosing the transport --------------------------------------------------------


class TestChoosing:
    def test_the_default_is_urllib3(self):
        assert isinstance(default_transport(), Urllib3Transport)

    def test_installed_transports_nest_and_come_back(self):
        production = default_transport()
        outer, inner = ScriptedTransport(), ScriptedTransport()
        with transport_installed(outer):
            assert default_transport() is outer
            with transport_installed(inner):
                assert default_transport() is inner
            assert default_transport() is outer
        assert default_transport() is production

    def test_installed_for_every_thread(self):
        fake = ScriptedTransport()
        seen = []
        with transport_installed(fake):
            thread = threading.Thread(target=lambda: seen.append(default_transport()))
            thread.start()
            thread.join()
        assert seen == [fake]

    def test_comes_back_after_an_error(self):
        production = default_transport()
        with pytest.raises(RuntimeError), transport_installed(ScriptedTransport()):
            raise RuntimeError
        assert default_transport() is production


class TestTypes:
    def test_headers_ignore_case_and_are_read_only(self):
        headers = Headers({"Retry-After": "1"})
        assert headers["retry-after"] == headers.get("RETRY-AFTER") == "1"
        assert "retry-AFTER" in headers
        assert list(headers) == ["Retry-After"]
        assert headers.get(3) is None  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            headers["X"] = "y"  # type: ignore[index]

    def test_a_response_takes_a_plain_dict_of_headers(self):
        response = TransportResponse(200, {"Content-Type": "text/plain"}, b"\xffok")
        assert response.headers["content-type"] == "text/plain"
        assert response.text == "\ufffdok"
        assert TransportResponse(200, content=b"ok", encoding="no-such").text == "ok"

    def test_an_error_says_what_happened(self):
        error = TransportError("read timeout", sent=True)
        assert (str(error), error.detail) == ("read timeout", "")
        assert repr(error) == "TransportError('read timeout', sent=True)"


# --- the fake ----------------------------------------------------------------------


def fake_send(transport: ScriptedTransport, method: str = "POST", url: str = URL):
    return transport.send(
        method, url, body=b"{}", headers={"user-id": "5"}, timeout=TIMEOUT
    )


class TestScriptedTransport:
    def test_answers_in_order_the_last_repeating(self):
        fake = ScriptedTransport()
        fake.add("POST", "/bet", status=500, body="down")
        fake.add("POST", "/bet", json={"bet_id": "1"})
        fake.add("GET", "/bet", json={"bet": 2})
        statuses = [fake_send(fake).status for _ in range(3)]
        assert statuses == [500, 200, 200]
        assert fake_send(fake).content == b'{"bet_id":"1"}'
        assert fake_send(fake, "GET").content == b'{"bet":2}'
        call = fake.calls[0]
        assert (call.method, call.url, call.path) == ("POST", URL, "/api/bet")
        assert (call.body, call.timeout, call.headers["USER-ID"]) == (
            b"{}",
            TIMEOUT,
            "5",
        )

    def test_a_full_url_matches_only_itself(self):
        fake = ScriptedTransport()
        fake.add("POST", URL, json={})
        assert fake_send(fake).status == 200
        with pytest.raises(UnscriptedRequest):
            fake_send(fake, url="http://other.test/api/bet")
        assert len(fake.calls) == 2

    def test_errors_are_raised(self):
        fake = ScriptedTransport()
        fake.add("POST", "/bet", error=TransportError("read timeout", sent=True))
        with pytest.raises(TransportError, match="read timeout"):
            fake_send(fake)

    def test_passthrough_gets_what_is_not_scripted(self):
        real = ScriptedTransport()
        real.add("POST", "/auth", json={"user_id": "5"})
        real.add("POST", "/bet", json={"bet_id": "9"})
        fake = ScriptedTransport(passthrough=real)
        fake.add("POST", "/bet", error=TransportError("connect timeout", sent=False))
        assert fake_send(fake, url="http://provider.test/api/auth").status == 200
        with pytest.raises(TransportError):
            fake_send(fake)
        assert real.paths() == ["/api/auth"]  # never sent: not passed on
        assert fake.paths() == ["/api/auth", "/api/bet"]

    def test_an_error_after_sending_passes_the_request_on_first(self):
        class Killed(BaseException):
            pass

        real = ScriptedTransport()
        real.add("POST", "/bet", json={"bet_id": "9"})
        fake = ScriptedTransport(passthrough=real)
        fake.add("POST", "/bet", error=Killed(), sent=True)
        with pytest.raises(Killed):
            fake_send(fake)
        assert real.paths() == ["/api/bet"]  # the provider got it
        fake.add("POST", "/win", error=TransportError("read timeout", sent=True))
        real.add("POST", "/win", error=TransportError("connection error", sent=True))
        with pytest.raises(TransportError, match="read timeout"):
            fake_send(fake, url="http://provider.test/api/win")
        assert real.paths() == ["/api/bet", "/api/win"]


# --- urllib3: answers from a real server ------------------------------------------


class _Answering(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length)
        if self.path.endswith("/moved"):
            self.send_response(302)
            self.send_header("Location", "/api/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = "ok é ".encode("latin-1") + received
        self.send_response(201)
        self.send_header("Content-Type", "text/plain; charset=latin-1")
        self.send_header("X-Seen-Signature", self.headers.get("x-signature", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[str]:
    _Answering.peers = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class TestUrllib3Answers:
    def test_status_headers_body_and_charset(self, answering):
        response = Urllib3Transport().send(
            "POST",
            answering + "/api/bet",
            body=b'{"bet":1}',
            headers={"x-signature": "abc", "Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
        assert response.status == 201
        assert response.headers["x-seen-SIGNATURE"] == "abc"
        assert response.content == "ok é ".encode("latin-1") + b'{"bet":1}'
        assert response.text == 'ok é {"bet":1}'

    def test_redirects_are_not_followed(self, answering):
        response = Urllib3Transport().send(
            "POST", answering + "/api/moved", body=None, headers={}, timeout=TIMEOUT
        )
        assert response.status == 302

    def test_keep_alive_connections_are_reused(self, answering):
        transport = Urllib3Transport()
        for _ in range(3):
            transport.send(
                "POST", answering + "/api/bet", body=b"{}", headers={}, timeout=TIMEOUT
            )
        pools = list(transport._pools.pools._container.values())
        assert len(pools) == 1
        assert pools[0].num_connections == 1
