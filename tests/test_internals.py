"""The private attributes of Twisted and Autobahn that vibetwist reaches (vibetwist._reactor.internals)
still exist in the versions installed: an upgrade that drops one fails here, not for a user."""

from __future__ import annotations

import inspect
import select
from pathlib import Path

from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import _baseprocess, endpoints
from twisted.internet import process as twisted_process
from twisted.internet.abstract import FileDescriptor
from twisted.trial.unittest import SynchronousTestCase

from tests.support.tls import make_certificate
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

    def test_unwritten(self) -> None:
        """A descriptor transport's unsent bytes are dataBuffer from offset, then _tempDataBuffer."""
        transport = FileDescriptor()
        transport.dataBuffer = b"abcdef"
        transport.offset = 2
        transport._tempDataBuffer.extend([b"gh", b"i"])
        self.assertEqual(internals.unwritten(transport), b"cdefghi")

    def test_reap_handlers(self) -> None:
        """Twisted reaps the pids of reapProcessHandlers: registering waits for the pid at once
        (a process that already exited ends then), unregistering forgets it."""
        source = inspect.getsource(twisted_process.registerReapProcessHandler)
        self.assertIn("os.waitpid(pid, os.WNOHANG)", source)
        self.assertIn("process.processEnded(status)", source)
        self.assertIn("reapProcessHandlers[pid] = process", inspect.getsource(twisted_process))
        self.assertIn("reapProcessHandlers", inspect.getsource(twisted_process.reapAllProcesses))

        class Process:
            pid = 123456789

        process = Process()
        twisted_process.reapProcessHandlers[process.pid] = process
        internals.stop_reaping(process)
        self.assertNotIn(process.pid, twisted_process.reapProcessHandlers)
        internals.stop_reaping(process)  # not registered: nothing happens

    def test_reaped_status(self) -> None:
        """A Twisted process that has reaped its program has pid None and the wait status."""
        source = inspect.getsource(_baseprocess.BaseProcess.processEnded)
        self.assertIn("self.status = status", source)
        self.assertIn("self.pid = None", source)

        class Process:
            pid: int | None = 5
            status = -1
            lostProcess = 0

        process = Process()
        self.assertIsNone(internals.reaped_status(process))
        process.pid, process.status, process.lostProcess = None, 768, 1
        self.assertEqual(internals.reaped_status(process), 768)

    def test_pty_process_set_up(self) -> None:
        """PTYProcess.__init__ sets itself up as a descriptor and a process before it forks:
        what init_pty_process does for a program it takes over."""
        source = inspect.getsource(internals.PTYProcess.__init__)
        self.assertIn("abstract.FileDescriptor.__init__(self, reactor)", source)
        self.assertIn("_BaseProcess.__init__(self, proto)", source)
        self.assertIn("registerReapProcessHandler(self.pid, self)", source)

    def test_tls_context(self) -> None:
        """A parsed ssl: server endpoint keeps its context factory as _sslContextFactory."""
        folder = Path(self.mktemp())
        folder.mkdir()
        key, cert, _ = make_certificate(folder)
        endpoint = endpoints.serverFromString(None, f"ssl:0:privateKey={key}:certKey={cert}")
        self.assertIsNotNone(internals.tls_context(endpoint))
        self.assertIn("contextFactory=self._sslContextFactory", inspect.getsource(type(endpoint).listen))

    def test_send_close_frame(self) -> None:
        """Autobahn's sendClose refuses 1001 and 1012, and hands a code it accepts to the
        internal sendCloseFrame(code=, reasonUtf8=, isReply=)."""
        source = inspect.getsource(autobahn_protocol.WebSocketProtocol.sendClose)
        self.assertIn("self.sendCloseFrame(code=code, reasonUtf8=reasonUtf8, isReply=False)", source)
        sent = []

        class Socket:
            def sendCloseFrame(self, code: int, reasonUtf8: bytes, isReply: bool) -> None:
                sent.append((code, reasonUtf8, isReply))

        internals.send_close(Socket(), 1012, "restarting")
        self.assertEqual(sent, [(1012, b"restarting", False)])
