# -*- test-case-name: tests.test_metrics -*-
"""Counts the daemon's sessions keep as they work, for ``GET /metrics``.

A :class:`Tally` is a few plain integers shared by every session of a daemon. They are
added to once per read, write or recorded line, never per byte, and nothing else
happens on the output path: the metrics read them when they are scraped
(:mod:`vibetwist.server.metrics`).
"""

from __future__ import annotations

#: Why a recording stopped taking output: it reached --max-recording, a write failed,
#: or (a recording another process writes) it could not be read.
RECORDING_ERRORS = ("limit", "write", "read")


class Tally:
    """What sessions have done since the daemon started."""

    __slots__ = ("input_bytes", "output_bytes", "recording_errors", "viewer_skipped_bytes")

    def __init__(self) -> None:
        #: Bytes programs wrote to their terminals (for a session another process runs,
        #: the UTF-8 bytes of the output lines it recorded).
        self.output_bytes = 0
        #: Bytes typed into sessions, from every channel.
        self.input_bytes = 0
        #: Bytes that byte-stream viewers too far behind skipped (see vibetwist.server.viewer).
        self.viewer_skipped_bytes = 0
        #: Recordings that stopped taking output, by reason (RECORDING_ERRORS).
        self.recording_errors = dict.fromkeys(RECORDING_ERRORS, 0)


def utf8_length(text: str) -> int:
    """How many bytes text takes in UTF-8 (no copy for ASCII text, which knows it is)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
