"""A scripted provider transport for tests (see ``provider.transport``).

    fake = ScriptedTransport()
    fake.add("POST", "/bet", json={"bet_id": "1"})
    fake.add("POST", "/win", error=TransportError("read timeout", sent=True))
    with transport_installed(fake):  # or ProviderClient(..., transport=fake)
        ...
    assert fake.calls[-1].body == b'{"bet_id":"1"}'

Answers are registered per (method, target), a target being a full URL or a path
matched against the end of the URL's path ("/bet" matches
``http://host/api/bet``). They are given in order, the last one repeating. A
request nothing is scripted for goes to ``passthrough`` (a real transport, e.g.
``default_transport()`` with the simulator), or fails the test with
``UnscriptedRequest`` when there is none. Every request is recorded in ``calls``.

An ``error`` (a ``TransportError``, or any exception, e.g. a ``BaseException``
playing a killed process) is raised instead of answering. With ``sent=True``
(the default for a ``TransportError`` whose ``sent`` is True) and a
``passthrough``, the request is passed on first and its answer lost: the provider
acted, the caller never heard back.
"""

import contextlib
import json as jsonlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from provider.transport import (
    Headers,
    Transport,
    TransportError,
    TransportResponse,
)


class UnscriptedRequest(AssertionError):
    """The code under test sent a request the test did not expect."""


@dataclass(frozen=True)
class SentRequest:
    """One request as the client handed it to the transport."""

    method: str
    url: str
    headers: Headers
    body: bytes | None
    timeout: tuple[float, float]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass(frozen=True)
class _Answer:
    response: TransportResponse | None
    error: BaseException | None
    sent: bool


_NO_JSON: Final = object()


class ScriptedTransport:
    """A ``Transport`` that answers what the test scripted."""

    def __init__(self, passthrough: Transport | None = None) -> None:
        self.passthrough = passthrough
        self.calls: list[SentRequest] = []
        self._script: dict[tuple[str, str], list[_Answer]] = {}
        self._given: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        target: str,
        *,
        status: int = 200,
        json: Any = _NO_JSON,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        error: BaseException | None = None,
        sent: bool | None = None,
    ) -> None:
        """Script the next answer to ``method target``: a response (``json`` or
        ``body``, ``status``, ``headers``), or ``error`` raised."""
        if error is not None:
            if sent is None:
                sent = isinstance(error, TransportError) and error.sent
            answer = _Answer(response=None, error=error, sent=sent)
        else:
            names = Headers(headers or {})
            if json is not _NO_JSON:
                content = jsonlib.dumps(json, separators=(",", ":")).encode()
                if "Content-Type" not in names:
                    names = Headers({**names, "Content-Type": "application/json"})
            else:
                content = body.encode() if isinstance(body, str) else body
            response = TransportResponse(
                status=status, headers=names, content=content, encoding="utf-8"
            )
            answer = _Answer(response=response, error=None, sent=True)
        key = (method.upper(), target)
        with self._lock:
            self._script.setdefault(key, []).append(answer)

    def paths(self) -> list[str]:
        """The paths of the requests sent so far, in order."""
        return [call.path for call in self.calls]

    def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> TransportResponse:
        request = SentRequest(method.upper(), url, Headers(headers), body, timeout)
        with self._lock:
            self.calls.append(request)
            answer = self._next(request)
        if answer is None:
            if self.passthrough is None:
                raise UnscriptedRequest(f"nothing scripted for {method} {url}")
            return self._pass(request)
        if answer.error is None:
            assert answer.response is not None
            return answer.response
        if answer.sent and self.passthrough is not None:
            # Lost on the way or not, the scripted error is what the caller sees.
            with contextlib.suppress(TransportError):
                self._pass(request)
        raise answer.error

    def _next(self, request: SentRequest) -> _Answer | None:
        for key, answers in self._script.items():
            method, target = key
            if method == request.method and _matches(target, request.url):
                given = self._given.get(key, 0)
                self._given[key] = given + 1
                return answers[min(given, len(answers) - 1)]
        return None

    def _pass(self, request: SentRequest) -> TransportResponse:
        assert self.passthrough is not None
        return self.passthrough.send(
            request.method,
            request.url,
            body=request.body,
            headers=dict(request.headers),
            timeout=request.timeout,
        )


def _matches(target: str, url: str) -> bool:
    if "://" in target:
        return url.partition("?")[0] == target
    return urlsplit(url).path.endswith(target)
