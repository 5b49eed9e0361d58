# -*- test-case-name: tests.test_restart -*-
"""Restarting the daemon in place: a fresh copy of itself, as installed now, in the same process.

``SIGUSR2`` or ``POST /api/server/restart`` starts it, in three steps:

1. **The check.** A child process imports the daemon as installed now and
   parses this daemon's command line with it (:mod:`vibetwist.startcheck`),
   while this one goes on serving. If it fails, nothing else happens: the
   error is logged (and answered) and this daemon serves on.
2. **The drain.** The listening sockets stop being read (new connections
   wait in their backlog; none is refused), WebSockets are closed with 1012
   and SSE streams ended, so their clients come back; requests under way are
   answered and written out, and sessions being started are started.
3. **The switch**, in one go on the reactor: every running session is handed
   over (its PTY master and listening sockets made to survive an exec, its
   program no longer reaped here) and described in a private unnamed file
   (:mod:`vibetwist.model.handover`), and the process execs ``twistd`` with
   the same arguments. It keeps its pid, so the programs stay its children.
   The new daemon takes over the sockets and sessions as it starts. If the
   exec fails, everything is taken back and this daemon serves on.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from vibetwist._reactor import internals
from vibetwist.errors import Conflict, FormatError, RestartFailed
from vibetwist.model.handover import (
    HANDOVER_FD,
    HANDOVER_VERSION,
    MAX_HANDOVER,
    Handover,
    decode_handover,
    encode_handover,
)

#: What the new process runs: twistd, exactly as its console script does.
TWISTD = "from twisted.scripts.twistd import run; run()"
#: What the check runs, with twistd's arguments after it.
CHECK = "from vibetwist.startcheck import main; main()"
#: Seconds the check may take.
CHECK_TIMEOUT = 60.0
#: Seconds WebSockets have to finish their closing handshake before they are dropped.
CLOSE_LIMIT = 1.0
#: Seconds requests under way have to be answered before the switch goes ahead anyway.
DRAIN_LIMIT = 10.0
#: Seconds between two looks at whether the drain is done.
DRAIN_STEP = 0.005
#: The last bytes of the check's error output kept for the log and the answer.
ERROR_TAIL = 2000

_log = Logger()


@attrs.frozen
class StartCheck:
    """What the check of the daemon as installed now found."""

    #: The hand-over versions the new code reads.
    readable: tuple[int, ...]
    #: Whether twistd was told --nodaemon (the new process must not fork away from its pid).
    nodaemon: bool = True
    #: twistd's pid file, which the new twistd writes again ("" or None for none).
    pidfile: str | None = None
    #: twistd's log file (None: standard output, or twistd.log when daemonized).
    logfile: str | None = None
    syslog: bool = False


def parse_check(output: bytes) -> StartCheck:
    """The check's report, its last line of output; FormatError if there is none."""
    lines = output.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or value.get("ok") is not True:
        raise FormatError("the start check printed no report")
    readable = value.get("readable")
    if not isinstance(readable, list) or not all(isinstance(v, int) for v in readable):
        raise FormatError("the start check reported no hand-over versions")
    pidfile, logfile = value.get("pidfile"), value.get("logfile")
    return StartCheck(
        tuple(readable),
        bool(value.get("nodaemon")),
        pidfile if isinstance(pidfile, str) else None,
        logfile if isinstance(logfile, str) else None,
        bool(value.get("syslog")),
    )


def exec_argv(executable: str, twistd_args: Sequence[str], check: StartCheck) -> list[str]:
    """The command line of the new daemon: twistd with this one's arguments. A daemon that
    daemonized itself must not fork again (its pid would change), so it gets --nodaemon, and
    the log file twistd would have used for it."""
    argv = [executable, "-c", TWISTD]
    if not check.nodaemon:
        argv.append("--nodaemon")
        if check.logfile is None and not check.syslog:
            argv.append("--logfile=twistd.log")
    return argv + list(twistd_args)


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[int] = Deferred()

    def connectionMade(self) -> None:
        self.transport.closeStdin()  # type: ignore[union-attr]

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err = (self.err + data)[-ERROR_TAIL * 4 :]

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        signal_number = getattr(reason.value, "signal", None)
        self.ended.callback(int(code) if code is not None else 128 + int(signal_number or 0))


def _tail(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[-ERROR_TAIL:]


async def run_start_check(
    reactor: Any, executable: str, twistd_args: Sequence[str], environ: dict[str, str]
) -> StartCheck:
    """Run the check in a child process (spawned without fork, so it costs the daemon little);
    RestartFailed with its error output if the daemon as installed now would not start."""
    collect = _Collect()
    env = {k: v for k, v in environ.items() if k != HANDOVER_FD}
    process = reactor.spawnProcess(
        collect, executable, [executable, "-c", CHECK, *twistd_args], env=env, path=None
    )
    timer = reactor.callLater(CHECK_TIMEOUT, lambda: process.signalProcess("KILL"))
    code = await collect.ended
    if timer.active():
        timer.cancel()
    if code != 0:
        raise RestartFailed(
            "The daemon as installed now does not start; this one goes on serving",
            details=_tail(collect.err) or f"the start check ended with code {code}",
        )
    try:
        return parse_check(collect.out)
    except FormatError as e:
        raise RestartFailed(
            "The daemon as installed now does not start; this one goes on serving",
            details=f"{e}: {_tail(collect.out + collect.err)}",
        ) from e


def _write_private(data: bytes) -> int:
    """A descriptor of an unnamed file (nobody else can open it) holding data, read from its start."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        fd = os.dup(f.fileno())
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def _queued(transport: Any) -> bool:
    """Whether a connection still has bytes to write (looking through a TLS layer to its socket)."""
    while transport is not None and not hasattr(transport, "dataBuffer"):
        transport = getattr(transport, "transport", None)
    return transport is not None and internals.writes_queued(transport)


class _PidFile:
    """twistd's pid file, set aside across the exec: the new twistd refuses to start while it
    names a live process (this one), and writes it again itself."""

    def __init__(self, path: str | None) -> None:
        self._path = path or None
        self._content: bytes | None = None

    def remove(self) -> None:
        if self._path is None:
            return
        try:
            with open(self._path, "rb") as f:
                content = f.read(64)
            if content.strip() == str(os.getpid()).encode():
                os.unlink(self._path)
                self._content = content
        except OSError:
            pass

    def restore(self) -> None:
        if self._path is not None and self._content is not None:
            try:
                with open(self._path, "wb") as f:
                    f.write(self._content)
            except OSError:
                pass


class Restarter(Service):
    """Restarts the daemon in place (see the module's text)."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        *,
        sessions: Any,
        api: Any,
        connections: Any,
        listeners: Sequence[Any],
        twistd_args: Sequence[str] | None = None,
        environ: dict[str, str] | None = None,
        executable: str = sys.executable,
        check: Callable[[], Any] | None = None,
        execute: Callable[[str, list[str], dict[str, str]], Any] = os.execve,
        signals: bool = True,
    ) -> None:
        """
        :param sessions: the SessionService whose sessions are handed over.
        :param api: the API whose WebSockets and SSE streams are closed.
        :param connections: the ConnectionLimiter that knows every connection.
        :param listeners: the Listener services whose sockets are handed over.
        :param check: runs the start check (a coroutine function; by default a child process).
        :param execute: replaces the process (``os.execve``).
        :param signals: whether SIGUSR2 starts a restart.
        """
        self._reactor = reactor
        self._sessions = sessions
        self._api = api
        self._connections = connections
        self._listeners = list(listeners)
        self._twistd_args = list(sys.argv[1:] if twistd_args is None else twistd_args)
        self._environ = os.environ if environ is None else environ
        self._executable = executable
        self._check = check or (
            lambda: run_start_check(self._reactor, self._executable, self._twistd_args, dict(self._environ))
        )
        self._execute = execute
        self._signals = signals
        #: Whether a restart is under way.
        self.busy = False

    def startService(self) -> None:
        super().startService()
        if self._signals:
            signal.signal(signal.SIGUSR2, self._signalled)

    def stopService(self) -> Any:
        super().stopService()
        if self._signals:
            signal.signal(signal.SIGUSR2, signal.SIG_DFL)

    def _signalled(self, number: int, frame: Any) -> None:
        self._reactor.callFromThread(lambda: self.restart().addErrback(lambda _: None))

    def restart(self) -> Deferred[None]:
        """Check that the daemon as installed now starts, then hand over to it. Fires once the
        check has passed (the hand-over follows on later turns); fails with RestartFailed when
        it has not (this daemon goes on serving), or Conflict while a restart is under way."""
        return Deferred.fromCoroutine(self._restart())

    async def _restart(self) -> None:
        if self.busy:
            raise Conflict("A restart is already under way")
        if not self.running:
            raise RestartFailed("The daemon is stopping")
        self.busy = True
        began = self._reactor.seconds()
        self.log.info("restart: checking that the daemon as installed now starts")
        try:
            check = await self._check()
            if HANDOVER_VERSION not in check.readable:
                raise RestartFailed(
                    "The daemon as installed now cannot take over from this one; this one goes on serving",
                    details=f"it reads hand-over versions {list(check.readable)}, not {HANDOVER_VERSION}",
                )
        except RestartFailed as e:
            self.busy = False
            self.log.error("restart refused: {error}: {details}", error=e.message, details=e.details)
            raise
        except Exception as e:
            self.busy = False
            self.log.failure("restart refused: the start check failed")
            raise RestartFailed("The start check failed; the daemon goes on serving", details=str(e)) from e
        checked = self._reactor.seconds() - began
        self.log.info(
            "restart: the daemon as installed now starts (checked in {ms:.0f} ms); handing over",
            ms=checked * 1000,
        )
        # The answer to POST /api/server/restart is written before the drain waits for it.
        self._reactor.callLater(0, self._start_hand_over, check)

    def _start_hand_over(self, check: StartCheck) -> None:
        Deferred.fromCoroutine(self._hand_over(check)).addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        self.log.failure("restart abandoned; the daemon goes on serving", failure)
        self._resume()

    def _resume(self) -> None:
        for listener in self._listeners:
            listener.take_back()
            listener.resume()
        self.busy = False

    async def _hand_over(self, check: StartCheck) -> None:
        stopped_at = time.time()
        stopped = self._reactor.seconds()
        for listener in self._listeners:
            listener.pause()
        self._api.restarting()
        await self._drain(stopped)
        # Helper processes end now, while this daemon can still reap them.
        await self._sessions.stop_helpers().addTimeout(CLOSE_LIMIT, self._reactor).addErrback(lambda _: None)
        if not self.running:
            self.log.info("restart abandoned: the daemon is stopping")
            self._resume()
            return
        self._switch(check, stopped_at, stopped)

    async def _drain(self, stopped: float) -> None:
        """Wait until WebSockets have closed, every request under way is answered and written
        out, and no session is being started (or a limit has passed)."""
        while True:
            waited = self._reactor.seconds() - stopped
            sockets = self._api.websockets.connections()
            if sockets and waited >= CLOSE_LIMIT:
                for socket in sockets:
                    if socket.transport is not None:
                        socket.transport.abortConnection()
                    sockets = set()
            busy = [
                c
                for c in self._connections.connections()
                if c.is_http and (c.answering or _queued(c.transport))
            ]
            if not sockets and not busy and not self._sessions.starting:
                return
            if waited >= DRAIN_LIMIT:
                self.log.warn(
                    "restart: {n} requests not answered within {limit} s are cut off",
                    n=len(busy),
                    limit=DRAIN_LIMIT,
                )
                return
            await deferLater(self._reactor, DRAIN_STEP, lambda: None)

    def _switch(self, check: StartCheck, stopped_at: float, stopped: float) -> None:
        """Hand everything over and exec, in one go; on failure take everything back."""
        internals.reap_all()  # a program that has just ended ends here, its exit line written
        sessions = self._sessions.hand_over()
        listeners = [h for h in (listener.hand_over() for listener in self._listeners) if h is not None]
        handover = Handover(os.getpid(), stopped_at, tuple(listeners), tuple(sessions))
        pidfile = _PidFile(check.pidfile)
        fd: int | None = None
        try:
            data = encode_handover(handover)
            if len(data) > MAX_HANDOVER:
                raise OSError("the hand-over is too large")
            fd = _write_private(data)
            env = {k: v for k, v in self._environ.items() if k != HANDOVER_FD}
            env[HANDOVER_FD] = str(fd)
            argv = exec_argv(self._executable, self._twistd_args, check)
            self.log.info(
                "restart: handing over {n} sessions and {m} listening sockets "
                "({ms:.0f} ms after serving stopped)",
                n=len(sessions),
                m=len(listeners),
                ms=(self._reactor.seconds() - stopped) * 1000,
            )
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            pidfile.remove()
            if self._signals:
                # Until the new daemon handles it, a second SIGUSR2 must not end the process.
                signal.signal(signal.SIGUSR2, signal.SIG_IGN)
            self._execute(argv[0], argv, env)
        except Exception as e:
            pidfile.restore()
            if self._signals:
                signal.signal(signal.SIGUSR2, self._signalled)
            if fd is not None:
                os.close(fd)
            self._sessions.take_back()
            self.log.error("restart failed, the daemon goes on serving: cannot exec: {error}", error=e)
            self._resume()
            return
        # Only a stand-in for exec (a test) gets here.
        self.busy = False


def take_handover(environ: dict[str, str] | None = None) -> Handover | None:
    """The hand-over an earlier daemon of this process left (see :data:`HANDOVER_FD`), read and
    closed; None if there is none (or none this daemon can use: the sessions in it are then
    found on disk and ended)."""
    env = os.environ if environ is None else environ
    value = env.pop(HANDOVER_FD, None)
    if value is None:
        return None
    try:
        fd = int(value)
    except ValueError:
        _log.error("restart: {name}={value!r} names no descriptor", name=HANDOVER_FD, value=value)
        return None
    try:
        chunks = []
        while data := os.read(fd, 1 << 20):
            chunks.append(data)
        os.close(fd)
        handover = decode_handover(b"".join(chunks))
    except (OSError, FormatError) as e:
        _log.error("restart: cannot read what the earlier daemon handed over: {error}", error=e)
        return None
    if handover.pid != os.getpid():
        _log.error("restart: the hand-over was written by process {pid}, not this one", pid=handover.pid)
        return None
    return handover


def close_unclaimed(handover: Handover, claimed: set[int]) -> None:
    """Close the descriptors of a hand-over that nothing took over (a listener no longer asked for)."""
    for listener in handover.listeners:
        if listener.fd not in claimed:
            _log.info("restart: {listen} is no longer listened on", listen=listener.description)
            try:
                os.close(listener.fd)
            except OSError:
                pass


def report_takeover(reactor: Any, handover: Handover, sessions: int) -> None:
    """Log, once the reactor runs, what was taken over and how long the daemon did not serve."""

    def report() -> None:
        _log.info(
            "restart: took over {n} sessions and {m} listening sockets; serving again "
            "{ms:.0f} ms after the earlier daemon stopped serving",
            n=sessions,
            m=len(handover.listeners),
            ms=(time.time() - handover.stopped_at) * 1000,
        )

    reactor.callWhenRunning(report)
