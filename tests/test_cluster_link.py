"""NATSLink against a real nats-server: messages, requests, key-value buckets, reconnects."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest

from tests.support.daemon import poll, sleep, within
from tests.support.nats import LinkCase, MemoryServers, NATSServer
from vibetwist.cluster.link import LinkDown, Message, NATSLink, RequestTimeout, Unreachable
from vibetwist.cluster.options import NATSConfig


class CountingReactor:
    """The reactor, counting the calls of callFromThread."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.calls = 0

    def callFromThread(self, function: Any, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        self._reactor.callFromThread(function, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


class MessageTests(LinkCase):
    async def test_publish_reaches_subscriber_in_order(self) -> None:
        """Messages published on one link reach another link's subscriber, all of them, in
        the order they were published, on the reactor thread."""
        server = await self.start_server()
        sender = await self.connected_link(server, "sender")
        receiver = await self.connected_link(server, "receiver")
        got: list[Message] = []
        await receiver.subscribe("t.order", got.append)
        for n in range(2000):
            sender.publish("t.order", b"%d" % n)
        await poll(reactor, lambda: len(got) >= 2000, timeout=10, what="all messages")
        self.assertEqual([m.data for m in got], [b"%d" % n for n in range(2000)])
        self.assertEqual({m.subject for m in got}, {"t.order"})

    async def test_a_flood_wakes_the_reactor_in_batches(self) -> None:
        """Messages reach the reactor in batches: a flood of 20000 wakes it (one
        callFromThread each time) far fewer times than there are messages."""
        server = await self.start_server()
        if not isinstance(server, NATSServer):
            raise SkipTest("the memory fake has no thread to hand messages over from")
        sender = await self.connected_link(server, "sender")
        counting = CountingReactor(reactor)
        link = NATSLink(counting, NATSConfig(servers=(server.url,)), "receiver")
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "connecting")
        got: list[Message] = []
        await link.subscribe("t.flood", got.append)
        before = counting.calls
        for _ in range(20000):
            sender.publish("t.flood", b"x" * 100)
        await poll(reactor, lambda: len(got) >= 20000, timeout=20, what="the flood")
        self.assertLess(counting.calls - before, 20000 // 4)

    async def test_unsubscribe_stops_delivery(self) -> None:
        """After unsubscribe, a subscription's callback is not called again."""
        server = await self.start_server()
        link = await self.connected_link(server)
        got: list[bytes] = []
        sub = await link.subscribe("t.unsub", lambda m: got.append(m.data))
        link.publish("t.unsub", b"one")
        await poll(reactor, lambda: got == [b"one"], what="first message")
        link.unsubscribe(sub)
        marker: list[bytes] = []
        await link.subscribe("t.marker", lambda m: marker.append(m.data))
        link.publish("t.unsub", b"two")
        link.publish("t.marker", b"after")
        await poll(reactor, lambda: marker, what="marker")
        self.assertEqual(got, [b"one"])

    async def test_request_reply(self) -> None:
        """A request fires with the reply the subscriber sends to its reply subject."""
        server = await self.start_server()
        client = await self.connected_link(server, "client")
        responder = await self.connected_link(server, "responder")
        await responder.subscribe("t.echo", lambda m: responder.publish(m.reply, m.data.upper()))
        reply = await within(reactor, client.request("t.echo", b"hello", timeout=5), 6, "reply")
        self.assertEqual(reply, b"HELLO")

    async def test_no_responders_is_unreachable_fast(self) -> None:
        """A request to a subject nobody subscribes to errbacks with Unreachable well
        before its timeout."""
        server = await self.start_server()
        link = await self.connected_link(server)
        started = reactor.seconds()
        with self.assertRaises(Unreachable):
            await link.request("t.nobody", b"x", timeout=10)
        self.assertLess(reactor.seconds() - started, 1.0)

    async def test_request_timeout(self) -> None:
        """A request whose subscriber never replies errbacks with RequestTimeout."""
        server = await self.start_server()
        link = await self.connected_link(server)
        await link.subscribe("t.silent", lambda m: None)
        with self.assertRaises(RequestTimeout):
            await link.request("t.silent", b"x", timeout=0.3)

    async def test_request_while_down_is_link_down(self) -> None:
        """A request while the link is not connected errbacks with LinkDown at once."""
        server = await self.start_server()
        link = await self.connected_link(server)
        await server.kill()
        await poll(reactor, lambda: not link.connected, timeout=10, what="link notices")
        with self.assertRaises(LinkDown):
            await link.request("t.any", b"x", timeout=5)


class KeyValueTests(LinkCase):
    async def test_create_put_get_delete(self) -> None:
        """A bucket is made when missing; create stores only once, put replaces and returns
        growing revisions, get reads back, a missing or deleted key reads as None."""
        server = await self.start_server()
        link = await self.connected_link(server)
        kv = await link.key_value("t_bucket", ttl=3600)
        self.assertIs(await kv.get("nothing"), None)
        self.assertTrue(await kv.create("k", b"first"))
        self.assertFalse(await kv.create("k", b"second"))
        self.assertEqual(await kv.get("k"), b"first")
        one = await kv.put("k", b"third")
        two = await kv.put("k", b"fourth")
        self.assertGreater(two, one)
        self.assertEqual(await kv.get("k"), b"fourth")
        await kv.delete("k")
        self.assertIs(await kv.get("k"), None)
        # Opening the existing bucket from another link sees the same values.
        other = await self.connected_link(server, "other")
        again = await other.key_value("t_bucket", ttl=3600)
        await kv.put("shared", b"v")
        self.assertEqual(await again.get("shared"), b"v")

    async def test_watch_reports_current_then_changes(self) -> None:
        """watch_all reports every present value, becomes ready, then reports puts and
        deletes (as None); after stop it reports nothing more."""
        server = await self.start_server()
        link = await self.connected_link(server)
        kv = await link.key_value("t_watch", ttl=3600)
        await kv.put("a", b"1")
        await kv.put("b", b"2")
        seen: list[tuple[str, bytes | None]] = []
        watch = kv.watch_all(lambda key, value: seen.append((key, value)))
        await within(reactor, watch.ready, 10, "watch ready")
        self.assertEqual(sorted(seen), [("a", b"1"), ("b", b"2")])
        await kv.put("a", b"3")
        await kv.delete("b")
        await poll(reactor, lambda: len(seen) >= 4, what="changes")
        self.assertEqual(seen[2:], [("a", b"3"), ("b", None)])
        watch()
        await kv.put("a", b"4")
        marker = await kv.get("a")
        self.assertEqual(marker, b"4")
        self.assertNotIn(("a", b"4"), seen)

    async def test_values_expire_after_the_ttl(self) -> None:
        """A bucket made with a ttl forgets a value once it is older than that."""
        server = await self.start_server()
        link = await self.connected_link(server)
        kv = await link.key_value("t_ttl", ttl=1.0)
        await kv.put("short", b"lived")
        self.assertEqual(await kv.get("short"), b"lived")
        await poll(
            reactor,
            lambda: kv.get("short").addCallback(lambda v: v is None),
            timeout=10,
            interval=0.2,
            what="expiry",
        )

    async def test_watch_of_empty_bucket_becomes_ready(self) -> None:
        """A watch of a bucket without values becomes ready, and then sees a put."""
        server = await self.start_server()
        link = await self.connected_link(server)
        kv = await link.key_value("t_empty", ttl=60)
        seen: list[tuple[str, bytes | None]] = []
        watch = kv.watch_all(lambda key, value: seen.append((key, value)))
        await within(reactor, watch.ready, 10, "watch ready")
        self.assertEqual(seen, [])
        await kv.put("x", b"y")
        await poll(reactor, lambda: seen == [("x", b"y")], what="the put")
        watch()


class ReconnectTests(LinkCase):
    async def test_start_before_server_is_up_keeps_trying(self) -> None:
        """start() before any server listens keeps trying (saying so once) and fires once
        one does."""
        server = NATSServer(reactor)
        self.addCleanup(lambda: defer.ensureDeferred(server.cleanup()))
        said: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_format", "").startswith("nats: {error}"):
                said.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        link = self.make_link(server)
        started = link.start()
        states: list[str] = []
        link.when_state(states.append)
        # Several reconnect periods pass without a server: nothing to poll for.
        await sleep(reactor, 1.5)
        self.assertFalse(started.called)
        # The same refusal is logged once, not once per attempt.
        self.assertEqual(len(said), 1)
        await server.start()
        await within(reactor, started, 10, "connecting once the server is up")
        self.assertTrue(link.connected)
        self.assertEqual(states, ["connected"])

    async def test_subscriptions_and_watches_survive_a_server_restart(self) -> None:
        """After nats-server restarts, the link reports disconnected then reconnected, its
        subscriptions receive again, and a key-value watch sees new values."""
        server = await self.start_server()
        link = await self.connected_link(server)
        states: list[str] = []
        link.when_state(states.append)
        got: list[bytes] = []
        await link.subscribe("t.survive", lambda m: got.append(m.data))
        kv = await link.key_value("t_survive", ttl=3600)
        seen: list[tuple[str, bytes | None]] = []
        watch = kv.watch_all(lambda key, value: seen.append((key, value)))
        await watch.ready
        await server.restart()
        await poll(reactor, lambda: "reconnected" in states, timeout=15, what="reconnect")
        self.assertEqual(states[0], "disconnected")
        self.assertTrue(link.connected)

        def publish_and_check() -> bool:
            link.publish("t.survive", b"after")
            return bool(got)

        await poll(reactor, publish_and_check, timeout=10, interval=0.2, what="a message after restart")
        self.assertEqual(set(got), {b"after"})
        await poll(
            reactor,
            lambda: kv.put("k", b"v").addCallback(lambda _: ("k", b"v") in seen),
            timeout=15,
            interval=0.3,
            what="a watched put after restart",
        )
        watch()

    async def test_stop_sends_what_was_published_and_ends_the_thread(self) -> None:
        """Messages published just before stop() still reach subscribers, and stop fires
        once the link's thread has ended."""
        server = await self.start_server()
        sender = await self.connected_link(server, "sender")
        receiver = await self.connected_link(server, "receiver")
        got: list[bytes] = []
        await receiver.subscribe("t.last", lambda m: got.append(m.data))
        for n in range(100):
            sender.publish("t.last", b"%d" % n)
        await within(reactor, sender.stop(), 10, "stop")
        self.assertFalse(sender.connected)
        self.assertFalse(sender._thread is not None and sender._thread.is_alive())
        await poll(reactor, lambda: len(got) == 100, what="the last messages")
        self.assertEqual(got, [b"%d" % n for n in range(100)])

    async def test_stop_before_connecting_fails_start(self) -> None:
        """stop() while start() still tries ends the thread and fails start with LinkDown."""
        server = NATSServer(reactor)
        link = self.make_link(server)
        started = link.start()
        await link.stop()
        with self.assertRaises(LinkDown):
            await started
        self.assertFalse(link._thread is not None and link._thread.is_alive())


class InboxTests(LinkCase):
    async def test_every_inbox_is_under_the_prefix(self) -> None:
        """A link given an inbox prefix receives everything under it: its own inboxes,
        the replies of its requests and of JetStream's API, and its watch's deliveries;
        a spy on every inbox and on the JetStream API sees no reply subject of it
        anywhere else."""
        server = await self.start_server()
        spy = await self.connected_link(server, "spy")
        seen: list[Message] = []
        await spy.subscribe("_INBOX.>", seen.append)
        await spy.subscribe("$JS.API.>", seen.append)
        responder = await self.connected_link(server, "responder")
        await responder.subscribe("t.echo", lambda m: responder.publish(m.reply, m.data))
        link = await self.connected_link(server, "prefixed", inbox_prefix="_INBOX.h.box-1")
        self.assertEqual(link.inbox_prefix, "_INBOX.h.box-1")
        own = link.new_inbox()
        self.assertTrue(own.startswith("_INBOX.h.box-1."), own)
        self.assertNotEqual(own, link.new_inbox())
        got: list[bytes] = []
        await link.subscribe(own, lambda m: got.append(m.data))
        link.publish(own, b"to myself")
        self.assertEqual(await within(reactor, link.request("t.echo", b"x", timeout=5), 6, "reply"), b"x")
        kv = await link.key_value("t_inbox", ttl=60)
        await kv.put("k", b"v")
        self.assertEqual(await kv.get("k"), b"v")
        changes: list[tuple[str, bytes | None]] = []
        watch = kv.watch_all(lambda key, value: changes.append((key, value)))
        await within(reactor, watch.ready, 10, "watch ready")
        await kv.put("k", b"w")
        await poll(reactor, lambda: ("k", b"w") in changes and got, what="the watch and the message")
        watch()
        inboxes = [m.subject for m in seen if m.subject.startswith("_INBOX.")]
        replies = [m.reply for m in seen if m.subject.startswith("$JS.API.") and m.reply]
        self.assertTrue(inboxes and replies, seen)
        for subject in inboxes + replies:
            self.assertTrue(subject.startswith("_INBOX.h.box-1."), subject)

    def test_prefix_must_be_literal_tokens(self) -> None:
        """An inbox prefix with a wildcard, an empty token or a space is refused."""
        config = NATSConfig(servers=("nats://127.0.0.1:4222",))
        for prefix in ("", "_INBOX.*", "_INBOX.>", "_INBOX..h", "_INBOX.h ", "_INBOX.h.", "a b"):
            self.assertRaises(ValueError, NATSLink, reactor, config, "t", inbox_prefix=prefix)
        self.assertEqual(NATSLink(reactor, config, "t").new_inbox().split(".")[0], "_INBOX")


class AuthTests(LinkCase):
    async def test_token_in_url_or_config(self) -> None:
        """A server that wants a token accepts a link that gives it in the URL or in the
        config, and a link with a wrong token does not get connected."""
        server = await self.start_server(token="s3cret")
        in_url = NATSLink(reactor, NATSConfig(servers=(f"nats://s3cret@127.0.0.1:{server.port}",)), "url")
        self.addCleanup(in_url.stop)
        await within(reactor, in_url.start(), 10, "token in the URL")
        in_config = self.make_link(server, "config", token="s3cret")
        await within(reactor, in_config.start(), 10, "token in the config")
        wrong = self.make_link(server, "wrong", token="guess")
        started = wrong.start()
        # Refused attempts go on; two reconnect periods are enough to have tried.
        await sleep(reactor, 1.2)
        self.assertFalse(started.called)
        self.assertFalse(wrong.connected)
        # It fails once the link stops (at the end of the test).
        started.addErrback(lambda failure: failure.trap(LinkDown))

    async def test_user_and_password(self) -> None:
        """A server with a user and password accepts a link that gives them."""
        server = await self.start_server(user="vt", password="pw")
        link = NATSLink(reactor, NATSConfig(servers=(f"nats://vt:pw@127.0.0.1:{server.port}",)), "user")
        self.addCleanup(link.stop)
        await within(reactor, link.start(), 10, "user and password")
        kv = await link.key_value("t_auth", ttl=60)
        self.assertEqual(await kv.put("a", b"b"), 1)


class MemoryMessageTests(MemoryServers, MessageTests):
    """MessageTests against vibetwist.testing.MemoryNATS."""


class MemoryKeyValueTests(MemoryServers, KeyValueTests):
    """KeyValueTests against vibetwist.testing.MemoryNATS."""
