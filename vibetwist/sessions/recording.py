# -*- test-case-name: tests.test_session -*-
"""Append-only asciicast recordings on disk, and cursors that read them back.

The writer is :class:`vibetwist.model.recording.Recording` (``vt`` and the
session holders use it without Twisted); the daemon's logs through Twisted.

The recording is the one place a session's output is kept: live viewers that
fall behind, late joiners and the screen model all read it back from the file
at their own pace, so no consumer ever queues output in memory.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from twisted.logger import Logger

from vibetwist.model import recording
from vibetwist.model.recording import EXIT_RESERVE, RecordingState

__all__ = ["EXIT_RESERVE", "Recording", "RecordingReader", "RecordingState"]


class Recording(recording.Recording):
    """The daemon's recordings, which log through Twisted."""

    log = Logger()


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
