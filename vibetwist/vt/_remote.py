# -*- test-case-name: tests.test_vt -*-
"""``vt ls``, ``vt attach ID`` and ``vt title NAME``: talking to a running daemon.

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
        self.reactor = reactor
        self.stdin = stdin
        self.stdout = stdout
        self.protocol: Any = None
        self.terminal: Any = None
        self.code = 0
        self.message = ""

    def size(self) -> tuple[int, int] | None:
        return terminal_size(self.stdin)

    def send_size(self) -> None:
        size = self.size()
        if size is not None and self.protocol is not None:
            self.protocol.sendMessage(
                json.dumps({"type": "resize", "cols": size[0], "rows": size[1]}).encode()
            )

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

    def output(self, data: bytes) -> None:
        if self.terminal is not None:
            self.terminal.write(data)


def run_attach(url: str, session_id: str, environ: dict[str, str]) -> int:
    """Attach the local terminal to a session until it ends or Ctrl-] is pressed."""
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
    from twisted.internet import defer, endpoints, stdio
    from twisted.internet.interfaces import IHalfCloseableProtocol
    from twisted.internet.protocol import Protocol as ByteProtocol
    from twisted.internet.task import react
    from zope.interface import implementer

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

    async def attach(reactor: Any) -> int:
        state = _Attached(reactor, stdin, stdout)
        done: defer.Deferred[None] = defer.Deferred()

        class SessionSocket(WebSocketClientProtocol):
            def onOpen(self) -> None:
                state.protocol = self
                state.send_size()
                flags = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (stdin, stdout)}
                state.terminal = stdio.StandardIO(  # type: ignore[call-arg]
                    Keys(), stdin=stdin, stdout=stdout, reactor=reactor
                )

                def blocking_again() -> None:
                    # StandardIO made the terminal non-blocking; the shell it belongs to
                    # shares those flags and expects it blocking again.
                    for fd, flag in flags.items():
                        try:
                            fcntl.fcntl(fd, fcntl.F_SETFL, flag)
                        except OSError:
                            pass  # closed once its last output was written

                reactor.addSystemEventTrigger("before", "shutdown", blocking_again)
                state.terminal.registerProducer(self.transport, True)

            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                if isBinary:
                    state.output(payload)
                    return
                message = json.loads(payload)
                if message.get("type") == "exit":
                    state.code = message.get("code") or 0
                    state.message = f"[session exited with code {state.code}]"
                elif message.get("type") == "error":
                    state.message = f"[error: {message.get('message')}]"

            def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
                state.protocol = None
                if code == 4404 or "[404]" in (reason or ""):
                    state.message, state.code = "[session not found]", 1
                elif not state.message:
                    state.message = f"[connection closed: {reason or code}]"
                    state.code = 1
                if not done.called:
                    done.callback(None)

        written: defer.Deferred[None] = defer.Deferred()

        @implementer(IHalfCloseableProtocol)
        class Keys(ByteProtocol):
            """What is typed in the local terminal; told when all output is written."""

            def dataReceived(self, data: bytes) -> None:
                state.typed(data)

            def readConnectionLost(self) -> None:
                pass  # stdin closed: nothing more to type, output goes on

            def writeConnectionLost(self) -> None:
                if not written.called:
                    written.callback(None)

            def connectionLost(self, reason: Any = None) -> None:
                self.writeConnectionLost()

        factory = WebSocketClientFactory(
            ws_url, headers={k.decode(): v[0].decode() for k, v in _headers(environ).items()}
        )
        factory.protocol = SessionSocket
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        kind = "tls" if parts.scheme == "https" else "tcp"
        endpoint = endpoints.clientFromString(reactor, f"{kind}:host={host}:port={port}")
        try:
            await endpoint.connect(factory)
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
            await done
            if state.terminal is not None:
                # Write out what the session printed last before the terminal is given back.
                state.terminal.loseWriteConnection()
                await written.addTimeout(5, reactor).addErrback(lambda _: None)
        finally:
            restore()
        sys.stderr.write(f"\n{state.message}\n")
        return state.code

    return _react(react, attach)
