# -*- test-case-name: tests.test_session -*-
"""The kinds of session, each a :class:`vibetwist.sessions.session.Session` put together from parts.

========================  ===========================  ==========================  ===================
kind                      process (input, signals)     source (output, recording)  store (session.json)
========================  ===========================  ==========================  ===================
a new program             the daemon's PTY, once up    :class:`OwnedSource`        :class:`OwnInfoStore`
a new program, held       :class:`IPCLink`, once up    :class:`ForwardedSource`    :class:`SharedInfoStore`
handed over (restart)     the same PTY, adopted        :class:`OwnedSource`, on    :class:`OwnInfoStore`
found on disk, ended      none                         :class:`OwnedSource`        :class:`OwnInfoStore`
another process's         :class:`IPCLink`             :class:`ForwardedSource`    :class:`SharedInfoStore`
========================  ===========================  ==========================  ===================

This is the one place that knows the kinds apart: everything else talks to
:class:`vibetwist.interfaces.ISession`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from vibetwist.interfaces import IInfoStore, ILauncher, ISessionSource
from vibetwist.model.asciicast import Header, encode_header
from vibetwist.model.controldir import ControlDir
from vibetwist.model.handover import HandedSession
from vibetwist.model.info import LaunchPlan, SessionInfo, Status
from vibetwist.screen.terminal import TerminalScreen
from vibetwist.sessions.events import SessionEvents
from vibetwist.sessions.forwarded import (
    ForwardedSource,
    SharedInfoStore,
    history_exit,
    last_size,
    whole_lines_end,
)
from vibetwist.sessions.held import HolderLauncher, HolderStart
from vibetwist.sessions.ipclink import IPCLink
from vibetwist.sessions.owned import OwnedSource, OwnInfoStore, PTYStart, file_size, read_header
from vibetwist.sessions.pty import SpawnQueue
from vibetwist.sessions.recording import RecordingReader
from vibetwist.sessions.screenfeed import ScreenFeed, ScreenScheduler
from vibetwist.sessions.session import Session
from vibetwist.sessions.tally import Tally


def is_forwarded(info: SessionInfo, folder: Path, appeared: bool = False) -> bool:
    """Whether a session found on disk is run by another process.

    It is when it says so (``attachedViaVT``), when it has an ipc.sock, or when
    it appeared while the daemon runs: the daemon knows every session it
    started, so a live one it comes upon then is another process's, even
    before that process has made its ipc.sock. (VibeTunnel's forwarder writes
    session.json, with ``attachedViaVT`` false, and the recording's header
    before it listens on ipc.sock.)

    :param appeared: whether the folder turned up after the daemon started.
    """
    if info.status is Status.EXITED:
        return False
    return appeared or info.attached_via_vt or (folder / "ipc.sock").exists()


@attrs.frozen
class Shared:
    """What the sessions of one daemon share, whatever their kind."""

    reactor: Any
    #: Feeds every screen its output, a slice per turn.
    screens: ScreenScheduler
    #: Lines of scrollback each screen keeps.
    scrollback: int
    #: Where lifecycles and activity report (GET /api/events).
    events: SessionEvents | None = None
    #: What the sessions count (GET /metrics).
    tally: Tally | None = None


def _assemble(
    info: SessionInfo,
    files: ControlDir,
    shared: Shared,
    *,
    source: ISessionSource,
    store: IInfoStore,
    end: int,
    size: tuple[int, int] | None = None,
    started: float | None = None,
) -> Session:
    path = files.recording_path(info.id)
    screen = TerminalScreen(info.initial_cols, info.initial_rows, shared.scrollback)
    feed = ScreenFeed(screen, RecordingReader(path, len(source.header_line)), shared.screens)
    feed.recorded(end)
    return Session(
        info,
        reactor=shared.reactor,
        recording_path=path,
        screen=screen,
        feed=feed,
        source=source,
        store=store,
        size=size,
        events=shared.events,
        tally=shared.tally,
        started=started,
    )


def _header_line(info: SessionInfo, plan: LaunchPlan, shell: str) -> bytes:
    """The recording's header for a new session."""
    header = Header(
        width=info.initial_cols,
        height=info.initial_rows,
        timestamp=int(time.time()),
        command=" ".join(info.command),
        title=info.name,
        env={"TERM": plan.env.get("TERM", "xterm-256color"), "SHELL": shell},
    )
    return encode_header(header)


def new_session(
    info: SessionInfo,
    plan: LaunchPlan,
    files: ControlDir,
    shared: Shared,
    *,
    launcher: ILauncher,
    spawns: SpawnQueue,
    max_recording: int | None,
    shell: str,
) -> Session:
    """A new session, its program queued to start.

    Nothing touches the disk or forks here, so a create is answered as fast
    as any request; the files are made and the program started on following
    reactor turns, one session per turn.
    """
    header_line = _header_line(info, plan, shell)
    source = OwnedSource(files, info.id, header_line, max_recording=max_recording)
    session = _assemble(
        info,
        files,
        shared,
        source=source,
        store=OwnInfoStore(files),
        end=len(header_line),
    )
    PTYStart(session, source, launcher, plan, spawns).queue()
    return session


def held_session(
    info: SessionInfo,
    plan: LaunchPlan,
    files: ControlDir,
    shared: Shared,
    *,
    holders: HolderLauncher,
    spawns: SpawnQueue,
    shell: str,
    watch: Callable[[str], None],
) -> Session:
    """A new session whose program a holder process runs (``--sessions-outlive-daemon``).

    Like :func:`new_session` it is answered at once and started on the following
    turns (its files, then its holder); from then on it is served as another
    process's session, which it is: it goes on if the daemon stops or dies.

    :param watch: follows the session's folder once it is made.
    """
    info = attrs.evolve(info, attached_via_vt=True)
    header_line = _header_line(info, plan, shell)
    link = IPCLink(shared.reactor, files.session_dir(info.id) / "ipc.sock", None, info.id)
    store = SharedInfoStore(files, info.id)
    source = ForwardedSource(files, info.id, header_line, len(header_line), link, store, shared.reactor)
    source.awaiting_folder = True
    session = _assemble(
        info,
        files,
        shared,
        source=source,
        store=store,
        end=len(header_line),
    )
    session.saving = False  # until its folder is made
    HolderStart(session, source, link, files, holders, plan, spawns, watch).queue()
    return session


def adopted_session(
    info: SessionInfo,
    handed: HandedSession,
    files: ControlDir,
    shared: Shared,
    *,
    launcher: ILauncher,
    max_recording: int | None,
) -> Session:
    """A program an earlier daemon of this process ran, taken over after a restart in place.

    Its recording goes on where that daemon stopped (its UTF-8 decoder's held
    bytes too), its event times keep their origin, and its screen is rebuilt
    from the recording. A delete under way gets its SIGKILL when it was due.
    """
    path = files.recording_path(info.id)
    source = OwnedSource(
        files, info.id, read_header(path), max_recording=max_recording, resumed=handed.output
    )
    session = _assemble(
        info,
        files,
        shared,
        source=source,
        store=OwnInfoStore(files),
        end=file_size(path),
        size=handed.size,
        started=handed.started,
    )
    process = launcher.adopt(handed.terminal, session)
    session.spawned(process)
    if handed.terminal.unwritten:
        process.write(handed.terminal.unwritten)
    if handed.kill_in is not None:
        session.kill(grace=handed.kill_in)
    return session


def found_session(
    info: SessionInfo,
    files: ControlDir,
    shared: Shared,
) -> Session:
    """A session found on disk whose program is gone: its recording can be read, and it has exited."""
    path = files.recording_path(info.id)
    end = file_size(path)
    source = OwnedSource(files, info.id, read_header(path), found_end=end)
    session = _assemble(
        info,
        files,
        shared,
        source=source,
        store=OwnInfoStore(files),
        end=end,
    )
    session.end(info.exit_code)
    return session


def forwarded_session(
    info: SessionInfo,
    files: ControlDir,
    shared: Shared,
) -> Session:
    """A running session of another process found on disk, with its history so far."""
    path = files.recording_path(info.id)
    header_line = read_header(path)
    end = whole_lines_end(path)
    link = IPCLink(shared.reactor, files.session_dir(info.id) / "ipc.sock", info.pid, info.id)
    source = ForwardedSource(
        files, info.id, header_line, end, link, SharedInfoStore(files, info.id), shared.reactor
    )
    size = last_size(path, header_line, end, (info.initial_cols, info.initial_rows))
    session = _assemble(
        info,
        files,
        shared,
        source=source,
        store=source.store,
        end=end,
        size=size,
    )
    session.process = link
    ended = history_exit(path, len(header_line), end)
    if ended is not None:
        # It ended between its session.json being read and its recording.
        session.end(ended.code)
    else:
        link.start()
    return session
