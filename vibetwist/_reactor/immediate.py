# -*- test-case-name: tests.test_immediate -*-
"""Writes that go out at once when nothing is queued ahead of them.

A Twisted transport's ``write`` queues the data and sends it on the
reactor's next turn. For a keystroke on its way to a program, and for that
program's echo on its way to a viewer, that turn is most of the latency
added on top of the PTY. When nothing is queued, the data is written at once
(as much as the descriptor takes); the rest, and anything written while
data is queued, goes through ``write`` as usual, so the order never changes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.abstract import FileDescriptor

from vibetwist._reactor.internals import writes_queued


def write_now(transport: Any, data: bytes) -> None:
    """Write data to a descriptor transport now if nothing is queued; queue what is left."""
    if (
        isinstance(transport, FileDescriptor)
        and not getattr(transport, "TLS", False)
        and transport.connected
        and not transport.disconnecting
        and not writes_queued(transport)
    ):
        written = transport.writeSomeData(data)
        if isinstance(written, int) and written > 0:
            data = data[written:]
    if data:
        transport.write(data)
