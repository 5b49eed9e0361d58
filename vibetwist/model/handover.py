# -*- test-case-name: tests.test_handover -*-
"""What a daemon that restarts in place hands to the copy of itself it becomes.

The daemon execs a fresh copy of itself in the same process (same pid, so the
programs it runs stay its children). The descriptors of its listening sockets
and of its sessions' PTY masters survive the exec; this value says which is
which, and where each session's recording, UTF-8 decoder and timers stood. The
old daemon writes it, as JSON, to an unnamed file whose descriptor it names in
the environment (:data:`HANDOVER_FD`); the new one reads it and closes it.

Sans-IO: encoding and decoding only.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import socket
from typing import Any

import attrs

from vibetwist.errors import FormatError
from vibetwist.model.controldir import is_session_id
from vibetwist.model.info import MAX_SIZE

#: The format written here; a daemon reads only the versions it knows.
HANDOVER_VERSION = 1
#: Every version this code reads (the start check reports them to the old daemon).
READABLE_VERSIONS = (1,)
#: The environment variable that names the descriptor the hand-over is read from.
HANDOVER_FD = "VIBETWIST_HANDOVER_FD"
#: The largest hand-over read (a few hundred bytes a session).
MAX_HANDOVER = 64 << 20

#: The address families a listening socket may have.
FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6, socket.AF_UNIX})
#: How a recording stood: still taking output, at its size limit, stopped by a failed write,
#: or never made (the session runs unrecorded).
RECORDING_STATES = frozenset({"open", "full", "failed", "none"})


@attrs.frozen
class HandedListener:
    """A listening socket, by the ``--listen`` value it was made for."""

    description: str
    fd: int
    family: int


@attrs.frozen
class HandedTerminal:
    """A session's PTY: its master descriptor and the program behind it."""

    fd: int
    #: The program's pid, the leader of its process session.
    pid: int
    #: The wait status, when the old daemon had already reaped the program (its
    #: terminal still open, held by background jobs); None while it runs.
    reaped: int | None = None
    #: Input accepted but not yet written to the PTY.
    unwritten: bytes = b""


@attrs.frozen
class HandedOutput:
    """Where a session's recording stood."""

    #: The recording's size: the offset of the next line.
    end: int
    recording: str = "open"
    #: Bytes of a UTF-8 character begun but not finished.
    held: bytes = b""
    #: The last characters of output, where a clear-scrollback may have begun.
    clear_tail: str = ""


@attrs.frozen
class HandedSession:
    """One running session the daemon started."""

    id: str
    terminal: HandedTerminal
    output: HandedOutput
    #: When its recording's time 0 was, in seconds since the Unix epoch.
    started: float
    size: tuple[int, int]
    #: Seconds left before the SIGKILL of a delete under way, if one is.
    kill_in: float | None = None


@attrs.frozen
class Handover:
    """Everything the new daemon takes over."""

    #: The process that wrote it (the new daemon checks it is the same).
    pid: int
    #: When the old daemon stopped serving, in seconds since the Unix epoch.
    stopped_at: float
    listeners: tuple[HandedListener, ...] = ()
    sessions: tuple[HandedSession, ...] = ()
    version: int = HANDOVER_VERSION

    def descriptors(self) -> list[int]:
        """Every descriptor it names."""
        return [listener.fd for listener in self.listeners] + [s.terminal.fd for s in self.sessions]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_handover(handover: Handover) -> bytes:
    """The hand-over as UTF-8 JSON."""
    value = {
        "version": handover.version,
        "pid": handover.pid,
        "stoppedAt": handover.stopped_at,
        "listeners": [
            {"description": lst.description, "fd": lst.fd, "family": lst.family} for lst in handover.listeners
        ],
        "sessions": [
            {
                "id": s.id,
                "fd": s.terminal.fd,
                "pid": s.terminal.pid,
                "reaped": s.terminal.reaped,
                "unwritten": _b64(s.terminal.unwritten),
                "end": s.output.end,
                "recording": s.output.recording,
                "held": _b64(s.output.held),
                "clearTail": s.output.clear_tail,
                "started": s.started,
                "cols": s.size[0],
                "rows": s.size[1],
                "killIn": s.kill_in,
            }
            for s in handover.sessions
        ],
    }
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _field(value: dict[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    found = value.get(name)
    if found is None and optional:
        return None
    if not isinstance(found, kind) or isinstance(found, bool):
        raise FormatError(f"hand-over: {name} is missing or not a {kind}")
    return found


def _count(value: dict[str, Any], name: str, optional: bool = False) -> Any:
    found = _field(value, name, int, optional)
    if found is not None and found < 0:
        raise FormatError(f"hand-over: {name} is negative")
    return found


def _seconds(value: dict[str, Any], name: str, optional: bool = False) -> float | None:
    found = _field(value, name, (int, float), optional)
    if found is None:
        return None
    if not math.isfinite(found) or found < 0:
        raise FormatError(f"hand-over: {name} is not a time")
    return float(found)


def _bytes(value: dict[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(_field(value, name, str), validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"hand-over: {name} is not base64") from e


def _listener(value: Any) -> HandedListener:
    if not isinstance(value, dict):
        raise FormatError("hand-over: a listener is not an object")
    family = _count(value, "family")
    if family not in FAMILIES:
        raise FormatError(f"hand-over: unknown address family {family}")
    return HandedListener(_field(value, "description", str), _count(value, "fd"), family)


def _session(value: Any) -> HandedSession:
    if not isinstance(value, dict):
        raise FormatError("hand-over: a session is not an object")
    session_id = _field(value, "id", str)
    if not is_session_id(session_id):
        raise FormatError("hand-over: not a session id")
    recording = _field(value, "recording", str)
    if recording not in RECORDING_STATES:
        raise FormatError(f"hand-over: unknown recording state {recording[:20]!r}")
    cols, rows = _count(value, "cols"), _count(value, "rows")
    if not (1 <= cols <= MAX_SIZE and 1 <= rows <= MAX_SIZE):
        raise FormatError("hand-over: a size out of range")
    pid = _count(value, "pid")
    if pid == 0:
        raise FormatError("hand-over: pid 0")
    started = _seconds(value, "started")
    assert started is not None
    return HandedSession(
        session_id,
        HandedTerminal(
            _count(value, "fd"), pid, _count(value, "reaped", optional=True), _bytes(value, "unwritten")
        ),
        HandedOutput(_count(value, "end"), recording, _bytes(value, "held"), _field(value, "clearTail", str)),
        started,
        (cols, rows),
        _seconds(value, "killIn", optional=True),
    )


def decode_handover(data: bytes) -> Handover:
    """The hand-over data holds; FormatError if it is not one this code reads."""
    if len(data) > MAX_HANDOVER:
        raise FormatError("hand-over: too large")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise FormatError("hand-over: not JSON") from e
    if not isinstance(value, dict):
        raise FormatError("hand-over: not an object")
    version = _field(value, "version", int)
    if version not in READABLE_VERSIONS:
        raise FormatError(f"hand-over: version {version} is not one this daemon reads")
    listeners = _field(value, "listeners", list)
    sessions = _field(value, "sessions", list)
    stopped = _seconds(value, "stoppedAt")
    assert stopped is not None
    handover = Handover(
        _count(value, "pid"),
        stopped,
        tuple(_listener(v) for v in listeners),
        tuple(_session(v) for v in sessions),
        version,
    )
    fds = handover.descriptors()
    if len(set(fds)) != len(fds):
        raise FormatError("hand-over: a descriptor is named twice")
    if len({s.id for s in handover.sessions}) != len(handover.sessions):
        raise FormatError("hand-over: a session is named twice")
    return handover
