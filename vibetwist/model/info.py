# -*- test-case-name: tests.test_session -*-
"""What a session is, as a value: its record in session.json and the API, and how to start it.

Sans-IO: nothing here touches a reactor, a file or a process.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import attrs

from vibetwist import __version__
from vibetwist.errors import BadRequest, FormatError
from vibetwist.model.controldir import is_session_id

#: Largest terminal size accepted.
MAX_SIZE = 1000


def now_iso(seconds: float | None = None) -> str:
    """An ISO 8601 UTC time with milliseconds, as VibeTunnel writes it."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_size(cols: object, rows: object) -> tuple[int, int]:
    """cols and rows as integers in 1..1000, or BadRequest."""
    for name, value in (("cols", cols), ("rows", rows)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
            raise BadRequest(f"{name} must be an integer from 1 to {MAX_SIZE}")
    return int(cols), int(rows)  # type: ignore[call-overload]


class Status(StrEnum):
    """Where a session is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"


@attrs.frozen
class SessionInfo:
    """What session.json holds, and what the API tells about a session."""

    id: str
    name: str
    command: tuple[str, ...]
    working_dir: str
    status: Status
    started_at: str
    initial_cols: int = 80
    initial_rows: int = 24
    exit_code: int | None = None
    pid: int | None = None
    last_clear_offset: int = 0
    version: str = __version__
    last_modified: str = ""
    attached_via_vt: bool = False
    title_mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of session.json and of the API."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "command": list(self.command),
            "workingDir": self.working_dir,
            "status": self.status.value,
            "startedAt": self.started_at,
            "initialCols": self.initial_cols,
            "initialRows": self.initial_rows,
            "lastClearOffset": self.last_clear_offset,
            "version": self.version,
            "lastModified": self.last_modified or self.started_at,
            "attachedViaVT": self.attached_via_vt,
        }
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.pid is not None:
            out["pid"] = self.pid
        if self.title_mode is not None:
            out["titleMode"] = self.title_mode
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SessionInfo:
        """Read a session.json object (ours or VibeTunnel's); FormatError if it is unusable."""
        try:
            sid = value["id"]
            command = value["command"]
            status = Status(value.get("status", "exited"))
        except (KeyError, ValueError) as e:
            raise FormatError(f"session.json lacks a usable field: {e}") from e
        if not is_session_id(sid):
            raise FormatError("session.json has a bad id")
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise FormatError("session.json has a bad command")

        def num(key: str, default: int | None) -> int | None:
            v = value.get(key, default)
            return v if isinstance(v, int) and not isinstance(v, bool) else default

        def size(key: str, default: int) -> int:
            # A screen of a billion columns would never be drawn: keep to what a create allows.
            v = num(key, default)
            return v if v is not None and 1 <= v <= MAX_SIZE else default

        def text(key: str, default: str) -> str:
            v = value.get(key, default)
            return v if isinstance(v, str) else default

        return cls(
            id=sid,
            name=text("name", os.path.basename(command[0]) if command else sid),
            command=tuple(command),
            working_dir=text("workingDir", ""),
            status=status,
            started_at=text("startedAt", now_iso(0)),
            initial_cols=size("initialCols", 80),
            initial_rows=size("initialRows", 24),
            exit_code=num("exitCode", None),
            pid=num("pid", None),
            last_clear_offset=num("lastClearOffset", 0) or 0,
            version=text("version", ""),
            last_modified=text("lastModified", ""),
            attached_via_vt=value.get("attachedViaVT") is True,
            title_mode=value.get("titleMode") if isinstance(value.get("titleMode"), str) else None,
        )


@attrs.frozen
class LaunchPlan:
    """How to start a session's program: what to exec and with what."""

    executable: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
