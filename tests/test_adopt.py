"""A restart in place hands every running session over: in memory (a fake launcher), and with
real programs in real PTYs whose new owner is the same process, as after an exec."""

from __future__ import annotations

import os
from pathlib import Path
from signal import SIGKILL, SIGTERM
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Cooperator
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from tests.support.daemon import poll
from tests.support.sessions import Harness
from vibetwist.interfaces import ITerminalEvents
from vibetwist.model.asciicast import Event
from vibetwist.model.info import Status
from vibetwist.sessions import kinds
from vibetwist.sessions.pty import PTYLauncher, PTYProcess, SessionSignaller
from vibetwist.sessions.session import KILL_GRACE
from vibetwist.testing import pump


def texts(records: list[object]) -> str:
    return "".join(r.data for r in records if isinstance(r, Event) and r.kind == "o")


class HandOverTests(SynchronousTestCase):
    """What a session hands over, and a session taken over, with a fake launcher."""

    def setUp(self) -> None:
        self.h = Harness(self)
        self.session = self.h.create(cols=100, rows=30)
        pump(self.h.clock)
        self.process = self.h.launcher.last

    def test_output_goes_on_once(self) -> None:
        """The next owner goes on writing the recording where the last stopped: a character
        split across the switch comes out whole, each byte once, and event times keep their
        origin."""
        self.h.clock.advance(2)
        self.process.say(b"one\r\ncaf\xc3")
        handed = self.session.hand_over()
        assert handed is not None
        self.assertEqual(handed.output.held, b"\xc3")
        self.assertEqual(handed.output.end, self.session.recording_path.stat().st_size)
        self.assertEqual(handed.size, (100, 30))
        self.assertTrue(self.process.handed_over)
        self.h.clock.advance(3)
        adopted = self.h.adopt(handed)
        self.assertEqual(adopted.status, Status.RUNNING)
        self.assertEqual(adopted.info.pid, self.process.pid)
        self.h.launcher.last.say(b"\xa9!")
        records = self.h.records(adopted)
        self.assertEqual(texts(records), "one\r\ncafé!")
        self.assertEqual([r.time for r in records if isinstance(r, Event)], [2.0, 5.0])

    def test_screen_rebuilt_from_the_recording(self) -> None:
        """The screen of a session taken over shows what the program printed before."""
        self.process.say(b"\x1b[2J\x1b[Hbefore the switch\r\n")
        handed = self.session.hand_over()
        assert handed is not None
        adopted = self.h.adopt(handed)
        pump(self.h.clock)
        self.assertIn("before the switch", adopted.screen.text())
        self.assertEqual((adopted.screen.cols, adopted.screen.rows), (100, 30))

    def test_clear_split_across_the_switch(self) -> None:
        """A clear-scrollback whose start came before the switch is noticed after it."""
        self.process.say(b"x\x1b[3")
        handed = self.session.hand_over()
        assert handed is not None
        adopted = self.h.adopt(handed)
        end = adopted.recorded_end
        self.h.launcher.last.say(b"Jy")
        self.assertEqual(adopted.info.last_clear_offset, end)

    def test_kill_under_way(self) -> None:
        """A delete under way when the daemon restarted gets its SIGKILL when it was due."""
        self.session.kill()
        self.h.clock.advance(1)
        handed = self.session.hand_over()
        assert handed is not None
        self.assertAlmostEqual(handed.kill_in, KILL_GRACE - 1)
        adopted = self.h.adopt(handed)
        process = self.h.launcher.last
        self.assertEqual(process.signals, [SIGTERM])
        self.h.clock.advance(KILL_GRACE - 1 + 0.01)
        self.assertEqual(process.signals, [SIGTERM, SIGKILL])
        process.exit(137)
        self.assertEqual((adopted.status, adopted.info.exit_code), (Status.EXITED, 137))

    def test_only_running_programs_of_the_daemon(self) -> None:
        """Ended sessions, sessions still starting and another process's sessions are not
        handed over (the next daemon finds them on disk); a hand-over taken back goes on."""
        starting = self.h.create()
        self.assertIsNone(starting.hand_over())
        self.process.exit(0)
        self.assertIsNone(self.session.hand_over())
        running = self.h.create()
        pump(self.h.clock)
        self.assertIsNotNone(running.hand_over())
        running.take_back()
        self.assertFalse(self.h.launcher.last.handed_over)
        running.write(b"x")
        self.assertEqual(self.h.launcher.last.written, [b"x"])
        folder = self.h.files.session_dir(running.id)
        forwarded = kinds.forwarded_session(
            running.info, self.h.files, kinds.Shared(self.h.clock, self.h.screens, 10)
        )
        self.assertTrue(folder.exists())
        self.assertIsNone(forwarded.hand_over())
        forwarded.close()


@implementer(ITerminalEvents)
class Events:
    """What a PTY process reports, kept."""

    def __init__(self) -> None:
        self.data = b""
        self.exited: defer.Deferred[int] = defer.Deferred()
        self.done: defer.Deferred[int] = defer.Deferred()

    def output(self, data: bytes) -> None:
        self.data += data

    def leader_exited(self, code: int) -> None:
        self.exited.callback(code)

    def ended(self, code: int) -> None:
        self.done.callback(code)


def zombie(pid: int) -> bool:
    """True once pid has exited and nobody has reaped it."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rfind(b")") + 2 :].startswith(b"Z")


class RealPTYTests(TestCase):
    """Real programs handed from one owner to another in this process, as across an exec."""

    timeout = 30

    def setUp(self) -> None:
        self.launcher = PTYLauncher(reactor, SessionSignaller(Cooperator()))

    def start(self, script: str) -> tuple[PTYProcess, Events]:
        events = Events()
        env = {"PATH": os.environ.get("PATH", os.defpath), "TERM": "xterm-256color"}
        process = self.launcher.launch("/bin/sh", ["sh", "-c", script], env, "/", 80, 24, events)
        assert isinstance(process, PTYProcess)
        self.addCleanup(self._kill, process.pid)
        return process, events

    def _kill(self, pid: int) -> None:
        try:
            os.killpg(pid, SIGKILL)
        except OSError:
            pass

    def gone(self, process: PTYProcess) -> None:
        """The first owner is gone, as after an exec: nothing of it reads or writes the PTY."""
        transport: Any = process._transport
        reactor.removeReader(transport)
        reactor.removeWriter(transport)

    async def test_exit_during_the_switch(self) -> None:
        """A program that exits after the hand-over and before the take-over stays unreaped
        and is reaped by its new owner with its real exit code; its last output is read."""
        process, first = self.start("printf ready; read x; printf bye; exit 7")
        await poll(reactor, lambda: b"ready" in first.data, 10, what="ready")
        handed = process.hand_over()
        assert handed is not None
        self.assertIsNone(handed.reaped)
        self.gone(process)
        os.write(handed.fd, b"x\n")
        await poll(reactor, lambda: zombie(handed.pid), 10, what="an unreaped exit")
        second = Events()
        self.launcher.adopt(handed, second)
        self.assertEqual(await second.exited, 7)
        self.assertEqual(await second.done, 7)
        self.assertIn(b"bye", second.data)
        self.assertFalse(first.exited.called)

    async def test_unwritten_input(self) -> None:
        """Input the first owner accepted but could not write yet is handed over and reaches
        the program once, whole."""
        process, first = self.start("stty raw -echo; printf ready; sleep 1; head -c 200000 | wc -c")
        await poll(reactor, lambda: b"ready" in first.data, 10, what="ready")
        process.write(b"k" * 200000)
        handed = process.hand_over()
        assert handed is not None
        self.assertGreater(len(handed.unwritten), 0)
        self.gone(process)
        second = Events()
        adopted = self.launcher.adopt(handed, second)
        adopted.write(handed.unwritten)
        self.assertEqual(await second.done, 0)
        self.assertIn(b"200000", second.data)

    async def test_reaped_before_the_switch(self) -> None:
        """A program the first owner reaped while a background job held its terminal ends,
        for the new owner, with the code the first one got, once the terminal closes."""
        process, first = self.start("printf ready; (trap '' HUP; sleep 0.5; printf late) & sleep 0.1; exit 3")
        self.assertEqual(await first.exited, 3)
        handed = process.hand_over()
        assert handed is not None
        self.assertIsNotNone(handed.reaped)
        self.assertEqual(os.waitstatus_to_exitcode(handed.reaped), 3)
        self.gone(process)
        second = Events()
        self.launcher.adopt(handed, second)
        self.assertEqual(await second.exited, 3)
        self.assertEqual(await second.done, 3)
        self.assertIn(b"late", first.data + second.data)

    async def test_taken_back(self) -> None:
        """A hand-over taken back leaves the first owner in charge: it reaps the program."""
        process, first = self.start("printf ready; read x; exit 5")
        await poll(reactor, lambda: b"ready" in first.data, 10, what="ready")
        handed = process.hand_over()
        assert handed is not None
        self.assertTrue(os.get_inheritable(handed.fd))
        process.take_back()
        self.assertFalse(os.get_inheritable(handed.fd))
        process.write(b"x\n")
        self.assertEqual(await first.done, 5)
