# -*- test-case-name: tests.test_external_session -*-
"""The parts of a session whose program another process runs (``vt``, or VibeTunnel's forwarder).

That process writes the recording and session.json; :class:`ForwardedSource`
tails the recording (whole lines only, a step per reactor turn), takes in what
the other process changes in session.json, and notices a program whose process
is gone. :class:`SharedInfoStore` writes the daemon's changes into the shared
session.json under the lock both sides take. Input, resizes and kills go
through :class:`vibetwist.sessions.ipclink.IPCLink`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from vibetwist.errors import FormatError
from vibetwist.interfaces import IInfoStore, ISessionSource
from vibetwist.model.asciicast import (
    ClearDetector,
    Event,
    Exit,
    Header,
    LineSplitter,
    encode_exit,
    is_exit_line,
    parse_dimensions,
    parse_line,
)
from vibetwist.model.controldir import ControlDir
from vibetwist.model.info import SessionInfo, Status
from vibetwist.sessions.ipclink import IPCLink
from vibetwist.sessions.procfs import pid_alive
from vibetwist.sessions.tally import utf8_length

#: Bytes of a recording taken in per reactor turn; the rest follows on the next turns.
TAIL_STEP = 1 << 20
#: Seconds a program may be gone before its session is ended without its exit line.
EXIT_GRACE = 2.0
#: The longest recording line taken in (vt writes lines of at most a few hundred KB).
MAX_LINE = 16 << 20
#: Seconds a session may stay starting (its holder setting it up) before it can be found gone.
STARTING_GRACE = 30.0


@implementer(IInfoStore)
class SharedInfoStore:
    """The daemon's changes written into a session.json another process owns, keeping what it wrote."""

    #: The fields the daemon may change.
    FIELDS = ("name", "lastModified", "status", "exitCode")

    def __init__(self, files: ControlDir, session_id: str) -> None:
        self._files = files
        self._id = session_id
        #: The modification time of session.json as the daemon last wrote or read it.
        self.stamp = self.modified()

    def modified(self) -> int:
        try:
            return os.stat(self._files.info_path(self._id)).st_mtime_ns
        except OSError:
            return 0

    def save(self, info: SessionInfo) -> None:
        mine = info.to_json()

        def change(current: dict[str, Any]) -> None:
            for key in self.FIELDS:
                if key in mine:
                    current[key] = mine[key]

        try:
            self._files.update_info(self._id, change)
        finally:
            self.stamp = self.modified()


def whole_lines_end(path: Path) -> int:
    """The offset just past the last whole line of a file (a line being written is not counted)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            back = min(size, 1 << 16)
            while back:
                f.seek(size - back)
                chunk = f.read(back)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    return size - back + cut + 1
                if back == size:
                    return 0
                back = min(size, back * 4)
    except OSError:
        pass
    return 0


def history_exit(path: Path, start: int, end: int) -> Exit | None:
    """The exit line a recording's history (its bytes from start to end) ends with, if it does."""
    start = max(start, end - 4096)
    try:
        with open(path, "rb") as f:
            f.seek(start)
            tail = f.read(end - start)
    except OSError:
        return None
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not is_exit_line(last):
        return None
    try:
        record = parse_line(last)
    except FormatError:
        return None
    return record if isinstance(record, Exit) else None


def last_size(path: Path, header_line: bytes, end: int, default: tuple[int, int]) -> tuple[int, int]:
    """The terminal size a recording ends with: its last resize, else its header's."""
    size = default
    try:
        header = parse_line(header_line)
    except FormatError:
        header = None
    if isinstance(header, Header):
        size = (header.width, header.height)
    try:
        with open(path, "rb") as f:
            f.seek(max(len(header_line), end - (1 << 20)))
            tail = f.read(end - f.tell())
    except OSError:
        return size
    for line in tail.split(b"\n")[::-1]:
        if b'"r"' in line:
            try:
                record = parse_line(line)
                if isinstance(record, Event) and record.kind == "r":
                    return parse_dimensions(record.data)
            except FormatError:
                continue
    return size


@implementer(ISessionSource)
class ForwardedSource:
    """Output and state read from the files another process writes."""

    log = Logger()

    def __init__(
        self,
        files: ControlDir,
        session_id: str,
        header_line: bytes,
        end: int,
        link: IPCLink,
        store: SharedInfoStore,
        reactor: Any,
    ) -> None:
        self._files = files
        self._id = session_id
        self.header_line = header_line
        #: Just past the last whole line taken in.
        self.end = end
        self._link = link
        self.store = store
        self._reactor = reactor
        self._path = files.recording_path(session_id)
        #: How far the recording has been read (a part line may be held past end).
        self._read_at = end
        self._held = LineSplitter()
        self._skipped = 0
        self._clears = ClearDetector()
        self._tail_call: Any = None
        self._fd: int | None = None
        self._gone_since: float | None = None
        self._read_failed = False
        self._starting_since: float | None = None
        #: Whether the session's folder is still to be made (a held session being started).
        self.awaiting_folder = False
        self._session: Any = None
        self._tally: Any = None

    def bind(self, session: Any) -> None:
        self._session = session
        self._tally = session.tally

    # -- the recording, as the other process writes it --------------------------------

    def output(self, data: bytes) -> None:
        raise NotImplementedError("another process records this session's output")

    def flush(self) -> None:
        """Whatever the other process wrote is taken in by tailing."""

    def resized(self, cols: int, rows: int) -> None:
        """The other process records the resize; its line tells every viewer."""

    def files_changed(self, name: str) -> None:
        if name == "stdout":
            self.grown()
        elif name == "session.json":
            self.info_changed()

    def grown(self) -> None:
        """The recording grew: take in its new lines on the next turn (one read for a burst)."""
        if self._tail_call is None and self._session.live:
            self._tail_call = self._reactor.callLater(0, self._tail_more)

    def _tail_more(self) -> None:
        self._tail_call = None
        self.tail()

    def tail(self) -> None:
        """Take in the whole lines added to the recording (up to TAIL_STEP now, the rest soon)."""
        session = self._session
        if not session.live or self._tail_call is not None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            data = os.pread(self._fd, TAIL_STEP, self._read_at)
        except OSError as e:
            if e.errno == errno.ELOOP:
                # Its recording was swapped for a symbolic link: nothing of it is to be trusted.
                self.log.error("{id}: its recording became a symbolic link; ending it", id=self._id)
                session.end(None)
            elif e.errno != errno.ENOENT:
                if not self._read_failed:
                    self._read_failed = True
                    self._tally.recording_errors["read"] += 1
                self.log.warn("cannot read {path}: {error}", path=str(self._path), error=e)
            return
        self._read_failed = False
        if not data:
            return
        self._read_at += len(data)
        for line in self._held.feed(data):
            if self._skipped:
                # The end of a line too long to hold: pass over it whole.
                self._recorded_to(self.end + self._skipped + len(line))
                self._skipped = 0
                continue
            self._line(line)
            if not session.live:
                return
        held = len(self._held.pending)
        if held > MAX_LINE:
            # No writer of ours makes such a line: pass over it rather than hold it all.
            self.log.warn("{id}: a recording line over {n} bytes is passed over", id=self._id, n=MAX_LINE)
            self._skipped += held
            self._held = LineSplitter()
        if len(data) == TAIL_STEP:
            self._tail_call = self._reactor.callLater(0, self._tail_more)

    def _catch_up(self) -> None:
        """Take in the whole recording now, a tail already due included: the session is about
        to end, and what it printed last must reach its viewers first."""
        while self._session.live:
            if self._tail_call is not None and self._tail_call.active():
                self._tail_call.cancel()
            self._tail_call = None
            self.tail()
            if self._tail_call is None:
                return

    def _recorded_to(self, offset: int) -> None:
        self.end = offset
        self._session.feed.recorded(offset)

    def _line(self, line: bytes) -> None:
        offset = self.end
        try:
            record = parse_line(line)
        except FormatError:
            record = None
        self._recorded_to(offset + len(line))
        session = self._session
        if isinstance(record, Exit):
            session.end(record.code)
            return
        if not isinstance(record, Event):
            return
        if record.kind == "r":
            try:
                session.size = parse_dimensions(record.data)
            except FormatError:
                pass
        elif record.kind == "o":
            self._tally.output_bytes += utf8_length(record.data)
            if self._clears.feed(record.data):
                session.cleared(offset, save=False)
        session.publish(line, record)

    # -- session.json and the other process ---------------------------------------------

    def info_changed(self) -> None:
        """session.json was replaced: take in what the other process changed."""
        stamp = self.store.modified()
        if stamp != self.store.stamp:
            self.store.stamp = stamp
            self._reread_info()

    def _reread_info(self) -> None:
        session = self._session
        try:
            fresh = SessionInfo.from_json(self._files.load_info(self._id))
        except FormatError:
            return
        if fresh.id != self._id:
            return
        info = session.info
        session.merge(
            name=fresh.name,
            pid=fresh.pid,
            exit_code=fresh.exit_code if fresh.exit_code is not None else info.exit_code,
            last_modified=fresh.last_modified,
        )
        if fresh.pid is not None:
            self._link.pid = fresh.pid
        if fresh.status is Status.RUNNING and session.status is Status.STARTING:
            session.spawned(self._link)
        if fresh.status is Status.EXITED and session.live:
            # The forwarder says it has ended: its exit line, if it wrote one, is in by now.
            self._catch_up()
            if session.live:
                session.end(fresh.exit_code)

    def check(self) -> None:
        """Catch up with the files and notice a program whose process is gone."""
        session = self._session
        if not session.live:
            return
        self.tail()
        self.info_changed()
        if not session.live:
            return
        if session.status is Status.STARTING:
            # Its holder is still setting it up (vibetwist.sessions.held), with no pid or
            # ipc.sock yet: it is given time before it can be found gone.
            now = self._reactor.seconds()
            if self._starting_since is None:
                self._starting_since = now
            if now - self._starting_since < STARTING_GRACE:
                return
        pid = session.info.pid
        socket = self._files.session_dir(self._id) / "ipc.sock"
        gone = not pid_alive(pid, self._id) if pid is not None else not socket.exists()
        if not gone:
            self._gone_since = None
            return
        # The program has ended; its forwarder writes the exit line and session.json just
        # after. Only if they do not come (the forwarder was killed too) is it ended here.
        now = self._reactor.seconds()
        if self._gone_since is None:
            self._gone_since = now
        if now - self._gone_since >= EXIT_GRACE:
            self._catch_up()
            self._reread_info()
            if session.live:
                session.end(session.info.exit_code)

    # -- endings -------------------------------------------------------------------------

    def _stop_reading(self) -> None:
        if self._tail_call is not None and self._tail_call.active():
            self._tail_call.cancel()
        self._tail_call = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self, code: int | None) -> bytes:
        """The other process wrote the exit line (or is gone): nothing is written here."""
        self._stop_reading()
        self._link.hang_up()
        return encode_exit(code, self._id)

    def close(self) -> None:
        self._stop_reading()

    def daemon_stopping(self) -> None:
        """The program is another process's: it keeps running; the daemon lets go of it."""
        self._link.hang_up()
        self._session.close()

    def folder_removed(self) -> bool:
        """Another process's session without its folder is gone (unless it is yet to be made)."""
        return not self.awaiting_folder

    def hand_over(self) -> None:
        """The other process writes the recording: the next daemon finds it on disk."""
