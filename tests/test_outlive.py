"""--sessions-outlive-daemon: each session's program is held by a holder process of its own
(vibetwist.vt._hold), so it goes on when the daemon stops, restarts or is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Client, Daemon, kill_sessions, pid_alive, pids_of_session_id, poll
from tests.support.e2e import DaemonTestCase, recorded_output
from tests.support.programs import COUNTER, count_past, counted
from vibetwist.errors import FormatError
from vibetwist.model.asciicast import Event, Exit, parse_line
from vibetwist.model.holder import decode_spec, encode_spec
from vibetwist.model.info import LaunchPlan, SessionInfo, Status
from vibetwist.sessions.service import SessionService
from vibetwist.testing import FakeLauncher, pump

names = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30)


class SpecTests(SynchronousTestCase):
    @given(names, st.lists(names, min_size=1, max_size=4), names)
    def test_round_trip(self, name: str, argv: list[str], cwd: str) -> None:
        """A holder reads back the session and plan it was given, with its own environment."""
        info = SessionInfo(
            id="abc",
            name=name,
            command=tuple(argv),
            working_dir=cwd,
            status=Status.STARTING,
            started_at="2026-01-01T00:00:00.000Z",
            last_modified="2026-01-01T00:00:01.000Z",
            initial_cols=120,
            initial_rows=40,
            attached_via_vt=True,
        )
        plan = LaunchPlan("/bin/prog", tuple(argv), {"TERM": "xterm-256color"}, cwd)
        control, read, again = decode_spec(encode_spec("/ctl", info, plan), {"TERM": "xterm-256color"})
        self.assertEqual((control, read, again), ("/ctl", info, plan))

    def test_not_a_spec(self) -> None:
        """Anything but a spec is a FormatError."""
        for value in [
            "",
            "{",
            "[]",
            '{"info": {}}',
            json.dumps({"controlDir": "/c", "argv": [], "info": {}}),
        ]:
            self.assertRaises(FormatError, decode_spec, value, {})


class FakeHolders:
    """Starts no holder: keeps what it was asked, for the test to play the holder."""

    def __init__(self) -> None:
        self.pending = 0
        self.started: list[tuple[str, str, dict[str, str], Any]] = []

    def prepare(self) -> None:
        """Nothing to start ahead."""

    def stop(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def start(self, session_id: str, spec: str, env: dict[str, str], done: Any) -> None:
        self.pending += 1
        self.started.append((session_id, spec, env, done))


class HeldStartTests(SynchronousTestCase):
    """A held session's start, with the holder played by the test."""

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.root, True)
        self.clock = MemoryReactorClock()
        self.launcher = FakeLauncher()
        self.holders = FakeHolders()
        self.service = SessionService(
            self.root / "control",
            reactor=self.clock,
            launcher=self.launcher,
            shell="/bin/sh",
            environ={"PATH": os.defpath, "HOME": str(self.root)},
            holders=self.holders,  # type: ignore[arg-type]
            watch_files=False,
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def set_up(self, pid: int, code: int = 0) -> None:
        """What the holder does: session.json says running, then its first process ends."""
        session_id, _, _, done = self.holders.started[-1]
        self.service.files.update_info(session_id, lambda info: info.update(status="running", pid=pid))
        self.holders.pending -= 1
        done(code)

    def test_files_then_holder(self) -> None:
        """The daemon makes the session's folder, header and session.json, then starts a holder
        told what to run; it starts no program itself. Once the holder has set the session up
        it runs, with the holder's program's pid."""
        session = self.service.create(["cat"], cols=100, rows=30)
        self.assertEqual(self.service.starting, 1)
        pump(self.clock)
        self.assertEqual(self.launcher.processes, [])
        files = self.service.files
        saved = json.loads(files.info_path(session.id).read_bytes())
        self.assertEqual((saved["status"], saved["attachedViaVT"]), ("starting", True))
        self.assertEqual(files.recording_path(session.id).read_bytes(), session.header_line)
        session_id, spec, env, _ = self.holders.started[-1]
        self.assertEqual(session_id, session.id)
        self.assertEqual(env["VIBETUNNEL_SESSION_ID"], session.id)
        control, info, plan = decode_spec(spec, env)
        self.assertEqual(
            (control, info.id, info.initial_cols, plan.argv), (str(files.root), session.id, 100, ("cat",))
        )
        self.assertEqual(session.status, Status.STARTING)
        session.write(b"early")
        self.set_up(4242)
        self.assertEqual((session.status, session.info.pid), (Status.RUNNING, 4242))
        self.assertEqual(self.service.starting, 0)

    def test_rescan_before_the_folder_is_made(self) -> None:
        """A rescan of the control directory before a held session's folder is made keeps the
        session (it is not another process's session whose folder vanished)."""
        session = self.service.create(["cat"])
        self.service.rescan()
        self.assertIs(self.service.sessions.get(session.id), session)
        pump(self.clock)
        self.service.rescan()
        self.assertIs(self.service.sessions.get(session.id), session)
        self.assertEqual(len(self.holders.started), 1)

    def test_holder_failed(self) -> None:
        """A holder that cannot set its session up ends it with 127, said in its recording."""
        session = self.service.create(["cat"])
        pump(self.clock)
        self.holders.pending -= 1
        self.holders.started[-1][3](1)
        self.assertEqual((session.status, session.info.exit_code), (Status.EXITED, 127))
        lines = self.service.files.recording_path(session.id).read_bytes().splitlines(keepends=True)
        records = [parse_line(line) for line in lines[1:]]
        self.assertIn("holder", records[0].data)  # type: ignore[union-attr]
        self.assertEqual(records[-1], Exit(127, session.id))
        self.assertIsInstance(records[0], Event)

    def test_deleted_while_the_holder_starts(self) -> None:
        """A session deleted while its holder starts has its program killed once it runs."""
        program = subprocess.Popen(["sleep", "60"], start_new_session=True)
        self.addCleanup(program.wait)
        self.addCleanup(lambda: program.poll() is None and program.kill())
        session = self.service.create(["sleep", "60"])
        pump(self.clock)
        session.kill()
        self.assertEqual(session.status, Status.EXITED)
        self.set_up(program.pid)
        self.assertEqual(program.wait(10), -signal.SIGKILL)


class OutliveTests(DaemonTestCase):
    """Real daemons started with --sessions-outlive-daemon, and real holders."""

    shared = False
    timeout = 180

    async def daemon_on(self, control: Path | None = None) -> tuple[Daemon, Client]:
        base = Path(tempfile.mkdtemp(prefix="outlive-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, control, args=("--sessions-outlive-daemon",))
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        self.daemon = daemon
        self.client = self.client_for(daemon)
        return daemon, self.client

    def setUp(self) -> Any:
        self.addCleanup(lambda: kill_sessions(set(self.sessions)))
        return super().setUp()

    async def test_kill_9_loses_nothing(self) -> None:
        """A daemon killed with SIGKILL while its sessions print loses nothing: a daemon started
        later lists every session running, serves each with its whole history (every number
        of each counter once), and drives them (input, resize, kill)."""
        first, client = await self.daemon_on()
        counters = [await self.create(COUNTER) for _ in range(4)]
        shell = await self.create(["sh", "-c", "read line; echo got-$line; read size; stty size; exit 7"])
        for sid in [*counters, shell]:
            await client.wait_status(sid, "running", 20)
        for sid in counters:
            await count_past(client, sid, 50)
        await first.crash()
        self.assertEqual(set(pids_of_session_id(set(self.sessions)).values()), set(self.sessions))

        second, client = await self.daemon_on(first.control_dir)
        listed = {s["id"]: s for s in await client.get("/api/sessions")}
        for sid in self.sessions:
            self.assertEqual(listed[sid]["status"], "running", sid)
        for sid in counters:
            last = await count_past(client, sid, 0)
            await count_past(client, sid, last + 20)
            stream = await client.stream(sid)

            def history(stream: Any = stream, last: int = last) -> bool:
                return len(counted(stream.output())) > last

            await poll(reactor, history, 10, what="the whole history")
            replayed = counted(stream.output())
            self.assertEqual(replayed, list(range(1, len(replayed) + 1)))
        await client.request("POST", f"/api/sessions/{shell}/input", {"text": "hello\r"})
        await client.wait_text(shell, "got-hello")
        await client.request("POST", f"/api/sessions/{shell}/resize", {"cols": 66, "rows": 11})
        await client.request("POST", f"/api/sessions/{shell}/input", {"text": "\r"})
        await client.wait_text(shell, "11 66")
        self.assertEqual((await client.wait_status(shell, "exited", 10))["exitCode"], 7)
        for sid in counters:
            await client.request("DELETE", f"/api/sessions/{sid}")
        for sid in counters:
            self.assertEqual((await client.wait_status(sid, "exited", 10))["exitCode"], 143)
            numbers = counted(recorded_output(second.control_dir / sid / "stdout"))
            self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
        await poll(reactor, lambda: not pids_of_session_id(set(self.sessions)), 10, what="holders gone")

    async def test_sigterm_lets_them_run(self) -> None:
        """SIGTERM stops the daemon, not its held sessions: they run on, like vt's."""
        daemon, client = await self.daemon_on()
        sid = await self.create(["cat"])
        info = await client.wait_status(sid, "running", 20)
        await daemon.stop()
        self.assertTrue(pid_alive(info["pid"]))
        saved = json.loads((daemon.control_dir / sid / "session.json").read_text())
        self.assertEqual(saved["status"], "running")

    async def test_restart_in_place(self) -> None:
        """A restart in place with held sessions: they go on, each number once."""
        daemon, client = await self.daemon_on()
        sid = await self.create(COUNTER)
        await client.wait_status(sid, "running", 20)
        last = await count_past(client, sid, 50)
        await daemon.restart()
        self.assertEqual((await client.session(sid))["status"], "running")
        await count_past(client, sid, last)
        await client.request("DELETE", f"/api/sessions/{sid}")
        await client.wait_status(sid, "exited", 10)
        numbers = counted(recorded_output(daemon.control_dir / sid / "stdout"))
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
