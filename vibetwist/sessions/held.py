# -*- test-case-name: tests.test_outlive -*-
"""Sessions whose program a holder process runs, so that it outlives the daemon.

With ``--sessions-outlive-daemon`` each new session gets a holder
(:mod:`vibetwist.vt._hold`, vt's forwarder without a terminal): the daemon
makes the session's folder, recording header and session.json, then asks the
holder factory for a holder (one step per reactor turn, like any start),
which writes the recording and listens on ``ipc.sock`` as ``vt`` does.
From then on the daemon serves it as it serves a ``vt`` session
(:class:`vibetwist.sessions.forwarded.ForwardedSource` and
:class:`vibetwist.sessions.ipclink.IPCLink`), and a daemon started after this
one has died finds it the same way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from signal import SIGKILL
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from vibetwist.errors import FormatError
from vibetwist.model.asciicast import encode_event, encode_exit
from vibetwist.model.controldir import ControlDir
from vibetwist.model.holder import encode_spec
from vibetwist.model.info import LaunchPlan, Status
from vibetwist.sessions.forwarded import ForwardedSource
from vibetwist.sessions.ipclink import IPCLink
from vibetwist.sessions.pty import SpawnQueue
from vibetwist.sessions.recording import Recording

#: Seconds a holder may take to set its session up before the session is ended.
START_LIMIT = 30.0


class _Factory(ProcessProtocol):
    """The holder factory's process, as its launcher sees it: answer lines, and its end."""

    def __init__(self, launcher: HolderLauncher) -> None:
        self._launcher = launcher
        self._pending = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            kind, _, session_id = line.decode("utf-8", "replace").partition(" ")
            self._launcher.answered(session_id, kind == "ready")

    def processEnded(self, reason: Failure) -> None:
        self._launcher.factory_ended(self)
        self.ended.callback(None)


class HolderLauncher:
    """Starts holders through one holder factory (``python -m vibetwist.vt._hold``).

    The factory is spawned once (posix_spawn through Twisted, so the daemon never
    forks) and again if it ends; each holder is a fork of it, which costs it about
    a millisecond. What goes wrong in it or in a holder goes to the daemon's
    standard error, so it is in the daemon's log.
    """

    log = Logger()

    def __init__(self, reactor: Any, executable: str = sys.executable) -> None:
        self._reactor = reactor
        self._executable = executable
        self._factory: _Factory | None = None
        self._waiting: dict[str, Callable[[int], None]] = {}

    @property
    def pending(self) -> int:
        """Holders asked for whose session is not set up yet."""
        return len(self._waiting)

    def _ensure_factory(self) -> _Factory:
        if self._factory is None:
            factory = _Factory(self)
            self._reactor.spawnProcess(
                factory,
                self._executable,
                [self._executable, "-m", "vibetwist.vt._hold"],
                env=dict(os.environ),
                path=None,
                childFDs={0: "w", 1: "r", 2: 2},
            )
            self._factory = factory
        return self._factory

    def prepare(self) -> None:
        """Start the factory now, so the first session does not wait for it."""
        self._ensure_factory()

    def start(self, session_id: str, spec: str, env: dict[str, str], done: Callable[[int], None]) -> None:
        """Start the holder of a session; done(0) once it is set up, done(1) if it failed."""
        factory = self._ensure_factory()
        self._waiting[session_id] = done
        request = json.dumps({"id": session_id, "spec": spec, "env": env}, ensure_ascii=False)
        factory.transport.write(request.encode("utf-8", "surrogateescape") + b"\n")  # type: ignore[union-attr]

    def answered(self, session_id: str, ready: bool) -> None:
        done = self._waiting.pop(session_id, None)
        if done is not None:
            done(0 if ready else 1)

    def factory_ended(self, factory: _Factory) -> None:
        if self._factory is factory:
            self._factory = None
        waiting, self._waiting = self._waiting, {}
        if waiting:
            self.log.error("the holder factory ended with {n} holders not set up", n=len(waiting))
        for done in waiting.values():
            done(1)

    def stop(self) -> Deferred[None]:
        """End the factory (its holders go on); fires once it has ended."""
        factory = self._factory
        if factory is None:
            return succeed(None)
        self._factory = None
        factory.transport.closeStdin()  # type: ignore[union-attr]
        return factory.ended


class HolderStart:
    """Starts a held session a step per reactor turn: its files, then its holder."""

    log = Logger()

    def __init__(
        self,
        session: Any,
        source: ForwardedSource,
        link: IPCLink,
        files: ControlDir,
        holders: HolderLauncher,
        plan: LaunchPlan,
        spawns: SpawnQueue,
        watch: Callable[[str], None],
    ) -> None:
        self._session = session
        self._source = source
        self._link = link
        self._files = files
        self._holders = holders
        self._plan = plan
        self._spawns = spawns
        self._watch = watch
        self._prepared = False
        self._killed = False

    def queue(self) -> None:
        self._session.cancel_start = self._spawns.add(self._step)

    def _step(self) -> None:
        session = self._session
        session.cancel_start = None
        if not session.live:
            return
        if not self._prepared:
            self._prepare()
            return
        # A kill while the holder starts cannot take it back: its program is killed once it runs.
        session.cancel_start = self._kill_when_set_up
        spec = encode_spec(str(self._files.root), session.info, self._plan)
        try:
            self._holders.start(session.id, spec, self._plan.env, self._set_up)
        except OSError as e:
            self._failed(f"cannot start the session's holder: {e.strerror}")

    def _prepare(self) -> None:
        session = self._session
        self._prepared = True
        try:
            self._files.make_session_dir(session.id)
            recording = Recording(self._files.recording_path(session.id))
            recording.append(session.header_line, final=True)
            recording.close()
            self._files.save_info(session.id, session.info.to_json())
        except OSError as e:
            session.log.error("cannot make the files of {id}: {error}", id=session.id, error=e)
            self._source.awaiting_folder = False
            session.end(None)
            return
        session.saving = True
        self._source.awaiting_folder = False
        self._watch(session.id)
        self.queue()

    def _kill_when_set_up(self) -> None:
        self._killed = True

    def _set_up(self, code: int) -> None:
        session = self._session
        if session.cancel_start == self._kill_when_set_up:
            session.cancel_start = None
        if code != 0:
            self._failed("the session's holder could not set it up (the daemon's log says why)")
            return
        if self._killed:
            self._kill_program()
            return
        self._link.start()
        self._source.info_changed()
        self._source.grown()

    def _kill_program(self) -> None:
        """The session was deleted while its holder started: its program is ended now."""
        try:
            pid = self._files.load_info(self._session.id).get("pid")
        except FormatError:
            return
        if isinstance(pid, int) and pid > 0:
            try:
                os.killpg(pid, SIGKILL)
            except OSError:
                pass

    def _failed(self, why: str) -> None:
        """Nobody writes the recording: the daemon ends it itself, with code 127."""
        session = self._session
        session.log.error("session {id}: {why}", id=session.id, why=why)
        try:
            recording = Recording(self._files.recording_path(session.id))
            recording.append(encode_event(0.0, "o", f"vibetwist: {why}\r\n"))
            recording.append(encode_exit(127, session.id), final=True)
            recording.close()
        except OSError:
            pass
        if session.status is not Status.EXITED:
            self._source.tail()
        session.end(127)
