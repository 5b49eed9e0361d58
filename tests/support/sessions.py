"""One session at a time, in memory: L{Harness} makes sessions with a fake launcher, a clock
and a control directory in a temporary folder, and reads back what they wrote."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.asciicast import parse_line
from vibetwist.model.controldir import ControlDir
from vibetwist.model.handover import HandedSession
from vibetwist.model.info import LaunchPlan, SessionInfo, Status
from vibetwist.sessions import kinds
from vibetwist.sessions.events import SessionEvent, SessionEvents
from vibetwist.sessions.pty import SpawnQueue
from vibetwist.sessions.screenfeed import ScreenScheduler
from vibetwist.sessions.session import Session
from vibetwist.sessions.tally import Tally
from vibetwist.testing import FakeLauncher


class Harness:
    """A clock, a fake launcher and a control directory in a temporary folder; the
    sessions' events (timed by the clock) are kept in C{published}, and they count into
    C{tally}."""

    def __init__(self, case: SynchronousTestCase, max_recording: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp())
        case.addCleanup(shutil.rmtree, self.root, True)
        self.files = ControlDir(self.root / "control")
        self.files.create()
        self.clock = Clock()
        self.launcher = FakeLauncher()
        self.spawns = SpawnQueue(self.clock)
        self.screens = ScreenScheduler(self.clock, busy_delay=0)
        self.max_recording = max_recording
        self.count = 0
        self.events = SessionEvents(clock=self.clock.seconds)
        self.published: list[SessionEvent] = []
        self.events.subscribe(self.published.append)
        self.tally = Tally()

    def create(self, cols: int = 80, rows: int = 24, command: tuple[str, ...] = ("cat",)) -> Session:
        self.count += 1
        info = SessionInfo(
            id=f"session-{self.count}",
            name=f"s{self.count}",
            command=command,
            working_dir="/",
            status=Status.STARTING,
            started_at="2026-01-01T00:00:00.000Z",
            initial_cols=cols,
            initial_rows=rows,
        )
        plan = LaunchPlan("/bin/cat", ("cat",), {"TERM": "xterm-256color"}, "/")
        return kinds.new_session(
            info,
            plan,
            self.files,
            kinds.Shared(self.clock, self.screens, 100, self.events, self.tally),
            launcher=self.launcher,
            spawns=self.spawns,
            max_recording=self.max_recording,
            shell="/bin/sh",
        )

    def adopt(self, handed: HandedSession) -> Session:
        """The session handed over, as the next daemon of the process takes it over."""
        info = SessionInfo.from_json(self.files.load_info(handed.id))
        return kinds.adopted_session(
            info,
            handed,
            self.files,
            kinds.Shared(self.clock, self.screens, 100),
            launcher=self.launcher,
            max_recording=self.max_recording,
        )

    def records(self, session: Session) -> list[object]:
        data = session.recording_path.read_bytes()
        return [parse_line(line) for line in data.splitlines(keepends=True)]

    def saved(self, session: Session) -> dict:
        return json.loads(self.files.info_path(session.id).read_bytes())
