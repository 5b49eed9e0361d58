# -*- test-case-name: tests.test_external_session -*-
"""The sessions of one daemon: creating, finding, ending and cleaning them up."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from signal import SIGKILL
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import Cooperator
from twisted.logger import Logger

from vibetwist._reactor.cooperate import budget_cooperator
from vibetwist.errors import BadRequest, Conflict, FormatError, NotFound
from vibetwist.interfaces import ILauncher, ISession
from vibetwist.model.controldir import ControlDir, unsafe_folder
from vibetwist.model.handover import HandedSession
from vibetwist.model.info import SessionInfo, Status, check_size, now_iso
from vibetwist.model.launch import default_name, plan_launch, resolve_directory
from vibetwist.screen.terminal import DEFAULT_SCROLLBACK
from vibetwist.sessions import kinds
from vibetwist.sessions.activity import ActivityMonitor
from vibetwist.sessions.events import SessionEvents
from vibetwist.sessions.held import HolderLauncher
from vibetwist.sessions.procfs import pid_runs_session
from vibetwist.sessions.pty import SpawnQueue, signal_sessions
from vibetwist.sessions.screenfeed import ScreenScheduler
from vibetwist.sessions.session import KILL_GRACE
from vibetwist.sessions.tally import Tally
from vibetwist.sessions.watcher import ControlDirWatcher

TITLE_MODES = frozenset({"none", "filter", "static", "dynamic"})


class SessionService(Service):
    """Owns every session of the daemon and its control directory."""

    log = Logger()

    def __init__(
        self,
        control_dir: Path,
        *,
        reactor: Any,
        launcher: ILauncher,
        shell: str,
        scrollback: int = DEFAULT_SCROLLBACK,
        max_recording: int | None = None,
        environ: dict[str, str] | None = None,
        screens: ScreenScheduler | None = None,
        watch_files: bool = True,
        background: Cooperator | None = None,
        events: SessionEvents | None = None,
        tally: Tally | None = None,
        holders: HolderLauncher | None = None,
        command_min_seconds: float = 3.0,
    ) -> None:
        """
        :param holders: with them, each new session's program is run by a holder process of
            its own and outlives the daemon (``--sessions-outlive-daemon``).
        :param command_min_seconds: how long a command typed into a session's shell must
            run for its end to be an event (``--command-min-seconds``).
        """
        self.files = ControlDir(control_dir)
        self._reactor = reactor
        self._launcher = launcher
        self.shell = shell
        self.scrollback = scrollback
        self.max_recording = max_recording
        self._environ = dict(os.environ if environ is None else environ)
        self.home = self._environ.get("HOME") or os.path.expanduser("~")
        self.spawns = SpawnQueue(reactor)
        self.holders = holders
        self.screens = screens if screens is not None else ScreenScheduler(reactor)
        #: Where slow chores (removing many folders) run, a slice per reactor turn.
        self._background = background if background is not None else budget_cooperator(reactor, 0.002)
        self.sessions: dict[str, ISession] = {}
        #: What happens to the sessions, as it happens (GET /api/events).
        self.events = events if events is not None else SessionEvents()
        #: What running sessions do (bells, titles, commands, waiting for input).
        self.activity = ActivityMonitor(reactor, self.events, command_min_seconds)
        #: What the sessions count (GET /metrics).
        self.tally = tally if tally is not None else Tally()
        self._skipped: dict[str, str] = {}
        #: Sessions forgotten whose folders are still being deleted: never found again.
        self._removing: set[str] = set()
        #: Sessions an earlier daemon of this process handed over (a restart in place),
        #: taken over when the service starts.
        self.handed: tuple[HandedSession, ...] = ()
        #: watch_files=False: the control dir is rescanned on a timer, inotify is not used.
        self.watcher = ControlDirWatcher(
            self.files.root, reactor, self.rescan, self._folder_changed, use_inotify=watch_files
        )

    def _shared(self) -> kinds.Shared:
        """What every session of this daemon is made with."""
        return kinds.Shared(self._reactor, self.screens, self.scrollback, self.events, self.tally)

    # -- service ---------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.files.create()
        self.watcher.start()
        handed, self.handed = self.handed, ()
        for one in handed:
            self._adopt(one)
        self.load()
        if self.holders is not None:
            self.holders.prepare()

    def stopService(self) -> Deferred[Any]:
        """End every running session the daemon started (SIGTERM, then SIGKILL); sessions
        another process runs keep running."""
        super().stopService()
        self.watcher.stop()
        self.activity.stop()
        self.stop_helpers()
        waits = []
        for session in self.sessions.values():
            wait = session.daemon_stopping()
            if wait is not None:
                waits.append(wait)
        for session in self.sessions.values():
            session.flush()
        if not waits:
            return succeed(None)
        done: Deferred[Any] = DeferredList(waits)
        timeout = self._reactor.callLater(KILL_GRACE + 2, done.cancel)
        done.addBoth(lambda r: timeout.cancel() if timeout.active() else None)
        return done

    def load(self) -> None:
        """List the sessions found in the control directory; running ones whose program is gone
        are shown as exited, and programs left behind by a daemon that died are ended.
        Sessions another process runs (``vt``) are followed while they run."""
        orphans: dict[int, int] = {}
        for session_id in self.files.session_ids():
            if session_id not in self.sessions:
                self._load_one(session_id, orphans)
        if orphans:
            for _ in signal_sessions(orphans):
                pass  # one pass over /proc for all of them, at start-up
        self.log.info("found {n} sessions in {path}", n=len(self.sessions), path=str(self.files.root))

    def _adopt(self, handed: HandedSession) -> None:
        """Take over a session an earlier daemon of this process ran; one that cannot be is
        ended (its program killed, its terminal closed) and found on disk like any other."""
        try:
            info = SessionInfo.from_json(self.files.load_info(handed.id))
            if info.id != handed.id or info.status is Status.EXITED:
                raise FormatError("its session.json does not show it running")
            session = kinds.adopted_session(
                info,
                handed,
                self.files,
                self._shared(),
                launcher=self._launcher,
                max_recording=self.max_recording,
            )
        except (OSError, FormatError) as e:
            self.log.error("cannot take over session {id}: {error}; ending it", id=handed.id, error=e)
            try:
                os.close(handed.terminal.fd)
            except OSError:
                pass
            for _ in signal_sessions({handed.terminal.pid: SIGKILL}):
                pass
            return
        self.sessions[handed.id] = session
        session.watch(self.activity)

    def hand_over(self) -> list[HandedSession]:
        """Let go of every session the next daemon of this process is to take over."""
        handed = []
        for session in self.sessions.values():
            one = session.hand_over()
            if one is not None:
                handed.append(one)
        return handed

    def take_back(self) -> None:
        """A restart that did not happen: every session carries on."""
        for session in self.sessions.values():
            session.take_back()

    def _load_one(self, session_id: str, orphans: dict[int, int], appeared: bool = False) -> None:
        if session_id in self._removing:
            return
        if not self.files.info_path(session_id).exists():
            return  # a folder being made: its session.json comes with a change seen later
        unsafe = unsafe_folder(self.files.session_dir(session_id))
        if unsafe is not None:
            if self._skipped.get(session_id) != unsafe:
                self._skipped[session_id] = unsafe
                self.log.warn("skipping {id}: {reason}", id=session_id, reason=unsafe)
            return
        try:
            info = SessionInfo.from_json(self.files.load_info(session_id))
        except FormatError as e:
            if self._skipped.get(session_id) != str(e):
                self._skipped[session_id] = str(e)
                self.log.warn("skipping {id}: {error}", id=session_id, error=e)
            return
        if info.id != session_id:
            if self._skipped.get(session_id) != "id":
                self._skipped[session_id] = "id"
                self.log.warn("skipping {id}: its session.json names another id", id=session_id)
            return
        self._skipped.pop(session_id, None)
        folder = self.files.session_dir(session_id)
        if kinds.is_forwarded(info, folder, appeared):
            if not self._external_ready(info):
                return  # its files are still being made: seen again on the next change
            forwarded = kinds.forwarded_session(info, self.files, self._shared())
            self.sessions[session_id] = forwarded
            forwarded.watch(self.activity)
            self.watcher.watch(session_id)
            forwarded.check()
            if appeared and forwarded.status is Status.RUNNING:
                # Its program started while the daemon ran, already running when found.
                self.events.started(forwarded.info)
            return
        if info.status is not Status.EXITED and info.pid is not None:
            if pid_runs_session(info.pid, session_id) and not info.attached_via_vt:
                # Left behind by a daemon that died: nobody can reach its terminal now.
                orphans[info.pid] = SIGKILL
        self.sessions[session_id] = kinds.found_session(info, self.files, self._shared())

    def _external_ready(self, info: SessionInfo) -> bool:
        """Whether an external session's recording has its header line yet."""
        try:
            with open(self.files.recording_path(info.id), "rb") as f:
                return f.readline(1 << 20).endswith(b"\n")
        except OSError:
            return False

    def rescan(self) -> None:
        """Take in sessions that appeared, drop those whose folder vanished, check external ones."""
        present = set(self.files.session_ids())
        for session_id, session in list(self.sessions.items()):
            if session_id not in present and session.folder_removed():
                session.close()
                del self.sessions[session_id]
                self.watcher.unwatch(session_id)
        for session_id in present - self.sessions.keys():
            self._load_one(session_id, {}, appeared=True)
            # Also a folder still being made: its session.json is seen the moment it lands.
            self.watcher.watch(session_id)
        for session_id, session in list(self.sessions.items()):
            if session.status is not Status.EXITED:
                session.check()
                if session.status is Status.EXITED:
                    self.watcher.unwatch(session_id)

    def _folder_changed(self, session_id: str, name: str) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            self.rescan()
        else:
            session.files_changed(name)

    # -- sessions ----------------------------------------------------------------

    def get(self, session_id: object) -> ISession:
        """The session with that id, or NotFound."""
        if not isinstance(session_id, str) or session_id not in self.sessions:
            raise NotFound("Session not found")
        return self.sessions[session_id]

    def list(self) -> list[ISession]:
        """Every session, newest first."""
        return sorted(self.sessions.values(), key=lambda s: s.info.started_at, reverse=True)

    def unique_name(self, name: str, exclude: str | None = None) -> str:
        """name, or "name (2)", "name (3)"... if another session has it."""
        taken = {s.info.name for s in self.sessions.values() if s.id != exclude}
        if name not in taken:
            return name
        n = 2
        while f"{name} ({n})" in taken:
            n += 1
        return f"{name} ({n})"

    def create(
        self,
        command: object,
        working_dir: object = None,
        name: object = None,
        cols: object = None,
        rows: object = None,
        title_mode: object = None,
    ) -> ISession:
        """Start command in a new session; the program starts within a reactor turn or two."""
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(c, str) and c and "\0" not in c for c in command)
        ):
            raise BadRequest("Command array is required")
        cwd = resolve_directory(working_dir, self.home)
        size = check_size(80 if cols is None else cols, 24 if rows is None else rows)
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            raise BadRequest("name must be a string of at most 256 characters")
        if title_mode is not None and (not isinstance(title_mode, str) or title_mode not in TITLE_MODES):
            raise BadRequest(f"titleMode must be one of {', '.join(sorted(TITLE_MODES))}")
        session_id = str(uuid.uuid4())
        plan = plan_launch(command, cwd, session_id, self.shell, self._environ)
        label = name.strip() if isinstance(name, str) else ""
        label = label or default_name(command, cwd, self.home)
        started = now_iso(time.time())
        info = SessionInfo(
            id=session_id,
            name=self.unique_name(label),
            command=tuple(command),
            working_dir=cwd,
            status=Status.STARTING,
            started_at=started,
            last_modified=started,
            initial_cols=size[0],
            initial_rows=size[1],
            title_mode=title_mode if isinstance(title_mode, str) else None,
        )
        if self.holders is not None:
            session = kinds.held_session(
                info,
                plan,
                self.files,
                self._shared(),
                holders=self.holders,
                spawns=self.spawns,
                shell=self.shell,
                watch=self.watcher.watch,
            )
        else:
            session = kinds.new_session(
                info,
                plan,
                self.files,
                self._shared(),
                launcher=self._launcher,
                spawns=self.spawns,
                max_recording=self.max_recording,
                shell=self.shell,
            )
        self.sessions[session_id] = session
        session.watch(self.activity)
        return session

    def stop_helpers(self) -> Deferred[None]:
        """End the helper processes of the daemon (the holder factory; its holders go on);
        fires once they have ended. A new session starts them again."""
        if self.holders is None:
            return succeed(None)
        return self.holders.stop()

    @property
    def starting(self) -> int:
        """How many sessions are being started (a step queued, or a holder setting one up)."""
        return self.spawns.pending + (self.holders.pending if self.holders is not None else 0)

    def rename(self, session_id: str, name: object) -> str:
        """Rename a session; a name another session has gets a " (N)" suffix."""
        session = self.get(session_id)
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise BadRequest("name must be a non-empty string of at most 256 characters")
        unique = self.unique_name(name.strip(), exclude=session_id)
        session.rename(unique)
        return unique

    def remove(self, session_id: str) -> None:
        """Forget an exited session and delete its files."""
        session = self.get(session_id)
        if session.status is not Status.EXITED:
            raise Conflict("Session is still running")
        self._forget(session)
        self.files.remove(session_id)

    def _forget(self, session: ISession) -> None:
        session.close()
        session.removed()
        del self.sessions[session.id]
        self.watcher.unwatch(session.id)

    def cleanup_exited(self) -> Deferred[int]:
        """Remove every exited session, a few folders per reactor turn; fires with how many.

        The sessions leave the list at once; their folders (a recording may be
        large) are deleted on the background cooperator, so a thousand of them
        never hold the reactor.
        """
        exited = [s for s in self.sessions.values() if s.status is Status.EXITED]
        for session in exited:
            self._forget(session)
            self._removing.add(session.id)

        def remove_all() -> Iterator[None]:
            for session in exited:
                try:
                    self.files.remove(session.id)
                except OSError as e:
                    self.log.error("cannot remove {id}: {error}", id=session.id, error=e)
                finally:
                    self._removing.discard(session.id)
                yield None

        d = self._background.cooperate(remove_all()).whenDone()
        return d.addCallback(lambda _: len(exited))

    def counts(self) -> dict[str, int]:
        out = {status.value: 0 for status in Status}
        for session in self.sessions.values():
            out[session.status.value] += 1
        return out
