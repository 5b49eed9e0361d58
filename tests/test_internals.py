"""The private attributes of Twisted and Autobahn that vibetwist reaches (vibetwist._reactor.internals)
still exist in the versions installed: an upgrade that drops one fails here, not for a user."""

from __future__ import annotations

import inspect
import select

from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import endpoints
from twisted.internet.abstract import FileDescriptor
from twisted.trial.unittest import SynchronousTestCase

from vibetwist._reactor import internals


class InternalsTests(SynchronousTestCase):
    def test_epoll_reactor_poller(self) -> None:
        """An epoll reactor keeps its epoll object as _poller, and polls through what is set there."""
        from twisted.internet.epollreactor import EPollReactor

        reactor = EPollReactor()
        self.addCleanup(reactor._poller.close)
        poller = internals.reactor_poller(reactor)
        self.assertIsInstance(poller, select.epoll)
        source = inspect.getsource(EPollReactor.doPoll)
        self.assertIn("self._poller.poll(", source)
        internals.set_reactor_poller(reactor, poller)
        self.assertIs(reactor._poller, poller)

    def test_temp_data_buffer(self) -> None:
        """A descriptor transport holds unsent data in dataBuffer and _tempDataBuffer."""
        transport = FileDescriptor()
        self.assertFalse(internals.writes_queued(transport))
        transport._tempDataBuffer.append(b"x")
        self.assertTrue(internals.writes_queued(transport))

    def test_endpoint_interface(self) -> None:
        """Parsed TCP server endpoints keep their interface as _interface."""
        self.assertEqual(
            internals.endpoint_interface(endpoints.serverFromString(None, "tcp:1:interface=127.0.0.2")),
            "127.0.0.2",
        )
        self.assertEqual(
            internals.endpoint_interface(endpoints.serverFromString(None, "tcp6:1:interface=\\:\\:1")), "::1"
        )
        self.assertEqual(internals.endpoint_interface(endpoints.serverFromString(None, "tcp:1")), "")

    def test_pty_process_fork_hook(self) -> None:
        """Twisted's PTYProcess starts its child through _fork(..., masterfd=, slavefd=)."""
        self.assertTrue(callable(getattr(internals.PTYProcess, "_fork", None)))
        source = inspect.getsource(internals.PTYProcess.__init__)
        self.assertIn("self._fork(", source)
        self.assertIn("masterfd=masterfd", source)
        self.assertIn("slavefd=slavefd", source)

    def test_per_message_compress(self) -> None:
        """Autobahn keeps the negotiated compression of a connection as _perMessageCompress."""
        source = inspect.getsource(autobahn_protocol.WebSocketProtocol)
        self.assertIn("self._perMessageCompress = None", source)

        class Connection:
            _perMessageCompress = object()

        self.assertTrue(internals.compressing(Connection()))
        self.assertFalse(internals.compressing(object()))
