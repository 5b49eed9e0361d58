"""A daemon as a cluster host: real nats-server, real daemons started with --nats, real tunnels.

Each test starts its own nats-server (JetStream, a temporary store, a free port)
and its daemons as separate processes; it reads the registry and opens tunnels
with a NATSLink of its own, as a gateway would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nkeys
from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from tests.support.daemon import CHECKOUT, Client, Daemon, SSEStream, kill_sessions, poll, within
from tests.support.nats import NATSServer
from tests.support.tls import make_certificate
from vibetwist.cluster.host import EXIT_HOST_ID_IN_USE
from vibetwist.cluster.link import NATSLink
from vibetwist.cluster.options import NATSConfig
from vibetwist.cluster.registry import BUCKET, RECORD_TTL, HostDirectory, HostRecord
from vibetwist.cluster.tunnel import TunnelEndpoint

FULL: dict[str, Any] = {"kind": "full", "user": None}


@implementer(IAgentEndpointFactory)
class _Through:
    """Every URI is reached through one endpoint (a tunnel)."""

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint

    def endpointForURI(self, uri: Any) -> Any:
        return self._endpoint


class _WithoutJetStream(NATSServer):
    """A nats-server without JetStream: no KV bucket can be made on it."""

    def arguments(self) -> list[str]:
        return [a for a in super().arguments() if a != "-js"]


class _WithConfig(NATSServer):
    """A nats-server with a configuration file (its authorization block)."""

    def __init__(self, reactor: Any, config: str) -> None:
        super().__init__(reactor)
        self.config = Path(self.store) / "server.conf"
        self.config.write_text(config)

    def arguments(self) -> list[str]:
        return [*super().arguments(), "-c", str(self.config)]


class ClusterHostTests(unittest.TestCase):
    """twistd vibetunnel --nats URL --host-id NAME."""

    timeout = 90

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="cluster-host-", dir=os.getcwd()))
        self.nats = NATSServer(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(self.nats.cleanup()))
        await self.nats.start()
        self.link = NATSLink(reactor, NATSConfig(servers=(self.nats.url,)), "test gateway")
        self.addCleanup(self.link.stop)
        await within(reactor, self.link.start(), 10, "the test's link")
        self.kv = await self.link.key_value(BUCKET, RECORD_TTL)
        self.sessions: set[str] = set()
        self.addCleanup(lambda: kill_sessions(self.sessions))

    async def daemon(
        self, host_id: str, *args: str, env: dict[str, str] | None = None, name: str | None = None
    ) -> Daemon:
        base = self.base / (name or host_id)
        base.mkdir(mode=0o700, exist_ok=True)
        daemon = Daemon(reactor, base, args=("--nats", self.nats.url, "--host-id", host_id, *args), env=env)
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start()
        return daemon

    async def record(self, host_id: str, check: Any = None, timeout: float = 10.0) -> HostRecord:
        """The host's record in the registry once it exists (and passes check)."""

        async def current() -> HostRecord | None:
            raw = await self.kv.get(host_id)
            if raw is None:
                return None
            found = HostRecord.from_json(raw)
            return found if check is None or check(found) else None

        result: HostRecord = await poll(reactor, current, timeout, 0.1, f"the record of {host_id}")
        return result

    def http(self, host_id: str, grant: dict[str, Any]) -> HTTPClient:
        """A treq client whose every request goes through a new tunnel to the host."""
        return self.http_over(self.link, host_id, grant)

    def http_over(self, link: NATSLink, host_id: str, grant: dict[str, Any]) -> HTTPClient:
        endpoint = TunnelEndpoint(link, f"vt.h.{host_id}", grant, "gw-test")
        pool = HTTPConnectionPool(reactor, persistent=False)
        return HTTPClient(Agent.usingEndpointFactory(reactor, _Through(endpoint), pool=pool))

    async def call(self, http: HTTPClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": ["application/json"]} if body is not None else None
        response = await within(
            reactor, http.request(method, f"http://cluster{path}", data=data, headers=headers), 10, path
        )
        content = await within(reactor, response.content(), 10, f"body of {path}")
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
        return response.code, json.loads(content) if ctype.startswith(b"application/json") else content

    async def test_record_counts_and_heartbeat(self) -> None:
        """The host's record appears with its counts, and each heartbeat refreshes it."""
        daemon = await self.daemon("alpha")
        first = await self.record("alpha")
        self.assertEqual((first.host, first.status, first.running), ("alpha", "up", 0))
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        self.sessions.add(await client.create(["cat"]))
        second = await self.record("alpha", lambda r: r.running == 1)
        self.assertEqual(second.boot, first.boot)
        self.assertNotEqual(second.heartbeat, first.heartbeat)
        third = await self.record("alpha", lambda r: r.heartbeat != second.heartbeat, timeout=5)
        self.assertEqual(third.started_at, first.started_at)

    async def test_duplicate_refused_and_clean_stop(self) -> None:
        """A second daemon with a live host's id stops with a message; a clean stop writes stopped."""
        first = await self.daemon("twin")
        record = await self.record("twin")
        second = await self.daemon("twin", name="twin-2")
        await poll(reactor, lambda: not second.running, 15, 0.1, "the second daemon's exit")
        self.assertIn("host id twin is in use", second.log())
        watcher: Any = second._watcher
        self.assertEqual(watcher.reason.value.exitCode, EXIT_HOST_ID_IN_USE)
        self.assertTrue(first.running)
        self.assertEqual((await self.record("twin")).boot, record.boot)
        await first.stop()
        stopped = await self.record("twin", lambda r: r.status == "stopped", timeout=2)
        self.assertEqual(stopped.boot, record.boot)

    async def test_killed_host_down_then_up(self) -> None:
        """After kill -9 a directory sees the host down within 10 s, and up again once it restarts."""
        directory = HostDirectory(reactor, self.link)
        await directory.start()
        self.addCleanup(directory.stop)
        daemon = await self.daemon("beta")

        def status() -> str | None:
            view = directory.get("beta")
            return view.status if view is not None else None

        await poll(reactor, lambda: status() == "up", 10, 0.1, "beta up")
        boot = directory.get("beta").record.boot  # type: ignore[union-attr]
        await daemon.crash()
        killed = reactor.seconds()
        await poll(reactor, lambda: status() == "down", 10, 0.1, "beta down")
        self.assertLess(reactor.seconds() - killed, 10)
        again = Daemon(reactor, daemon.base, args=daemon.args)
        self.addCleanup(lambda: defer.ensureDeferred(again.stop()))
        await again.start()
        await poll(reactor, lambda: status() == "up", 15, 0.1, "beta up again")
        self.assertNotEqual(directory.get("beta").record.boot, boot)  # type: ignore[union-attr]

    async def test_tunnel_requests_with_login_on(self) -> None:
        """With login on at the host, a full grant lists, creates, types into and reads a session
        through a tunnel without a token, while the host's own port still asks for one."""
        daemon = await self.daemon("gamma", env={"VIBETUNNEL_USERNAME": "me", "VIBETUNNEL_PASSWORD": "pw"})
        await self.record("gamma")
        direct = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(direct.close()))
        self.assertEqual((await direct.request("GET", "/api/sessions"))[0], 401)
        http = self.http("gamma", FULL)
        self.assertEqual(await self.call(http, "GET", "/api/sessions"), (200, []))
        code, created = await self.call(http, "POST", "/api/sessions", {"command": ["cat"]})
        self.assertEqual(code, 200, created)
        session_id = created["sessionId"]
        self.sessions.add(session_id)
        code, listed = await self.call(http, "GET", "/api/sessions")
        self.assertEqual([s["id"] for s in listed], [session_id])
        self.assertEqual(
            (await self.call(http, "POST", f"/api/sessions/{session_id}/input", {"text": "through\n"}))[0],
            200,
        )

        async def screen() -> bool:
            code, text = await self.call(http, "GET", f"/api/sessions/{session_id}/text")
            return code == 200 and b"through" in text

        await poll(reactor, screen, 10, 0.1, "the typed text on the screen")

        read = self.http("gamma", {"kind": "read", "session": session_id})
        code, text = await self.call(read, "GET", f"/api/sessions/{session_id}/text")
        self.assertEqual(code, 200)
        self.assertIn(b"through", text)
        code, body = await self.call(read, "POST", f"/api/sessions/{session_id}/input", {"text": "no\n"})
        self.assertEqual(code, 403, body)
        self.assertEqual((await self.call(read, "GET", "/api/sessions"))[0], 403)
        nothing = self.http("gamma", {"kind": "admin"})
        self.assertEqual((await self.call(nothing, "GET", f"/api/sessions/{session_id}/text"))[0], 403)

    async def test_reconnects_after_nats_restart(self) -> None:
        """When nats-server restarts, the host reconnects by itself and serves tunnels again."""
        await self.daemon("delta")
        await self.record("delta")
        http = self.http("delta", FULL)
        self.assertEqual((await self.call(http, "GET", "/api/sessions"))[0], 200)
        before = (await self.record("delta")).heartbeat
        await self.nats.restart()
        await within(reactor, self._connected(), 15, "the test's link reconnecting")

        async def served() -> bool:
            try:
                return (await self.call(http, "GET", "/api/sessions"))[0] == 200
            except Exception:
                return False

        await poll(reactor, served, 20, 0.2, "a tunnel to the host after the restart")
        await self.record("delta", lambda r: r.heartbeat != before and r.status == "up")

    async def test_tunnels_not_counted_by_the_connection_cap(self) -> None:
        """Tunnel connections are the gateways', not browsers': --max-connections does not count
        them, while it still holds the host's own port."""
        daemon = await self.daemon("epsilon", "--max-connections", "1")
        await self.record("epsilon")
        direct = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(direct.close()))
        await direct.events()
        self.assertEqual((await direct.request("GET", "/api/sessions"))[0], 503)
        streams = []
        for _ in range(3):
            http = self.http("epsilon", FULL)
            response = await within(
                reactor, http.get("http://cluster/api/events", unbuffered=True), 10, "events"
            )
            self.assertEqual(response.code, 200)
            stream = SSEStream()
            response.deliverBody(stream)
            streams.append(stream)
        self.assertEqual(await self.call(self.http("epsilon", FULL), "GET", "/api/sessions"), (200, []))
        for stream in streams:
            stream.abort()
        await poll(reactor, lambda: all(s.reason is not None for s in streams), 5, 0.05, "streams closed")

    async def test_joins_when_nats_comes_later(self) -> None:
        """A host started while its NATS server is down serves as soon as the server is up."""
        later = NATSServer(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(later.cleanup()))
        base = self.base / "zeta"
        base.mkdir(mode=0o700)
        daemon = Daemon(reactor, base, args=("--nats", later.url, "--host-id", "zeta"))
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start()
        await later.start()
        link = NATSLink(reactor, NATSConfig(servers=(later.url,)), "test gateway 2")
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "the second link")
        kv = await link.key_value(BUCKET, RECORD_TTL)
        await poll(reactor, lambda: kv.get("zeta"), 15, 0.1, "the record of zeta")
        self.assertTrue(daemon.running)

    async def test_restart_in_place_keeps_the_host(self) -> None:
        """A host restarted in place keeps its boot id and serves its tunnels again at once."""
        daemon = await self.daemon("eta")
        record = await self.record("eta")
        await daemon.restart()
        http = self.http("eta", FULL)

        async def served() -> bool:
            try:
                return (await self.call(http, "GET", "/api/sessions"))[0] == 200
            except Exception:
                return False

        await poll(reactor, served, 10, 0.1, "a tunnel to the restarted host")
        after = await self.record("eta", lambda r: r.heartbeat != record.heartbeat)
        self.assertEqual((after.boot, after.status), (record.boot, "up"))
        self.assertNotIn("is in use", daemon.log())

    async def test_joins_once_jetstream_is_there(self) -> None:
        """A host whose NATS server has no JetStream (no registry) keeps trying, and joins once
        a server with JetStream answers at the same address."""
        plain = _WithoutJetStream(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(plain.cleanup()))
        await plain.start()
        base = self.base / "theta"
        base.mkdir(mode=0o700)
        daemon = Daemon(reactor, base, args=("--nats", plain.url, "--host-id", "theta"))
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start()
        await poll(reactor, lambda: "could not join yet" in daemon.log(), 20, 0.1, "a failed attempt")
        await plain.stop()
        full = NATSServer(reactor)
        full.port = plain.port
        self.addCleanup(lambda: defer.ensureDeferred(full.cleanup()))
        await full.start()
        link = NATSLink(reactor, NATSConfig(servers=(full.url,)), "test gateway 3")
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "the third link")
        kv = await link.key_value(BUCKET, RECORD_TTL)
        await poll(reactor, lambda: kv.get("theta"), 20, 0.1, "the record of theta")
        self.assertTrue(daemon.running)

    async def test_token_in_the_url(self) -> None:
        """A host authenticates with the token in its --nats URL, which its log never shows."""
        secured = NATSServer(reactor, token="s3cret-token")
        self.addCleanup(lambda: defer.ensureDeferred(secured.cleanup()))
        await secured.start()
        url = secured.url.replace("nats://", "nats://s3cret-token@")
        base = self.base / "iota"
        base.mkdir(mode=0o700)
        daemon = Daemon(reactor, base, args=("--nats", url, "--host-id", "iota"))
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start()
        link = NATSLink(reactor, NATSConfig(servers=(secured.url,), token="s3cret-token"), "test gateway 4")
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "the token link")
        kv = await link.key_value(BUCKET, RECORD_TTL)
        await poll(reactor, lambda: kv.get("iota"), 15, 0.1, "the record of iota")
        self.assertIn("nats://[redacted]@127.0.0.1", daemon.log())
        self.assertNotIn("s3cret-token", daemon.log())

    async def test_tls(self) -> None:
        """A host reaches a TLS-only NATS server through a tls:// URL, checking its certificate
        against --nats-tls-ca."""
        folder = self.base / "tls"
        folder.mkdir(mode=0o700)
        key, cert, _ = make_certificate(folder)
        secured = NATSServer(reactor, tls=(str(cert), str(key), str(cert)))
        self.addCleanup(lambda: defer.ensureDeferred(secured.cleanup()))
        await secured.start()
        self.assertTrue(secured.url.startswith("tls://"))
        base = self.base / "kappa"
        base.mkdir(mode=0o700)
        daemon = Daemon(
            reactor, base, args=("--nats", secured.url, "--host-id", "kappa", "--nats-tls-ca", str(cert))
        )
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start()
        link = NATSLink(reactor, NATSConfig(servers=(secured.url,), tls_ca=str(cert)), "test gateway 5")
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "the TLS link")
        kv = await link.key_value(BUCKET, RECORD_TTL)
        await poll(reactor, lambda: kv.get("kappa"), 15, 0.1, "the record of kappa")
        http = self.http_over(link, "kappa", FULL)
        self.assertEqual((await self.call(http, "GET", "/api/sessions"))[0], 200)

    async def test_nkey_seed(self) -> None:
        """A host authenticates with --nats-nkey to a server that knows only that NKey user."""
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        public = nkeys.from_seed(bytearray(seed)).public_key.decode()
        folder = self.base / "nkey"
        folder.mkdir(mode=0o700)
        seed_file = folder / "host.nk"
        seed_file.write_bytes(seed + b"\n")
        seed_file.chmod(0o600)
        secured = _WithConfig(reactor, f"authorization {{ users = [ {{ nkey: {public} }} ] }}\n")
        self.addCleanup(lambda: defer.ensureDeferred(secured.cleanup()))
        await secured.start()
        base = self.base / "lambda"
        base.mkdir(mode=0o700)
        args = ("--nats", secured.url, "--host-id", "lambda", "--nats-nkey", str(seed_file))
        daemon = Daemon(reactor, base, args=args)
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start()
        link = NATSLink(
            reactor, NATSConfig(servers=(secured.url,), nkey_file=str(seed_file)), "test gateway 6"
        )
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "the NKey link")
        kv = await link.key_value(BUCKET, RECORD_TTL)
        await poll(reactor, lambda: kv.get("lambda"), 15, 0.1, "the record of lambda")

    async def _connected(self) -> None:
        await poll(reactor, lambda: self.link.connected, 15, 0.1, "connected")


class WithoutNATSTests(unittest.TestCase):
    """A daemon without --nats is today's daemon."""

    def test_no_nats_loaded(self) -> None:
        """Building the daemon's service without --nats loads nothing of the NATS client or
        of the cluster's link, and starts no thread."""
        base = Path(tempfile.mkdtemp(prefix="no-nats-", dir=os.getcwd()))
        base.chmod(0o700)
        code = (
            "import sys, threading\n"
            "from vibetwist.tap import Options, makeService\n"
            "options = Options(environ={})\n"
            f"options.parseOptions(['--control-dir', {str(base / 'control')!r}, '--no-push'])\n"
            "makeService(options, restart_signal=False)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nats', 'nkeys')"
            " or m.startswith('vibetwist.cluster.link')), threading.active_count())\n"
        )
        env = dict(os.environ, PYTHONPATH=CHECKOUT, HOME=str(base))
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
        )
        self.assertEqual(out.stdout.strip(), "[] 1", out.stderr)
