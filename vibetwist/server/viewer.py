# -*- test-case-name: tests.test_websocket -*-
"""One viewer of a session's terminal: its screen as of an offset, then every byte after it.

A terminal emulator joining a session first needs what the session's screen
shows, then the output that follows, each byte once. A TerminalViewer gets the
screen at an event boundary (where it shows exactly the recording up to an
offset K), sends it as escape sequences, then follows the recording from K.
It falls back to the file when its connection is paused, and when it falls
too far behind it skips to a fresh screen. It also applies what the viewer
types and its size. It knows nothing of WebSockets: it talks to an
ITerminalChannel.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from vibetwist.errors import BadRequest
from vibetwist.interfaces import ILineSink, ISession, ITerminalChannel
from vibetwist.model.asciicast import Event, Exit, FormatError, parse_dimensions, parse_line
from vibetwist.model.info import Status
from vibetwist.screen.replay import replay_screen
from vibetwist.sessions.follow import Follower

#: A viewer further behind the recording than this skips ahead to a fresh screen.
MAX_BACKLOG = 1 << 20
#: Seconds between two skips of one viewer, so a stalled viewer is not sent screen after screen.
SKIP_INTERVAL = 2.0
#: Bytes of replay gathered into one message.
REPLAY_MESSAGE = 64 * 1024


@implementer(ILineSink)
class TerminalViewer:
    """The screen, then the output after it, of one session for one viewer."""

    def __init__(
        self,
        session: ISession,
        channel: ITerminalChannel,
        cooperator: Any,
        clock: Any,
        read_only: bool = False,
    ) -> None:
        self._session = session
        self._channel = channel
        self._cooperator = cooperator
        self._clock = clock
        self.read_only = read_only
        self._size: tuple[int, int] | None = None
        self._follower: Follower | None = None
        self._replaying: Any = None
        self._paused = False
        self._last_skip = -SKIP_INTERVAL
        self._gone = False

    def start(self) -> None:
        self._session.feed.at_boundary(self._draw)

    # -- the screen, then the bytes after it ----------------------------------------

    def _draw(self) -> None:
        """Send the screen as of the offset it shows, then follow the recording from there."""
        if self._gone:
            return
        session = self._session
        screen = session.screen
        offset = session.feed.position
        self._channel.send_json(
            {
                "type": "replay",
                "cols": screen.cols,
                "rows": screen.rows,
                "offset": offset,
                "status": session.status.value,
                "readOnly": self.read_only,
            }
        )
        chunks = replay_screen(screen)
        self._replaying = self._cooperator.cooperate(self._send_replay(chunks, offset))
        if self._paused:
            self._replaying.pause()

    def _send_replay(self, chunks: Any, offset: int) -> Any:
        pending: list[bytes] = []
        size = 0
        for chunk in chunks:
            if self._gone:
                return
            pending.append(chunk)
            size += len(chunk)
            if size >= REPLAY_MESSAGE:
                self._channel.send_bytes(b"".join(pending))
                pending, size = [], 0
            yield None
        if pending:
            self._channel.send_bytes(b"".join(pending))
        self._replaying = None
        self._follower = Follower(self._session, offset, self._cooperator, self, max_backlog=MAX_BACKLOG)
        self._follower.start()
        if self._paused:
            self._follower.pause()

    # -- ILineSink --------------------------------------------------------------------

    def recorded(self, lines: list[tuple[int, bytes]]) -> None:
        output: list[str] = []
        for _, line in lines:
            try:
                record = parse_line(line)
            except FormatError:
                continue
            if isinstance(record, Event) and record.kind == "o":
                output.append(record.data)
            elif isinstance(record, Event | Exit):
                self._flush(output)
                self.live(line, record)
        self._flush(output)

    def _flush(self, output: list[str]) -> None:
        if output:
            self._channel.send_bytes("".join(output).encode("utf-8", "surrogateescape"))
            output.clear()

    def live(self, line: bytes, record: Event | Exit) -> None:
        if isinstance(record, Exit):
            self._channel.send_json({"type": "exit", "code": record.code})
        elif record.kind == "o":
            self._channel.send_output(record)
        elif record.kind == "r":
            try:
                cols, rows = parse_dimensions(record.data)
            except FormatError:
                return
            self._channel.send_json({"type": "resize", "cols": cols, "rows": rows})

    def finished(self) -> None:
        self._channel.end()

    def behind(self, backlog: int) -> bool:
        """Too far behind to catch up byte by byte: skip to a fresh screen, if that gains much."""
        follower = self._follower
        now = self._clock.seconds()
        if follower is None or now - self._last_skip < SKIP_INTERVAL:
            return False
        if self._session.feed.position - follower.offset < MAX_BACKLOG // 2:
            return False  # the screen is not much further on: read on
        self._last_skip = now
        self._follower = None
        self._session.tally.viewer_skipped_bytes += backlog
        self._channel.send_json({"type": "skipped", "bytes": backlog})
        self._session.feed.at_boundary(self._draw)
        return True

    # -- flow control ---------------------------------------------------------------

    def pause(self) -> None:
        self._paused = True
        if self._replaying is not None:
            self._replaying.pause()
        if self._follower is not None:
            self._follower.pause()

    def resume(self) -> None:
        self._paused = False
        if self._replaying is not None:
            self._replaying.resume()
        if self._follower is not None:
            self._follower.resume()

    def stop(self) -> None:
        """The viewer is gone: send nothing more, let go of the recording."""
        self._gone = True
        if self._follower is not None:
            self._follower.stop()
            self._follower = None

    # -- from the viewer ------------------------------------------------------------

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise BadRequest("This view is read-only")

    def type(self, data: bytes) -> None:
        """Bytes the viewer typed; the viewer that types sets the terminal's size."""
        self._refuse_if_read_only()
        session = self._session
        if session.status is Status.EXITED:
            raise BadRequest("Session is not running")
        if self._size is not None and self._size != session.size:
            session.resize(*self._size)
        session.write(data)

    def resize(self, cols: object, rows: object) -> None:
        """The viewer's terminal size, which becomes the session's."""
        self._refuse_if_read_only()
        self._session.resize(cols, rows)
        self._size = self._session.size
