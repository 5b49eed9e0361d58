# -*- test-case-name: tests.test_e2e -*-
"""A real ``twistd -n vibetunnel`` daemon in a subprocess, and clients to talk to it.

Used by the end-to-end tests: L{Daemon} starts the daemon on a free loopback
port with its own control directory and stops it (SIGTERM, then SIGKILL);
L{Client} speaks to it with treq over a pool of its own; L{SSEStream} reads
a Server-Sent Events response; L{WSClient} is an Autobahn WebSocket client;
L{raw_request} sends hand-written HTTP bytes.
Everything waits with bounded timeouts on the reactor and never blocks it
(reading /proc is the only synchronous work, and it is quick).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import treq
from autobahn.twisted.websocket import WebSocketClientProtocol, create_client_agent
from treq.client import HTTPClient
from twisted.internet import defer, endpoints, task
from twisted.internet.interfaces import IPushProducer, ITCPTransport
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers

T = TypeVar("T")

LISTENING = re.compile(rb"vibetwist listening on https?://(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)/")
#: What a daemon logs once it has taken over from the earlier daemon of its process.
TOOK_OVER = re.compile(r"restart: took over (\d+) sessions .* serving again (\d+) ms after")
#: What a daemon logs when a restart in place did not happen.
NO_RESTART = ("restart refused", "restart failed", "restart abandoned")
TWISTD = "from twisted.scripts.twistd import run; run()"
#: The folder holding this checkout's vibetwist package.
CHECKOUT = str(Path(__file__).resolve().parents[2])

#: pids of daemons still running, for the exit-time safety net.
_alive: set[int] = set()


def sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    """A Deferred that fires after seconds on the reactor."""
    return task.deferLater(reactor, seconds, lambda: None)


async def poll(
    reactor: Any,
    check: Callable[[], Any],
    timeout: float = 5.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Call check (sync or async) until it returns something true; its value, or
    AssertionError after timeout seconds."""
    deadline = reactor.seconds() + timeout
    while True:
        value = check()
        if isinstance(value, (defer.Deferred, Awaitable)):
            value = await value
        if value:
            return value
        if reactor.seconds() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {value!r})")
        await sleep(reactor, interval)


async def within(
    reactor: Any, awaitable: Coroutine[Any, Any, T] | defer.Deferred[T], timeout: float, what: str
) -> T:
    """The result of awaitable, or AssertionError if it takes longer than timeout seconds."""
    d = defer.ensureDeferred(awaitable)
    try:
        return await d.addTimeout(timeout, reactor)
    except defer.TimeoutError:
        raise AssertionError(f"{what} took longer than {timeout} s") from None


# -- processes, seen through /proc ------------------------------------------------------


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is sid."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and fields[0] != b"Z" and fields[3] == str(sid).encode():
            members.append(int(name))
    return members


def pids_of_session_id(session_ids: set[str]) -> dict[int, str]:
    """Live processes whose environment carries VIBETUNNEL_SESSION_ID=<one of the ids>."""
    wanted = {f"VIBETUNNEL_SESSION_ID={s}".encode(): s for s in session_ids}
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        if state[state.rfind(b")") + 2 :].startswith(b"Z"):
            continue
        for entry in environ.split(b"\0"):
            if entry in wanted:
                found[int(name)] = wanted[entry]
    return found


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return not stat[stat.rfind(b")") + 2 :].startswith(b"Z")


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send a signal, ignoring a process that is already gone."""
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def kill_sessions(session_ids: set[str]) -> None:
    """SIGKILL every process left carrying one of these session ids (test clean-up)."""
    for pid in pids_of_session_id(session_ids):
        kill_quietly(pid)


# -- the daemon -------------------------------------------------------------------------


class _Watcher(ProcessProtocol):
    """Tells when the daemon process has ended; its output goes to a file, not a pipe,
    so a daemon shared by several tests leaves nothing in the reactor between them."""

    def __init__(self) -> None:
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        self.ended.callback(None)


class Daemon:
    """One ``twistd -n vibetunnel`` process on 127.0.0.1, port 0, with its own control dir.

    listen replaces the default endpoint (keep it on 127.0.0.1 and port 0; an ssl:
    one makes the origin https), args are more options and env more environment.
    python is the interpreter that runs twistd: by default this one, running this
    checkout's code; another one (a virtual environment with vibetwist installed) runs
    the vibetwist it has installed.
    """

    def __init__(
        self,
        reactor: Any,
        base: Path,
        control_dir: Path | None = None,
        *,
        listen: str = "tcp:0:interface=127.0.0.1",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        python: str | None = None,
    ) -> None:
        self._reactor = reactor
        self.python = python
        self.base = Path(base)
        self.listen = listen
        self.args = tuple(args)
        self.extra_env = dict(env or {})
        self.scheme = "https" if listen.startswith("ssl:") else "http"
        self.home = self.base / "home"
        self.control_dir = control_dir if control_dir is not None else self.base / "control"
        self.port = 0
        self.pid: int | None = None
        self._watcher: _Watcher | None = None
        self.log_path: Path | None = None

    @property
    def running(self) -> bool:
        return self._watcher is not None and self._watcher.reason is None

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def log(self) -> str:
        """What the daemon has logged so far."""
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    async def start(self, timeout: float = 15.0) -> None:
        """Spawn the daemon and wait until it logs the port it listens on."""
        self.home.mkdir(parents=True, exist_ok=True)
        index = len(list(self.base.glob("daemon-*.log")))
        self.log_path = self.base / f"daemon-{index}.log"
        env = {
            "HOME": str(self.home),
            "SHELL": "/bin/bash",
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        python = self.python or sys.executable
        if self.python is None:
            if "VIRTUAL_ENV" in os.environ:
                env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
            # The daemon runs this checkout's code, not whatever the virtualenv has installed.
            env["PYTHONPATH"] = CHECKOUT
        env.update(self.extra_env)
        argv = [
            python, "-c", TWISTD, "-n", "--pidfile=", "vibetunnel",
            "--listen", self.listen, "--control-dir", str(self.control_dir), *self.args,
        ]  # fmt: skip
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        self._watcher = _Watcher()
        try:
            transport = self._reactor.spawnProcess(
                self._watcher,
                python,
                argv,
                env=env,
                path=str(self.base),
                childFDs={0: null_fd, 1: log_fd, 2: log_fd},
            )
        finally:
            os.close(log_fd)
            os.close(null_fd)
        self.pid = pid = transport.pid
        _alive.add(pid)

        def forget(result: None) -> None:
            _alive.discard(pid)

        self._watcher.ended.addCallback(forget)

        def listening() -> int | None:
            if not self.running:
                raise AssertionError(f"the daemon exited while starting:\n{self.log()}")
            match = LISTENING.search(self.log_path.read_bytes())  # type: ignore[union-attr]
            return int(match.group(1)) if match else None

        try:
            self.port = await poll(self._reactor, listening, timeout, what="daemon listening")
        except BaseException:
            await self.stop()
            raise

    def restarts(self) -> int:
        """How many times the daemon has restarted in place so far."""
        return len(TOOK_OVER.findall(self.log()))

    def refusals(self) -> int:
        """How many restarts in place did not happen."""
        log = self.log()
        return sum(log.count(what) for what in NO_RESTART)

    async def restart(self, timeout: float = 60.0) -> int:
        """SIGUSR2, then wait until the new daemon of the process serves; the milliseconds
        it logged it did not serve."""
        before = self.restarts()
        kill_quietly(self.pid, signal.SIGUSR2)  # type: ignore[arg-type]
        return await self.restarted(before, timeout)

    async def restarted(self, before: int, timeout: float = 60.0) -> int:
        """Wait until the daemon has restarted more than before times; the milliseconds the
        last switch kept it from serving. AssertionError if a restart did not happen."""
        refused = self.refusals()

        def done() -> bool:
            if not self.running:
                raise AssertionError(f"the daemon ended while restarting:\n{self.log()}")
            if self.refusals() > refused:
                raise AssertionError(f"the restart did not happen:\n{self.log()}")
            return self.restarts() > before

        await poll(self._reactor, done, timeout, interval=0.02, what="the restart")
        return int(TOOK_OVER.findall(self.log())[-1][1])

    async def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM, wait for the exit; SIGKILL after timeout seconds."""
        await self._end(signal.SIGTERM, timeout)

    async def crash(self) -> None:
        """SIGKILL: the daemon dies without cleaning up."""
        await self._end(signal.SIGKILL, 5.0)

    async def _end(self, sig: int, timeout: float) -> None:
        watcher = self._watcher
        if watcher is None or watcher.reason is not None or self.pid is None:
            return
        kill_quietly(self.pid, sig)
        try:
            await poll(self._reactor, lambda: watcher.reason is not None, timeout, what="exit")
        except AssertionError:
            kill_quietly(self.pid, signal.SIGKILL)
            await poll(self._reactor, lambda: watcher.reason is not None, 5.0, what="exit after kill -9")
            raise AssertionError(f"the daemon ignored signal {sig} for {timeout} s:\n{self.log()}") from None


@atexit.register
def _stop_leftovers() -> None:
    """End any daemon still running when the test process exits: the daemon the last
    class of shared-daemon tests left, and every daemon when a run is cut short."""
    for pid in list(_alive):
        kill_quietly(pid, signal.SIGTERM)
    deadline = time.monotonic() + 6.0
    while _alive and time.monotonic() < deadline:
        for pid in list(_alive):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done or not pid_alive(pid):
                _alive.discard(pid)
        time.sleep(0.05)
    for pid in _alive:
        kill_quietly(pid, signal.SIGKILL)


# -- HTTP -------------------------------------------------------------------------------


class SSEStream(Protocol):
    """Reads a text/event-stream body: the data of each message (as JSON), each message's
    fields (C{named}: its id, event name and data), and comment lines."""

    def __init__(self) -> None:
        self._buffer = b""
        self.messages: list[Any] = []
        self.named: list[dict[str, Any]] = []
        self.comments: list[bytes] = []
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None
        self.headers: Headers | None = None

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            payload = []
            fields: dict[str, Any] = {}
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    self.comments.append(line)
                elif line.startswith(b"data:"):
                    payload.append(line[5:].removeprefix(b" "))
                elif line.startswith((b"id:", b"event:")):
                    name, _, value = line.partition(b":")
                    fields[name.decode()] = value.removeprefix(b" ").decode()
            if payload:
                message = json.loads(b"\n".join(payload))
                self.messages.append(message)
                self.named.append(dict(fields, data=message))

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        self.reason = reason
        self.ended.callback(None)

    @property
    def complete(self) -> bool:
        """True once the server ended the response cleanly."""
        return self.reason is not None and self.reason.check(ResponseDone) is not None

    def abort(self) -> None:
        """Drop the connection (the body's transport is the response's producer)."""
        if self.reason is None and self.transport is not None:
            self._producer.stopProducing()

    def pause(self) -> None:
        """Stop reading from the connection, as a slow client would."""
        self._producer.pauseProducing()

    def resume(self) -> None:
        self._producer.resumeProducing()

    @property
    def _producer(self) -> IPushProducer:
        return IPushProducer(self.transport)

    def events(self) -> list[list[Any]]:
        """The asciicast event arrays received (everything after the header)."""
        return [m for m in self.messages if isinstance(m, list)]

    def output(self) -> str:
        """The concatenated text of every "o" event."""
        return "".join(m[2] for m in self.events() if len(m) == 3 and m[1] == "o")


class Client:
    """A treq client with a pool of its own, for one test.

    With token set, every request carries it (as Bearer, and as ?token= on streams);
    tls is the policy that trusts the daemon's certificate, for https daemons.
    """

    def __init__(self, reactor: Any, daemon: Daemon, token: str | None = None, tls: Any = None) -> None:
        self._reactor = reactor
        self.daemon = daemon
        self.token = token
        agent_options: dict[str, Any] = {} if tls is None else {"contextFactory": tls}
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.http = HTTPClient(Agent(reactor, pool=self.pool, **agent_options))
        # Streams get connections of their own that are never pooled: one that ends
        # while the test is closing would otherwise come back to the pool afterwards
        # and leave its idle-timeout call in the reactor.
        self._stream_http = HTTPClient(
            Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False), **agent_options)
        )
        self.streams: list[SSEStream] = []

    async def close(self) -> None:
        """Abort open streams and close pooled connections."""
        for stream in self.streams:
            stream.abort()
        await self.pool.closeCachedConnections()
        # Aborted connections finish closing on the next reactor turn; a request that was
        # still finishing may have returned its connection meanwhile.
        await sleep(self._reactor, 0.01)
        await self.pool.closeCachedConnections()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any, Any]:
        """(status, decoded body, response) of one request: JSON bodies are parsed."""
        all_headers = dict(headers or {})
        if self.token is not None:
            all_headers.setdefault("Authorization", f"Bearer {self.token}")
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        response = await within(
            self._reactor,
            self.http.request(
                method,
                self.daemon.url(path),
                data=data,
                headers=Headers({k: [v] for k, v in all_headers.items()}),
            ),
            timeout,
            f"{method} {path}",
        )
        content = await within(self._reactor, treq.content(response), timeout, f"body of {path}")
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
        decoded: Any = content
        if ctype.startswith(b"application/json"):
            decoded = json.loads(content)
        return response.code, decoded, response

    async def get(self, path: str) -> Any:
        """The body of a GET that must answer 200."""
        code, body, _ = await self.request("GET", path)
        if code != 200:
            raise AssertionError(f"GET {path} answered {code}: {body!r}")
        return body

    async def create(self, command: list[str], **fields: Any) -> str:
        """Start a session; its id."""
        code, body, _ = await self.request("POST", "/api/sessions", dict(fields, command=command))
        if code != 200:
            raise AssertionError(f"create {command} answered {code}: {body!r}")
        return body["sessionId"]

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self.get(f"/api/sessions/{session_id}")

    async def wait_status(self, session_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
        """The session once it has that status."""

        async def check() -> dict[str, Any] | None:
            info = await self.session(session_id)
            return info if info["status"] == status else None

        return await poll(self._reactor, check, timeout, what=f"{session_id} {status}")

    async def text(self, session_id: str) -> str:
        return (await self.get(f"/api/sessions/{session_id}/text")).decode("utf-8")

    async def wait_text(self, session_id: str, needle: str, timeout: float = 5.0) -> str:
        """The screen text once it contains needle."""

        async def check() -> str | None:
            screen = await self.text(session_id)
            return screen if needle in screen else None

        return await poll(self._reactor, check, timeout, what=f"{needle!r} on the screen")

    async def stream(self, session_id: str, timeout: float = 10.0) -> SSEStream:
        """Open the SSE stream of a session; messages arrive in the returned object."""
        return await self.open_stream(f"/api/sessions/{session_id}/stream", timeout)

    async def events(
        self, timeout: float = 10.0, last_event_id: str | None = None, params: dict[str, str] | None = None
    ) -> SSEStream:
        """Open the daemon's stream of session events, /api/events (as a client reconnecting
        with a ``Last-Event-ID`` header, if given one)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else None
        return await self.open_stream("/api/events", timeout, headers=headers, params=params)

    async def open_stream(
        self,
        path: str,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> SSEStream:
        """Open an SSE stream (its token as ?token=); messages arrive in the returned object."""
        query = dict(params or {})
        if self.token is not None:
            query["token"] = self.token
        response = await within(
            self._reactor,
            self._stream_http.get(
                self.daemon.url(path),
                params=query or None,
                headers=headers,
                unbuffered=True,
            ),
            timeout,
            "SSE connect",
        )
        if response.code != 200:
            raise AssertionError(f"{path} answered {response.code}")
        stream = SSEStream()
        stream.headers = response.headers
        self.streams.append(stream)
        response.deliverBody(stream)
        return stream

    async def stream_to_end(self, session_id: str, timeout: float = 15.0) -> SSEStream:
        """The whole SSE stream of a session, which must end within timeout seconds."""
        stream = await self.stream(session_id)
        await within(self._reactor, stream.ended, timeout, "the SSE stream's end")
        return stream


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(self.data)


async def raw_request(reactor: Any, port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send hand-written bytes to the daemon and return all it answers until it closes."""
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=timeout)
    proto = cast(_Collect, await endpoint.connect(Factory.forProtocol(_Collect)))
    transport = ITCPTransport(proto.transport)
    transport.write(data)
    try:
        answer = await within(reactor, proto.done, timeout, "raw answer")
    finally:
        transport.abortConnection()
    await sleep(reactor, 0.01)
    return answer


def parse_raw(answer: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """(status, lower-cased headers, body) of an HTTP/1.x answer; chunked bodies are joined."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        out = b""
        while body:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, body = out + body[:size], body[size + 2 :]
        body = out
    return status, headers, body


class WSClient(WebSocketClientProtocol):
    """An Autobahn client that keeps every message and can wait for one."""

    def onOpen(self) -> None:
        self.messages: list[tuple[bool, bytes]] = []
        self.closed: defer.Deferred[int | None] = defer.Deferred()
        self.close_code: int | None = None
        self._waiting: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append((isBinary, payload))
        self._check()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.close_code = code
        if hasattr(self, "closed") and not self.closed.called:
            self.closed.callback(code)
        self._check()

    def send_json(self, value: Any) -> None:
        self.sendMessage(json.dumps(value).encode())

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(p) for binary, p in self.messages if not binary]

    def binaries(self) -> list[bytes]:
        return [p for binary, p in self.messages if binary]

    def take(self) -> list[tuple[bool, bytes]]:
        """The messages so far, forgotten."""
        got, self.messages = self.messages, []
        return got

    def wait_for(self, check: Callable[[], T | None], timeout: float = 10.0) -> defer.Deferred[T]:
        """Fire with check()'s first true value, checked after each message; fail after timeout."""
        d: defer.Deferred[T] = defer.Deferred()
        self._waiting.append((check, d))
        self._check()
        from twisted.internet import reactor

        return d.addTimeout(timeout, reactor)

    def _check(self) -> None:
        keep = []
        for check, d in getattr(self, "_waiting", []):
            if d.called:
                continue
            value = check()
            if value:
                d.callback(value)
            else:
                keep.append((check, d))
        self._waiting = keep

    def pause(self) -> None:
        """Stop reading, as a stalled client would."""
        self.transport.pauseProducing()

    def resume(self) -> None:
        self.transport.resumeProducing()


async def open_ws(
    reactor: Any, daemon: Daemon, path: str, protocol: type[WSClient] = WSClient, **options: Any
) -> Any:
    """A WebSocket client connected to the daemon at path, its handshake done."""
    agent = create_client_agent(reactor)
    return await agent.open(f"ws://127.0.0.1:{daemon.port}{path}", options, protocol)
