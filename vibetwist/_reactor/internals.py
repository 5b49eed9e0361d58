# -*- test-case-name: tests.test_internals -*-
"""Every private attribute of Twisted and Autobahn that vibetwist reaches, in one place.

Neither library offers a public hook for these; each function says what it
reaches and which public API would do instead. ``tests/test_internals.py``
checks that each still exists in the installed versions, so an upgrade that
removes one fails a test rather than a user.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import process as _process

#: Twisted's PTY process. vibetwist's own starts its program with posix_spawn by
#: overriding the private ``_fork(path, uid, gid, executable, args, environment,
#: masterfd=, slavefd=)`` that ``PTYProcess.__init__`` calls (public API wanted:
#: a spawn strategy for ``reactor.spawnProcess``).
PTYProcess = _process.PTYProcess


def reactor_poller(reactor: Any) -> Any:
    """The epoll object of an epoll reactor (``reactor._poller``), or None for another reactor.

    Public API wanted: a way to bound the events handled per reactor turn.
    """
    return getattr(reactor, "_poller", None)


def set_reactor_poller(reactor: Any, poller: Any) -> None:
    """Make an epoll reactor poll through poller (an object with epoll's methods)."""
    reactor._poller = poller


def writes_queued(transport: Any) -> bool:
    """Whether a descriptor transport holds data it has not written yet.

    Reads ``FileDescriptor.dataBuffer`` and the private ``_tempDataBuffer``
    (public API wanted: ``ITransport`` telling whether its buffer is empty).
    """
    return bool(transport.dataBuffer or transport._tempDataBuffer)


def endpoint_interface(endpoint: Any) -> str:
    """The interface a TCP server endpoint binds ("" for every interface): ``endpoint._interface``.

    Public API wanted: the parsed fields of an endpoint string.
    """
    interface = getattr(endpoint, "_interface", "")
    return interface if isinstance(interface, str) else ""


def compressing(protocol: Any) -> bool:
    """Whether an Autobahn WebSocket connection compresses its messages (``_perMessageCompress``).

    Public API wanted: the negotiated extensions of an open connection.
    """
    return getattr(protocol, "_perMessageCompress", None) is not None
