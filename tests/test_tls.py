"""End-to-end tests of TLS: the real daemon on an ssl: endpoint with a certificate made
for the test, HTTPS through treq and WSS through Autobahn, both trusting only that certificate."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial import unittest
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseFailed

from tests.support.daemon import Client, Daemon, WSClient, poll, sleep
from tests.support.login import CREDENTIALS, LoginDaemonTestCase, log_in
from tests.support.tls import make_certificate


class TLSTests(LoginDaemonTestCase):
    """The daemon over HTTPS and WSS, with login on."""

    async def start_daemon(
        self, base: Path | None = None, control_dir: Path | None = None, shared: bool = False
    ) -> Daemon:
        if base is None:
            base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        base.mkdir(parents=True, exist_ok=True)
        key, cert, pem = make_certificate(base)
        type(self).certificate = pem
        self.listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        return await super().start_daemon(base, control_dir, shared)

    def client_for(self, daemon: Daemon) -> Client:
        trust = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(self.certificate))
        client = Client(reactor, daemon, tls=trust)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return client

    async def test_https(self) -> None:
        """The daemon says it serves https, and answers health and login over TLS."""
        self.assertTrue(self.daemon.origin.startswith("https://127.0.0.1:"))
        self.assertIn(f"vibetwist listening on https://127.0.0.1:{self.daemon.port}/", self.daemon.log())
        self.assertEqual((await self.client.get("/api/health"))["status"], "ok")
        self.assertIsInstance(await self.client.get("/api/sessions"), list)

    async def test_untrusted_client_fails(self) -> None:
        """A client that does not trust the certificate cannot talk to the daemon."""
        stranger = Client(reactor, self.daemon)
        self.addCleanup(lambda: defer.ensureDeferred(stranger.close()))
        with self.assertRaises(ResponseFailed):
            await stranger.request("GET", "/api/health")

    async def test_origin_must_be_https(self) -> None:
        """An https Origin of the daemon is accepted; the http one, on the same port, is not."""
        https = {"Origin": self.daemon.origin}
        http = {"Origin": self.daemon.origin.replace("https://", "http://")}
        self.assertEqual((await self.client.request("GET", "/api/sessions", headers=https))[0], 200)
        code, body, _ = await self.client.request("GET", "/api/sessions", headers=http)
        self.assertEqual((code, body), (403, {"error": "Forbidden: cross-origin request"}))

    async def test_wss(self) -> None:
        """A WSS client with an https Origin watches a session and types into it."""
        sid = await self.create(["bash", "--norc", "--noprofile"], cols=60, rows=10)
        await self.client.wait_status(sid, "running")
        token = self.client.token
        url = f"wss://127.0.0.1:{self.daemon.port}/ws/sessions/{sid}?token={token}"
        factory = WebSocketClientFactory(url, origin=self.daemon.origin)
        factory.protocol = WSClient
        tls = optionsForClientTLS("127.0.0.1", trustRoot=Certificate.loadPEM(self.certificate))
        endpoint = wrapClientTLS(tls, TCP4ClientEndpoint(reactor, "127.0.0.1", self.daemon.port, timeout=5))
        client: Any = await endpoint.connect(factory)
        self.addCleanup(
            lambda: client.dropConnection(abort=True) if client.state != client.STATE_CLOSED else None
        )
        await poll(reactor, lambda: client.state == client.STATE_OPEN, what="the WSS handshake")
        await client.wait_for(lambda: [t for t in client.texts() if t["type"] == "replay"])
        client.send_json({"type": "input", "data": "echo wss-$((6*7))\r"})
        await client.wait_for(lambda: b"wss-42" in b"".join(client.binaries()))


class ExposedListenerTests(unittest.TestCase):
    """Login credentials are what let the daemon listen beyond loopback."""

    timeout = 60

    async def test_exposed_listener_with_login(self) -> None:
        """With credentials, a listener on every interface starts and asks for a token."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, listen="tcp:0", env=CREDENTIALS)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        self.assertEqual((await client.request("GET", "/api/sessions"))[0], 401)
        client.token = await log_in(client)
        self.assertEqual(await client.get("/api/sessions"), [])


class LoginOffTLSTests(unittest.TestCase):
    """An ssl: listener on loopback with login off: its connections are told apart like plain
    ones, and their requests are timed like plain ones."""

    timeout = 60

    async def test_own_user_and_request_timing(self) -> None:
        """The daemon's own user is served over TLS without a token, and with --request-timeout 1
        a kept-alive connection that asks again after 2 s, and an SSE stream open for 2.5 s,
        are not cut."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        key, cert, pem = make_certificate(base)
        listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        daemon = Daemon(reactor, base, listen=listen, args=("--request-timeout", "1"))
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        client = Client(reactor, daemon, tls=BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(pem)))
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        sid = await client.create(["sh", "-c", "echo one; sleep 2; echo two; sleep 30"])
        stream = await client.stream(sid)
        await poll(reactor, lambda: "one" in stream.output(), what="the first line")
        await poll(reactor, lambda: "two" in stream.output(), timeout=6, what="the line 2 s later")
        self.assertIsNone(stream.reason)
        self.assertEqual((await client.request("GET", "/api/health"))[0], 200)
        await sleep(reactor, 0.5)
        self.assertEqual((await client.request("GET", "/api/sessions"))[0], 200)
        await client.request("DELETE", f"/api/sessions/{sid}")
