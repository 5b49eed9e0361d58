# -*- test-case-name: tests.test_e2e -*-
"""Programs in real pseudo-terminals, run by Twisted's PTY process.

The PTY is opened and sized before the program starts, so it never sees a
0x0 terminal. Programs start with posix_spawn where the system allows (see
SpawnedPTYProcess), else with ``reactor.spawnProcess``. Every process of a
program's session (its SID) is found through /proc, so a delete also ends
the background jobs of a shell. After a restart in place, the programs an
earlier daemon of this process started are taken over (AdoptedPTYProcess).
"""

from __future__ import annotations

import errno
import os
import pty as _stdlib_pty
import shutil
import signal as _signal
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet import fdesc
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vibetwist._reactor import internals
from vibetwist._reactor.immediate import write_now
from vibetwist.interfaces import ILauncher, ITerminalEvents, ITerminalProcess
from vibetwist.model.handover import HandedTerminal
from vibetwist.model.winsize import set_size


def _stat_session(proc: str, name: str) -> int | None:
    """The session id of process name, or None if it is gone or a zombie."""
    try:
        with open(f"{proc}/{name}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command (which may hold spaces and parentheses): state ppid pgrp session
    fields = stat[stat.rfind(b")") + 2 :].split(b" ", 4)
    if len(fields) < 4 or fields[0] == b"Z":
        return None
    try:
        return int(fields[3])
    except ValueError:
        return None


class SessionSignaller:
    """Signals every process of terminal sessions.

    The program's own process group is signalled at once; the rest of its
    session (an interactive shell's background jobs live in groups of their
    own) is found by one scan of /proc, done a slice at a time on a
    Cooperator and shared by every request that arrives meanwhile.
    """

    log = Logger()

    def __init__(self, cooperator: Any, proc: str = "/proc", slice_size: int = 64) -> None:
        self._cooperator = cooperator
        self._proc = proc
        self._slice = slice_size
        self._pending: dict[int, int] = {}
        self._scanning = False

    def signal(self, sid: int, signal: int) -> None:
        """Send signal to every process whose session id is sid."""
        try:
            os.killpg(sid, signal)
        except OSError as e:
            if e.errno not in (errno.ESRCH, errno.EPERM):
                self.log.warn("cannot signal group {sid}: {error}", sid=sid, error=e)
        self._pending[sid] = signal
        if not self._scanning:
            self._scanning = True
            self._cooperator.cooperate(self._scan())

    def _scan(self) -> Iterator[None]:
        try:
            while self._pending:
                wanted, self._pending = self._pending, {}
                yield from signal_sessions(wanted, self._proc, self._slice)
        finally:
            self._scanning = False


def signal_sessions(wanted: dict[int, int], proc: str = "/proc", slice_size: int = 64) -> Iterator[None]:
    """One pass over /proc sending each process whose session id is a key of wanted that
    key's signal; yields every slice_size processes (drain it to run it in one go)."""
    try:
        names = [n for n in os.listdir(proc) if n.isdigit()]
    except OSError:
        return
    for i, name in enumerate(names):
        if i % slice_size == 0:
            yield None
        sid = _stat_session(proc, name)
        if sid in wanted:
            try:
                os.kill(int(name), wanted[sid])
            except OSError:
                pass


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


class PTYProcessProtocol(ProcessProtocol):
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

    def __init__(self, transport: Any, signaller: SessionSignaller) -> None:
        self._transport = transport
        self.pid = transport.pid
        self._signaller = signaller

    def write(self, data: bytes) -> None:
        write_now(self._transport, data)

    def resize(self, cols: int, rows: int) -> None:
        try:
            set_size(self._transport.fileno(), cols, rows)
        except (OSError, ValueError) as e:
            self.log.debug("resize after the terminal closed: {error}", error=e)

    def signal_all(self, signal: int) -> None:
        self._signaller.signal(self.pid, signal)

    def hang_up(self) -> None:
        self._transport.loseConnection()

    def foreground(self) -> int | None:
        try:
            return os.tcgetpgrp(self._transport.fileno())
        except (OSError, ValueError):
            return None  # closed, or not yet the program's controlling terminal

    def hand_over(self) -> HandedTerminal | None:
        """Let go of the program for the next daemon of this process: Twisted no longer reaps it,
        and its PTY's master survives an exec. None once its terminal has closed."""
        transport = self._transport
        if not transport.connected:
            return None
        reaped = internals.reaped_status(transport)
        if reaped is None:
            internals.stop_reaping(transport)
        fd = transport.fileno()
        os.set_inheritable(fd, True)
        return HandedTerminal(fd, self.pid, reaped, internals.unwritten(transport))

    def take_back(self) -> None:
        """The hand-over did not happen: reap the program again (at once if it has exited)."""
        transport = self._transport
        if transport.connected:
            os.set_inheritable(transport.fileno(), False)
        if transport.pid is not None:
            internals.reap(transport)


#: The most reads of a PTY in one reactor turn (about 64 KB).
READ_BURST = 16


def spawn_helpers() -> tuple[str, str] | None:
    """The paths of env(1) and setsid(1) if both can do what a spawned session needs."""
    env, setsid = shutil.which("env"), shutil.which("setsid")
    if env is None or setsid is None:
        return None
    return env, setsid


class SpawnedPTYProcess(internals.PTYProcess):
    """Twisted's PTY process, started with posix_spawn instead of fork.

    fork() copies the daemon's page tables inside the reactor thread: 2-4 ms
    for a 60 MB daemon here, more as it grows. posix_spawn (vfork and exec)
    takes about 0.3 ms whatever the daemon's size. What fork's child would
    do in Python before exec is done by two small programs in the child:
    ``env -C DIR`` changes directory and ``setsid -c`` starts a new session
    with the PTY as its controlling terminal; they exec in place, so the pid
    Twisted reaps is the program's own. Everything else (reading the master,
    reaping, processEnded) is Twisted's.
    """

    def __init__(self, helpers: tuple[str, str], *args: Any, **kwargs: Any) -> None:
        self._helpers = helpers  # read by _fork, which PTYProcess.__init__ calls
        super().__init__(*args, **kwargs)

    def _fork(  # type: ignore[override]
        self,
        path: str,
        uid: object,
        gid: object,
        executable: str,
        args: list[str],
        environment: dict[str, str],
        masterfd: int,
        slavefd: int,
    ) -> None:
        env_path, setsid_path = self._helpers
        argv = [env_path, "-C", path, setsid_path, "-c", executable, *args[1:]]
        self.pid = os.posix_spawn(  # type: ignore[assignment]
            env_path,
            argv,
            environment,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, slavefd, 0),
                (os.POSIX_SPAWN_DUP2, slavefd, 1),
                (os.POSIX_SPAWN_DUP2, slavefd, 2),
            ],
            setsigdef=(_signal.SIGPIPE, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGCHLD, _signal.SIGHUP),
            setsigmask=(),
        )
        self.status = -1

    def doRead(self) -> Any:
        """Read what the program wrote, up to READ_BURST reads in one reactor turn.

        Linux hands out at most 4095 bytes per read of a PTY, and Twisted
        reads once per turn; a program writing fast then costs a turn (and
        an event, a recording line and a message to each viewer) per 4 KB.
        Reading on until the PTY is empty cuts that, and costs one more
        read (which finds nothing) for a single keystroke's echo.
        """
        chunks: list[bytes] = []
        result: Failure | Exception | None = None
        for _ in range(READ_BURST):
            try:
                data = os.read(self.fd, 65536)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EINTR):
                    result = CONNECTION_LOST
                break
            if not data:
                result = CONNECTION_DONE
                break
            chunks.append(data)
        if chunks and self.proto is not None:
            self.proto.childDataReceived(1, b"".join(chunks))
        return result


class AdoptedPTYProcess(SpawnedPTYProcess):
    """Twisted's PTY process for a program an earlier daemon of this process started.

    After a restart in place the program is still a child of this process and
    its PTY's master is still open here: this takes both over as
    ``PTYProcess.__init__`` does after starting a program. A program that
    exited during the switch is a zombie nobody has reaped, and is reaped now
    with its real status; one the earlier daemon had reaped already (its
    terminal held open by background jobs) is ended with the status it got.
    """

    def __init__(self, reactor: Any, terminal: HandedTerminal, proto: Any) -> None:
        internals.init_pty_process(self, reactor, proto)
        self.pid = terminal.pid  # type: ignore[assignment]
        fdesc.setNonBlocking(terminal.fd)
        self.fd = terminal.fd
        self.connected = 1
        self.status = -1
        proto.makeConnection(self)
        if terminal.reaped is None:
            internals.reap(self)
        else:
            self.processEnded(terminal.reaped)
        self.startReading()


@implementer(ILauncher)
class PTYLauncher:
    """Starts each program in a fresh, pre-sized PTY."""

    def __init__(self, reactor: Any, signaller: SessionSignaller, use_spawn: bool = True) -> None:
        self._reactor = reactor
        self._signaller = signaller
        self._helpers = spawn_helpers() if use_spawn else None

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
            pty_fds = (master, slave, os.ttyname(slave))
            if self._helpers is not None:
                transport = SpawnedPTYProcess(
                    self._helpers,
                    self._reactor,
                    executable,
                    argv,
                    env,
                    cwd,
                    PTYProcessProtocol(events),
                    usePTY=pty_fds,
                )
            else:
                transport = self._reactor.spawnProcess(
                    PTYProcessProtocol(events), executable, argv, env=env, path=cwd, usePTY=pty_fds
                )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        return PTYProcess(transport, self._signaller)

    def adopt(self, terminal: HandedTerminal, events: ITerminalEvents) -> ITerminalProcess:
        """Take over a program an earlier daemon of this process started, and its PTY."""
        os.set_inheritable(terminal.fd, False)
        transport = AdoptedPTYProcess(self._reactor, terminal, PTYProcessProtocol(events))
        process = PTYProcess(transport, self._signaller)
        process.pid = terminal.pid
        return process


class SpawnQueue:
    """Runs queued steps of starting sessions one per reactor turn, so a burst never
    freezes the reactor: each step (making a session's files, or spawning its program)
    costs up to a few milliseconds, and fifty in one turn would hold every other session.
    """

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._queue: deque[Callable[[], None]] = deque()
        self._call: Any = None

    @property
    def pending(self) -> int:
        """How many steps wait to run."""
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
            self._call = self._reactor.callLater(0, self._after_io)

    def _after_io(self) -> None:
        # One more hop: the reactor writes out pending responses (the create's
        # answer among them) between two timed-call rounds, before the fork.
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
