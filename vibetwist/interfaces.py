# -*- test-case-name: tests.test_session -*-
"""The interfaces between vibetwist's parts.

- A program runs behind an :class:`ITerminalProcess` (a PTY of the daemon's, or
  another process's PTY reached through its ``ipc.sock``) started by an
  :class:`ILauncher`, and reports to :class:`ITerminalEvents`.
- A session is an :class:`ISession`: what the API, SSE, the WebSockets and the
  service talk to, whatever kind it is. Each kind is assembled from parts:
  an :class:`ISessionSource` (where its output and recording come from) and an
  :class:`IInfoStore` (how its session.json is written).
- Channels read a session's recording through :class:`IStreamListener` and
  :class:`ILineSink`; a terminal viewer's messages go to an :class:`ITerminalChannel`.
- Web Push messages leave through an :class:`IPushSender`.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class ITerminalProcess(Interface):
    """A program running on the far side of a pseudo-terminal."""

    pid = Attribute("The process id of the program (the leader of its own session).")

    def write(data: bytes) -> None:
        """Type data into the terminal."""

    def resize(cols: int, rows: int) -> None:
        """Change the terminal's size; the program gets SIGWINCH."""

    def signal_all(signal: int) -> None:
        """Send signal to every process in the program's session."""

    def hang_up() -> None:
        """Close the terminal's master side."""

    def foreground() -> int | None:
        """The terminal's foreground process group (``tcgetpgrp`` on its master), or None
        where it cannot be known (another process holds the master, or it has closed)."""

    def hand_over() -> Any:
        """Let go of the program for the next daemon of this process (a restart in place): a
        :class:`vibetwist.model.handover.HandedTerminal`, or None if this kind cannot be handed
        over (the next daemon finds it on disk)."""

    def take_back() -> None:
        """A hand-over that did not happen: carry on as before it."""


class ITerminalEvents(Interface):
    """What a terminal process reports back to its owner."""

    def output(data: bytes) -> None:
        """The program wrote data to the terminal."""

    def leader_exited(code: int) -> None:
        """The program itself exited with code (128+N for signal N); its terminal may still be open."""

    def ended(code: int) -> None:
        """The program exited and every byte it wrote has been delivered."""


class ILauncher(Interface):
    """Starts programs in new pseudo-terminals."""

    def launch(
        executable: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        cols: int,
        rows: int,
        events: ITerminalEvents,
    ) -> ITerminalProcess:
        """Run executable with argv in a new PTY of cols x rows; OSError if it cannot start."""

    def adopt(terminal: Any, events: ITerminalEvents) -> ITerminalProcess:
        """Take over a program an earlier daemon of this process started (a
        :class:`vibetwist.model.handover.HandedTerminal`); OSError if its terminal is unusable."""


class ITerminalChannel(Interface):
    """Where a terminal viewer's messages go (a WebSocket, in the daemon)."""

    def send_json(value: dict[str, Any]) -> None:
        """A control message."""

    def send_bytes(data: bytes) -> None:
        """Terminal bytes."""

    def send_output(event: Any) -> None:
        """A live output event's text, as terminal bytes (framed once for every viewer)."""

    def end() -> None:
        """Nothing more will come: close normally."""


class IStreamListener(Interface):
    """A viewer of a session's recording lines as they are made."""

    def event(line: bytes, record: Any) -> None:
        """A new asciicast line (output, resize or, last, the exit line) and what it says."""


class ILineSink(Interface):
    """Where a follower of a session's recording delivers its lines."""

    def recorded(lines: list[tuple[int, bytes]]) -> None:
        """Lines read back from the recording, with their offsets."""

    def live(line: bytes, record: Any) -> None:
        """A line as it was recorded, and what it says."""

    def finished() -> None:
        """The exit line has been delivered; nothing more will come."""

    def behind(backlog: int) -> bool:
        """The follower is ``backlog`` bytes (more than its limit) behind the recording.

        Return True to stop it (the sink takes over), False to read on.
        """


class ISession(Interface):
    """One terminal session, as every channel and the service see it.

    Its recording is a file of whole asciicast lines that grows while the
    program runs; ``recorded_end`` is the offset just past the last whole line.
    Its screen (``screen``, kept current by ``feed``) is rebuilt from that file.
    """

    id = Attribute("The session's id (a plain name: letters, digits, _ and -).")
    info = Attribute("The session's :class:`vibetwist.model.info.SessionInfo`, as session.json holds it.")
    status = Attribute("The :class:`vibetwist.model.info.Status` of the session.")
    size = Attribute("The terminal's size (cols, rows) as last set.")
    header_line = Attribute("The recording's first line, the asciicast header, as bytes.")
    recording_path = Attribute("The recording's path.")
    recorded_end = Attribute("The offset just past the last whole line of the recording.")
    exit_line = Attribute("The closing exit line once the session has ended, else None.")
    screen = Attribute("The :class:`vibetwist.screen.terminal.TerminalScreen` of the session.")
    feed = Attribute("The :class:`vibetwist.sessions.screenfeed.ScreenFeed` keeping the screen current.")
    listeners = Attribute("The listeners handed every new line, as a frozenset.")
    activity = Attribute(
        "The :class:`vibetwist.sessions.activity.ActivityWatch` telling what the session is doing, "
        "or None when nobody watches it."
    )
    tally = Attribute("The :class:`vibetwist.sessions.tally.Tally` the session counts into.")

    def watch(monitor: Any) -> None:
        """Have monitor (a :class:`vibetwist.sessions.activity.ActivityMonitor`) watch what
        the session does."""

    def listen(listener: IStreamListener) -> None:
        """Hand every new recording line to listener until :meth:`unlisten`."""

    def unlisten(listener: IStreamListener) -> None:
        """Stop handing lines to listener (nothing happens if it is not listening)."""

    def write(data: bytes) -> None:
        """Type data into the program; BadRequest if it is not running."""

    def resize(cols: object, rows: object) -> None:
        """Change the terminal's size; BadRequest for a bad size or an ended session."""

    def rename(name: str) -> None:
        """Give the session a new name."""

    def kill() -> None:
        """End the program and its whole process session: SIGTERM, later SIGKILL."""

    def when_ended() -> Any:
        """A Deferred that fires once the session has exited."""

    def flush() -> None:
        """Write pending session.json changes now."""

    def close() -> None:
        """Let go of the session's files (before they are removed or the daemon stops)."""

    def removed() -> None:
        """The session's files are being deleted: it is no more."""

    def daemon_stopping() -> Any:
        """The daemon is stopping: end or let go of the program; a Deferred to wait for, or None."""

    def files_changed(name: str) -> None:
        """A file of the session's folder changed (``stdout``, ``session.json``)."""

    def check() -> None:
        """Catch up with the files and notice a program that is gone (called every second or so)."""

    def folder_removed() -> bool:
        """The session's folder vanished; True if the daemon should forget the session."""

    def hand_over() -> Any:
        """The daemon restarts in place: a :class:`vibetwist.model.handover.HandedSession` for its
        next copy, which takes the program over, or None when that copy finds the session on disk
        (ended, or another process's)."""

    def take_back() -> None:
        """The restart did not happen: carry on as before :meth:`hand_over`."""


class ISessionSource(Interface):
    """Where a session's output and recording come from (one part of a session kind).

    The daemon's own PTY program (the daemon writes the recording), or
    another process's (the daemon reads the recording that process writes).
    """

    header_line = Attribute("The recording's header line.")
    end = Attribute("The offset just past the last whole line of the recording.")

    def bind(session: Any) -> None:
        """The session this source feeds; called once, when the session is made."""

    def output(data: bytes) -> None:
        """The program wrote data to its terminal (only for a source the daemon records)."""

    def flush() -> None:
        """The program has ended: hand on any output still held back."""

    def resized(cols: int, rows: int) -> None:
        """The daemon set the terminal's size."""

    def finish(code: int | None) -> bytes | None:
        """The session has ended with code: the exit line, recorded where this source records
        (None for a recording found without one, whose writer is gone)."""

    def close() -> None:
        """Let go of the files."""

    def daemon_stopping() -> Any:
        """The daemon is stopping: a Deferred to wait for, or None."""

    def files_changed(name: str) -> None:
        """A file of the session's folder changed."""

    def check() -> None:
        """Catch up with the files."""

    def folder_removed() -> bool:
        """The session's folder vanished; True if the session is to be forgotten."""

    def hand_over() -> Any:
        """Where the recording stands, as a :class:`vibetwist.model.handover.HandedOutput`, for
        the next daemon of this process to go on writing it; None if this daemon does not write it."""


class IInfoStore(Interface):
    """How a session's session.json is written."""

    def save(info: Any) -> None:
        """Write info (a SessionInfo); OSError if it cannot be written."""


class IPushSender(Interface):
    """Where Web Push messages go: an HTTP client that posts them to push services."""

    def post(url: str, headers: dict[str, str], body: bytes) -> Any:
        """POST body to url with these headers: a Deferred firing with the response's status
        code, or failing if no answer came (the connection failed or timed out)."""

    def close() -> Any:
        """Let go of the connections kept open; a Deferred, or None."""
