# -*- test-case-name: tests.test_client -*-
"""A Python client of a vibetwist (or VibeTunnel) daemon, on treq.

:class:`Client` is asynchronous (its methods return awaitables, for code that
runs on a Twisted reactor); :class:`SyncClient` offers the same calls to plain
scripts, each call blocking until its answer::

    from vibetwist.client import SyncClient

    vt = SyncClient("http://127.0.0.1:4020")
    sid = vt.create(["python3", "-q"])
    prompt = vt.wait(sid, r">>> ", on="output", after=0)
    vt.send_text(sid, "6 * 7\\r")
    answer = vt.wait(sid, r"42", on="output", after=prompt.offset)

A wait answers with a :class:`WaitResult`; any other refusal of the daemon
raises :class:`ClientError`, with the HTTP status and the daemon's message.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
from twisted.internet.defer import DeferredQueue, ensureDeferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:4020"
#: Seconds a request other than a wait may take before it is given up.
REQUEST_TIMEOUT = 30.0
#: Seconds a wait's request is given beyond the wait's own timeout.
WAIT_SLACK = 30.0


class ClientError(Exception):
    """The daemon refused a request: ``status`` is the HTTP status, ``message`` its error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@attrs.frozen
class WaitResult:
    """How a wait ended: ``matched`` (with ``text`` and ``offset``), ``timed_out``, or ``exited``.

    ``offset`` is the recording offset the match was seen at: give it as the
    next wait's ``after`` to look only at what comes later.
    """

    matched: bool
    text: str = ""
    offset: int | None = None
    timed_out: bool = False
    exited: bool = False
    exit_code: int | None = None


@attrs.frozen
class ServerEvent:
    """One message of ``GET /api/events``: its id, its type (``session-exit``, ...) and its JSON."""

    id: str | None
    type: str
    data: Any


class _EventSource(Protocol):
    """Splits a Server-Sent Events body into (id, event, data) messages, put on a queue."""

    def __init__(self, messages: DeferredQueue[Any]) -> None:
        self._messages = messages
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            fields: dict[str, list[str]] = {}
            for raw in block.decode("utf-8", "replace").split("\n"):
                if not raw or raw.startswith(":"):
                    continue  # a comment (the heartbeat)
                name, _, value = raw.partition(":")
                fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
            if "data" in fields:
                ident = fields.get("id", [None])[-1]
                self._messages.put((ident, fields.get("event", ["message"])[-1], "\n".join(fields["data"])))

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._messages.put(None)


class _Stream:
    """An asynchronous iterator over one SSE response's messages; :meth:`close` stops it early."""

    def __init__(self, opening: Awaitable[Any]) -> None:
        self._opening = opening
        self._messages: DeferredQueue[Any] = DeferredQueue()
        self._protocol: _EventSource | None = None
        self._ended = False

    async def _open(self) -> None:
        response = await self._opening
        if response.code != 200:
            body = await response.content()
            raise ClientError(response.code, _error_text(body))
        self._protocol = _EventSource(self._messages)
        response.deliverBody(self._protocol)

    async def next_message(self) -> tuple[str | None, str, str] | None:
        if self._ended:
            return None
        if self._protocol is None:
            await self._open()
        message = await self._messages.get()
        if message is None:
            self._ended = True
        return message  # type: ignore[arg-type,no-any-return]

    def close(self) -> None:
        self._ended = True
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.stopProducing()  # type: ignore[attr-defined]


class OutputStream:
    """The output of a session as it comes (``async for text in stream``), from its SSE stream.

    It starts with what the session shows since its last clear, then live
    output, and ends when the program ends; ``exit_code`` is then set.
    """

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self.exit_code: int | None = None
        self.exited = False

    def __aiter__(self) -> OutputStream:
        return self

    async def __anext__(self) -> str:
        while True:
            message = await self._stream.next_message()
            if message is None:
                raise StopAsyncIteration
            try:
                line = json.loads(message[2])
            except ValueError:
                continue
            if isinstance(line, list) and len(line) >= 2 and line[0] == "exit":
                self.exited = True
                self.exit_code = line[1]
            elif isinstance(line, list) and len(line) == 3 and line[1] == "o":
                return str(line[2])

    def close(self) -> None:
        self._stream.close()


class EventStream:
    """The daemon's session events as they happen (``async for event in stream``)."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ServerEvent:
        message = await self._stream.next_message()
        if message is None:
            raise StopAsyncIteration
        ident, kind, data = message
        try:
            value = json.loads(data)
        except ValueError:
            value = data
        return ServerEvent(ident, kind, value)

    def close(self) -> None:
        self._stream.close()


def _error_text(body: bytes) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:200]
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    return body.decode("utf-8", "replace")[:200]


class Client:
    """An asynchronous client of one daemon; every method is a coroutine (or returns a stream)."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, reactor: Any = None) -> None:
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.url = url.rstrip("/")
        self.token = token
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        # Streams are long: each gets a connection of its own, never pooled.
        self._streams = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))

    def _headers(self, body: bool = False) -> Headers:
        headers = Headers()
        if self.token:
            headers.addRawHeader(b"Authorization", b"Bearer " + self.token.encode())
        if body:
            headers.addRawHeader(b"Content-Type", b"application/json")
        return headers

    @staticmethod
    def _path(session_id: str, rest: str = "") -> str:
        return f"/api/sessions/{quote(session_id, safe='')}{rest}"

    async def _call(
        self, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT
    ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        response = await self._http.request(
            method,
            self.url + path,
            data=data,
            headers=self._headers(body is not None),
            timeout=timeout,
            reactor=self._reactor,
        )
        content: bytes = await response.content()
        return response.code, content

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        code, content = await self._call(method, path, body)
        if code != 200:
            raise ClientError(code, _error_text(content))
        return json.loads(content)

    # -- sessions ----------------------------------------------------------------------

    async def create(self, command: list[str], **fields: Any) -> str:
        """Start ``command`` in a new session (``workingDir``, ``name``, ``cols``, ``rows``...); its id."""
        answer = await self._json("POST", "/api/sessions", dict(fields, command=list(command)))
        return str(answer["sessionId"])

    async def sessions(self) -> list[dict[str, Any]]:
        """Every session, newest first."""
        return list(await self._json("GET", "/api/sessions"))

    async def session(self, session_id: str) -> dict[str, Any]:
        return dict(await self._json("GET", self._path(session_id)))

    async def send_text(self, session_id: str, text: str) -> None:
        """Type text into the session (``"\\r"`` is Enter)."""
        await self._json("POST", self._path(session_id, "/input"), {"text": text})

    async def send_key(self, session_id: str, key: str) -> None:
        """Type a named key (``enter``, ``arrow_up``, ``ctrl_enter``...)."""
        await self._json("POST", self._path(session_id, "/input"), {"key": key})

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        await self._json("POST", self._path(session_id, "/resize"), {"cols": cols, "rows": rows})

    async def kill(self, session_id: str) -> None:
        """End a running session's program (or remove an exited session)."""
        await self._json("DELETE", self._path(session_id))

    async def text(self, session_id: str) -> str:
        """The session's screen as text, one line per row."""
        code, content = await self._call("GET", self._path(session_id, "/text"))
        if code != 200:
            raise ClientError(code, _error_text(content))
        return content.decode("utf-8")

    async def wait(
        self,
        session_id: str,
        pattern: str | None = None,
        *,
        idle: float | None = None,
        timeout: float = 30.0,
        on: str = "screen",
        after: int | None = None,
    ) -> WaitResult:
        """Wait until ``pattern`` (a Python regular expression) shows on the screen or in the
        output after offset ``after``, or, with ``idle``, until the session is quiet that long."""
        body: dict[str, Any] = {"timeout": timeout}
        if idle is not None:
            body["idle"] = idle
        if pattern is not None:
            body.update(pattern=pattern, on=on)
            if after is not None:
                body["after"] = after
        code, content = await self._call("POST", self._path(session_id, "/wait"), body, timeout + WAIT_SLACK)
        if code == 408:
            return WaitResult(matched=False, timed_out=True)
        if code != 200:
            raise ClientError(code, _error_text(content))
        answer = json.loads(content)
        if answer.get("matched"):
            return WaitResult(matched=True, text=answer.get("text", ""), offset=answer.get("offset"))
        return WaitResult(matched=False, exited=True, exit_code=answer.get("exitCode"))

    def output(self, session_id: str) -> OutputStream:
        """The session's output as it comes, until its program ends."""
        return OutputStream(self._stream(self._path(session_id, "/stream")))

    def events(self) -> EventStream:
        """The daemon's session events (``session-start``, ``session-exit``, ...) as they happen."""
        return EventStream(self._stream("/api/events"))

    def _stream(self, path: str) -> _Stream:
        return _Stream(
            self._streams.get(
                self.url + path, headers=self._headers(), unbuffered=True, reactor=self._reactor
            )
        )

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._pool.closeCachedConnections()


class _ReactorThread:
    """The global reactor, run in a thread of its own for the synchronous client.

    A reactor runs once per process (it cannot be started again once stopped),
    so calling ``task.react`` per call would work only once; one reactor thread
    serves every call of every :class:`SyncClient` instead, and each call blocks
    only the thread that made it.
    """

    _lock = threading.Lock()
    _thread: threading.Thread | None = None

    @classmethod
    def reactor(cls) -> Any:
        from twisted.internet import reactor

        with cls._lock:
            if cls._thread is None:
                if reactor.running:  # type: ignore[attr-defined]
                    raise RuntimeError("The reactor runs already: use vibetwist.client.Client")
                cls._thread = threading.Thread(
                    target=reactor.run,  # type: ignore[attr-defined]
                    kwargs={"installSignalHandlers": False},
                    name="vibetwist-client-reactor",
                    daemon=True,
                )
                cls._thread.start()
        return reactor


class SyncClient:
    """The :class:`Client`'s calls for scripts that run no reactor: each blocks until its answer.

    The reactor runs in a background thread (see :class:`_ReactorThread`);
    streams come as plain iterators.
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None) -> None:
        self._reactor = _ReactorThread.reactor()
        self._client = Client(url, token, self._reactor)

    def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self._reactor, lambda: ensureDeferred(_awaited(call)))  # type: ignore[arg-type,no-any-return]

    def create(self, command: list[str], **fields: Any) -> str:
        return self._run(lambda: self._client.create(command, **fields))

    def sessions(self) -> list[dict[str, Any]]:
        return self._run(self._client.sessions)

    def session(self, session_id: str) -> dict[str, Any]:
        return self._run(lambda: self._client.session(session_id))

    def send_text(self, session_id: str, text: str) -> None:
        self._run(lambda: self._client.send_text(session_id, text))

    def send_key(self, session_id: str, key: str) -> None:
        self._run(lambda: self._client.send_key(session_id, key))

    def resize(self, session_id: str, cols: int, rows: int) -> None:
        self._run(lambda: self._client.resize(session_id, cols, rows))

    def kill(self, session_id: str) -> None:
        self._run(lambda: self._client.kill(session_id))

    def text(self, session_id: str) -> str:
        return self._run(lambda: self._client.text(session_id))

    def wait(self, session_id: str, pattern: str | None = None, **options: Any) -> WaitResult:
        """See :meth:`Client.wait`."""
        return self._run(lambda: self._client.wait(session_id, pattern, **options))

    def output(self, session_id: str) -> Iterator[str]:
        """The session's output as it comes, until its program ends."""
        return self._iterate(lambda: self._client.output(session_id))

    def events(self) -> Iterator[ServerEvent]:
        """The daemon's session events as they happen (the iterator never ends by itself)."""
        return self._iterate(self._client.events)

    def _iterate(self, make: Callable[[], Any]) -> Iterator[Any]:
        from twisted.internet.threads import blockingCallFromThread

        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stream = blockingCallFromThread(self._reactor, make)

        async def pump() -> None:
            try:
                async for item in stream:
                    items.put(("item", item))
            except Exception as e:
                items.put(("error", e))
            else:
                items.put(("end", None))

        self._reactor.callFromThread(lambda: ensureDeferred(pump()))
        try:
            while True:
                kind, value = items.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            self._reactor.callFromThread(stream.close)

    def close(self) -> None:
        self._run(self._client.close)


async def _awaited(call: Callable[[], Awaitable[T]]) -> T:
    return await call()


__all__ = [
    "Client",
    "ClientError",
    "EventStream",
    "OutputStream",
    "ServerEvent",
    "SyncClient",
    "WaitResult",
]
