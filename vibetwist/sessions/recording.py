# -*- test-case-name: tests.test_session -*-
"""Append-only asciicast recordings on disk, and cursors that read them back.

The recording is the one place a session's output is kept: live viewers that
fall behind, late joiners and the screen model all read it back from the file
at their own pace, so no consumer ever queues output in memory.
"""

from __future__ import annotations

import errno
import os
from enum import Enum
from pathlib import Path

from twisted.logger import Logger

from vibetwist.model.controldir import FILE_MODE
from vibetwist.sessions.tally import Tally

#: Room kept past the size limit for the closing exit line.
EXIT_RESERVE = 4096


class RecordingState(Enum):
    """Whether a recording still takes output."""

    OPEN = "open"
    FULL = "full"  # reached --max-recording
    FAILED = "failed"  # a write failed (ENOSPC, EIO, ...)
    CLOSED = "closed"


class Recording:
    """An asciicast file being written, with its size as the offset of the next line."""

    log = Logger()

    def __init__(self, path: Path, max_size: int | None = None, tally: Tally | None = None) -> None:
        self.path = Path(path)
        self.max_size = max_size
        self._tally = tally
        self.state = RecordingState.OPEN
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


class RecordingReader:
    """Reads whole lines of a recording from an offset, never past a given end."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = Path(path)
        self.offset = offset
        self._fd: int | None = None

    def read_lines(self, end: int, max_bytes: int = 65536) -> list[tuple[int, bytes]]:
        """Up to about max_bytes of whole lines between the offset and end, with their offsets.

        Advances the offset past the lines returned. A line longer than
        max_bytes is returned whole. A missing file, or a symbolic link, reads as empty.
        """
        lines: list[tuple[int, bytes]] = []
        if self.offset >= end:
            return lines
        if self._fd is None:
            try:
                # Never through a symbolic link: a recording is a file in its session's folder.
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ELOOP):
                    self.offset = end
                    return lines
                raise
        want = min(max_bytes, end - self.offset)
        data = os.pread(self._fd, want, self.offset)
        while b"\n" not in data and self.offset + len(data) < end:
            # One line longer than max_bytes: read on until its end.
            more = os.pread(self._fd, min(max_bytes, end - self.offset - len(data)), self.offset + len(data))
            if not more:
                break
            data += more
        cut = data.rfind(b"\n")
        if cut < 0:
            # The file is shorter than end (cut back by a failed write): nothing more to read.
            self.offset = end
            return lines
        start = 0
        body = data[: cut + 1]
        while start < len(body):
            nl = body.index(b"\n", start)
            lines.append((self.offset + start, body[start : nl + 1]))
            start = nl + 1
        self.offset += len(body)
        return lines

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
