# -*- test-case-name: tests.test_external -*-
"""Sessions run by another process (``vt``, or VibeTunnel's forwarder), found in the control dir.

Such a session's program runs in the other process's PTY. The daemon learns
its output by tailing the session's ``stdout`` recording, which that process
writes, and sends it input, resizes and kills through ``ipc.sock``. Once
tailed, an external session is a Session like any other: its screen, its
viewers and every channel read the same recording.

The control directory is watched with inotify where Twisted supports it
(a new session appears at once, a line of output reaches viewers at once),
and rescanned on a timer in any case, which also notices a program whose
process is gone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from signal import SIGKILL
from typing import Any

import attrs
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from zope.interface import implementer

from vibetwist.errors import BadRequest, FormatError
from vibetwist.interfaces import ITerminalProcess
from vibetwist.model.asciicast import (
    ClearDetector,
    Event,
    Exit,
    Header,
    LineSplitter,
    is_exit_line,
    parse_line,
    parse_size,
)
from vibetwist.model.controldir import ControlDir, SocketAddress
from vibetwist.model.ipc import MAX_PAYLOAD, Decoder, MessageType, control, encode
from vibetwist.sessions.screenfeed import ScreenScheduler
from vibetwist.sessions.session import Session, SessionInfo, Status, check_size

#: Bytes of a recording taken in per reactor turn; the rest follows on the next turns.
TAIL_STEP = 1 << 20
#: Seconds between rescans when inotify watches the control dir (pid checks, missed events).
SLOW_SCAN = 1.0
#: Seconds between rescans without inotify.
FAST_SCAN = 0.1
#: Seconds a program may be gone before its session is ended without its exit line.
EXIT_GRACE = 2.0
#: The longest recording line taken in (vt writes lines of at most a few hundred KB).
MAX_LINE = 16 << 20
#: Bytes of input kept while ipc.sock is being connected; more is refused.
MAX_QUEUED = 4 * MAX_PAYLOAD


def pid_alive(pid: int, session_id: str, proc: str = "/proc") -> bool:
    """Whether pid is a live process that may be the session's (not one reusing its number)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    if stat[stat.rfind(b")") + 2 :].startswith(b"Z"):
        return False
    try:
        with open(f"{proc}/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return True  # another user's process: its number is all there is to go by
    mine = f"VIBETUNNEL_SESSION_ID={session_id}".encode()
    others = [e for e in environ if e.startswith(b"VIBETUNNEL_SESSION_ID=")]
    return not others or mine in others


def has_symlinks(folder: Path) -> bool:
    """Whether any of a session folder's files is a symbolic link (which could lead outside it)."""
    for name in ("session.json", "stdout", "ipc.sock"):
        try:
            if stat.S_ISLNK(os.lstat(folder / name).st_mode):
                return True
        except OSError:
            continue
    return False


def is_external(info: SessionInfo, folder: Path, appeared: bool = False) -> bool:
    """
    Whether a session found on disk is run by another process.

    It is when it says so (C{attachedViaVT}), when it has an ipc.sock, or when
    it appeared while the daemon runs: the daemon knows every session it
    started, so a live one it comes upon then is another process's, even
    before that process has made its ipc.sock. (VibeTunnel's forwarder writes
    session.json, with C{attachedViaVT} false, and the recording's header
    before it listens on ipc.sock.)

    @param appeared: whether the folder turned up after the daemon started.
    """
    if info.status is Status.EXITED:
        return False
    return appeared or info.attached_via_vt or (folder / "ipc.sock").exists()


class _IPCProtocol(Protocol):
    """The daemon's end of one ipc.sock connection: it only sends, and reads answers away."""

    transport: Any

    def __init__(self, owner: ExternalProcess) -> None:
        self._owner = owner
        self._decoder = Decoder()

    def connectionMade(self) -> None:
        self._owner.connected(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            self._decoder.feed(data)  # heartbeats and errors: nothing to act on
        except FormatError:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._owner.disconnected(self)


@implementer(ITerminalProcess)
class ExternalProcess:
    """A program in another process's PTY, driven through its ipc.sock."""

    log = Logger()

    def __init__(self, reactor: Any, socket_path: Path, pid: int | None, session_id: str) -> None:
        self._reactor = reactor
        self._path = socket_path
        self.pid = pid
        self._session_id = session_id
        self._protocol: _IPCProtocol | None = None
        self._connecting = False
        self._queue: list[bytes] = []
        self._queued = 0
        self._closed = False

    def _send(self, frame: bytes) -> None:
        if self._closed:
            raise BadRequest("Session is not running")
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.write(frame)
            return
        if self._queued + len(frame) > MAX_QUEUED:
            raise BadRequest("The session's program is not taking input")
        self._queue.append(frame)
        self._queued += len(frame)
        self._connect()

    def _connect(self) -> None:
        if self._connecting or self._protocol is not None:
            return
        try:
            address = SocketAddress(self._path)
        except OSError as e:
            self._failed(Failure(e))
            return
        self._connecting = True
        endpoint = UNIXClientEndpoint(self._reactor, address.address, timeout=5)
        factory = Factory.forProtocol(lambda: _IPCProtocol(self))
        factory.noisy = False
        d = endpoint.connect(factory)
        d.addErrback(self._failed)
        d.addBoth(lambda _: address.close())

    def _failed(self, failure: Failure) -> None:
        self._connecting = False
        dropped, self._queue, self._queued = len(self._queue), [], 0
        self.log.warn(
            "cannot reach {path}: {error}; {n} messages dropped",
            path=str(self._path),
            error=failure.getErrorMessage(),
            n=dropped,
        )

    def connected(self, protocol: _IPCProtocol) -> None:
        self._connecting = False
        if self._closed:
            protocol.transport.loseConnection()
            return
        self._protocol = protocol
        queue, self._queue, self._queued = self._queue, [], 0
        for frame in queue:
            protocol.transport.write(frame)

    def disconnected(self, protocol: _IPCProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def start(self) -> None:
        """Connect now, so the first keystroke does not wait for it."""
        self._connect()

    # -- ITerminalProcess ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        for start in range(0, max(len(data), 1), MAX_PAYLOAD):
            self._send(encode(MessageType.STDIN, data[start : start + MAX_PAYLOAD]))

    def resize(self, cols: int, rows: int) -> None:
        self._send(control({"cmd": "resize", "cols": cols, "rows": rows}))

    def signal_all(self, signal: int) -> None:
        if signal == SIGKILL and self.pid is not None and pid_alive(self.pid, self._session_id):
            # The last resort must not depend on the other process answering: the
            # program leads its own process group, which is signalled directly.
            try:
                os.killpg(self.pid, SIGKILL)
            except OSError as e:
                self.log.warn("cannot kill {pid}: {error}", pid=self.pid, error=e)
        self._send(control({"cmd": "kill", "signal": int(signal)}))

    def hang_up(self) -> None:
        self._closed = True
        self._queue, self._queued = [], 0
        if self._protocol is not None:
            self._protocol.transport.loseConnection()


class ExternalSession(Session):
    """A session whose program and recording belong to another process."""

    log = Logger()

    def __init__(self, info: SessionInfo, files: ControlDir, **kwargs: Any) -> None:
        self._held = LineSplitter()
        self._skipped = 0
        self._gone_since: float | None = None
        super().__init__(info, files, **kwargs)
        #: How far the recording has been read (whole lines end at recorded_end).
        self._read_at = self.recorded_end
        self._clears = ClearDetector()
        self._tail_call: Any = None
        self._fd: int | None = None
        self._info_stamp = self._info_mtime()
        self.size = self._last_size()

    @classmethod
    def attach(
        cls,
        info: SessionInfo,
        files: ControlDir,
        *,
        reactor: Any,
        screens: ScreenScheduler,
        scrollback: int,
    ) -> ExternalSession:
        """A running external session found on disk, with its history so far."""
        session = cls(info, files, reactor=reactor, screens=screens, scrollback=scrollback)
        process = ExternalProcess(reactor, files.session_dir(info.id) / "ipc.sock", info.pid, info.id)
        session._process = process
        ended = session._history_exit()
        if ended is not None:
            # It ended between its session.json being read and its recording.
            session._finish(ended.code)
        else:
            process.start()
        return session

    def _history_exit(self) -> Exit | None:
        """The exit line the recording's history ends with, if it does."""
        start = max(len(self.header_line), self.recorded_end - 4096)
        try:
            with open(self.recording_path, "rb") as f:
                f.seek(start)
                tail = f.read(self.recorded_end - start)
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

    def _file_size(self) -> int:
        """The offset just past the last whole line: a line being written is taken once whole."""
        try:
            with open(self.recording_path, "rb") as f:
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

    def _last_size(self) -> tuple[int, int]:
        """The terminal size the recording ends with (its last resize, else its header)."""
        size = self.size
        try:
            header = parse_line(self.header_line)
        except FormatError:
            header = None
        if isinstance(header, Header):
            size = (header.width, header.height)
        try:
            with open(self.recording_path, "rb") as f:
                f.seek(max(len(self.header_line), self.recorded_end - (1 << 20)))
                tail = f.read(self.recorded_end - f.tell())
        except OSError:
            return size
        for line in tail.split(b"\n")[::-1]:
            if b'"r"' in line:
                try:
                    record = parse_line(line)
                    if isinstance(record, Event) and record.kind == "r":
                        return parse_size(record.data)
                except FormatError:
                    continue
        return size

    def _info_mtime(self) -> int:
        try:
            return os.stat(self._files.info_path(self.id)).st_mtime_ns
        except OSError:
            return 0

    # -- the recording, as the other process writes it --------------------------------------

    def grown(self) -> None:
        """The recording grew: take in its new lines on the next turn (one read for a burst)."""
        if self._tail_call is None and self.status is not Status.EXITED:
            self._tail_call = self._reactor.callLater(0, self._tail_more)

    def info_changed(self) -> None:
        """session.json was replaced: take in what the other process changed."""
        stamp = self._info_mtime()
        if stamp != self._info_stamp:
            self._info_stamp = stamp
            self._reread_info()

    def tail(self) -> None:
        """Take in the whole lines added to the recording (up to TAIL_STEP now, the rest soon)."""
        if self.status is Status.EXITED or self._tail_call is not None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.recording_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            data = os.pread(self._fd, TAIL_STEP, self._read_at)
        except OSError as e:
            if e.errno == errno.ELOOP:
                # Its recording was swapped for a symbolic link: nothing of it is to be trusted.
                self.log.error("{id}: its recording became a symbolic link; ending it", id=self.id)
                self._finish(None)
            elif e.errno != errno.ENOENT:
                self.log.warn("cannot read {path}: {error}", path=str(self.recording_path), error=e)
            return
        if not data:
            return
        self._read_at += len(data)
        offset = self.recorded_end
        for line in self._held.feed(data):
            if self._skipped:
                # The end of a line too long to hold: pass over it whole.
                offset += self._skipped + len(line)
                self._skipped = 0
                self._recorded_to(offset)
                continue
            self._line(offset, line)
            offset += len(line)
            if self.status is Status.EXITED:
                return
        held = len(self._held.pending)
        if held > MAX_LINE:
            # No writer of ours makes such a line: pass over it rather than hold it all.
            self.log.warn("{id}: a recording line over {n} bytes is passed over", id=self.id, n=MAX_LINE)
            self._skipped += held
            self._held = LineSplitter()
        if len(data) == TAIL_STEP:
            self._tail_call = self._reactor.callLater(0, self._tail_more)

    def _tail_more(self) -> None:
        self._tail_call = None
        self.tail()

    def _line(self, offset: int, line: bytes) -> None:
        try:
            record = parse_line(line)
        except FormatError:
            record = None
        self._recorded_to(offset + len(line))
        if isinstance(record, Exit):
            self._finish(record.code)
            return
        if not isinstance(record, Event):
            return
        if record.kind == "r":
            try:
                self.size = parse_size(record.data)
            except FormatError:
                pass
        elif record.kind == "o" and self._clears.feed(record.data):
            self.info = attrs.evolve(self.info, last_clear_offset=offset)
        self._tell_listeners(line, record)

    # -- session.json, which the other process owns -------------------------------------

    def _save(self) -> None:
        """Write the daemon's changes into session.json, keeping what the other process wrote."""
        self._cancel_save()
        mine = self.info.to_json()

        def change(current: dict[str, Any]) -> None:
            for key in ("name", "lastModified", "status", "exitCode"):
                if key in mine:
                    current[key] = mine[key]

        try:
            self._files.update_info(self.id, change)
        except OSError as e:
            self.log.error("cannot save session.json of {id}: {error}", id=self.id, error=e)
        self._info_stamp = self._info_mtime()

    def check(self) -> None:
        """Catch up with the files and notice a program whose process is gone."""
        if self.status is Status.EXITED:
            return
        self.tail()
        self.info_changed()
        if self.status is Status.EXITED:
            return
        pid = self.info.pid
        gone = not pid_alive(pid, self.id) if pid is not None else not self._socket_path().exists()
        if not gone:
            self._gone_since = None
            return
        # The program has ended; its forwarder writes the exit line and session.json just
        # after. Only if they do not come (the forwarder was killed too) is it ended here.
        now = self._reactor.seconds()
        if self._gone_since is None:
            self._gone_since = now
        if now - self._gone_since >= EXIT_GRACE:
            self.tail()
            self._reread_info()
            if self.status is not Status.EXITED:
                self._finish(self.info.exit_code)

    def _socket_path(self) -> Path:
        return self._files.session_dir(self.id) / "ipc.sock"

    def _reread_info(self) -> None:
        try:
            fresh = SessionInfo.from_json(self._files.load_info(self.id))
        except FormatError:
            return
        if fresh.id != self.id:
            return
        if fresh.status is Status.RUNNING and self.status is Status.STARTING:
            self.info = attrs.evolve(self.info, status=Status.RUNNING)
        self.info = attrs.evolve(
            self.info,
            name=fresh.name,
            pid=fresh.pid,
            exit_code=fresh.exit_code if fresh.exit_code is not None else self.info.exit_code,
            last_modified=fresh.last_modified,
        )
        if isinstance(self._process, ExternalProcess) and fresh.pid is not None:
            self._process.pid = fresh.pid
        if fresh.status is Status.EXITED and self.status is not Status.EXITED:
            # The forwarder says it has ended: its exit line, if it wrote one, is in by now.
            self.tail()
            if self.status is not Status.EXITED:
                self._finish(fresh.exit_code)

    # -- what clients ask ----------------------------------------------------------------

    def resize(self, cols: object, rows: object) -> None:
        """Ask the other process to resize; its recording's resize line tells everyone."""
        cols, rows = check_size(cols, rows)
        if self.status is Status.EXITED or self._process is None:
            raise BadRequest("Session is not running")
        self._process.resize(cols, rows)
        self.size = (cols, rows)

    def release(self) -> None:
        """The daemon is stopping: let go of the session, which keeps running."""
        if self._tail_call is not None and self._tail_call.active():
            self._tail_call.cancel()
        self._tail_call = None
        if isinstance(self._process, ExternalProcess):
            self._process.hang_up()
        self.close()

    def close(self) -> None:
        super().close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _finish(self, code: int | None) -> None:
        if self._tail_call is not None and self._tail_call.active():
            self._tail_call.cancel()
        self._tail_call = None
        process = self._process
        super()._finish(code)
        if isinstance(process, ExternalProcess):
            process.hang_up()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ControlDirWatcher:
    """Finds sessions appearing in and vanishing from the control dir, and keeps them current."""

    log = Logger()

    def __init__(
        self,
        root: Path,
        reactor: Any,
        rescan: Callable[[], None],
        changed: Callable[[str, str], None],
        use_inotify: bool = True,
    ) -> None:
        self._use_inotify = use_inotify
        self._root = Path(root)
        self._reactor = reactor
        self._rescan = rescan
        self._changed = changed
        self._notifier: Any = None
        self._inotify: Any = None
        self._watched: set[str] = set()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self.inotify = False

    def start(self) -> None:
        self.inotify = self._start_inotify()
        self._loop.start(SLOW_SCAN if self.inotify else FAST_SCAN, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._notifier is not None:
            self._notifier.connectionLost(None)
            self._notifier = None

    def _start_inotify(self) -> bool:
        if not self._use_inotify or not IReactorFDSet.providedBy(self._reactor):
            return False
        try:
            from twisted.internet import inotify

            notifier = inotify.INotify(self._reactor)
            notifier.startReading()
            mask = inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_DELETE | inotify.IN_MOVED_FROM
            notifier.watch(FilePath(str(self._root)), mask, callbacks=[self._root_event])
        except Exception as e:  # no inotify here (not Linux, or out of watches): poll instead
            self.log.info("watching {path} by polling: {error}", path=str(self._root), error=e)
            return False
        self._notifier = notifier
        self._inotify = inotify
        return True

    def watch(self, session_id: str) -> None:
        """Follow the files of one session folder as they change."""
        if self._notifier is None or session_id in self._watched:
            return
        inotify = self._inotify
        mask = inotify.IN_MODIFY | inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE | inotify.IN_CREATE
        try:
            self._notifier.watch(
                FilePath(str(self._root / session_id)),
                mask,
                callbacks=[lambda _, path, __: self._session_event(session_id, path.basename())],
            )
        except Exception as e:
            self.log.warn("cannot watch {id}: {error}", id=session_id, error=e)
            return
        self._watched.add(session_id)

    def unwatch(self, session_id: str) -> None:
        if self._notifier is not None and session_id in self._watched:
            self._watched.discard(session_id)
            try:
                self._notifier.ignore(FilePath(str(self._root / session_id)))
            except KeyError:
                pass

    def _root_event(self, _: Any, path: Any, mask: int) -> None:
        self._guarded(self._rescan)

    def _session_event(self, session_id: str, name: str) -> None:
        self._guarded(lambda: self._changed(session_id, name))

    def _tick(self) -> None:
        self._guarded(self._rescan)

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            self.log.failure("watching the control dir failed")
