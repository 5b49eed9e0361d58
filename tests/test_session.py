"""Tests for vibetwist.sessions.session: the lifecycle of one session, with a fake launcher."""

from __future__ import annotations

import os
import stat
from signal import SIGHUP, SIGKILL, SIGTERM

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.support.sessions import Harness
from vibetwist.errors import BadRequest, Conflict
from vibetwist.interfaces import IInfoStore, ISession, ISessionSource
from vibetwist.model.asciicast import Event, Exit, Header
from vibetwist.model.info import SessionInfo, Status, check_size
from vibetwist.sessions import kinds
from vibetwist.sessions.session import HANGUP_GRACE, KILL_GRACE
from vibetwist.testing import pump


class LifecycleTests(SynchronousTestCase):
    """A session goes starting, running, exited, saving each step."""

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_starts_on_a_later_turn(self) -> None:
        """A new session touches neither disk nor fork at once: its files are made and its
        program started on a later reactor turn."""
        session = self.h.create()
        self.assertEqual(session.status, Status.STARTING)
        self.assertFalse(self.h.files.session_dir(session.id).exists())
        self.assertEqual(self.h.launcher.processes, [])
        pump(self.h.clock)
        self.assertEqual(session.status, Status.RUNNING)
        saved = self.h.saved(session)
        self.assertEqual(saved["status"], "running")
        self.assertEqual(saved["pid"], self.h.launcher.last.pid)

    def test_files_are_private(self) -> None:
        """The session folder is 0700 and its files 0600."""
        session = self.h.create()
        pump(self.h.clock)
        folder = self.h.files.session_dir(session.id)
        self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode), 0o700)
        for path in (self.h.files.info_path(session.id), session.recording_path):
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_launched_at_requested_size(self) -> None:
        """The program is started on a terminal of the requested size."""
        self.h.create(cols=132, rows=43)
        pump(self.h.clock)
        launch = self.h.launcher.last.launch
        self.assertEqual((launch.cols, launch.rows), (132, 43))

    def test_recording_header(self) -> None:
        """The recording starts with an asciicast v2 header of the session's size and name."""
        session = self.h.create(cols=100, rows=30)
        pump(self.h.clock)
        header = self.h.records(session)[0]
        assert isinstance(header, Header)
        self.assertEqual((header.width, header.height, header.title), (100, 30, session.info.name))
        self.assertEqual(header.env["TERM"], "xterm-256color")

    def test_output_recorded_whole_characters(self) -> None:
        """Output is recorded as text; a character split across two reads comes out whole."""
        session = self.h.create()
        pump(self.h.clock)
        process = self.h.launcher.last
        process.say(b"caf\xc3")
        self.h.clock.advance(0.5)
        process.say(b"\xa9 \xe4\xb8\xad\r\n")
        events = [r for r in self.h.records(session) if isinstance(r, Event)]
        self.assertEqual("".join(e.data for e in events), "café 中\r\n")
        self.assertEqual(events[-1].time, 0.5)

    def test_exit_code_and_exit_line_last(self) -> None:
        """The real exit code is saved and the exit line is the recording's last line."""
        session = self.h.create()
        pump(self.h.clock)
        process = self.h.launcher.last
        process.say(b"bye\r\n")
        process.exit(3)
        records = self.h.records(session)
        self.assertEqual(records[-1], Exit(3, session.id))
        self.assertEqual(records[-2].data, "bye\r\n")  # type: ignore[union-attr]
        self.assertEqual(session.status, Status.EXITED)
        saved = self.h.saved(session)
        self.assertEqual((saved["status"], saved["exitCode"]), ("exited", 3))

    def test_exit_code_zero(self) -> None:
        """A clean exit is stored as 0, not 1."""
        session = self.h.create()
        pump(self.h.clock)
        self.h.launcher.last.exit(0)
        self.assertEqual(session.info.exit_code, 0)

    def test_failed_launch(self) -> None:
        """A program that cannot start ends the session with code 127 and says why."""
        self.h.launcher.fail = OSError(2, "No such file or directory")
        session = self.h.create()
        pump(self.h.clock)
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, 127))
        text = "".join(r.data for r in self.h.records(session) if isinstance(r, Event))
        self.assertIn("No such file or directory", text)


class InputTests(SynchronousTestCase):
    """Input and resizes reach the program, also when sent before it runs."""

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_input_while_starting_is_queued(self) -> None:
        """Input sent while starting is written, in order, once the program runs."""
        session = self.h.create()
        session.write(b"one")
        session.write(b"two")
        pump(self.h.clock)
        session.write(b"three")
        self.assertEqual(self.h.launcher.last.written, [b"one", b"two", b"three"])

    def test_resize_while_starting(self) -> None:
        """A resize sent while starting sets the size the program starts with."""
        session = self.h.create()
        session.resize(90, 33)
        pump(self.h.clock)
        launch = self.h.launcher.last.launch
        self.assertEqual((launch.cols, launch.rows), (90, 33))

    def test_resize_is_recorded_and_applied(self) -> None:
        """A resize reaches the terminal, is recorded as an "r" event and resizes the screen."""
        session = self.h.create()
        pump(self.h.clock)
        session.resize(100, 40)
        pump(self.h.clock)
        self.assertEqual(self.h.launcher.last.sizes, [(100, 40)])
        self.assertEqual(self.h.records(session)[-1].data, "100x40")  # type: ignore[union-attr]
        self.assertEqual((session.screen.cols, session.screen.rows), (100, 40))

    def test_bad_sizes(self) -> None:
        """Sizes outside 1..1000, or not integers, are refused."""
        for cols, rows in [(0, 10), (10, 1001), ("a", 10), (10.5, 10), (True, 10), (None, 5)]:
            self.assertRaises(BadRequest, check_size, cols, rows)
        self.assertEqual(check_size(1, 1000), (1, 1000))

    def test_input_after_exit_refused(self) -> None:
        """Input to an exited session is refused."""
        session = self.h.create()
        pump(self.h.clock)
        self.h.launcher.last.exit(0)
        self.assertRaises(BadRequest, session.write, b"x")
        self.assertRaises(BadRequest, session.resize, 10, 10)


class KillTests(SynchronousTestCase):
    """Deleting a session ends every process of its terminal session."""

    def setUp(self) -> None:
        self.h = Harness(self)

    def test_kill_while_starting_never_spawns(self) -> None:
        """A session killed before its program started never starts it, and is saved as exited."""
        session = self.h.create()
        session.kill()
        pump(self.h.clock)
        self.assertEqual(self.h.launcher.processes, [])
        self.assertEqual(session.status, Status.EXITED)
        self.assertIsInstance(self.h.records(session)[-1], Exit)
        self.assertEqual(self.h.saved(session)["status"], "exited")

    def test_term_then_kill(self) -> None:
        """SIGTERM goes to the whole session at once, SIGKILL after the grace period."""
        session = self.h.create()
        pump(self.h.clock)
        process = self.h.launcher.last
        session.kill()
        self.assertEqual(process.signals, [SIGTERM])
        self.h.clock.advance(KILL_GRACE - 0.01)
        self.assertEqual(process.signals, [SIGTERM])
        self.h.clock.advance(0.02)
        self.assertEqual(process.signals, [SIGTERM, SIGKILL])
        self.assertTrue(process.hung_up)

    def test_no_kill_after_exit(self) -> None:
        """A program that ends on SIGTERM gets no SIGKILL."""
        session = self.h.create()
        pump(self.h.clock)
        process = self.h.launcher.last
        session.kill()
        process.exit(128 + SIGTERM)
        self.h.clock.advance(KILL_GRACE + 1)
        self.assertEqual(process.signals, [SIGTERM])
        self.assertEqual(session.info.exit_code, 143)
        self.assertRaises(Conflict, session.kill)

    def test_background_jobs_hung_up(self) -> None:
        """If background jobs keep the terminal open after the program exits, they get SIGHUP."""
        session = self.h.create()
        pump(self.h.clock)
        process = self.h.launcher.last
        process.running = False
        session.leader_exited(5)
        self.h.clock.advance(HANGUP_GRACE + 0.01)
        self.assertEqual(process.signals, [SIGHUP])
        self.assertTrue(process.hung_up)
        session.ended(1)
        self.assertEqual(session.info.exit_code, 5)

    def test_when_ended(self) -> None:
        """when_ended fires once the session exits."""
        session = self.h.create()
        pump(self.h.clock)
        d = session.when_ended()
        self.assertNoResult(d)
        self.h.launcher.last.exit(0)
        self.successResultOf(d)


class RecordingTests(SynchronousTestCase):
    """The recording keeps the clear-scrollback offset, a size limit and survives a full disk."""

    def test_clear_offset(self) -> None:
        """lastClearOffset is the offset of the event line holding the last clear-scrollback."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        process = h.launcher.last
        process.say(b"old\r\n")
        process.say(b"x\x1b[")
        offset = session.recorded_end
        process.say(b"3Jnew\r\n")
        self.assertEqual(session.info.last_clear_offset, offset)
        data = session.recording_path.read_bytes()
        self.assertTrue(data[offset:].startswith(b"[0,"))
        h.clock.advance(2)
        self.assertEqual(h.saved(session)["lastClearOffset"], offset)

    def test_size_limit(self) -> None:
        """Past --max-recording output is not recorded, but the exit line still is,
        and the screen still sees the output."""
        h = Harness(self, max_recording=400)
        session = h.create()
        pump(h.clock)
        process = h.launcher.last
        for i in range(20):
            process.say(f"line{i:02}\r\n".encode())
        process.exit(0)
        pump(h.clock)
        self.assertLessEqual(session.recording_path.stat().st_size, 400 + 4096)
        records = h.records(session)
        self.assertIsInstance(records[-1], Exit)
        outputs = [r for r in records if isinstance(r, Event)]
        self.assertTrue(0 < len(outputs) < 20)
        self.assertIn("line19", session.screen.text())

    def test_disk_full(self) -> None:
        """When the disk fills up the program keeps running and viewers still get output."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        process = h.launcher.last
        process.say(b"before\r\n")
        got: list[bytes] = []

        class Listener:
            def event(self, line: bytes, record: object) -> None:
                got.append(line)

        session.listen(Listener())
        full = os.open("/dev/full", os.O_WRONLY)
        self.addCleanup(os.close, full)
        os.dup2(full, session._source._recording._fd)  # type: ignore[attr-defined]
        process.say(b"after\r\n")
        process.exit(0)
        pump(h.clock)
        self.assertEqual(session.status, Status.EXITED)
        self.assertTrue(any(b"after" in line for line in got))
        self.assertIn("after", session.screen.text())
        self.flushLoggedErrors()


class ListenerTests(SynchronousTestCase):
    """Viewers of the output as it is made."""

    def test_broken_listener_dropped_others_served(self) -> None:
        """A listener that raises is dropped; the recording and the other listeners go on."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        got: list[object] = []

        class Broken:
            def event(self, line: bytes, record: object) -> None:
                raise RuntimeError("gone")

        class Good:
            def event(self, line: bytes, record: object) -> None:
                got.append(record)

        session.listen(Broken())
        session.listen(Good())
        h.launcher.last.say(b"one")
        h.launcher.last.say(b"two")
        self.assertEqual([getattr(r, "data", None) for r in got], ["one", "two"])
        self.assertEqual(len(session.listeners), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        outputs = [r.data for r in h.records(session) if isinstance(r, Event) and r.kind == "o"]
        self.assertEqual("".join(outputs), "onetwo")


class ScreenTests(SynchronousTestCase):
    """The screen catches up with output read back from the recording."""

    def test_screen_follows_output(self) -> None:
        """Output shows on the screen once the reactor has run the screen's slices."""
        h = Harness(self)
        session = h.create(cols=20, rows=5)
        pump(h.clock)
        h.launcher.last.say(b"hello\r\nworld")
        self.assertFalse(session.feed.caught_up)
        d = session.feed.when_caught_up()
        pump(h.clock)
        self.successResultOf(d)
        self.assertEqual(session.screen.lines()[:2], ["hello", "world"])

    def test_restored_session_replays(self) -> None:
        """A session loaded from disk rebuilds its screen from its recording."""
        h = Harness(self)
        session = h.create(cols=20, rows=5)
        pump(h.clock)
        h.launcher.last.say(b"kept\r\n")
        h.launcher.last.exit(0)
        info = SessionInfo.from_json(h.saved(session))
        again = kinds.found_session(info, h.files, kinds.Shared(h.clock, h.screens, 10))
        pump(h.clock)
        self.assertEqual(again.screen.lines()[0], "kept")
        self.assertEqual(again.status, Status.EXITED)


class SessionInfoTests(SynchronousTestCase):
    """session.json round-trips and tolerates VibeTunnel's files."""

    def test_round_trip(self) -> None:
        """to_json then from_json gives the same info."""
        info = SessionInfo(
            id="abc",
            name="n",
            command=("a", "b"),
            working_dir="/w",
            status=Status.EXITED,
            started_at="2026-01-01T00:00:00.000Z",
            exit_code=143,
            pid=12,
            last_modified="2026-01-01T00:00:01.000Z",
        )
        self.assertEqual(SessionInfo.from_json(info.to_json()), info)

    def test_rejects_bad_ids(self) -> None:
        """An id with a path in it is refused."""
        from vibetwist.errors import FormatError

        for bad in ["../x", "a/b", "", ".."]:
            self.assertRaises(
                FormatError, SessionInfo.from_json, {"id": bad, "command": ["x"], "status": "exited"}
            )


class KindTests(SynchronousTestCase):
    """Every kind of session provides the one session interface, from parts with their own."""

    def test_new_session_provides_isession(self) -> None:
        """A new session (the daemon's own PTY) provides ISession, starting and running."""
        h = Harness(self)
        session = h.create()
        verifyObject(ISession, session)
        pump(h.clock)
        verifyObject(ISession, session)
        verifyObject(ISessionSource, session._source)  # type: ignore[attr-defined]
        verifyObject(IInfoStore, session._store)  # type: ignore[attr-defined]

    def test_found_session_provides_isession(self) -> None:
        """A session found on disk provides ISession, and has exited."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        h.launcher.last.exit(0)
        info = SessionInfo.from_json(h.saved(session))
        found = kinds.found_session(info, h.files, kinds.Shared(h.clock, h.screens, 10))
        verifyObject(ISession, found)
        self.assertIs(found.status, Status.EXITED)

    def test_found_running_session_is_exited_without_exit_line(self) -> None:
        """A session found with status running whose program is gone is shown (and saved)
        as exited; no exit line is made up for its recording."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        h.launcher.last.say(b"half")
        info = SessionInfo.from_json(h.saved(session))
        self.assertIs(info.status, Status.RUNNING)
        found = kinds.found_session(info, h.files, kinds.Shared(h.clock, h.screens, 10))
        self.assertIs(found.status, Status.EXITED)
        self.assertIsNone(found.exit_line)
        self.assertEqual(h.saved(found)["status"], "exited")

    def test_daemon_stopping_kills_own(self) -> None:
        """When the daemon stops, a program it started is sent SIGTERM and waited for."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        wait = session.daemon_stopping()
        self.assertEqual(h.launcher.last.signals, [SIGTERM])
        self.assertNoResult(wait)
        h.launcher.last.exit(143)
        self.successResultOf(wait)

    def test_folder_removed(self) -> None:
        """A running session outlives its folder's removal; an exited one is forgotten."""
        h = Harness(self)
        session = h.create()
        pump(h.clock)
        self.assertFalse(session.folder_removed())
        h.launcher.last.exit(0)
        self.assertTrue(session.folder_removed())
