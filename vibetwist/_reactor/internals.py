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


# -- processes an earlier daemon of this process started (a restart in place) ------------


def unwritten(transport: Any) -> bytes:
    """The bytes a descriptor transport has accepted but not written yet (``dataBuffer`` from
    ``offset``, and ``_tempDataBuffer``).

    Public API wanted: ``ITransport`` handing back what it has not sent.
    """
    return bytes(transport.dataBuffer[transport.offset :]) + b"".join(transport._tempDataBuffer)


def stop_reaping(process: Any) -> None:
    """Twisted stops reaping process (its pid leaves ``reapProcessHandlers``), so a program that
    exits now stays a zombie for the next daemon of this process to reap with its real status.

    Public API wanted: a way to hand a child over without Twisted waiting for it.
    """
    pid = process.pid
    handlers: dict[Any, Any] = _process.reapProcessHandlers
    if pid is not None and handlers.get(pid) is process:
        _process.unregisterReapProcessHandler(pid, process)


def reap(process: Any) -> None:
    """Twisted reaps process (``registerReapProcessHandler``): at once if it has exited already
    (its ``processEnded`` is called with the real status), else on SIGCHLD.

    Public API wanted: ``reactor.adoptProcess(pid, protocol)``.
    """
    _process.registerReapProcessHandler(process.pid, process)


def reap_all() -> None:
    """Reap every child Twisted knows that has exited, now (``reapAllProcesses``), rather than on
    the SIGCHLD the reactor has not handled yet."""
    _process.reapAllProcesses()


def reaped_status(process: Any) -> int | None:
    """The wait status of a Twisted process whose program it has reaped (``pid`` is None once
    ``processEnded`` ran, and ``status`` holds it), else None."""
    if process.pid is None and process.lostProcess:
        return int(process.status)
    return None


def init_pty_process(process: Any, reactor: Any, protocol: Any) -> None:
    """What ``PTYProcess.__init__`` does before it forks: the descriptor's and the process's
    own set-up (``FileDescriptor.__init__``, ``BaseProcess.__init__``).

    Public API wanted: ``reactor.adoptProcess``, for a child started by another program.
    """
    from twisted.internet import abstract

    abstract.FileDescriptor.__init__(process, reactor)
    _process._BaseProcess.__init__(process, protocol)


def tls_context(endpoint: Any) -> Any:
    """The context factory of a parsed ``ssl:`` server endpoint (``_sslContextFactory``), for a
    listening socket adopted from an earlier daemon of this process.

    Public API wanted: ``reactor.adoptStreamPort`` for TLS, or the parsed endpoint's fields.
    """
    return endpoint._sslContextFactory


def send_close(protocol: Any, code: int, reason: str) -> None:
    """Start a WebSocket's closing handshake with a close code a server may send.

    Autobahn's ``sendClose`` lets an application send only 1000 and 3000-4999;
    1001 (going away) and 1012 (service restart) are for endpoints themselves
    (RFC 6455 section 7.4.1, IANA's registry), so they go through the internal
    ``sendCloseFrame``, which ``sendClose`` calls once it has checked the code.
    Public API wanted: ``sendClose`` accepting the codes a server may send.
    """
    protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)
