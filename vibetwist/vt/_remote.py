# -*- test-case-name: tests.test_vt -*-
"""``vt ls``, ``vt attach ID``, ``vt wait ID REGEX`` and ``vt title NAME``: talking to a running daemon.

``vt attach`` is a terminal client of the daemon's ``/ws/sessions/ID`` byte
stream, much as ``tmux attach`` is of a tmux server: the local terminal goes
raw, shows the session's screen and then its output, and sends keystrokes
and its size. Ctrl-] detaches.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import termios
import tty
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from vibetwist.errors import FormatError
from vibetwist.model.controldir import ControlDir, default_control_dir, is_session_id
from vibetwist.model.info import now_iso
from vibetwist.model.winsize import terminal_size

#: The key that detaches ``vt attach`` (Ctrl-], as telnet uses).
DETACH_KEY = b"\x1d"


def _headers(environ: dict[str, str]) -> Any:
    token = environ.get("VIBETWIST_TOKEN")
    return {b"Authorization": [b"Bearer " + token.encode()]} if token else {}


def _query(environ: dict[str, str]) -> str:
    token = environ.get("VIBETWIST_TOKEN")
    return "?" + urlencode({"token": token}) if token else ""


def format_sessions(sessions: list[dict[str, Any]]) -> str:
    """A table of sessions for ``vt ls``: id, status (with exit code), name, command."""
    rows = [("ID", "STATUS", "NAME", "COMMAND")]
    for s in sessions:
        status = str(s.get("status", "?"))
        if status == "exited" and s.get("exitCode") is not None:
            status = f"exited({s['exitCode']})"
        command = s.get("command")
        rows.append(
            (
                str(s.get("id", "")),
                status,
                str(s.get("name", "")),
                " ".join(command) if isinstance(command, list) else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() + "\n" for r in rows
    )


def _call_daemon(url: str, method: str, path: str, environ: dict[str, str], body: Any = None) -> bytes | None:
    """One request to the daemon: the answer's body if it is a 200, else None (said on stderr)."""
    from twisted.internet.task import react

    answer: list[bytes] = []

    async def call(reactor: Any) -> int:
        import treq

        headers = _headers(environ)
        data = None
        if body is not None:
            headers[b"Content-Type"] = [b"application/json"]
            data = json.dumps(body).encode("utf-8")
        try:
            response = await treq.request(method, url + path, data=data, headers=headers, timeout=10)
            content = await treq.content(response)
        except Exception as e:
            sys.stderr.write(f"vt: cannot reach the daemon at {url}: {e}\n")
            return 1
        if response.code != 200:
            sys.stderr.write(f"vt: the daemon answered {response.code}: {content[:200]!r}\n")
            return 1
        answer.append(content)
        return 0

    _react(react, call)
    return answer[0] if answer else None


def run_ls(url: str, environ: dict[str, str]) -> int:
    """List the daemon's sessions on stdout."""
    body = _call_daemon(url, "GET", "/api/sessions", environ)
    if body is None:
        return 1
    sys.stdout.write(format_sessions(json.loads(body)))
    return 0


#: vt wait's exit statuses.
WAIT_MATCHED, WAIT_TIMED_OUT, WAIT_EXITED, WAIT_ERROR = 0, 1, 2, 3


def run_wait(url: str, args: list[str], environ: dict[str, str]) -> int:
    """``vt wait ID REGEX [--timeout S] [--on screen|output]``: 0 matched (the match on
    stdout), 1 timed out, 2 the program ended first, 3 an error."""
    import argparse

    parser = argparse.ArgumentParser(prog="vt wait", add_help=False)
    parser.add_argument("session")
    parser.add_argument("pattern")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--on", choices=("screen", "output"), default="screen")
    try:
        options = parser.parse_args(args)
    except SystemExit:
        return WAIT_ERROR  # argparse said why on stderr
    from twisted.internet.task import react

    async def wait(reactor: Any) -> int:
        from vibetwist.client import Client, ClientError

        client = Client(url, environ.get("VIBETWIST_TOKEN"), reactor)
        try:
            result = await client.wait(
                options.session, options.pattern, timeout=options.timeout, on=options.on
            )
        except ClientError as e:
            sys.stderr.write(f"vt: the daemon answered {e.status}: {e.message}\n")
            return WAIT_ERROR
        except Exception as e:
            sys.stderr.write(f"vt: cannot reach the daemon at {url}: {e}\n")
            return WAIT_ERROR
        finally:
            await client.close()
        if result.matched:
            sys.stdout.write(result.text + "\n")
            return WAIT_MATCHED
        if result.timed_out:
            sys.stderr.write(f"vt: {options.pattern!r} did not show within {options.timeout:g} s\n")
            return WAIT_TIMED_OUT
        sys.stderr.write(f"vt: the program ended first (exit code {result.exit_code})\n")
        return WAIT_EXITED

    return _react(react, wait)


def _react(react: Any, main: Any) -> int:
    """Run main(reactor) on the reactor; its result is the exit code."""
    from twisted.internet.defer import Deferred

    code: list[int] = []

    def run(reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(main(reactor)).addCallback(code.append)

    try:
        react(run, [])
    except SystemExit:
        pass
    return code[0] if code else 1


def set_title(name: str, url: str, environ: dict[str, str]) -> int:
    """Rename the session this terminal belongs to.

    A session run by vt owns its session.json, which is changed in place (the
    daemon, if one runs, sees the change). Any other session belongs to the
    daemon, which is asked to rename it.
    """
    session_id = environ.get("VIBETUNNEL_SESSION_ID")
    name = name.strip()
    if not session_id or not is_session_id(session_id):
        sys.stderr.write("vt: `vt title` works inside a session only\n")
        return 1
    if not name or len(name) > 256:
        sys.stderr.write("vt: the title must be 1 to 256 characters\n")
        return 2
    files = ControlDir(default_control_dir(environ))
    if (files.session_dir(session_id) / "ipc.sock").exists():
        try:
            files.load_info(session_id)
        except FormatError as e:
            sys.stderr.write(f"vt: {e}\n")
            return 1
        files.update_info(session_id, lambda info: info.update(name=name, lastModified=now_iso()))
        return 0
    return _rename_through_daemon(url, session_id, name, environ)


def _rename_through_daemon(url: str, session_id: str, name: str, environ: dict[str, str]) -> int:
    path = f"/api/sessions/{quote(session_id, safe='')}"
    return 0 if _call_daemon(url, "PATCH", path, environ, {"name": name}) is not None else 1


class _Attached:
    """Moves bytes between the local terminal and one session's byte stream.

    The terminal is a Twisted ``StandardIO``: what the session prints is
    queued and written as the terminal takes it, and while that queue is full
    the WebSocket's connection stops reading (it is registered as the
    terminal's producer), so nothing waits inside the reactor.
    """

    def __init__(self, reactor: Any, stdin: int, stdout: int) -> None:
        from twisted.internet.defer import Deferred

        self.reactor = reactor
        self.stdin = stdin
        self.stdout = stdout
        self.protocol: Any = None
        self.terminal: Any = None
        self.code = 0
        self.message = ""
        #: Fires when the socket has closed.
        self.closed: Deferred[None] = Deferred()
        #: Fires when the terminal has written everything it was given.
        self.written: Deferred[None] = Deferred()
        self._flags = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (stdin, stdout)}

    def size(self) -> tuple[int, int] | None:
        return terminal_size(self.stdin)

    def send_size(self) -> None:
        size = self.size()
        if size is not None and self.protocol is not None:
            self.protocol.sendMessage(
                json.dumps({"type": "resize", "cols": size[0], "rows": size[1]}).encode()
            )

    # -- the socket ---------------------------------------------------------------

    def opened(self, protocol: Any) -> None:
        """The socket is open: size the session, and start taking keys and writing output."""
        from twisted.internet import stdio

        self.protocol = protocol
        self.send_size()
        self.terminal = stdio.StandardIO(  # type: ignore[call-arg]
            _keys_protocol(self), stdin=self.stdin, stdout=self.stdout, reactor=self.reactor
        )
        self.reactor.addSystemEventTrigger("before", "shutdown", self._blocking_again)
        self.terminal.registerProducer(protocol.transport, True)

    def _blocking_again(self) -> None:
        # StandardIO made the terminal non-blocking; the shell it belongs to shares
        # those flags and expects it blocking again.
        for fd, flag in self._flags.items():
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flag)
            except OSError:
                pass  # closed once its last output was written

    def received(self, payload: bytes, is_binary: bool) -> None:
        if is_binary:
            if self.terminal is not None:
                self.terminal.write(payload)
            return
        message = json.loads(payload)
        if message.get("type") == "exit":
            self.code = message.get("code") or 0
            self.message = f"[session exited with code {self.code}]"
        elif message.get("type") == "error":
            self.message = f"[error: {message.get('message')}]"

    def lost(self, code: int | None, reason: str | None) -> None:
        self.protocol = None
        if code == 4404 or "[404]" in (reason or ""):
            self.message, self.code = "[session not found]", 1
        elif not self.message:
            self.message = f"[connection closed: {reason or code}]"
            self.code = 1
        if not self.closed.called:
            self.closed.callback(None)

    # -- the terminal -------------------------------------------------------------

    def typed(self, data: bytes) -> None:
        if self.protocol is None:
            return
        cut = data.find(DETACH_KEY)
        if cut >= 0:
            if cut:
                self.protocol.sendMessage(data[:cut], isBinary=True)
            self.message = "[detached]"
            self.protocol.sendClose(1000)
            return
        self.protocol.sendMessage(data, isBinary=True)

    def all_written(self) -> None:
        if not self.written.called:
            self.written.callback(None)

    async def drain(self) -> None:
        """Write out what the session printed last (for at most 5 s), then close stdout."""
        if self.terminal is not None:
            self.terminal.loseWriteConnection()
            await self.written.addTimeout(5, self.reactor).addErrback(lambda _: None)


def _keys_protocol(state: _Attached) -> Any:
    """The protocol of the local terminal: keys typed go to state; it is told when output is written."""
    from twisted.internet.interfaces import IHalfCloseableProtocol
    from twisted.internet.protocol import Protocol
    from zope.interface import implementer

    @implementer(IHalfCloseableProtocol)
    class Keys(Protocol):
        def dataReceived(self, data: bytes) -> None:
            state.typed(data)

        def readConnectionLost(self) -> None:
            pass  # stdin closed: nothing more to type, output goes on

        def writeConnectionLost(self) -> None:
            state.all_written()

        def connectionLost(self, reason: Any = None) -> None:
            state.all_written()

    return Keys()


def _socket_factory(ws_url: str, environ: dict[str, str], state: _Attached) -> Any:
    """An Autobahn client factory whose connection reports to state."""
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol

    class SessionSocket(WebSocketClientProtocol):
        def onOpen(self) -> None:
            state.opened(self)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            state.received(payload, isBinary)

        def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
            state.lost(code, reason)

    factory = WebSocketClientFactory(
        ws_url, headers={k.decode(): v[0].decode() for k, v in _headers(environ).items()}
    )
    factory.protocol = SessionSocket
    return factory


def run_attach(url: str, session_id: str, environ: dict[str, str]) -> int:
    """Attach the local terminal to a session until it ends or Ctrl-] is pressed."""
    from twisted.internet import endpoints
    from twisted.internet.task import react

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        sys.stderr.write(f"vt: not an http(s) URL: {url}\n")
        return 2
    ws_url = ("wss" if parts.scheme == "https" else "ws") + url[len(parts.scheme) :]
    ws_url += f"/ws/sessions/{quote(session_id, safe='')}{_query(environ)}"
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    if not os.isatty(stdin):
        sys.stderr.write("vt: attach needs a terminal\n")
        return 1
    kind = "tls" if parts.scheme == "https" else "tcp"
    port = parts.port or (443 if parts.scheme == "https" else 80)

    async def attach(reactor: Any) -> int:
        state = _Attached(reactor, stdin, stdout)
        endpoint = endpoints.clientFromString(reactor, f"{kind}:host={parts.hostname}:port={port}")
        try:
            await endpoint.connect(_socket_factory(ws_url, environ, state))
        except Exception as e:
            sys.stderr.write(f"vt: cannot reach the daemon at {url}: {e}\n")
            return 1
        saved = termios.tcgetattr(stdin)
        previous = signal.signal(signal.SIGWINCH, lambda *_: reactor.callFromThread(state.send_size))
        restored: list[bool] = []

        def restore() -> None:
            if not restored:
                restored.append(True)
                if state.terminal is not None:
                    state.terminal.stopReading()
                signal.signal(signal.SIGWINCH, previous)
                termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)

        # A SIGTERM or SIGHUP stops the reactor without finishing this coroutine.
        reactor.addSystemEventTrigger("before", "shutdown", restore)
        tty.setraw(stdin, termios.TCSANOW)
        try:
            await state.closed
            await state.drain()
        finally:
            restore()
        sys.stderr.write(f"\n{state.message}\n")
        return state.code

    return _react(react, attach)
