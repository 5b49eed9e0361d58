"""Forwarded sessions (vibetwist.sessions.forwarded): a session whose recording another process
writes, read without a reactor; and the service that finds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from vibetwist.interfaces import IInfoStore, ISession, ISessionSource, ITerminalProcess
from vibetwist.model.asciicast import Event, Exit, Header, encode_event, encode_exit, encode_header
from vibetwist.model.controldir import ControlDir, unsafe_folder
from vibetwist.model.info import SessionInfo, Status
from vibetwist.sessions import forwarded, kinds, watcher
from vibetwist.sessions.ipclink import IPCLink
from vibetwist.sessions.kinds import is_forwarded as is_external
from vibetwist.sessions.procfs import pid_alive
from vibetwist.sessions.recording import RecordingReader
from vibetwist.sessions.screenfeed import ScreenScheduler
from vibetwist.sessions.service import SessionService
from vibetwist.sessions.session import Session
from vibetwist.testing import FakeLauncher

SID = "ext-1"
HEADER = encode_header(Header(width=80, height=24, timestamp=0, command="prog"))


class Listener:
    def __init__(self) -> None:
        self.lines: list[tuple[bytes, Any]] = []

    def event(self, line: bytes, record: Any) -> None:
        self.lines.append((line, record))


def make_session(root: Path, recording: bytes = b"") -> tuple[Session, Path, Clock]:
    files = ControlDir(root)
    files.create()
    folder = files.make_session_dir(SID)
    info = SessionInfo(
        id=SID,
        name="prog",
        command=("prog",),
        working_dir="/",
        status=Status.RUNNING,
        started_at="2026-01-01T00:00:00.000Z",
        pid=os.getpid(),
        attached_via_vt=True,
    )
    files.save_info(SID, info.to_json())
    (folder / "stdout").write_bytes(HEADER + recording)
    clock = MemoryReactorClock()
    session = kinds.forwarded_session(info, files, kinds.Shared(clock, ScreenScheduler(clock), 100))
    return session, folder / "stdout", clock


def tail(session: Session) -> None:
    """Take in what was appended to the recording now (as a change notice does on the next turn)."""
    session._source.tail()  # type: ignore[attr-defined]


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class TailTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(self.mktemp())

    def test_history_then_whole_lines(self) -> None:
        """The history already written counts as recorded; appended lines reach listeners
        once whole, with recorded_end just past the last whole line."""
        first = encode_event(0.1, "o", "one\r\n")
        session, path, _ = make_session(self.root, first + b'[0.2,"o","tw')
        self.assertEqual(session.recorded_end, len(HEADER) + len(first))
        listener = Listener()
        session.listen(listener)
        tail(session)
        self.assertEqual(listener.lines, [])
        append(path, b'o\\r\\n"]\n')
        tail(session)
        self.assertEqual([r for _, r in listener.lines], [Event(0.2, "o", "two\r\n")])
        self.assertEqual(session.recorded_end, path.stat().st_size)

    @given(
        st.lists(st.text(max_size=30), min_size=1, max_size=8), st.lists(st.integers(0, 2000), max_size=10)
    )
    def test_any_chunking(self, texts: list[str], cuts: list[int]) -> None:
        """However the other process's writes are cut, listeners get each line once, in order."""
        root = Path(self.mktemp())
        session, path, _ = make_session(root)
        listener = Listener()
        session.listen(listener)
        body = b"".join(encode_event(i, "o", t) for i, t in enumerate(texts))
        points = sorted({c % (len(body) + 1) for c in cuts}) + [len(body)]
        last = 0
        for point in points:
            append(path, body[last:point])
            last = point
            tail(session)
        self.assertEqual([r.data for _, r in listener.lines], texts)
        self.assertEqual(session.recorded_end, len(HEADER) + len(body))

    def test_resize_and_exit(self) -> None:
        """A resize line sets the size; the exit line ends the session with its code,
        writes exited to session.json, and nothing after it is read."""
        session, path, _ = make_session(self.root)
        listener = Listener()
        session.listen(listener)
        append(path, encode_event(1, "r", "100x30") + encode_exit(3, SID) + encode_event(2, "o", "late"))
        tail(session)
        self.assertEqual(session.size, (100, 30))
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, 3))
        self.assertEqual([r for _, r in listener.lines], [Event(1, "r", "100x30"), Exit(3, SID)])
        saved = json.loads((path.parent / "session.json").read_bytes())
        self.assertEqual((saved["status"], saved["exitCode"]), ("exited", 3))

    def test_size_from_history(self) -> None:
        """A session found mid-run takes the size of the last resize in its recording."""
        session, _, _ = make_session(self.root, encode_event(1, "r", "132x50") + encode_event(2, "o", "x"))
        self.assertEqual(session.size, (132, 50))

    def test_big_step_continues_later(self) -> None:
        """More than one step of new recording is taken in over several reactor turns."""
        self.patch(forwarded, "TAIL_STEP", 64)
        session, path, clock = make_session(self.root)
        listener = Listener()
        session.listen(listener)
        append(path, b"".join(encode_event(i, "o", "x" * 20) for i in range(10)))
        tail(session)
        first = len(listener.lines)
        self.assertLess(first, 10)
        for _ in range(20):
            clock.advance(0)
        self.assertEqual(len(listener.lines), 10)

    def test_overlong_line_passed_over(self) -> None:
        """A line longer than the limit is passed over, and the lines after it keep their offsets."""
        self.patch(forwarded, "MAX_LINE", 100)
        self.patch(forwarded, "TAIL_STEP", 64)
        session, path, clock = make_session(self.root)
        listener = Listener()
        session.listen(listener)
        after = encode_event(2, "o", "after")
        append(path, encode_event(1, "o", "y" * 400) + after)
        tail(session)
        for _ in range(30):
            clock.advance(0)
        self.assertEqual([r.data for _, r in listener.lines], ["after"])
        self.assertEqual(session.recorded_end, path.stat().st_size)

    def test_dead_pid_exits(self) -> None:
        """check() shows a session whose pid is gone as exited, without an exit code."""
        session, _, clock = make_session(self.root)
        session.merge(pid=2**22 + 999)
        session.check()
        self.assertIs(session.status, Status.RUNNING)
        clock.advance(forwarded.EXIT_GRACE)
        session.check()
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, None))

    def test_exit_line_after_pid_is_gone(self) -> None:
        """A program that has ended while its forwarder is still writing gets the exit code
        of the exit line that follows, not an unknown one."""
        session, path, clock = make_session(self.root)
        session.merge(pid=2**22 + 999)
        session.check()
        clock.advance(forwarded.EXIT_GRACE / 2)
        append(path, encode_exit(7, SID))
        session.check()
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, 7))

    def test_forwarder_says_exited(self) -> None:
        """session.json saying exited ends the session with its code, even without an exit line."""
        session, path, _ = make_session(self.root)
        info = json.loads((path.parent / "session.json").read_bytes())
        (path.parent / "session.json").write_text(json.dumps(dict(info, status="exited", exitCode=4)))
        os.utime(path.parent / "session.json", ns=(1, 1))
        session.files_changed("session.json")
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, 4))

    def test_output_then_exited_in_one_turn(self) -> None:
        """A program that prints and ends at once: when the recording's change and session.json
        saying exited are noticed in the same turn, the output still reaches listeners before
        the session ends (a short program's whole output)."""
        session, path, clock = make_session(self.root)
        listener = Listener()
        session.listen(listener)
        append(path, encode_event(0.1, "o", "ready"))
        session.files_changed("stdout")  # its tail is due on the next turn
        info = json.loads((path.parent / "session.json").read_bytes())
        (path.parent / "session.json").write_text(json.dumps(dict(info, status="exited", exitCode=0)))
        os.utime(path.parent / "session.json", ns=(1, 1))
        session.files_changed("session.json")
        clock.advance(0)
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, 0))
        self.assertEqual([r for _, r in listener.lines][:1], [Event(0.1, "o", "ready")])

    def test_resize_goes_to_process(self) -> None:
        """A resize asks the other process (nothing is recorded by the daemon)."""
        session, path, _ = make_session(self.root)
        asked: list[tuple[int, int]] = []

        class Process:
            pid = os.getpid()

            def resize(self, cols: int, rows: int) -> None:
                asked.append((cols, rows))

        session.process = Process()  # type: ignore[assignment]
        size = path.stat().st_size
        session.resize(120, 40)
        self.assertEqual(asked, [(120, 40)])
        self.assertEqual(path.stat().st_size, size)


class AttachTests(SynchronousTestCase):
    def test_found_already_ended(self) -> None:
        """A session whose session.json still says running but whose recording already ends
        with its exit line is exited at once, with that line's code."""
        root = Path(self.mktemp())
        session, _, clock = make_session(root, encode_event(0.1, "o", "bye") + encode_exit(7, SID))
        session.close()
        found = kinds.forwarded_session(
            session.info, ControlDir(root), kinds.Shared(clock, ScreenScheduler(clock), 100)
        )
        self.assertEqual((found.status, found.info.exit_code), (Status.EXITED, 7))


class SwapTests(SynchronousTestCase):
    def test_recording_swapped_for_symlink(self) -> None:
        """A recording swapped for a symbolic link after discovery ends the session, and
        readers of the recording never follow the link."""
        root = Path(self.mktemp())
        session, path, _ = make_session(root, encode_event(0.1, "o", "mine"))
        outside = Path(self.mktemp())
        outside.write_bytes(HEADER + encode_event(0.1, "o", "secret"))
        path.unlink()
        path.symlink_to(outside)
        tail(session)
        self.assertIs(session.status, Status.EXITED)
        reader = RecordingReader(path, 0)
        self.assertEqual(reader.read_lines(outside.stat().st_size), [])


class FolderTests(SynchronousTestCase):
    def test_symlinks_found(self) -> None:
        """A session folder holding a symbolic link under any name is unsafe, and so is one
        that belongs to another user."""
        for name in ["stdout", ".session.json.1234.tmp", "anything"]:
            folder = Path(self.mktemp())
            folder.mkdir()
            (folder / "session.json").write_text("{}")
            self.assertIsNone(unsafe_folder(folder))
            (folder / name).symlink_to("/etc/passwd")
            self.assertEqual(unsafe_folder(folder), f"{name} is a symbolic link")
        folder = Path(self.mktemp())
        folder.mkdir()
        self.assertIn("belongs to uid", unsafe_folder(folder, uid=os.getuid() + 1) or "")

    def test_is_external(self) -> None:
        """A running session is external when it says attachedViaVT or has an ipc.sock."""
        folder = Path(self.mktemp())
        folder.mkdir()
        base = dict(id=SID, name="n", command=("x",), working_dir="/", started_at="t")
        self.assertTrue(is_external(SessionInfo(status=Status.RUNNING, attached_via_vt=True, **base), folder))
        self.assertFalse(is_external(SessionInfo(status=Status.RUNNING, **base), folder))
        self.assertFalse(is_external(SessionInfo(status=Status.EXITED, attached_via_vt=True, **base), folder))

    def test_pid_alive(self) -> None:
        """A live pid counts unless its environment names another session; a missing one does not."""
        proc = Path(self.mktemp())
        for pid, env, state in (
            (1, b"A=1\0", b"S"),
            (2, b"VIBETUNNEL_SESSION_ID=other\0", b"S"),
            (3, b"", b"Z"),
        ):
            (proc / str(pid)).mkdir(parents=True)
            (proc / str(pid) / "stat").write_bytes(b"%d (x) %s 1 1 1" % (pid, state))
            (proc / str(pid) / "environ").write_bytes(env)
        self.assertTrue(pid_alive(1, SID, str(proc)))
        self.assertFalse(pid_alive(2, SID, str(proc)))
        self.assertFalse(pid_alive(3, SID, str(proc)))
        self.assertFalse(pid_alive(4, SID, str(proc)))


def polling_service(root: Path, reactor: MemoryReactorClock) -> SessionService:
    """A started service on a fake reactor that finds sessions by rescanning, not inotify."""
    service = SessionService(
        root,
        reactor=reactor,
        launcher=FakeLauncher(),
        shell="/bin/sh",
        scrollback=100,
        screens=ScreenScheduler(reactor, busy_delay=0),
        watch_files=False,
    )
    service.startService()
    return service


class DiscoveryTests(SynchronousTestCase):
    """The service finds external sessions by rescanning when inotify is not used."""

    def test_polling_finds_and_drops(self) -> None:
        """Without inotify, a session folder that appears is listed within one rescan, a
        running one whose pid is gone is exited, and a vanished folder is dropped."""
        root = Path(self.mktemp())
        reactor = MemoryReactorClock()
        service = polling_service(root, reactor)
        self.assertFalse(service.watcher.inotify)
        session, path, _ = make_session(root, encode_event(0.5, "o", "hi"))
        session.close()
        self.assertNotIn(SID, service.sessions)
        reactor.advance(watcher.FAST_SCAN)
        found = service.get(SID)
        self.assertIsInstance(found.process, IPCLink)  # run by the other process
        self.assertIs(found.status, Status.RUNNING)
        self.assertEqual(found.recorded_end, path.stat().st_size)
        self.assertEqual([c[0] for c in reactor.unixClients], [str(path.parent / "ipc.sock")])

        other = ControlDir(root)
        other.make_session_dir("gone-pid")
        other.save_info("gone-pid", dict(found.info.to_json(), id="gone-pid", pid=2**22 + 77))
        (root / "gone-pid" / "stdout").write_bytes(HEADER)
        reactor.advance(watcher.FAST_SCAN)
        reactor.advance(forwarded.EXIT_GRACE)
        self.assertIs(service.get("gone-pid").status, Status.EXITED)

        for child in path.parent.iterdir():
            child.unlink()
        path.parent.rmdir()
        reactor.advance(watcher.FAST_SCAN)
        self.assertNotIn(SID, service.sessions)
        self.assertIn("gone-pid", service.sessions)
        service.stopService()

    def test_forwarder_before_its_socket(self) -> None:
        """A live session that appears while the daemon runs is followed as another process's
        even before its ipc.sock exists and with attachedViaVT false, as VibeTunnel's forwarder
        writes it at first: it is not taken for a leftover, marked exited or rewritten."""
        root = Path(self.mktemp())
        reactor = MemoryReactorClock()
        service = polling_service(root, reactor)
        files = ControlDir(root)
        folder = files.make_session_dir("fwd-1")
        written = {
            "id": "fwd-1",
            "command": ["prog"],
            "name": "prog (/tmp)",
            "workingDir": "/tmp",
            "status": "running",
            "startedAt": "2026-01-01T00:00:00.000Z",
            "initialCols": 120,
            "initialRows": 40,
            "lastClearOffset": 0,
            "version": "1.0.0-beta.15.1",
            "attachedViaVT": False,
            "pid": os.getpid(),
        }
        (folder / "session.json").write_text(json.dumps(written, indent=2))
        (folder / "stdout").write_bytes(HEADER + encode_event(0.1, "o", "READY\r\n"))
        self.assertFalse((folder / "ipc.sock").exists())
        reactor.advance(watcher.FAST_SCAN)
        found = service.get("fwd-1")
        self.assertIsInstance(found.process, IPCLink)  # run by the other process
        self.assertIs(found.status, Status.RUNNING)
        reactor.advance(forwarded.EXIT_GRACE + watcher.FAST_SCAN)
        self.assertIs(found.status, Status.RUNNING)
        self.assertEqual(json.loads((folder / "session.json").read_text()), written)
        self.assertIn("READY", found.screen.text())
        service.stopService()


class SharedInfoTests(SynchronousTestCase):
    """session.json is read, changed and replaced by vt and the daemon alike."""

    def test_concurrent_updates_lose_nothing(self) -> None:
        """Two processes each counting up their own key in the same session.json, as vt and
        the daemon update theirs, both end at their full count: no update is lost."""
        root = Path(self.mktemp())
        files = ControlDir(root)
        files.create()
        files.make_session_dir(SID)
        files.save_info(SID, {"id": SID})
        rounds = 300
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from vibetwist.model.controldir import ControlDir\n"
            "files = ControlDir(Path(sys.argv[1]))\n"
            "for _ in range(int(sys.argv[3])):\n"
            "    files.update_info(sys.argv[2], lambda c: c.update(other=c.get('other', 0) + 1))\n"
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        other = subprocess.Popen([sys.executable, "-c", script, str(root), SID, str(rounds)], env=env)
        for _ in range(rounds):
            files.update_info(SID, lambda c: c.update(mine=c.get("mine", 0) + 1))
        self.assertEqual(other.wait(timeout=60), 0)
        final = files.load_info(SID)
        self.assertEqual((final["mine"], final["other"], final["id"]), (rounds, rounds, SID))

    def test_update_of_unreadable_info(self) -> None:
        """A session.json that is not JSON is replaced by what the change makes of {}."""
        root = Path(self.mktemp())
        files = ControlDir(root)
        files.create()
        files.make_session_dir(SID)
        files.info_path(SID).write_bytes(b"{not json")
        files.update_info(SID, lambda c: c.update(status="exited"))
        self.assertEqual(files.load_info(SID), {"status": "exited"})


class InterfaceTests(SynchronousTestCase):
    def test_forwarded_session_provides_isession(self) -> None:
        """A session another process runs provides the same ISession as the daemon's own, from
        parts that provide their interfaces."""
        session, _, _ = make_session(Path(self.mktemp()))
        verifyObject(ISession, session)
        verifyObject(ISessionSource, session._source)  # type: ignore[attr-defined]
        verifyObject(IInfoStore, session._store)  # type: ignore[attr-defined]
        verifyObject(ITerminalProcess, session.process)

    def test_daemon_stopping_lets_go(self) -> None:
        """When the daemon stops, another process's session is let go, not killed: nothing to wait for."""
        session, _, _ = make_session(Path(self.mktemp()))
        self.assertIsNone(session.daemon_stopping())
        self.assertIs(session.status, Status.RUNNING)


class InotifyTests(TestCase):
    """The control dir watched with inotify on the real reactor."""

    async def test_session_file_named_as_text(self) -> None:
        """A write to a watched session folder's recording is reported at once, by inotify
        rather than the next rescan, with the file's name as text ("stdout"), which is what
        the sessions compare it with."""
        root = Path(self.mktemp())
        (root / SID).mkdir(parents=True)
        changes: list[tuple[str, Any]] = []
        seen: Deferred[None] = Deferred()

        def changed(session_id: str, name: Any) -> None:
            changes.append((session_id, name))
            if name == "stdout" and not seen.called:
                seen.callback(None)

        watching = watcher.ControlDirWatcher(root, reactor, lambda: None, changed)
        watching.start()
        self.addCleanup(watching.stop)
        self.assertTrue(watching.inotify)
        watching.watch(SID)
        (root / SID / "stdout").write_bytes(HEADER)
        await seen.addTimeout(watcher.SLOW_SCAN * 10, reactor)
        self.assertIn((SID, "stdout"), changes)
        self.assertTrue(all(isinstance(name, str) for _, name in changes), changes)
