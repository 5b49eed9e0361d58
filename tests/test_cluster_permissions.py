"""The NATS permissions of docs/cluster.md, run by a real nats-server.

The server runs the page's ``authorization`` block itself (tests.support.permissions
takes it out of the page; only the hosts' NKeys are made anew). With it, two hosts
(NKeys) and a gateway (a password, ``--gateway-id`` as the page gives it), each a
process of its own, make a cluster that lists, creates and streams with no
permission violation in the server's log; and the credentials of one host cannot
read what is not its own: other inboxes, another host's subject, the token secret.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATSClient
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.support.daemon import Client, Daemon, kill_sessions, open_ws, poll
from tests.support.nats import NATSServer
from tests.support.permissions import documented_authorization, make_nkey, password_users, with_nkeys
from tests.support.screens import screen_of

T = TypeVar("T")

HOSTS = ("host-a", "host-b")
GATEWAY_USER = "gateway-1"
USER, PASSWORD = "alice", "gateway login"
SECRET_SUBJECT = "$KV.vibetwist_secrets.token-secret"


def run_client(
    url: str, work: Callable[[NATSClient, list[str]], Awaitable[T]], **options: Any
) -> defer.Deferred[T]:
    """Connect a nats-py client with options on a thread of its own, await work(client,
    errors) there (errors: what the server reported, as it comes) and close it."""

    async def main() -> T:
        errors: list[str] = []

        async def on_error(error: Exception) -> None:
            errors.append(str(error))

        client = await nats.connect(
            url, error_cb=on_error, allow_reconnect=False, connect_timeout=5, **options
        )
        try:
            return await work(client, errors)
        finally:
            await client.close()

    return threads.deferToThread(asyncio.run, main())


def attempts(
    subscribe: list[str], publish: list[tuple[str, bytes]], refusals: int
) -> Callable[[NATSClient, list[str]], Awaitable[list[str]]]:
    """Work for run_client: subscribe to each subject and publish each message (replies to
    the client's own inbox); then wait (5 s at most) until the server has reported
    refusals errors, and give every error it reported (sorted). The server answers a
    publish it refuses on its own time, so the errors are not matched to the actions
    by order but compared as a whole."""

    async def work(client: NATSClient, errors: list[str]) -> list[str]:
        for subject in subscribe:
            await client.subscribe(subject)
        for subject, payload in publish:
            await client.publish(subject, payload, reply=client.new_inbox())
        await client.flush(timeout=5)
        deadline = asyncio.get_running_loop().time() + 5
        while len(errors) < refusals and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await client.flush(timeout=5)
        return sorted(errors)

    return work


def refused(action: str) -> str:
    """What nats-py reports of an action the server refuses ("subscribe X", "publish X"),
    lowercased as nats-py has it."""
    verb, subject = action.split(" ", 1)
    what = "subscription" if verb == "subscribe" else "publish"
    return f'nats: permissions violation for {what} to "{subject}"'.lower()


class DocumentedPermissionsTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cluster-perms-", dir=os.getcwd()))
        block = documented_authorization()
        self.seeds: dict[str, Path] = {}
        public_keys: dict[str, str] = {}
        for host in HOSTS:
            self.seeds[host], public_keys[host] = make_nkey(self.folder, host)
        self.users = password_users(block)
        self.nats = NATSServer(reactor, config=with_nkeys(block, public_keys))
        self.addCleanup(lambda: defer.ensureDeferred(self.nats.cleanup()))
        await self.nats.start()
        self.secret = secrets.token_hex(32)
        await run_client(self.url("admin"), self._make_buckets)

    def url(self, user: str) -> str:
        """The server's URL with the documented password of user in it."""
        return f"nats://{user}:{self.users[user].password}@127.0.0.1:{self.nats.port}"

    async def _make_buckets(self, client: NATSClient, errors: list[str]) -> None:
        """As the page says: the admin makes both buckets (hosts and gateways may not)."""
        js = client.jetstream()
        await js.create_key_value(bucket="vibetwist_hosts", ttl=3600, history=1)
        await js.create_key_value(bucket="vibetwist_secrets", history=1)

    async def start_daemon(self, name: str, args: tuple[str, ...]) -> Daemon:
        base = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.folder))
        env = {"VIBETUNNEL_USERNAME": USER, "VIBETUNNEL_PASSWORD": PASSWORD}
        daemon = Daemon(reactor, base, args=args, env=env)
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        await daemon.start(timeout=30)
        return daemon

    def violations(self) -> list[str]:
        return [line for line in self.nats.output.splitlines() if "Violation" in line]

    async def test_cluster_works_with_no_violation(self) -> None:
        """Two hosts and a gateway with the documented credentials: the gateway sees both
        up, creates a session on a chosen host and on the least loaded one, lists them,
        and streams one over a WebSocket; heartbeats go on; the server logs no violation."""
        local = f"nats://127.0.0.1:{self.nats.port}"
        gateway_id = self.users[GATEWAY_USER].gateway
        assert gateway_id is not None
        starting = [
            self.start_daemon(
                host, ("--nats", local, "--nats-nkey", str(self.seeds[host]), "--host-id", host)
            )
            for host in HOSTS
        ]
        starting.append(
            self.start_daemon(
                "gw", ("--gateway", "--nats", self.url(GATEWAY_USER), "--gateway-id", gateway_id)
            )
        )
        *_, gateway = await defer.gatherResults([defer.ensureDeferred(d) for d in starting])
        client = Client(reactor, gateway)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        code, body, _ = await client.request(
            "POST", "/api/auth/password", {"userId": USER, "password": PASSWORD}
        )
        self.assertEqual(code, 200, body)
        client.token = body["token"]

        async def both_up() -> list[dict[str, Any]] | None:
            hosts = await client.get("/api/hosts")
            return hosts if {h["host"] for h in hosts if h["status"] == "up"} >= set(HOSTS) else None

        hosts = await poll(reactor, both_up, 30, 0.1, "both hosts up at the gateway")
        made: set[str] = set()
        self.addCleanup(lambda: kill_sessions(made))
        code, chosen, _ = await client.request(
            "POST", "/api/sessions", {"command": ["cat"], "host": "host-b"}
        )
        self.assertEqual((code, chosen.get("host")), (200, "host-b"), chosen)
        made.add(chosen["sessionId"])
        code, other, _ = await client.request("POST", "/api/sessions", {"command": ["cat"]})
        self.assertEqual(code, 200, other)
        self.assertEqual(other["host"], "host-a")  # the least loaded
        made.add(other["sessionId"])
        listed = {s["id"]: s["host"] for s in await client.get("/api/sessions")}
        self.assertEqual(listed, {chosen["sessionId"]: "host-b", other["sessionId"]: "host-a"})

        sid, token = chosen["sessionId"], client.token
        term = await open_ws(reactor, gateway, f"/ws/sessions/{sid}?token={token}")
        typing = await open_ws(reactor, gateway, f"/ws/input?sessionId={sid}&token={token}")
        typing.sendMessage(b"allowed-through\r")
        await term.wait_for(lambda: term.texts() and "allowed-through" in screen_of(term).text())
        for socket in (term, typing):
            socket.sendClose()
        await defer.gatherResults([term.closed, typing.closed])

        # Heartbeats of both hosts still reach the gateway after all that.
        before = {h["host"]: h["lastHeartbeat"] for h in hosts}

        async def beaten() -> bool:
            now = {h["host"]: h["lastHeartbeat"] for h in await client.get("/api/hosts")}
            return all(now[host] != before[host] for host in HOSTS)

        await poll(reactor, beaten, 15, 0.2, "new heartbeats of both hosts")
        self.assertEqual(self.violations(), [])
        self.assertIn("Server is ready", self.nats.output)

    async def test_host_credentials_read_nothing_of_others(self) -> None:
        """host-a's NKey may subscribe to its own subject and inboxes and read the host
        registry; the server refuses it every other inbox (all of them, the gateways',
        host-b's), host-b's subject, and every way to the token secret."""
        await run_client(self.url("admin"), self._put_secret)
        allowed_subscribe = ["vt.h.host-a", "_INBOX.h.host-a.>"]
        refused_subscribe = [
            "_INBOX.>",
            "_INBOX.g.>",
            "_INBOX.g.gw1.>",
            "_INBOX.h.host-b.>",
            "vt.h.host-b",
            "vt.h.*",
            "$KV.vibetwist_secrets.>",
        ]
        refused_publish = [
            (f"$JS.API.DIRECT.GET.KV_vibetwist_secrets.{SECRET_SUBJECT}", b""),
            (
                "$JS.API.STREAM.MSG.GET.KV_vibetwist_secrets",
                b'{"last_by_subj": "%s"}' % SECRET_SUBJECT.encode(),
            ),
            ("$JS.API.STREAM.INFO.KV_vibetwist_secrets", b""),
            ("$JS.API.CONSUMER.CREATE.KV_vibetwist_secrets", b"{}"),
            ("$KV.vibetwist_hosts.host-b", b"{}"),
            ("vt.h.host-b", b"{}"),
        ]
        host = {"nkeys_seed": str(self.seeds["host-a"]), "inbox_prefix": "_INBOX.h.host-a"}
        refusals = [f"subscribe {s}" for s in refused_subscribe] + [
            f"publish {s}" for s, _ in refused_publish
        ]
        said = await run_client(
            f"nats://127.0.0.1:{self.nats.port}",
            attempts(allowed_subscribe + refused_subscribe, refused_publish, len(refusals)),
            **host,
        )
        self.assertEqual(said, sorted(refused(action) for action in refusals))

        # The way host-a reads its own registry record works: so the refusals above are
        # the permissions', not a wrong request's.
        async def own_record(client: NATSClient, errors: list[str]) -> bytes:
            message = await client.request(
                "$JS.API.STREAM.MSG.GET.KV_vibetwist_hosts",
                b'{"last_by_subj": "$KV.vibetwist_hosts.host-a"}',
                timeout=5,
            )
            self.assertEqual(errors, [])
            return message.data

        answer = await run_client(f"nats://127.0.0.1:{self.nats.port}", own_record, **host)
        self.assertIn(b"stream_msg_get_response", answer)

    async def test_gateway_credentials_read_the_secret_but_no_host_inbox(self) -> None:
        """gateway-1 reads the token secret (through its own inboxes), and the server
        refuses it the hosts' inboxes, the other gateway's and a host's subject."""
        await run_client(self.url("admin"), self._put_secret)
        gateway_id = self.users[GATEWAY_USER].gateway

        async def read_secret(client: NATSClient, errors: list[str]) -> bytes:
            entry = await (await client.jetstream().key_value("vibetwist_secrets")).get("token-secret")
            self.assertEqual(errors, [])
            return entry.value or b""

        options = {"inbox_prefix": f"_INBOX.g.{gateway_id}"}
        self.assertEqual(
            await run_client(self.url(GATEWAY_USER), read_secret, **options), self.secret.encode()
        )
        refused_subscribe = ["_INBOX.>", "_INBOX.h.>", "_INBOX.h.host-a.>", "_INBOX.g.gw2.>", "vt.h.host-a"]
        allowed_subscribe = [f"_INBOX.g.{gateway_id}.>"]
        said = await run_client(
            self.url(GATEWAY_USER),
            attempts(allowed_subscribe + refused_subscribe, [], len(refused_subscribe)),
            **options,
        )
        self.assertEqual(said, sorted(refused(f"subscribe {subject}") for subject in refused_subscribe))

    async def _put_secret(self, client: NATSClient, errors: list[str]) -> None:
        kv = await client.jetstream().key_value("vibetwist_secrets")
        await kv.put("token-secret", self.secret.encode())
