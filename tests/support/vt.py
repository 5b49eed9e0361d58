"""A terminal of the test's own with ``vt`` (or any program) running in it, writing to a
daemon's control dir, for the tests of ``vt`` (L{tests.test_vt}) and of a cluster's hosts."""

from __future__ import annotations

import os
import pty
import sys

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from tests.support.daemon import CHECKOUT, Daemon, poll, within
from vibetwist.sessions.pty import exit_code, set_size

#: An interactive shell that reads no start-up files and prompts with "$ ".
SHELL = ["bash", "--norc", "--noprofile", "-i"]


class LocalTerminal(ProcessProtocol):
    """The user's terminal: a PTY driven by the test, with ``vt`` running in it."""

    def __init__(self) -> None:
        self.output = b""
        self.code: int | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._waiting: list[tuple[bytes, defer.Deferred[None]]] = []

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        self.code = exit_code(reason)
        self.ended.callback(None)

    def type(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def resize(self, cols: int, rows: int) -> None:
        """Resize the terminal, as a window manager would (vt gets SIGWINCH)."""
        set_size(self.transport.fileno(), cols, rows)  # type: ignore[union-attr]

    async def see(self, needle: bytes, timeout: float = 10.0) -> None:
        await poll(reactor, lambda: needle in self.output, timeout, what=f"{needle!r} on the local terminal")

    async def exit(self, timeout: float = 15.0) -> int:
        await within(reactor, self.ended, timeout, "vt's exit")
        assert self.code is not None
        return self.code


VT = [sys.executable, "-m", "vibetwist.vt"]


def start_terminal(daemon: Daemon, argv: list[str], cols: int = 80, rows: int = 24) -> LocalTerminal:
    """Run argv in a new cols x rows terminal, with vt writing to the daemon's control dir."""
    env = {
        "HOME": str(daemon.home),
        "PATH": os.environ.get("PATH", os.defpath),
        "SHELL": "/bin/bash",
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "PS1": "$ ",
        "PYTHONPATH": CHECKOUT,
        "VIBETUNNEL_CONTROL_DIR": str(daemon.control_dir),
    }
    master, slave = pty.openpty()
    set_size(slave, cols, rows)
    terminal = LocalTerminal()
    reactor.spawnProcess(
        terminal, argv[0], argv, env=env, path=str(daemon.home), usePTY=(master, slave, os.ttyname(slave))
    )
    return terminal
