# -*- test-case-name: tests.test_cluster_link -*-
"""A real ``nats-server`` with JetStream for the cluster tests.

:class:`NATSServer` runs ``nats-server -js -a 127.0.0.1 -p PORT -sd STORE`` as a child
process on a free port, with optional token or user/password authentication and TLS,
waits until it accepts connections, and can be stopped (SIGTERM), killed (SIGKILL) and
restarted on the same port with the same store; it may be given a configuration
file's text (users and permissions). Everything waits on the reactor with
bounded timeouts. :class:`LinkCase` is a test case that starts servers and links to
them, and ends them all after the test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import tempfile
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from vibetwist.cluster.link import NATSLink
from vibetwist.cluster.options import NATSConfig
from vibetwist.testing import MemoryNATS

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"

#: pids of servers still running, for the exit-time safety net.
_alive: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pid in list(_alive):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _ServerProcess(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.output = bytearray()

    def outReceived(self, data: bytes) -> None:
        self.errReceived(data)

    def errReceived(self, data: bytes) -> None:
        self.output += data[-65536:]
        del self.output[:-65536]

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class NATSServer:
    """A nats-server child process with JetStream, on 127.0.0.1 and a port of its own."""

    def __init__(
        self,
        reactor: Any,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        tls: tuple[str, str, str] | None = None,
        config: str | None = None,
    ) -> None:
        """tls is (certificate file, key file, CA file) for the server's TLS; config is
        the text of a configuration file (users and permissions, say) that the
        command line's options are added to."""
        self._reactor = reactor
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="vibetwist-nats-")
        self._token = token
        self._user = user
        self._password = password
        self._tls = tls
        self._config: str | None = None
        if config is not None:
            self._config = self.store + ".conf"
            with open(os.open(self._config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
                file.write(config)
        self._process: Any = None
        self._protocol: _ServerProcess | None = None

    @property
    def url(self) -> str:
        """The URL clients connect to (without credentials)."""
        scheme = "tls" if self._tls else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    def arguments(self) -> list[str]:
        arguments = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store]
        if self._config is not None:
            arguments += ["-c", self._config]
        if self._token is not None:
            arguments += ["--auth", self._token]
        if self._user is not None:
            arguments += ["--user", self._user, "--pass", self._password or ""]
        if self._tls is not None:
            cert, key, ca = self._tls
            arguments += ["--tls", "--tlscert", cert, "--tlskey", key, "--tlscacert", ca]
        return arguments

    async def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts TCP connections."""
        self._protocol = _ServerProcess()
        arguments = self.arguments()
        self._process = self._reactor.spawnProcess(
            self._protocol, arguments[0], arguments, env={"PATH": os.environ.get("PATH", "")}
        )
        _alive.add(self._process.pid)
        deadline = self._reactor.seconds() + timeout
        while not self._accepts():
            if self._protocol.ended.called:
                raise RuntimeError(f"nats-server exited at start: {self.output}")
            if self._reactor.seconds() > deadline:
                raise RuntimeError(f"nats-server did not listen within {timeout} s")
            await task.deferLater(self._reactor, 0.02, lambda: None)

    def _accepts(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", self.port))
            except OSError:
                return False
            return True

    async def _end(self, signal_name: str, timeout: float = 10.0) -> None:
        protocol, process = self._protocol, self._process
        if protocol is None or process is None or protocol.ended.called:
            return
        try:
            process.signalProcess(signal_name)
        except Exception:
            pass
        await protocol.ended.addTimeout(timeout, self._reactor)
        _alive.discard(process.pid)
        self._process = None

    async def stop(self) -> None:
        """End the server with SIGTERM and wait until it exited."""
        await self._end("TERM")

    async def kill(self) -> None:
        """End the server with SIGKILL (no goodbye to clients) and wait until it exited."""
        await self._end("KILL")

    async def restart(self) -> None:
        """Stop the server and start it again on the same port with the same store."""
        await self.stop()
        await self.start()

    async def cleanup(self) -> None:
        """Stop the server and remove its store."""
        await self.kill()
        shutil.rmtree(self.store, ignore_errors=True)
        if self._config is not None and os.path.exists(self._config):
            os.unlink(self._config)

    @property
    def output(self) -> str:
        return self._protocol.output.decode(errors="replace") if self._protocol else ""


class LinkCase(TestCase):
    """A test case with nats-servers and links to them, all ended after the test."""

    timeout = 60

    async def start_server(self, **options: Any) -> NATSServer:
        server = NATSServer(reactor, **options)
        self.addCleanup(lambda: defer.ensureDeferred(server.cleanup()))
        await server.start()
        return server

    def make_link(
        self, server: NATSServer, name: str = "test", inbox_prefix: str = "_INBOX", **config: Any
    ) -> NATSLink:
        link = NATSLink(reactor, NATSConfig(servers=(server.url,), **config), name, inbox_prefix)
        self.addCleanup(link.stop)
        return link

    async def connected_link(
        self, server: NATSServer, name: str = "test", inbox_prefix: str = "_INBOX", **config: Any
    ) -> NATSLink:
        link = self.make_link(server, name, inbox_prefix=inbox_prefix, **config)
        await link.start().addTimeout(10, reactor)
        return link


class MemoryServers:
    """Mixed in before a :class:`LinkCase`: its tests run against
    :class:`vibetwist.testing.MemoryNATS`, which shows that the fake behaves as the real
    server and link do."""

    async def start_server(self, **options: Any) -> Any:
        return MemoryNATS(reactor)

    def make_link(self, server: Any, name: str = "test", **config: Any) -> Any:
        link = server.link(name)
        self.addCleanup(link.stop)  # type: ignore[attr-defined]
        return link
