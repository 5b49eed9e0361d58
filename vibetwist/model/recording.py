# -*- test-case-name: tests.test_session -*-
"""The append-only asciicast file a session's output is written to.

It is written a whole line at a time (a line cut by a failing write is cut
back off), so every prefix of the file that ends at a newline is a valid
recording. It needs no reactor and logs through whatever ``log`` it is given
(the daemon's is a Twisted logger); ``vt`` and the per-session holders write
their recordings with it without loading Twisted.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

from vibetwist.model.controldir import FILE_MODE

#: Room kept past the size limit for the closing exit line.
EXIT_RESERVE = 4096


class RecordingState(Enum):
    """Whether a recording still takes output."""

    OPEN = "open"
    FULL = "full"  # reached --max-recording
    FAILED = "failed"  # a write failed (ENOSPC, EIO, ...)
    CLOSED = "closed"


class Silent:
    """A log that drops what it is told (``warn`` and ``error`` of a Twisted Logger)."""

    def warn(self, format: str, **fields: Any) -> None:
        pass

    def error(self, format: str, **fields: Any) -> None:
        pass


class Recording:
    """An asciicast file being written, with its size as the offset of the next line."""

    log: Any = Silent()

    def __init__(
        self,
        path: Path,
        max_size: int | None = None,
        state: RecordingState | None = None,
        tally: Any = None,
    ) -> None:
        """Open (or create) the file at path for appending; never through a symbolic link.

        :param state: the state a recording written by an earlier daemon was in
            (``FULL`` or ``FAILED`` stay so); a new one is ``OPEN``.
        :param tally: where to count why the recording stopped (its
            ``recording_errors`` by reason, for the daemon's metrics), if anywhere.
        """
        self.path = Path(path)
        self.max_size = max_size
        self._tally = tally
        self.state: RecordingState = RecordingState.OPEN
        if state in (RecordingState.FULL, RecordingState.FAILED):
            self.state = state
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
        )
        os.fchmod(self._fd, FILE_MODE)
        self.size = os.fstat(self._fd).st_size

    def append(self, line: bytes, final: bool = False) -> bool:
        """Add a whole line; True if it is on disk.

        A line that would pass the size limit closes the recording to output
        (``final`` lines may use a small reserve past it). A failed write is
        logged once and the recording stops taking lines; the session goes on.
        """
        if self._fd is None or (self.state is not RecordingState.OPEN and not final):
            return False
        if self.state is RecordingState.FAILED:
            return False
        limit = self.max_size
        if limit is not None:
            if final:
                limit += EXIT_RESERVE
            if self.size + len(line) > limit:
                if self.state is RecordingState.OPEN:
                    self.state = RecordingState.FULL
                    self._count("limit")
                    self.log.warn(
                        "recording {path} reached its limit of {limit} bytes; "
                        "further output is streamed but not recorded",
                        path=str(self.path),
                        limit=self.max_size,
                    )
                return False
        try:
            self._write_all(line)
        except OSError as e:
            self.state = RecordingState.FAILED
            self._count("write")
            self.log.error(
                "recording {path} stopped: {error}; the session goes on unrecorded",
                path=str(self.path),
                error=os.strerror(e.errno) if e.errno else str(e),
            )
            return False
        return True

    def _count(self, reason: str) -> None:
        if self._tally is not None:
            self._tally.recording_errors[reason] += 1

    def _write_all(self, line: bytes) -> None:
        assert self._fd is not None
        view = memoryview(line)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except OSError:
            if written:
                # Do not leave half a line behind: cut the file back to the last whole line.
                try:
                    os.ftruncate(self._fd, self.size)
                except OSError:
                    pass
            raise
        self.size += written

    def close(self) -> None:
        """Stop writing; the file stays."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.state is RecordingState.OPEN:
            self.state = RecordingState.CLOSED
