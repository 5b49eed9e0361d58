# -*- test-case-name: tests.test_pty -*-
"""Programs in real pseudo-terminals, started with ``reactor.spawnProcess``.

The PTY is opened and sized before the fork, so the program never sees a
0x0 terminal. Every process of a program's session (its SID) is found
through /proc, so a delete also ends the background jobs of a shell.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty as _stdlib_pty
import signal as _signal
import struct
import termios
from collections import deque
from collections.abc import Callable

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vibetwist.interfaces import ILauncher, ITerminalEvents, ITerminalProcess


def set_size(fd: int, cols: int, rows: int) -> None:
    """Set a terminal's window size (TIOCSWINSZ)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def session_members(sid: int, proc: str = "/proc") -> list[int]:
    """The pids of every process whose session id is sid."""
    members: list[int] = []
    try:
        names = os.listdir(proc)
    except OSError:
        return members
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command (which may hold spaces and parentheses):
        # state ppid pgrp session ...
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 4)
        if len(fields) >= 4 and fields[3] == str(sid).encode() and fields[0] != b"Z":
            members.append(int(name))
    return members


def exit_code(reason: Failure) -> int:
    """The shell's idea of an exit code: the status, or 128+N for signal N."""
    value = reason.value
    if isinstance(value, ProcessDone):
        return 0
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            return 128 + int(value.signal)
        if value.exitCode is not None:
            return int(value.exitCode)
    return 1


class _Protocol(ProcessProtocol):
    """Hands a PTY process's events to its owner and nothing more."""

    def __init__(self, events: ITerminalEvents) -> None:
        self.events = events

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.events.output(data)

    def processExited(self, reason: Failure) -> None:
        self.events.leader_exited(exit_code(reason))

    def processEnded(self, reason: Failure) -> None:
        self.events.ended(exit_code(reason))


@implementer(ITerminalProcess)
class PTYProcess:
    """A spawned program and the master side of its PTY."""

    log = Logger()

    def __init__(self, transport, proc: str = "/proc") -> None:  # type: ignore[no-untyped-def]
        self._transport = transport
        self.pid = transport.pid
        self._proc = proc

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def resize(self, cols: int, rows: int) -> None:
        try:
            set_size(self._transport.fileno(), cols, rows)
        except (OSError, ValueError) as e:
            self.log.debug("resize after the terminal closed: {error}", error=e)

    def signal_all(self, signal: int) -> int:
        pids = set(session_members(self.pid, self._proc))
        if self._transport.pid is not None:
            pids.add(self.pid)
        sent = 0
        for pid in pids:
            try:
                os.kill(pid, signal)
                sent += 1
            except OSError as e:
                if e.errno != errno.ESRCH:
                    self.log.warn("cannot signal {pid}: {error}", pid=pid, error=e)
        return sent

    def alive(self) -> bool:
        return self._transport.pid is not None or bool(session_members(self.pid, self._proc))

    def hang_up(self) -> None:
        self._transport.loseConnection()


@implementer(ILauncher)
class PTYLauncher:
    """Starts each program in a fresh PTY, pre-sized, with ``spawnProcess``."""

    def __init__(self, reactor) -> None:  # type: ignore[no-untyped-def]
        self._reactor = reactor

    def launch(
        self,
        executable: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        cols: int,
        rows: int,
        events: ITerminalEvents,
    ) -> ITerminalProcess:
        master, slave = _stdlib_pty.openpty()
        try:
            set_size(slave, cols, rows)
            transport = self._reactor.spawnProcess(
                _Protocol(events),
                executable,
                argv,
                env=env,
                path=cwd,
                usePTY=(master, slave, os.ttyname(slave)),
            )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        return PTYProcess(transport)


class SpawnQueue:
    """Runs queued spawns one per reactor turn, so a burst never freezes the reactor.

    Each fork costs about a millisecond (more for a bigger daemon); fifty of
    them in one turn would hold every other session for tens of milliseconds.
    """

    log = Logger()

    def __init__(self, reactor) -> None:  # type: ignore[no-untyped-def]
        self._reactor = reactor
        self._queue: deque[Callable[[], None]] = deque()
        self._call = None

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, spawn: Callable[[], None]) -> Callable[[], None]:
        """Queue a spawn; returns a function that takes it back out if it has not run."""
        self._queue.append(spawn)
        self._schedule()

        def cancel() -> None:
            try:
                self._queue.remove(spawn)
            except ValueError:
                pass

        return cancel

    def _schedule(self) -> None:
        if self._call is None and self._queue:
            self._call = self._reactor.callLater(0, self._run_one)

    def _run_one(self) -> None:
        self._call = None
        if self._queue:
            spawn = self._queue.popleft()
            try:
                spawn()
            except Exception:
                self.log.failure("a queued spawn failed")
        self._schedule()


SIGTERM = _signal.SIGTERM
SIGKILL = _signal.SIGKILL
SIGHUP = _signal.SIGHUP
