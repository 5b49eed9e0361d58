"""The gateway (vibetwist.cluster.gateway): its HTTP routes, its merged events and its sockets.

Most classes run the gateway in the test's process against real host daemons with
login off, reached over TCP through its ConnectHost, behind the same Host/Origin
check and login gate as a daemon, with a directory of hosts the test sets
(tests.support.cluster). ClusterTests runs the real thing: a nats-server, two
hosts with ``--nats`` and two ``--gateway`` daemons, each a process of its own.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import treq
from twisted.internet import defer, endpoints, reactor
from twisted.python import usage
from twisted.trial import unittest

from tests.support.cluster import FakeDirectory
from tests.support.daemon import Client, Daemon, kill_sessions, open_ws, poll, within
from tests.support.nats import NATSServer
from tests.support.screens import screen_of
from vibetwist._reactor.internals import unwritten
from vibetwist.cluster.gateway import Gateway, format_vector, parse_vector, tunnel_grant
from vibetwist.login.authority import Authority
from vibetwist.login.passwords import PasswordCheck
from vibetwist.login.tokens import SECRET_BYTES, Grant, Tokens
from vibetwist.server.site import guarded_site
from vibetwist.tap import Options

#: The host daemons the tests share, by name (stopped when the test process exits).
_hosts: dict[str, Daemon] = {}
USER, PASSWORD = "alice", "correct horse"


async def host_daemon(name: str) -> Daemon:
    """A running host daemon of that name, started on first use."""
    daemon = _hosts.get(name)
    if daemon is None or not daemon.running:
        base = Path(tempfile.mkdtemp(prefix=f"gw-{name}-", dir=os.getcwd()))
        daemon = Daemon(reactor, base)
        await daemon.start()
        _hosts[name] = daemon
    return daemon


class _Served:
    """Where a gateway of the test listens (what tests.support.daemon.Client needs)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return self.origin + path


class GatewayTestCase(unittest.TestCase):
    timeout = 60
    hosts = ("alpha", "beta")

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        self.daemons = {name: await host_daemon(name) for name in self.hosts}
        self.directory = FakeDirectory()
        for name in self.hosts:
            self.directory.set(name)
        #: (host, grant) of every connection the gateways opened.
        self.grants: list[tuple[str, dict[str, Any]]] = []
        self.secret = secrets.token_bytes(SECRET_BYTES)
        self.gateway, self.client = await self.start_gateway()
        self.sessions: list[tuple[str, str]] = []
        self.addCleanup(lambda: defer.ensureDeferred(self._end_sessions()))

    def connect_host(self, host: str, grant: dict[str, Any]) -> Any:
        self.grants.append((host, grant))
        port = self.daemons[host].port if host in self.daemons else 1
        return endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)

    async def start_gateway(self, login: bool = False) -> tuple[Gateway, Client]:
        authority = Authority(
            Tokens(self.secret, issuer="vibetwist:cluster"),
            reactor,
            required=login,
            passwords=PasswordCheck(None, USER, PASSWORD) if login else None,
        )
        gateway = Gateway(reactor, self.directory, self.connect_host, authority)
        gateway.start()
        factory = guarded_site(gateway.resource(), authority, reactor, metrics=gateway.metrics)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(gateway.stop)
        client = Client(reactor, _Served(port.getHost().port))  # type: ignore[arg-type]
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return gateway, client

    def host_client(self, name: str) -> Client:
        client = Client(reactor, self.daemons[name])
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return client

    async def _end_sessions(self) -> None:
        for host, sid in self.sessions:
            daemon = self.daemons.get(host)
            if daemon is not None and daemon.running:
                await self.host_client(host).request("DELETE", f"/api/sessions/{sid}")

    async def create(self, command: list[str], **fields: Any) -> tuple[str, str]:
        """A session made through the gateway: (its id, its host)."""
        code, body, _ = await self.client.request("POST", "/api/sessions", dict(fields, command=command))
        self.assertEqual(code, 200, body)
        self.sessions.append((body["host"], body["sessionId"]))
        return body["sessionId"], body["host"]


class ListAndCreateTests(GatewayTestCase):
    async def test_list_has_every_host_with_host_fields(self) -> None:
        """GET /api/sessions holds the sessions of every up host, each with its host."""
        a, _ = await self.create(["cat"], host="alpha")
        b, _ = await self.create(["cat"], host="beta")
        listed = {s["id"]: s for s in await self.client.get("/api/sessions")}
        self.assertEqual(listed[a]["host"], "alpha")
        self.assertEqual(listed[b]["host"], "beta")
        self.assertEqual(listed[a]["command"], ["cat"])
        own = {s["id"] for s in await self.host_client("beta").get("/api/sessions")}
        self.assertIn(b, own)
        self.assertNotIn(a, own)

    async def test_down_host_is_left_out_of_the_list(self) -> None:
        """A host that is not up is not asked, and the listing answers without it."""
        a, _ = await self.create(["cat"], host="alpha")
        b, _ = await self.create(["cat"], host="beta")
        self.directory.set("beta", status="down")
        listed = {s["id"] for s in await self.client.get("/api/sessions")}
        self.assertIn(a, listed)
        self.assertNotIn(b, listed)

    async def test_create_on_the_chosen_host(self) -> None:
        sid, host = await self.create(["cat"], host="beta")
        self.assertEqual(host, "beta")
        info = await self.host_client("beta").session(sid)
        self.assertEqual(info["command"], ["cat"])

    async def test_create_on_the_least_loaded_host(self) -> None:
        """Without a host, the up host with the fewest running sessions, counting those this
        gateway created since that host's last heartbeat."""
        self.directory.set("alpha", running=5)
        self.directory.set("beta", running=4)
        _, first = await self.create(["cat"])
        self.assertEqual(first, "beta")
        _, second = await self.create(["cat"])
        self.assertEqual(second, "alpha")  # beta counts 5 now, and alpha sorts first
        _, third = await self.create(["cat"])
        self.assertEqual(third, "beta")  # alpha 6, beta 5
        self.directory.set("beta", running=9)  # a new heartbeat: the gateway's counts start over
        _, fourth = await self.create(["cat"])
        self.assertEqual(fourth, "alpha")

    async def test_unknown_host_is_400(self) -> None:
        code, body, _ = await self.client.request(
            "POST", "/api/sessions", {"command": ["cat"], "host": "nope"}
        )
        self.assertEqual(code, 400)
        self.assertIn("nope", body["error"])

    async def test_down_host_is_503(self) -> None:
        self.directory.set("beta", status="down")
        code, body, response = await self.client.request(
            "POST", "/api/sessions", {"command": ["cat"], "host": "beta"}
        )
        self.assertEqual(code, 503)
        self.assertEqual(body, {"error": "host beta is unreachable"})
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"2"])

    async def test_no_host_up_is_503(self) -> None:
        for name in self.hosts:
            self.directory.set(name, status="stopped")
        code, body, _ = await self.client.request("POST", "/api/sessions", {"command": ["cat"]})
        self.assertEqual((code, body), (503, {"error": "No host is up"}))
        self.assertEqual(await self.client.get("/api/sessions"), [])
        self.assertEqual(self.grants, [])

    async def test_unknown_session_is_404(self) -> None:
        code, body, _ = await self.client.request("GET", "/api/sessions/no-such-session/text")
        self.assertEqual(code, 404)
        self.assertEqual(body, {"error": "Session not found"})

    async def test_session_found_by_listing_on_a_miss(self) -> None:
        """A session the gateway has not seen (made on the host directly) is found by one listing."""
        code, body, _ = await self.host_client("beta").request("POST", "/api/sessions", {"command": ["cat"]})
        self.assertEqual(code, 200)
        self.sessions.append(("beta", body["sessionId"]))
        info = await self.client.session(body["sessionId"])
        self.assertEqual((info["id"], info["host"]), (body["sessionId"], "beta"))

    async def test_one_session_names_its_host(self) -> None:
        """GET /api/sessions/ID is the owner's answer with the owner's name added, as each
        session of the listing has it; an id no host has is 404."""
        sid, _ = await self.create(["cat"], host="beta", name="named")
        info = await self.client.session(sid)
        own = await self.host_client("beta").session(sid)
        self.assertNotIn("host", own)
        self.assertEqual(info.pop("host"), "beta")
        # The owner's own answer otherwise (what changes from one moment to the next aside).
        self.assertEqual(set(info), set(own))
        stable = ("id", "name", "command", "status", "workingDir", "startedAt")
        self.assertEqual({k: info[k] for k in stable}, {k: own[k] for k in stable})
        code, body, _ = await self.client.request("GET", "/api/sessions/no-such-session")
        self.assertEqual((code, body), (404, {"error": "Session not found"}))


class SessionRouteTests(GatewayTestCase):
    async def test_input_resize_rename_text_buffer_kill(self) -> None:
        """Every /api/sessions/ID route reaches the owner and answers as the owner does."""
        sid, host = await self.create(["cat"], host="beta", cols=80, rows=24)
        direct = self.host_client(host)
        code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "through\r"})
        self.assertEqual((code, body), (200, {"success": True}))
        await self.client.wait_text(sid, "through")
        code, body, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/resize", {"cols": 100, "rows": 30}
        )
        self.assertEqual(code, 200, body)
        code, body, _ = await self.client.request("PATCH", f"/api/sessions/{sid}", {"name": "renamed"})
        self.assertEqual((code, body), (200, {"success": True, "name": "renamed"}))
        self.assertEqual((await direct.session(sid))["name"], "renamed")
        code, buffer, response = await self.client.request("GET", f"/api/sessions/{sid}/buffer")
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/octet-stream"])
        self.assertEqual(buffer, (await direct.request("GET", f"/api/sessions/{sid}/buffer"))[1])
        code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"bad": 1})
        self.assertEqual(code, 400)
        self.assertEqual(body["error"], "Exactly one of text or key is required")
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual((code, body["message"]), (200, "Session killed"))
        await direct.wait_status(sid, "exited")

    async def test_stream_is_byte_exact(self) -> None:
        """The SSE stream of a session through the gateway is the host's own, byte for byte."""
        sid, host = await self.create(["printf", "one\\ntwo\\n"], host="alpha")
        direct = self.host_client(host)
        await direct.wait_status(sid, "exited")

        async def whole(client: Client) -> bytes:
            response = await client.http.get(
                client.daemon.url(f"/api/sessions/{sid}/stream"), unbuffered=True
            )
            self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
            return await within(reactor, treq.content(response), 10, "the stream")  # type: ignore[no-any-return]

        through = await whole(self.client)
        own = await whole(direct)
        self.assertIn(b"one", through)
        self.assertEqual(through, own)

    async def test_recording_download(self) -> None:
        sid, host = await self.create(["printf", "recorded"], host="alpha")
        await self.host_client(host).wait_status(sid, "exited")
        code, body, response = await self.client.request("GET", f"/api/sessions/{sid}/recording")
        self.assertEqual(code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-disposition"),
            [f'attachment; filename="{sid}.cast"'.encode()],
        )
        self.assertIn(b"recorded", body)

    async def test_live_stream_follows_output(self) -> None:
        """A live SSE stream through the gateway carries output as it is made."""
        sid, _ = await self.create(["cat"], host="alpha")
        stream = await self.client.stream(sid)
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "live-output\r"})
        await poll(reactor, lambda: "live-output" in stream.output(), 10, what="output on the stream")

    async def test_slow_reader_pauses_the_host(self) -> None:
        """A browser that does not read its stream pauses the host's response: the gateway
        keeps little of it in its own buffers, and the whole stream arrives once it reads."""
        flood = "head -c 16000000 /dev/zero | tr '\\0' x | fold -w 99; echo flood-done"
        sid, host = await self.create(["sh", "-c", flood], host="alpha")
        await self.host_client(host).wait_status(sid, "exited", timeout=30)
        stream = await self.client.stream(sid)
        stream.pause()
        request = await poll(reactor, lambda: next(iter(self.gateway.relaying), None), 5, what="the relay")
        transport = request.channel.transport
        held: list[int] = []

        def settled() -> bool:
            held.append(len(unwritten(transport)))
            return len(held) > 20 and held[-1] == held[-20]  # nothing more came for a second

        await poll(reactor, settled, 20, what="the relay to settle")
        self.assertLess(max(held), 1 << 20)
        self.assertLess(self.gateway.relayed_bytes, 12_000_000)
        stream.resume()
        await within(reactor, stream.ended, 30, "the rest of the stream")
        self.assertIn("flood-done", stream.output()[-200:])

    async def test_crashed_host_is_503_at_once(self) -> None:
        """A session whose host was killed with kill -9: 503 naming the host, within 100 ms."""
        base = Path(tempfile.mkdtemp(prefix="gw-gamma-", dir=os.getcwd()))
        gamma = Daemon(reactor, base)
        await gamma.start()
        self.addCleanup(lambda: defer.ensureDeferred(gamma.stop()))
        self.daemons["gamma"] = gamma
        self.directory.set("gamma")
        sid, _ = await self.create(["cat"], host="gamma")
        await gamma.crash()
        started = time.monotonic()
        code, body, _ = await self.client.request("GET", f"/api/sessions/{sid}/text")
        elapsed = time.monotonic() - started
        self.assertEqual((code, body), (503, {"error": "host gamma is unreachable"}))
        self.assertLess(elapsed, 0.1)


class TrustTests(GatewayTestCase):
    async def test_login_is_required_at_the_gateway(self) -> None:
        """With login on, the gateway answers 401 without a token; with one, the host gets
        the grant of the user."""
        _, client = await self.start_gateway(login=True)
        code, body, _ = await client.request("GET", "/api/sessions")
        self.assertEqual((code, body["error"]), (401, "Authentication required"))
        code, body, _ = await client.request(
            "POST", "/api/auth/password", {"userId": USER, "password": PASSWORD}
        )
        self.assertEqual(code, 200, body)
        client.token = body["token"]
        self.grants.clear()
        code, body, _ = await client.request("GET", "/api/sessions")
        self.assertEqual(code, 200)
        self.assertIn(("alpha", {"kind": "full", "user": USER}), self.grants)

    async def test_share_link_of_one_gateway_works_through_another(self) -> None:
        """Gateways share the token secret: a share made through A reads through B, as a
        read grant of that one session."""
        sid, _ = await self.create(["cat"], host="alpha")
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "shared\r"})
        code, share, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200, share)
        self.assertEqual(share["url"], f"/#session={sid}&share={share['token']}")
        _, other = await self.start_gateway(login=True)
        other.token = share["token"]
        self.grants.clear()
        await other.wait_text(sid, "shared")
        self.assertIn(("alpha", {"kind": "read", "session": sid}), self.grants)
        code, body, _ = await other.request("POST", f"/api/sessions/{sid}/input", {"text": "x"})
        self.assertEqual((code, body["error"]), (403, "This link is read-only"))
        code, _, _ = await other.request("GET", "/api/sessions")
        self.assertEqual(code, 403)

    async def test_share_of_an_unknown_session_is_404(self) -> None:
        code, body, _ = await self.client.request("POST", "/api/sessions/nothing-here/share", {})
        self.assertEqual((code, body), (404, {"error": "Session not found"}))

    async def test_host_and_origin_checks(self) -> None:
        code, body, _ = await self.client.request(
            "GET", "/api/sessions", headers={"Origin": "http://evil.example"}
        )
        self.assertEqual((code, body["error"]), (403, "Forbidden: cross-origin request"))
        code, body, _ = await self.client.request("GET", "/api/sessions", headers={"Host": "evil.example"})
        self.assertEqual(code, 403)
        self.assertEqual(self.grants, [])  # neither reached a host


class GatewayRouteTests(GatewayTestCase):
    async def test_hosts(self) -> None:
        self.directory.set("beta", status="down", running=3)
        hosts = await self.client.get("/api/hosts")
        self.assertEqual([h["host"] for h in hosts], ["alpha", "beta"])
        self.assertEqual(hosts[1]["status"], "down")
        self.assertEqual(hosts[1]["sessions"], {"running": 3, "exited": 0})

    async def test_config_and_health(self) -> None:
        config = await self.client.get("/api/config")
        self.assertIs(config["gateway"], True)
        self.assertEqual(config["hosts"], ["alpha", "beta"])
        health = await self.client.get("/api/health")
        self.assertEqual(health["status"], "ok")
        self.assertEqual(self.grants, [])

    async def test_push_is_off(self) -> None:
        """The browser client asks for push: a gateway answers as a host with --no-push."""
        code, body, _ = await self.client.request("GET", "/api/push/vapid-public-key")
        self.assertEqual((code, body["error"]), (503, "Push notifications not configured"))
        code, body, _ = await self.client.request("POST", "/api/push/subscribe", {})
        self.assertEqual(code, 503, body)
        self.assertEqual(self.grants, [])

    async def test_metrics(self) -> None:
        self.directory.set("beta", status="down")
        await self.client.get("/api/hosts")
        text = (await self.client.get("/metrics")).decode()
        self.assertIn('vibetwist_gateway_hosts{status="up"} 1.0', text)
        self.assertIn('vibetwist_gateway_hosts{status="down"} 1.0', text)
        self.assertIn('vibetwist_http_requests_total{method="GET",route="/api/hosts",status="200"} 1.0', text)

    async def test_websocket_routes_need_an_upgrade(self) -> None:
        code, body, _ = await self.client.request("GET", "/ws/sessions/x")
        self.assertEqual(code, 426)
        self.assertIn("error", body)

    async def test_cleanup_exited_on_every_host(self) -> None:
        for host in ("alpha", "beta"):
            sid, _ = await self.create(["true"], host=host)
            await self.host_client(host).wait_status(sid, "exited")
        code, body, _ = await self.client.request("POST", "/api/cleanup-exited", {})
        self.assertEqual(code, 200)
        self.assertGreaterEqual(body["localCleaned"], 2)


class WebSocketTests(GatewayTestCase):
    async def test_session_socket_and_input_through_the_gateway(self) -> None:
        """/ws/sessions/ID and /ws/input pass the gate and reach the owner with the request's grant."""
        sid, _ = await self.create(["cat"], host="beta")
        self.grants.clear()
        term = await open_ws(reactor, self.client.daemon, f"/ws/sessions/{sid}")
        typing = await open_ws(reactor, self.client.daemon, f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"over-the-socket\r")
        await term.wait_for(lambda: term.texts() and "over-the-socket" in screen_of(term).text())
        self.assertEqual(self.grants, [("beta", {"kind": "full", "user": None})] * 2)

    async def test_socket_of_an_unknown_session_closes_4404(self) -> None:
        term = await open_ws(reactor, self.client.daemon, "/ws/sessions/not-a-session")
        self.assertEqual(await within(reactor, term.closed, 10, "the close"), 4404)

    async def test_socket_needs_a_login_when_login_is_on(self) -> None:
        _, client = await self.start_gateway(login=True)
        # Without login this path answers 426 (no upgrade); the gate answers first.
        code, body, _ = await client.request("GET", "/ws/sessions/x", headers={"Upgrade": "websocket"})
        self.assertEqual((code, body), (401, {"error": "Authentication required"}))
        self.assertEqual(self.grants, [])


class EventsTests(GatewayTestCase):
    async def test_events_merged_with_a_vector_id(self) -> None:
        """/api/events carries every host's events, each with its host, under a vector id
        that resumes every host's stream."""
        # "connected" (and so the response) comes once both hosts' streams have begun.
        stream = await self.client.events()
        self.assertEqual(self.gateway.tunnels_open, 2)
        a, _ = await self.create(["true"], host="alpha")
        b, _ = await self.create(["true"], host="beta")

        def started(sid: str) -> dict[str, Any] | None:
            for named in stream.named:
                data = named["data"]
                if data.get("type") == "session-start" and data.get("sessionId") == sid:
                    return named
            return None

        first = await poll(reactor, lambda: started(a), 10, what="alpha's start")
        second = await poll(reactor, lambda: started(b), 10, what="beta's start")
        self.assertEqual(first["data"]["host"], "alpha")
        self.assertEqual(second["data"]["host"], "beta")
        vector = parse_vector(stream.named[-1]["id"])
        self.assertEqual(set(vector), {"alpha", "beta"})
        stream.abort()
        c, _ = await self.create(["true"], host="beta")
        resumed = await self.client.events(last_event_id=format_vector(vector))
        await poll(reactor, lambda: any(n["data"].get("sessionId") == c for n in resumed.named), 10, what="c")
        self.assertFalse(any(n["data"].get("sessionId") in (a, b) for n in resumed.named))


class VectorTests(unittest.SynchronousTestCase):
    def test_round_trip(self) -> None:
        self.assertEqual(parse_vector(format_vector({"b": 2, "a:x": 10})), {"b": 2, "a:x": 10})
        self.assertEqual(format_vector({"b": 2, "a": 1}), "a:1,b:2")

    def test_bad_parts_left_out(self) -> None:
        self.assertEqual(parse_vector("a:1,junk,:3,b:x,c:4"), {"a": 1, "c": 4})
        self.assertEqual(parse_vector(None), {})

    def test_tunnel_grant(self) -> None:
        self.assertEqual(tunnel_grant(Grant("bob", method="password")), {"kind": "full", "user": "bob"})
        self.assertEqual(tunnel_grant(Grant(None, "s1")), {"kind": "read", "session": "s1"})
        self.assertEqual(tunnel_grant(None), {"kind": "full", "user": None})


# -- the real thing: a nats-server, hosts with --nats and gateway daemons -------------------

HOST_PASSWORD = "the hosts' own"


async def _daemon(name: str, args: tuple[str, ...], password: str) -> Daemon:
    base = Path(tempfile.mkdtemp(prefix=f"gw-cluster-{name}-", dir=os.getcwd()))
    env = {"VIBETUNNEL_USERNAME": USER, "VIBETUNNEL_PASSWORD": password}
    daemon = Daemon(reactor, base, args=args, env=env)
    await daemon.start(timeout=30)
    return daemon


async def logged_in(daemon: Daemon, password: str) -> Client:
    """A client of daemon carrying a login token."""
    client = Client(reactor, daemon)
    code, body, _ = await client.request("POST", "/api/auth/password", {"userId": USER, "password": password})
    if code != 200:
        raise AssertionError(f"login at {daemon.origin}: {code} {body!r}")
    client.token = body["token"]
    return client


class ClusterTests(unittest.TestCase):
    """Two hosts and two gateways, every one a process of its own, joined by a nats-server.

    Login is on everywhere: at the gateways with one password, at the hosts with
    another, which no request through a gateway carries (the hosts act on the grant
    their tunnel brings).
    """

    timeout = 90

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        self.nats = NATSServer(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(self.nats.cleanup()))
        await self.nats.start()
        self.cluster: dict[str, Daemon] = {}
        starting = [
            *(
                self.start(name, ("--nats", self.nats.url, "--host-id", name), HOST_PASSWORD)
                for name in ("alpha", "beta")
            ),
            *(
                self.start(name, ("--gateway", "--nats", self.nats.url), PASSWORD)
                for name in ("gw-a", "gw-b")
            ),
        ]
        for daemon in await defer.gatherResults([defer.ensureDeferred(d) for d in starting]):
            self.cluster[daemon.name] = daemon
        self.a = await logged_in(self.cluster["gw-a"], PASSWORD)
        self.b = await logged_in(self.cluster["gw-b"], PASSWORD)
        for client in (self.a, self.b):
            self.addCleanup(lambda c=client: defer.ensureDeferred(c.close()))
        for client in (self.a, self.b):
            await self.hosts_up(client, {"alpha", "beta"})
        self.made: list[str] = []
        self.addCleanup(lambda: defer.ensureDeferred(self._clean()))

    async def start(self, name: str, args: tuple[str, ...], password: str) -> Daemon:
        daemon = await _daemon(name, args, password)
        daemon.name = name  # type: ignore[attr-defined]
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        return daemon

    async def _clean(self) -> None:
        kill_sessions(set(self.made))

    async def hosts_up(self, client: Client, names: set[str]) -> None:
        async def check() -> bool:
            hosts = await client.get("/api/hosts")
            return names <= {h["host"] for h in hosts if h["status"] == "up"}

        await poll(reactor, check, 20, 0.1, f"{names} up at {client.daemon.origin}")

    async def create(self, client: Client, command: list[str], **fields: Any) -> tuple[str, str]:
        code, body, _ = await client.request("POST", "/api/sessions", dict(fields, command=command))
        self.assertEqual(code, 200, body)
        self.made.append(body["sessionId"])
        return body["sessionId"], body["host"]

    async def host_client(self, name: str) -> Client:
        client = await logged_in(self.cluster[name], HOST_PASSWORD)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return client

    async def test_list_create_and_hosts(self) -> None:
        """Sessions made on a chosen host and on the least loaded one, listed with their hosts
        by either gateway; /api/hosts and /api/config name both hosts."""
        on_beta, host = await self.create(self.a, ["cat"], host="beta")
        self.assertEqual(host, "beta")
        _, chosen = await self.create(self.a, ["cat"])
        self.assertIn(chosen, ("alpha", "beta"))
        listed = {s["id"]: s["host"] for s in await self.b.get("/api/sessions")}
        self.assertEqual(listed[on_beta], "beta")
        own = {s["id"] for s in await (await self.host_client("beta")).get("/api/sessions")}
        self.assertIn(on_beta, own)
        hosts = await self.a.get("/api/hosts")
        names = [h["host"] for h in hosts]
        self.assertEqual(names, sorted(names))
        alpha = next(h for h in hosts if h["host"] == "alpha")
        self.assertEqual(set(alpha), {"host", "status", "sessions", "lastHeartbeat", "version", "startedAt"})
        config = await self.a.get("/api/config")
        self.assertTrue(config["gateway"])
        self.assertLessEqual({"alpha", "beta"}, set(config["hosts"]))
        code, body, _ = await self.a.request("POST", "/api/sessions", {"command": ["cat"], "host": "nowhere"})
        self.assertEqual(code, 400, body)

    async def test_session_routes_through_the_tunnels(self) -> None:
        """Input, resize, rename, text, buffer and kill of a session through a gateway that
        did not make it."""
        sid, host = await self.create(self.a, ["cat"], host="alpha", cols=80, rows=24)
        code, _, _ = await self.b.request("POST", f"/api/sessions/{sid}/input", {"text": "tunnelled\r"})
        self.assertEqual(code, 200)
        await self.b.wait_text(sid, "tunnelled", timeout=10)
        code, body, _ = await self.b.request("POST", f"/api/sessions/{sid}/resize", {"cols": 90, "rows": 20})
        self.assertEqual(code, 200, body)
        code, body, _ = await self.b.request("PATCH", f"/api/sessions/{sid}", {"name": "over-nats"})
        self.assertEqual((code, body.get("name")), (200, "over-nats"))
        direct = await self.host_client(host)
        self.assertEqual((await direct.session(sid))["name"], "over-nats")
        code, buffer, _ = await self.b.request("GET", f"/api/sessions/{sid}/buffer")
        self.assertEqual(code, 200)
        self.assertEqual(buffer, (await direct.request("GET", f"/api/sessions/{sid}/buffer"))[1])
        code, body, _ = await self.b.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual(code, 200, body)
        await direct.wait_status(sid, "exited", timeout=10)

    async def test_stream_is_the_hosts_byte_for_byte(self) -> None:
        sid, host = await self.create(self.a, ["seq", "1", "3000"], host="beta")
        direct = await self.host_client(host)
        await direct.wait_status(sid, "exited", timeout=10)

        async def whole(client: Client) -> bytes:
            response = await client._stream_http.get(
                client.daemon.url(f"/api/sessions/{sid}/stream"),
                params={"token": client.token},
                unbuffered=True,
            )
            self.assertEqual(response.code, 200)
            return await within(reactor, treq.content(response), 15, "the stream")  # type: ignore[no-any-return]

        through, own = await whole(self.b), await whole(direct)
        self.assertIn(b"3000", through)
        self.assertEqual(through, own)

    async def test_share_made_on_one_gateway_works_on_the_other(self) -> None:
        sid, _ = await self.create(self.a, ["cat"], host="alpha")
        await self.a.request("POST", f"/api/sessions/{sid}/input", {"text": "for-sharing\r"})
        code, share, _ = await self.a.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200, share)
        reader = Client(reactor, self.cluster["gw-b"], token=share["token"])
        self.addCleanup(lambda: defer.ensureDeferred(reader.close()))
        await reader.wait_text(sid, "for-sharing", timeout=10)
        code, body, _ = await reader.request("POST", f"/api/sessions/{sid}/input", {"text": "no"})
        self.assertEqual((code, body["error"]), (403, "This link is read-only"))

    async def test_login_and_origin_checks_at_the_gateway(self) -> None:
        anonymous = Client(reactor, self.cluster["gw-a"])
        self.addCleanup(lambda: defer.ensureDeferred(anonymous.close()))
        code, body, _ = await anonymous.request("GET", "/api/sessions")
        self.assertEqual((code, body["error"]), (401, "Authentication required"))
        code, body, _ = await self.a.request(
            "GET", "/api/sessions", headers={"Origin": "http://evil.example"}
        )
        self.assertEqual(code, 403, body)
        code, body, _ = await self.a.request("GET", "/api/hosts", headers={"Host": "evil.example"})
        self.assertEqual(code, 403, body)

    async def test_websockets_through_the_tunnels(self) -> None:
        """/ws/sessions, /ws/input and /buffers of a gateway, relayed over tunnels to the owner."""
        sid, _ = await self.create(self.a, ["cat"], host="beta")
        gateway, token = self.cluster["gw-b"], self.b.token
        term = await open_ws(reactor, gateway, f"/ws/sessions/{sid}?token={token}")
        typing = await open_ws(reactor, gateway, f"/ws/input?sessionId={sid}&token={token}")
        typing.sendMessage(b"socket-over-nats\r")
        await term.wait_for(lambda: term.texts() and "socket-over-nats" in screen_of(term).text())
        buffers = await open_ws(reactor, gateway, f"/buffers?token={token}")
        buffers.send_json({"type": "subscribe", "sessionId": sid})
        await buffers.wait_for(lambda: {"type": "subscribed", "sessionId": sid} in buffers.texts())
        await buffers.wait_for(lambda: buffers.binaries())
        for socket in (term, typing, buffers):
            socket.sendClose()
        closed = [term.closed, typing.closed, buffers.closed]
        await within(reactor, defer.gatherResults(closed), 10, "the sockets' close")

    async def test_events_from_both_hosts(self) -> None:
        stream = await self.a.events()
        sids = {}
        for host in ("alpha", "beta"):
            sids[host], _ = await self.create(self.a, ["true"], host=host)

        def seen(host: str) -> bool:
            return any(
                n["data"].get("sessionId") == sids[host] and n["data"].get("host") == host
                for n in stream.named
            )

        await poll(reactor, lambda: seen("alpha") and seen("beta"), 15, what="events of both hosts")
        self.assertLessEqual({"alpha", "beta"}, set(parse_vector(stream.named[-1]["id"])))

    async def test_nats_restart(self) -> None:
        """A stream open through a gateway when NATS restarts is cut off (its tunnel is lost,
        nothing resumes); once the link is back, the gateway serves the session again and
        share links made before still work."""
        sid, _ = await self.create(self.a, ["cat"], host="alpha")
        code, share, _ = await self.a.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200, share)
        stream = await self.a.stream(sid)
        await self.nats.restart()
        await within(reactor, stream.ended, 30, "the stream's end")
        self.assertFalse(stream.complete)
        for client in (self.a, self.b):
            await self.hosts_up(client, {"alpha", "beta"})

        async def served() -> bool:
            code, _, _ = await self.a.request(
                "POST", f"/api/sessions/{sid}/input", {"text": "after-restart\r"}
            )
            return code == 200

        await poll(reactor, served, 20, 0.2, "input after the restart")
        reader = Client(reactor, self.cluster["gw-b"], token=share["token"])
        self.addCleanup(lambda: defer.ensureDeferred(reader.close()))
        await reader.wait_text(sid, "after-restart", timeout=10)

    async def test_host_killed_with_kill_9_answers_503_at_once(self) -> None:
        gamma = await self.start("gamma", ("--nats", self.nats.url, "--host-id", "gamma"), HOST_PASSWORD)
        await self.hosts_up(self.a, {"gamma"})
        code, body, _ = await self.a.request("POST", "/api/sessions", {"command": ["cat"], "host": "gamma"})
        self.assertEqual(code, 200, body)
        sid = body["sessionId"]
        await gamma.crash()
        started = time.monotonic()
        code, body, _ = await self.a.request("GET", f"/api/sessions/{sid}/text")
        elapsed = time.monotonic() - started
        self.assertEqual((code, body), (503, {"error": "host gamma is unreachable"}))
        self.assertLess(elapsed, 0.1)


class GatewayOptionsTests(unittest.SynchronousTestCase):
    """``--gateway`` on the command line."""

    def parse(self, *args: str) -> Options:
        base = Path(tempfile.mkdtemp(prefix="gw-options-", dir=os.getcwd()))
        options = Options(environ={})
        options.parseOptions(["--control-dir", str(base / "control"), *args])
        return options

    def test_needs_nats(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--gateway")
        self.assertIn("--gateway needs --nats", str(caught.exception))

    def test_session_options_refused(self) -> None:
        for args in (("--sessions-outlive-daemon",), ("--shell", "/bin/sh"), ("--host-id", "alpha")):
            with self.assertRaises(usage.UsageError) as caught:
                self.parse("--gateway", "--nats", "nats://127.0.0.1:4222", *args)
            self.assertIn("makes no sense with --gateway", str(caught.exception), args)

    def test_gateway_with_nats(self) -> None:
        options = self.parse("--gateway", "--nats", "nats://127.0.0.1:4222")
        self.assertTrue(options["gateway"])
        self.assertEqual(options["nats-config"].servers, ("nats://127.0.0.1:4222",))
