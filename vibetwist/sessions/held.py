# -*- test-case-name: tests.test_outlive -*-
"""Sessions whose program a holder process runs, so that it outlives the daemon.

With ``--sessions-outlive-daemon`` each new session gets a holder
(:mod:`vibetwist.vt._hold`, vt's forwarder without a terminal): the daemon
makes the session's folder, recording header and session.json, then spawns
the holder (posix_spawn through Twisted, one step per reactor turn like any
start), which writes the recording and listens on ``ipc.sock`` as ``vt`` does.
From then on the daemon serves it as it serves a ``vt`` session
(:class:`vibetwist.sessions.forwarded.ForwardedSource` and
:class:`vibetwist.sessions.ipclink.IPCLink`), and a daemon started after this
one has died finds it the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from signal import SIGKILL
from typing import Any

from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from vibetwist.errors import FormatError
from vibetwist.model.asciicast import encode_event, encode_exit
from vibetwist.model.controldir import ControlDir
from vibetwist.model.holder import HOLD, encode_spec
from vibetwist.model.info import LaunchPlan, Status
from vibetwist.sessions.forwarded import ForwardedSource
from vibetwist.sessions.ipclink import IPCLink
from vibetwist.sessions.pty import SpawnQueue
from vibetwist.sessions.recording import Recording

#: Seconds a holder may take to set its session up before the session is ended.
START_LIMIT = 30.0


class _Started(ProcessProtocol):
    """The holder's first process: it ends once the session is set up (0) or could not be (1)."""

    def __init__(self, done: Callable[[int], None]) -> None:
        self._done = done

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        self._done(int(code) if code is not None else 1)


class HolderLauncher:
    """Starts holders (``python -m vibetwist.vt._hold``) without forking the daemon."""

    log = Logger()

    def __init__(self, reactor: Any, executable: str = sys.executable) -> None:
        self._reactor = reactor
        self._executable = executable
        #: Holders started whose session is not set up yet.
        self.pending = 0

    def start(self, session_id: str, spec: str, env: dict[str, str], done: Callable[[int], None]) -> None:
        """Start the holder of a session; done(0) once it is set up, done(1) if it failed.

        Its standard error is the daemon's, so what goes wrong in it is in the daemon's
        log; it reads and writes nothing else of the daemon's.
        """
        env = dict(env)
        env[HOLD] = spec
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.pending += 1

        def finished(code: int) -> None:
            self.pending -= 1
            done(code)

        try:
            self._reactor.spawnProcess(
                _Started(finished),
                self._executable,
                [self._executable, "-m", "vibetwist.vt._hold"],
                env=env,
                path=None,
                childFDs={0: null, 1: null, 2: 2},
            )
        except BaseException:
            self.pending -= 1
            raise
        finally:
            os.close(null)


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
            session.end(None)
            return
        session.saving = True
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
