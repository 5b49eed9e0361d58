"""Tests for vibetwist.server.restart and vibetwist.startcheck: restarting in place, step by step,
with stand-ins for the start check, the exec and the parts it drives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.errors import Conflict, FormatError, RestartFailed
from vibetwist.model.handover import (
    HANDOVER_FD,
    HANDOVER_VERSION,
    HandedListener,
    HandedOutput,
    HandedSession,
    HandedTerminal,
    Handover,
    decode_handover,
    encode_handover,
)
from vibetwist.server.restart import (
    CHECK,
    DRAIN_LIMIT,
    TWISTD,
    Restarter,
    StartCheck,
    exec_argv,
    parse_check,
    take_handover,
)
from vibetwist.startcheck import check


class CheckReportTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """The check's report is its last line of output, a JSON object saying ok."""
        out = (
            b"noise\n"
            + json.dumps(
                {"ok": True, "readable": [1], "nodaemon": False, "pidfile": "/run/x.pid", "logfile": None}
            ).encode()
        )
        self.assertEqual(parse_check(out), StartCheck((1,), False, "/run/x.pid", None, False))
        for bad in [b"", b"not json", b'{"ok": false}', b'{"ok": true}', b'{"ok": true, "readable": ["1"]}']:
            self.assertRaises(FormatError, parse_check, bad)

    def test_exec_argv(self) -> None:
        """The new daemon is twistd with the same arguments; one that daemonized itself gets
        --nodaemon (its pid must not change), and the log file it would have had."""
        args = ["--pidfile=", "vibetunnel", "--listen", "tcp:4020"]
        self.assertEqual(exec_argv("/py", args, StartCheck((1,), True)), ["/py", "-c", TWISTD, *args])
        self.assertEqual(
            exec_argv("/py", args, StartCheck((1,), False)),
            ["/py", "-c", TWISTD, "--nodaemon", "--logfile=twistd.log", *args],
        )
        self.assertEqual(
            exec_argv("/py", args, StartCheck((1,), False, logfile="/var/log/v.log")),
            ["/py", "-c", TWISTD, "--nodaemon", *args],
        )


class StartCheckTests(SynchronousTestCase):
    def test_report(self) -> None:
        """The check parses twistd's whole command line with the daemon's own options and builds
        the daemon, and reports twistd's pid file and daemon mode."""
        folder = Path(self.mktemp())
        report = check(["--pidfile=x.pid", "vibetunnel", "--control-dir", str(folder / "control")])
        self.assertEqual(report["readable"], [HANDOVER_VERSION])
        self.assertFalse(report["nodaemon"])
        self.assertEqual(report["pidfile"], os.path.abspath("x.pid"))
        self.assertTrue(check(["-n", "--pidfile=", "vibetunnel"])["nodaemon"])

    def test_refusals(self) -> None:
        """A command line the daemon would refuse fails the check with the daemon's reason,
        and exits 1 with it on standard error."""
        code = CHECK
        done = subprocess.run(
            [sys.executable, "-c", code, "-n", "vibetunnel", "--scrollback", "lots"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn("--scrollback must be a number", done.stderr)
        self.assertEqual(done.stdout, "")
        done = subprocess.run([sys.executable, "-c", code, "-n"], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 1)
        self.assertIn("no twistd plugin", done.stderr)


class FakeListener:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.events: list[str] = []

    def pause(self) -> None:
        self.events.append("pause")

    def resume(self) -> None:
        self.events.append("resume")

    def hand_over(self) -> HandedListener:
        self.events.append("hand_over")
        return HandedListener("tcp:0:interface=127.0.0.1", self.fd, socket.AF_INET)

    def take_back(self) -> None:
        self.events.append("take_back")


class FakeSockets:
    def __init__(self) -> None:
        self.open: set[Any] = set()

    def connections(self) -> set[Any]:
        return set(self.open)


class FakeAPI:
    def __init__(self) -> None:
        self.websockets = FakeSockets()
        self.restarted = 0

    def restarting(self) -> None:
        self.restarted += 1


class FakeConnection:
    def __init__(self, answering: bool) -> None:
        self.is_http = True
        self.answering = answering
        self.transport = None


class FakeConnections:
    def __init__(self) -> None:
        self.open: list[FakeConnection] = []

    def connections(self) -> list[FakeConnection]:
        return list(self.open)


class FakeSessions:
    def __init__(self) -> None:
        self.starting = 0
        self.taken_back = 0
        self.handed = [
            HandedSession(
                "abc", HandedTerminal(55, 4242), HandedOutput(100, "open", b"\xc3", ""), 1.5, (80, 24)
            )
        ]

    def hand_over(self) -> list[HandedSession]:
        return self.handed

    def stop_helpers(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def take_back(self) -> None:
        self.taken_back += 1


class RestarterTests(SynchronousTestCase):
    """The check, the drain and the switch, on a clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.listener = FakeListener(77)
        self.api = FakeAPI()
        self.connections = FakeConnections()
        self.sessions = FakeSessions()
        self.report = StartCheck((HANDOVER_VERSION,), True)
        self.checks: list[defer.Deferred[StartCheck]] = []
        self.execs: list[tuple[str, list[str], dict[str, str]]] = []
        self.exec_error: OSError | None = None
        self.environ = {"PATH": "/bin", HANDOVER_FD: "stale"}
        self.restarter = Restarter(
            self.clock,
            sessions=self.sessions,
            api=self.api,
            connections=self.connections,
            listeners=[self.listener],
            twistd_args=["-n", "vibetunnel"],
            environ=self.environ,
            executable="/py",
            check=self.check,
            execute=self.execute,
            signals=False,
        )
        self.restarter.startService()

    def check(self) -> defer.Deferred[StartCheck]:
        d: defer.Deferred[StartCheck] = defer.Deferred()
        self.checks.append(d)
        return d

    def execute(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        if self.exec_error is not None:
            raise self.exec_error
        self.execs.append((path, argv, env))

    def handed_over(self) -> Handover:
        """What the exec was given, read from the descriptor it names."""
        fd = int(self.execs[-1][2][HANDOVER_FD])
        self.addCleanup(os.close, fd)
        self.assertTrue(os.get_inheritable(fd))
        return decode_handover(os.read(fd, 1 << 20))

    def test_refused_when_the_check_fails(self) -> None:
        """A failed check refuses the restart with its reason; nothing else happens."""
        d = self.restarter.restart()
        self.checks[-1].errback(RestartFailed("does not start", details="SyntaxError"))
        failure = self.failureResultOf(d, RestartFailed)
        self.assertEqual(failure.value.details, "SyntaxError")
        self.clock.advance(1)
        self.assertEqual((self.listener.events, self.api.restarted, self.execs), ([], 0, []))
        self.assertFalse(self.restarter.busy)

    def test_refused_when_the_new_code_cannot_read_the_hand_over(self) -> None:
        """New code that reads no hand-over of this version is refused."""
        d = self.restarter.restart()
        self.checks[-1].callback(StartCheck((HANDOVER_VERSION + 1,), True))
        self.assertIn("cannot take over", self.failureResultOf(d, RestartFailed).value.message)

    def test_one_at_a_time(self) -> None:
        """A restart asked for while one is under way is a Conflict."""
        self.restarter.restart()
        self.failureResultOf(self.restarter.restart(), Conflict)

    def test_switch(self) -> None:
        """Once the check passes, the listeners stop accepting, viewers are told, and the
        process execs twistd with the same arguments and the hand-over on a descriptor."""
        d = self.restarter.restart()
        self.checks[-1].callback(self.report)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.execs, [])
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(self.listener.events, ["pause", "hand_over"])
        self.assertEqual(self.api.restarted, 1)
        path, argv, env = self.execs[-1]
        self.assertEqual((path, argv), ("/py", ["/py", "-c", TWISTD, "-n", "vibetunnel"]))
        self.assertEqual(env["PATH"], "/bin")
        handover = self.handed_over()
        self.assertEqual(handover.pid, os.getpid())
        self.assertEqual(handover.sessions, tuple(self.sessions.handed))
        self.assertEqual([lst.fd for lst in handover.listeners], [77])

    def test_drain_waits_for_answers_and_spawns(self) -> None:
        """The switch waits for requests under way to be answered and sessions being started
        to start, but no longer than DRAIN_LIMIT."""
        busy = FakeConnection(answering=True)
        self.connections.open.append(busy)
        self.sessions.starting = 1
        self.restarter.restart()
        self.checks[-1].callback(self.report)
        self.clock.advance(0)
        self.clock.advance(0.5)
        self.assertEqual(self.execs, [])
        busy.answering = False
        self.clock.advance(0.5)
        self.assertEqual(self.execs, [])
        self.sessions.starting = 0
        self.clock.advance(0.01)
        self.assertEqual(len(self.execs), 1)
        self.handed_over()

        self.restarter.busy = False
        busy.answering = True
        self.restarter.restart()
        self.checks[-1].callback(self.report)
        self.clock.advance(0)
        for _ in range(int(DRAIN_LIMIT / 0.5) + 2):
            self.clock.advance(0.5)
        self.assertEqual(len(self.execs), 2)
        self.handed_over()

    def test_failed_exec_takes_everything_back(self) -> None:
        """An exec that fails leaves the daemon as it was: sessions and listeners taken back,
        accepting again, and a later restart may be tried."""
        self.exec_error = OSError(2, "No such file or directory")
        self.restarter.restart()
        self.checks[-1].callback(self.report)
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(self.listener.events, ["pause", "hand_over", "take_back", "resume"])
        self.assertEqual(self.sessions.taken_back, 1)
        self.assertFalse(self.restarter.busy)

    def test_pid_file_set_aside(self) -> None:
        """twistd's pid file, naming this process, is removed before the exec (the new twistd
        writes it again) and put back when the exec fails."""
        pidfile = Path(self.mktemp())
        pidfile.write_text(str(os.getpid()))
        self.report = StartCheck((HANDOVER_VERSION,), True, str(pidfile))
        self.restarter.restart()
        self.checks[-1].callback(self.report)
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertFalse(pidfile.exists())
        self.handed_over()
        self.restarter.busy = False
        pidfile.write_text(str(os.getpid()))
        self.exec_error = OSError(8, "Exec format error")
        self.restarter.restart()
        self.checks[-1].callback(self.report)
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(pidfile.read_text(), str(os.getpid()))

    def test_not_while_stopping(self) -> None:
        """A daemon that is stopping does not restart."""
        self.restarter.stopService()
        self.failureResultOf(self.restarter.restart(), RestartFailed)


class TakeHandoverTests(SynchronousTestCase):
    def written(self, handover: Handover | bytes) -> str:
        data = handover if isinstance(handover, bytes) else encode_handover(handover)
        read, write = os.pipe()
        os.write(write, data)
        os.close(write)
        return str(read)

    def test_read_and_forgotten(self) -> None:
        """The hand-over is read from the descriptor the environment names, which is closed,
        and the variable is removed (the programs the new daemon starts never see it)."""
        handover = Handover(os.getpid(), 12.5)
        environ = {HANDOVER_FD: self.written(handover)}
        fd = int(environ[HANDOVER_FD])
        self.assertEqual(take_handover(environ), handover)
        self.assertEqual(environ, {})
        self.assertRaises(OSError, os.fstat, fd)
        self.assertIsNone(take_handover({}))

    def test_unusable(self) -> None:
        """A hand-over of another process, one that is not JSON, or a variable that names no
        descriptor gives nothing to take over."""
        self.assertIsNone(take_handover({HANDOVER_FD: self.written(Handover(os.getpid() + 1, 1.0))}))
        self.assertIsNone(take_handover({HANDOVER_FD: self.written(b"{")}))
        self.assertIsNone(take_handover({HANDOVER_FD: "x"}))
        self.assertIsNone(take_handover({HANDOVER_FD: "987654"}))
