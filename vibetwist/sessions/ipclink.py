# -*- test-case-name: tests.test_external_session -*-
"""The link to a program another process runs: input, resizes and signals through its ``ipc.sock``.

The daemon connects to the socket on first use (or at once, with
:meth:`IPCLink.start`), keeps a bounded queue while it connects, and frames
every message as :mod:`vibetwist.model.ipc` says. A SIGKILL does not depend on
the other process: the program's process group is signalled directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from signal import SIGKILL
from typing import Any

from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vibetwist.errors import BadRequest, FormatError
from vibetwist.interfaces import ITerminalProcess
from vibetwist.model.controldir import SocketAddress
from vibetwist.model.ipc import MAX_PAYLOAD, Decoder, MessageType, control, encode
from vibetwist.sessions.procfs import pid_alive

#: Bytes of input kept while ipc.sock is being connected; more is refused.
MAX_QUEUED = 4 * MAX_PAYLOAD


class IPCClientProtocol(Protocol):
    """The daemon's end of one ipc.sock connection: it only sends, and reads answers away."""

    transport: Any

    def __init__(self, owner: IPCLink) -> None:
        self._owner = owner
        self._decoder = Decoder()

    def connectionMade(self) -> None:
        self._owner.connected(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            self._decoder.feed(data)  # heartbeats and errors: nothing to act on
        except FormatError:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._owner.disconnected(self)


@implementer(ITerminalProcess)
class IPCLink:
    """A program in another process's PTY, driven through that process's ipc.sock."""

    log = Logger()

    def __init__(self, reactor: Any, socket_path: Path, pid: int | None, session_id: str) -> None:
        self._reactor = reactor
        self._path = socket_path
        self.pid = pid
        self._session_id = session_id
        self._protocol: IPCClientProtocol | None = None
        self._connecting = False
        self._queue: list[bytes] = []
        self._queued = 0
        self._closed = False

    def _send(self, frame: bytes) -> None:
        if self._closed:
            raise BadRequest("Session is not running")
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.write(frame)
            return
        if self._queued + len(frame) > MAX_QUEUED:
            raise BadRequest("The session's program is not taking input")
        self._queue.append(frame)
        self._queued += len(frame)
        self._connect()

    def _connect(self) -> None:
        if self._connecting or self._protocol is not None:
            return
        try:
            address = SocketAddress(self._path)
        except OSError as e:
            self._failed(Failure(e))
            return
        self._connecting = True
        endpoint = UNIXClientEndpoint(self._reactor, address.address, timeout=5)
        factory = Factory.forProtocol(lambda: IPCClientProtocol(self))
        factory.noisy = False
        d = endpoint.connect(factory)
        d.addErrback(self._failed)
        d.addBoth(lambda _: address.close())

    def _failed(self, failure: Failure) -> None:
        self._connecting = False
        dropped, self._queue, self._queued = len(self._queue), [], 0
        self.log.warn(
            "cannot reach {path}: {error}; {n} messages dropped",
            path=str(self._path),
            error=failure.getErrorMessage(),
            n=dropped,
        )

    def connected(self, protocol: IPCClientProtocol) -> None:
        self._connecting = False
        if self._closed:
            protocol.transport.loseConnection()
            return
        self._protocol = protocol
        queue, self._queue, self._queued = self._queue, [], 0
        for frame in queue:
            protocol.transport.write(frame)

    def disconnected(self, protocol: IPCClientProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def start(self) -> None:
        """Connect now, so the first keystroke does not wait for it."""
        self._connect()

    # -- ITerminalProcess ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        for start in range(0, max(len(data), 1), MAX_PAYLOAD):
            self._send(encode(MessageType.STDIN, data[start : start + MAX_PAYLOAD]))

    def resize(self, cols: int, rows: int) -> None:
        self._send(control({"cmd": "resize", "cols": cols, "rows": rows}))

    def signal_all(self, signal: int) -> None:
        if signal == SIGKILL and self.pid is not None and pid_alive(self.pid, self._session_id):
            # The last resort must not depend on the other process answering: the
            # program leads its own process group, which is signalled directly.
            try:
                os.killpg(self.pid, SIGKILL)
            except OSError as e:
                self.log.warn("cannot kill {pid}: {error}", pid=self.pid, error=e)
        self._send(control({"cmd": "kill", "signal": int(signal)}))

    def hand_over(self) -> None:
        """The program is another process's: nothing to hand over."""

    def take_back(self) -> None:
        """Nothing was handed over."""

    def foreground(self) -> None:
        """Unknown: the other process holds the terminal's master."""
        return None

    def hang_up(self) -> None:
        self._closed = True
        self._queue, self._queued = [], 0
        if self._protocol is not None:
            self._protocol.transport.loseConnection()
