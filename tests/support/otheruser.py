"""Another user of the machine: programs run as nobody (uid 65534) with setpriv, as an attacker
sharing the machine would run them, and an HTTP client for them to talk to a daemon with.

The tests run as root (in CI too), which setpriv needs. The client is a Python program of
the standard library alone, given on the command line (``python -I -c``): the other user reads
no file of this checkout, it only runs a Python interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

NOBODY = 65534

#: An HTTP client run as the other user. argv[1] is a JSON object:
#: {"connect": ["tcp", host, port] | ["unix", path], "requests": [latin-1 strings],
#:  "together": bool (send every request on its own connection at once, then read every answer),
#:  "then_close": bool (send the requests and close at once, reading nothing)}.
#: It prints a JSON list with one {"status", "headers", "body"} or {"error"} per request.
CLIENT = r"""
import json, socket, sys
spec = json.loads(sys.argv[1])

def connect():
    kind = spec["connect"]
    if kind[0] == "unix":
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(20)
        sock.connect(kind[1])
    else:
        sock = socket.create_connection((kind[1], kind[2]), timeout=20)
    return sock

def read_answer(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status != 101:
        if "content-length" in headers:
            while len(body) < int(headers["content-length"]):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        elif headers.get("transfer-encoding") == "chunked":
            while not body.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            out = b""
            while body:
                size_line, _, body = body.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    break
                out, body = out + body[:size], body[size + 2:]
            body = out
    return {"status": status, "headers": headers, "body": body.decode("utf-8", "replace")}

def attempt(sock, request):
    try:
        sock.sendall(request.encode("latin-1"))
        return read_answer(sock)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}

results = []
try:
    if spec.get("then_close"):
        for request in spec["requests"]:
            sock = connect()
            sock.sendall(request.encode("latin-1"))
            sock.close()
            results.append({"sent": True})
    elif spec.get("together"):
        socks = [connect() for _ in spec["requests"]]
        for sock, request in zip(socks, spec["requests"]):
            sock.sendall(request.encode("latin-1"))
        for sock in socks:
            try:
                results.append(read_answer(sock))
            except Exception as e:
                results.append({"error": f"{type(e).__name__}: {e}"})
            sock.close()
    else:
        for request in spec["requests"]:
            sock = connect()
            results.append(attempt(sock, request))
            sock.close()
except Exception as e:
    results.append({"error": f"{type(e).__name__}: {e}"})
print(json.dumps(results))
"""


def as_nobody(argv: list[str]) -> list[str]:
    """argv run as nobody, in no group."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@cache
def nobody_python() -> str:
    """A Python interpreter nobody may run (this one's, or the system's)."""
    candidates = [os.path.realpath(sys.executable), shutil.which("python3") or "", "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            done = subprocess.run(
                as_nobody([candidate, "-I", "-c", "pass"]), cwd="/", capture_output=True, timeout=30
            )
            if done.returncode == 0:
                return candidate
    raise AssertionError(f"no Python interpreter that uid {NOBODY} may run among {candidates}")


def python_as_nobody(code: str, *args: str) -> list[str]:
    """The argv that runs Python code as nobody (isolated: no environment, no user site)."""
    return as_nobody([nobody_python(), "-I", "-c", code, *args])


def request(
    method: str, path: str, host: str, body: Any = None, headers: dict[str, str] | None = None
) -> str:
    """One HTTP/1.1 request as text (closing the connection after the answer)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return "\r\n".join(lines) + "\r\n\r\n" + data.decode("latin-1")


UPGRADE = {
    "Upgrade": "websocket",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def upgrade(path: str, host: str) -> str:
    """A WebSocket opening handshake for path (answered 101 when the daemon upgrades)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: Upgrade"]
    lines += [f"{name}: {value}" for name, value in UPGRADE.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.done: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(getattr(reason.value, "exitCode", None) or 0)


async def run(reactor: Any, argv: list[str], timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of a program, run without blocking the reactor."""
    collect = _Collect()
    env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
    transport = reactor.spawnProcess(collect, argv[0], argv, env=env, path="/")
    timer = reactor.callLater(timeout, transport.signalProcess, "KILL")
    try:
        code = await collect.done
    finally:
        if timer.active():
            timer.cancel()
    return code, collect.out, collect.err


async def http_as_nobody(
    reactor: Any,
    connect: list[Any],
    requests: list[str],
    *,
    together: bool = False,
    then_close: bool = False,
    nobody: bool = True,
) -> list[dict[str, Any]]:
    """The answers nobody (or, with nobody=False, this user) gets to requests sent to connect
    (["tcp", host, port] or ["unix", path])."""
    spec = json.dumps(
        {"connect": connect, "requests": requests, "together": together, "then_close": then_close}
    )
    argv = python_as_nobody(CLIENT, spec) if nobody else [sys.executable, "-I", "-c", CLIENT, spec]
    code, out, err = await run(reactor, argv)
    if code != 0:
        raise AssertionError(f"the client failed ({code}): {err.decode(errors='replace')}")
    answers: list[dict[str, Any]] = json.loads(out)
    return answers


class Running(ProcessProtocol):
    """A program that runs while the test goes on: its first line of output, then its end
    when its standard input is closed."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.first_line: defer.Deferred[bytes] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data
        if b"\n" in self.out and not self.first_line.called:
            self.first_line.callback(self.out.split(b"\n", 1)[0])

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        if not self.first_line.called:
            self.first_line.errback(
                AssertionError(f"ended before a line: {self.err.decode(errors='replace')}")
            )
        self.ended.callback(None)

    async def finish(self, reactor: Any) -> None:
        """Close its standard input and wait for it to end (kill it after 10 s)."""
        transport: Any = self.transport
        transport.closeStdin()
        timer = reactor.callLater(10, transport.signalProcess, "KILL")
        await self.ended
        if timer.active():
            timer.cancel()


def start_as_nobody(reactor: Any, code: str, *args: str) -> Running:
    """Python code started as nobody, running until its standard input closes."""
    running = Running()
    argv = python_as_nobody(code, *args)
    reactor.spawnProcess(running, argv[0], argv, env={"PATH": os.environ.get("PATH", os.defpath)}, path="/")
    return running
