"""Tests for Web Push: the VAPID key (L{vibetwist.model.vapid}), subscriptions and messages
(L{vibetwist.model.webpush}), the notifier (L{vibetwist.sessions.push}) and
``/api/push/*`` (L{vibetwist.server.push}), in memory and against the real daemon with
a push service of the tests' own that checks the VAPID signature and decrypts every
message (L{tests.support.pushservice}). See docs/protocol.md, "Web Push"."""

from __future__ import annotations

import json
import os
import stat
import string
import tempfile
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from tests.support.api import APITestCase
from tests.support.daemon import Client, Daemon
from tests.support.e2e import DaemonTestCase
from tests.support.pushservice import BrowserKeys, PushService, unb64url
from vibetwist.errors import BadRequest
from vibetwist.model.vapid import VapidKey, VapidKeyError, load_vapid
from vibetwist.model.webpush import (
    DEFAULT_KINDS,
    MAX_PAYLOAD,
    MAX_SUBSCRIPTIONS,
    PICKABLE,
    TEST,
    Subscription,
    audience,
    check_endpoint,
    decode_store,
    encode_store,
    encrypt,
    notification,
    parse_subscription,
    payload,
)
from vibetwist.server.push import PushAPI
from vibetwist.sessions.events import SessionEvents
from vibetwist.sessions.push import PushNotifier, PushSubscriptions
from vibetwist.tap import Options
from vibetwist.testing import MemoryPushSender

ENDPOINT = "https://push.example.net/send/abc"
#: What endpoint paths are made of (push services use base64url and slashes).
SAFE = string.ascii_letters + string.digits + "-_/%"


def subscription(
    endpoint: str = ENDPOINT, kinds: tuple[str, ...] = DEFAULT_KINDS
) -> tuple[Subscription, BrowserKeys]:
    keys = BrowserKeys()
    return Subscription(endpoint, keys.p256dh, keys.auth, kinds), keys


def one_turn(clock: Clock) -> None:
    """Run the calls due now on clock, but not those they schedule (as one reactor turn
    does; Clock.advance runs those too)."""
    due = [call for call in clock.getDelayedCalls() if call.getTime() <= clock.seconds()]
    for call in due:
        clock.calls.remove(call)
        call.called = 1
        call.func(*call.args, **call.kw)


class SubscriptionTests(SynchronousTestCase):
    """A browser's PushSubscription JSON, checked."""

    def test_parsed(self) -> None:
        """A browser's subscription gives its endpoint, keys and the kinds it picked
        (the default kinds when it picked none)."""
        keys = BrowserKeys()
        parsed = parse_subscription(keys.subscription(ENDPOINT))
        self.assertEqual((parsed.endpoint, parsed.p256dh, parsed.auth), (ENDPOINT, keys.p256dh, keys.auth))
        self.assertEqual(parsed.kinds, DEFAULT_KINDS)
        picked = parse_subscription(keys.subscription(ENDPOINT, kinds=["bell", "session-start"]))
        self.assertEqual(picked.kinds, ("session-start", "bell"))

    def test_refused(self) -> None:
        """Anything else is a BadRequest that says what is wrong."""
        keys = BrowserKeys()
        good = keys.subscription(ENDPOINT)
        for body in [
            {},
            dict(good, endpoint=42),
            dict(good, endpoint="ftp://push.example.net/x"),
            dict(good, endpoint="http://push.example.net/x"),
            dict(good, endpoint="https://user:pw@push.example.net/x"),
            dict(good, endpoint="https://push.example.net:99999/x"),
            dict(good, endpoint="https://" + "a" * 3000),
            dict(good, keys=None),
            dict(good, keys={"p256dh": good["keys"]["p256dh"]}),
            dict(good, keys={"p256dh": "!!!", "auth": good["keys"]["auth"]}),
            dict(good, keys={"p256dh": good["keys"]["auth"], "auth": good["keys"]["auth"]}),
            dict(good, keys={"p256dh": "BA" + "A" * 85, "auth": good["keys"]["auth"]}),
            dict(good, keys={"p256dh": good["keys"]["p256dh"], "auth": "AAAA"}),
            dict(good, kinds="bell"),
            dict(good, kinds=["bell", "everything"]),
        ]:
            with self.assertRaises(BadRequest, msg=repr(body)):
                parse_subscription(body)

    def test_loopback_http(self) -> None:
        """http is allowed to a push service on this machine only."""
        for endpoint in ["http://127.0.0.1:9000/p", "http://localhost/p", "http://[::1]:8/p"]:
            self.assertEqual(check_endpoint(endpoint), endpoint)

    def test_audience(self) -> None:
        """The VAPID audience is the endpoint's origin."""
        self.assertEqual(audience("https://fcm.googleapis.com/fcm/send/x"), "https://fcm.googleapis.com")
        self.assertEqual(audience("http://127.0.0.1:9000/push/a"), "http://127.0.0.1:9000")
        self.assertEqual(audience("http://[::1]:8/p"), "http://[::1]:8")

    @given(
        st.lists(
            st.tuples(st.text(SAFE, min_size=1, max_size=30), st.sets(st.sampled_from(PICKABLE))),
            max_size=5,
            unique_by=lambda t: t[0],
        )
    )
    def test_store_round_trip(self, entries: list[tuple[str, set[str]]]) -> None:
        """The store file gives back the subscriptions written into it."""
        p256dh = BrowserKeys().p256dh
        subscriptions = [
            Subscription(
                f"https://push.example.net/{i}/{name}", p256dh, os.urandom(16),
                tuple(k for k in PICKABLE if k in kinds), 12.5,
            )
            for i, (name, kinds) in enumerate(entries)
        ]  # fmt: skip
        self.assertEqual(decode_store(encode_store(subscriptions)), subscriptions)

    def test_store_skips_what_no_longer_parses(self) -> None:
        """A stored subscription that no longer parses is left out; a file that is not a
        store is a ValueError."""
        good, _ = subscription()
        data = json.loads(encode_store([good]))
        data["subscriptions"].append({"endpoint": "ftp://x"})
        data["subscriptions"].append("nonsense")
        self.assertEqual(decode_store(json.dumps(data).encode()), [good])
        for bad in [b"", b"[]", b"{}", b"\xff"]:
            with self.assertRaises(ValueError):
                decode_store(bad)


class MessageTests(SynchronousTestCase):
    """What a message says and how it is encrypted."""

    @given(st.binary(min_size=1, max_size=MAX_PAYLOAD))
    def test_encrypted_for_the_subscription(self, plaintext: bytes) -> None:
        """A message decrypts (aes128gcm, http_ece) with the subscription's private key and
        auth secret to what was sent, and fits what push services take."""
        sub, keys = subscription()
        body = encrypt(sub, plaintext)
        self.assertLessEqual(len(body), 4096)
        self.assertEqual(keys.decrypt(body), plaintext)

    def test_fresh_keys_each_time(self) -> None:
        """The same text encrypts differently each time (a fresh key and salt)."""
        sub, _ = subscription()
        self.assertNotEqual(encrypt(sub, b"x"), encrypt(sub, b"x"))

    def test_notification_texts(self) -> None:
        """Each kind has a title and body that say what happened, a tag per session and
        kind, and the page of the session to open."""
        base = {"sessionId": "s1", "sessionName": "build", "command": "make -j2"}
        cases = {
            "session-start": ("Session started", "build: make -j2"),
            "session-exit": ("Session failed (exit 2)", "build: make -j2"),
            "command-finished": ("Command finished", "make -j2 (4.2 s) in build"),
            "command-error": ("Command failed (exit 2)", "make -j2 (4.2 s) in build"),
            "bell": ("Bell", "build"),
            "needs-input": ("Waiting for input", "build"),
            "title": ("title", "build"),
        }
        for kind, (title, body) in cases.items():
            note = notification(dict(base, type=kind, exitCode=2, duration=4200))
            self.assertEqual((note["title"], note["body"]), (title, body), kind)
            self.assertEqual((note["url"], note["tag"]), ("/#session=s1", f"vibetwist:s1:{kind}"))
        ended = notification(dict(base, type="session-exit", exitCode=0))
        self.assertEqual(ended["title"], "Session ended")
        test = notification({"type": TEST, "body": "hello"})
        self.assertEqual((test["title"], test["body"], test["url"]), ("vibetwist", "hello", "/"))

    def test_payload_fits(self) -> None:
        """An event with a huge command still makes a message push services take."""
        event = {"type": "session-exit", "sessionId": "s1", "command": "x" * 100000, "exitCode": 1}
        data = payload(event)
        self.assertLessEqual(len(data), MAX_PAYLOAD)
        self.assertEqual(json.loads(data)["event"]["exitCode"], 1)


class VapidKeyTests(SynchronousTestCase):
    """The key file and its signatures."""

    def setUp(self) -> None:
        self.folder = Path(tempfile.mkdtemp())
        os.chmod(self.folder, 0o700)
        self.path = self.folder / "vapid.pem"

    def test_made_once(self) -> None:
        """The key is made on first load (0600) and the same key is read after."""
        first = load_vapid(self.path)
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(load_vapid(self.path).public_key, first.public_key)
        self.assertEqual(len(unb64url(first.public_key)), 65)

    def test_unsafe_files_refused(self) -> None:
        """A key file others may read, a symbolic link, or one holding no P-256 key is refused."""
        load_vapid(self.path)
        os.chmod(self.path, 0o644)
        self.assertRaises(VapidKeyError, load_vapid, self.path)
        os.chmod(self.path, 0o600)
        link = self.folder / "link.pem"
        link.symlink_to(self.path)
        self.assertRaises(VapidKeyError, load_vapid, link)
        other = self.folder / "other.pem"
        other.write_bytes(b"not a key")
        os.chmod(other, 0o600)
        self.assertRaises(VapidKeyError, load_vapid, other)

    def test_signature(self) -> None:
        """The Authorization header is an ES256 JWT for the audience, signed by the public
        key it names, valid for 12 hours; it is reused until an hour is left of it."""
        now = [1_000_000.0]
        loaded = load_vapid(self.path)
        key = VapidKey(loaded._vapid, clock=lambda: now[0])
        header = key.authorization("https://push.example.net", "mailto:me@example.net")
        scheme, params = header.split(" ", 1)
        fields = dict(p.split("=", 1) for p in params.split(","))
        self.assertEqual((scheme, fields["k"]), ("vapid", key.public_key))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        claims = jwt.decode(
            fields["t"], public, algorithms=["ES256"], audience="https://push.example.net",
            options={"verify_exp": False},
        )  # fmt: skip
        self.assertEqual((claims["sub"], claims["exp"]), ("mailto:me@example.net", 1_000_000 + 12 * 3600))
        now[0] += 10 * 3600
        self.assertEqual(key.authorization("https://push.example.net", "mailto:me@example.net"), header)
        now[0] += 2 * 3600
        self.assertNotEqual(key.authorization("https://push.example.net", "mailto:me@example.net"), header)


class StoreTests(SynchronousTestCase):
    """PushSubscriptions: kept in a 0600 file, replaced whole."""

    def setUp(self) -> None:
        folder = Path(tempfile.mkdtemp())
        os.chmod(folder, 0o700)
        self.path = folder / "push.json"

    def test_kept_in_a_file(self) -> None:
        """Subscriptions added are in the file (0600) and read back by a new store;
        removed ones are gone from it."""
        store = PushSubscriptions(self.path)
        store.load()
        a, _ = subscription("https://push.example.net/a")
        b, _ = subscription("https://push.example.net/b")
        self.assertTrue(store.add(a))
        self.assertTrue(store.add(b))
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        again = PushSubscriptions(self.path)
        again.load()
        self.assertEqual(list(again), [a, b])
        self.assertTrue(again.remove(a.endpoint))
        self.assertFalse(again.remove(a.endpoint))
        last = PushSubscriptions(self.path)
        last.load()
        self.assertEqual(list(last), [b])

    def test_bounded(self) -> None:
        """At most MAX_SUBSCRIPTIONS are kept; one of an endpoint already kept replaces it."""
        store = PushSubscriptions(self.path)
        sub, _ = subscription()
        for i in range(MAX_SUBSCRIPTIONS):
            self.assertTrue(store.add(Subscription(f"https://p.example/{i}", sub.p256dh, sub.auth)))
        self.assertFalse(store.add(sub))
        replaced = Subscription("https://p.example/0", sub.p256dh, sub.auth, ("bell",))
        self.assertTrue(store.add(replaced))
        self.assertEqual(store.get("https://p.example/0"), replaced)

    def test_unreadable_file_ignored(self) -> None:
        """A file that is not a store leaves no subscriptions (and is replaced by the next add)."""
        self.path.write_bytes(b"garbage")
        os.chmod(self.path, 0o600)
        store = PushSubscriptions(self.path)
        store.load()
        self.assertEqual(len(store), 0)


class NotifierTests(SynchronousTestCase):
    """PushNotifier: events to the subscriptions that picked them, through an IPushSender."""

    def setUp(self) -> None:
        folder = Path(tempfile.mkdtemp())
        os.chmod(folder, 0o700)
        self.events = SessionEvents(clock=lambda: 1000.0)
        self.sender = MemoryPushSender()
        self.store = PushSubscriptions(folder / "push.json")
        self.key = load_vapid(folder / "vapid.pem")
        self.clock = Clock()
        self.notifier = PushNotifier(
            self.key, self.store, self.sender, self.events, "mailto:a@b.c", self.clock
        )
        self.notifier.start()

    def publish(self, kind: str, session_id: str | None = "s1", **fields: Any) -> None:
        """Publish an event, and let the notifier's next turns run."""
        self.events.publish(kind, session_id, **fields)
        self.clock.advance(0)

    def add(self, name: str, kinds: tuple[str, ...] = DEFAULT_KINDS) -> BrowserKeys:
        sub, keys = subscription(f"https://push.example.net/{name}", kinds)
        self.notifier.subscribe(sub)
        return keys

    def test_sent_to_those_who_picked_it(self) -> None:
        """An event goes, encrypted, to each subscription that picked its kind, with
        aes128gcm, a TTL, an urgency and the VAPID header; not to the others."""
        bells = self.add("bells", ("bell",))
        self.add("starts", ("session-start",))
        self.publish("bell", "s1", sessionName="build")
        [post] = self.sender.posts
        self.assertEqual(post.url, "https://push.example.net/bells")
        self.assertEqual(post.headers["Content-Encoding"], "aes128gcm")
        self.assertEqual(post.headers["Urgency"], "high")
        self.assertTrue(post.headers["TTL"].isdigit())
        self.assertTrue(post.headers["Authorization"].startswith("vapid t="))
        note = json.loads(bells.decrypt(post.body))
        self.assertEqual((note["title"], note["body"], note["event"]["type"]), ("Bell", "build", "bell"))
        self.assertEqual(self.notifier.counts["sent"], 1)

    def test_sent_after_the_pages_writes(self) -> None:
        """An event's first message is posted three turns after it is published: after a
        round of I/O has written what its other subscribers (the pages' event streams)
        got, one more to start the messages."""
        self.add("bells", ("bell",))
        self.events.publish("bell", "s1")
        for _ in range(2):
            self.assertEqual(self.sender.posts, [])
            one_turn(self.clock)
        one_turn(self.clock)
        self.assertEqual(len(self.sender.posts), 1)

    def test_unknown_kinds_flow_through_to_nobody(self) -> None:
        """A kind nobody picked (a title change, say) is sent to nobody."""
        self.add("all", PICKABLE)
        self.publish("title", "s1", title="x")
        self.assertEqual(self.sender.posts, [])

    def test_gone_dropped(self) -> None:
        """A subscription whose push service answers 404 or 410 is dropped (and saved so)."""
        self.add("a")
        self.add("b")
        self.sender.status = 410
        self.publish("session-exit", "s1", exitCode=0)
        self.assertEqual(len(self.store), 0)
        self.assertEqual(self.notifier.counts["gone"], 2)
        again = PushSubscriptions(self.store.path)
        again.load()
        self.assertEqual(len(again), 0)

    def test_failure_marks_inactive(self) -> None:
        """A subscription whose post fails (a 500, no connection) stays, but is not active
        in the status until a post to it succeeds."""
        self.add("a")
        self.sender.status = None
        self.publish("bell", "s1")
        self.sender.posts[-1].answer.callback(500)
        self.assertEqual(self.notifier.status()["activeSubscriptions"], 0)
        self.assertEqual(self.notifier.status()["totalSubscriptions"], 1)
        self.publish("bell", "s1")
        self.sender.posts[-1].answer.errback(ConnectionRefusedError())
        self.assertEqual(self.notifier.counts["failed"], 2)
        self.publish("bell", "s1")
        self.sender.posts[-1].answer.callback(201)
        self.assertEqual(self.notifier.status()["activeSubscriptions"], 1)

    def test_bounded_in_flight(self) -> None:
        """Messages go out one a turn, at most 8 posts at once; the rest wait, and past
        MAX_WAITING waiting a message is dropped rather than queued."""
        self.sender.status = None
        for i in range(10):
            self.add(f"s{i}", ("bell",))
        self.events.publish("bell", "s1")
        one_turn(self.clock)
        one_turn(self.clock)  # the turn after the pages' writes
        posted = []
        for _ in range(9):
            one_turn(self.clock)
            posted.append(len(self.sender.posts))
        self.assertEqual(posted, [1, 2, 3, 4, 5, 6, 7, 8, 8])
        self.sender.posts[0].answer.callback(201)
        one_turn(self.clock)
        self.assertEqual(len(self.sender.posts), 9)
        crowded = PushNotifier(self.key, self.store, self.sender, self.events, "mailto:a@b.c", self.clock,
                               max_waiting=3)  # fmt: skip
        delivery = crowded.deliver(self.events.publish("bell", "s1"), list(self.store))
        self.assertEqual(crowded.counts["dropped"], 7)
        self.assertNoResult(delivery)

    def test_test_notification(self) -> None:
        """test() publishes a test-notification on the event stream and sends it to every
        subscription, whatever it picked; it answers once every post is answered."""
        seen = []
        self.events.subscribe(seen.append)
        self.add("a", ("bell",))
        self.add("b", ())
        self.sender.status = None
        d = defer.ensureDeferred(self.notifier.test("hello"))
        self.clock.advance(0)
        self.assertNoResult(d)
        self.assertEqual([e.type for e in seen], [TEST])
        self.sender.posts[0].answer.callback(201)
        self.sender.posts[1].answer.callback(500)
        delivery = self.successResultOf(d)
        self.assertEqual((delivery.sent, delivery.failed), (1, 1))

    def test_stop(self) -> None:
        """A stopped notifier hears no more events and closes its sender."""
        self.add("a")
        self.notifier.stop()
        self.publish("bell", "s1")
        self.assertEqual(self.sender.posts, [])
        self.assertTrue(self.sender.closed)


class PushRoutesTests(APITestCase):
    """/api/push/* in memory: answers and errors."""

    def setUp(self) -> None:
        super().setUp()
        folder = self.tmp / "push"
        folder.mkdir(mode=0o700)
        self.sender = MemoryPushSender()
        notifier = PushNotifier(
            load_vapid(folder / "vapid.pem"), PushSubscriptions(folder / "push.json"), self.sender,
            self.service.events, "mailto:a@b.c", self.clock,
        )  # fmt: skip
        notifier.start()
        self.api.push = PushAPI(notifier, self.clock.seconds)

    def test_routes(self) -> None:
        """The key, subscribe, status, test and unsubscribe answer in VibeTunnel's shapes."""
        code, key = self.call("GET", "/api/push/vapid-public-key")
        self.assertEqual((code, key["enabled"], len(unb64url(key["publicKey"]))), (200, True, 65))
        keys = BrowserKeys()
        body = keys.subscription(ENDPOINT, kinds=["bell"])
        self.assertEqual(
            self.call("POST", "/api/push/subscribe", body), (200, {"success": True, "kinds": ["bell"]})
        )
        self.assertEqual(
            self.call("GET", "/api/push/status"),
            (200, {"enabled": True, "configured": True, "hasVapidKeys": True,
                   "totalSubscriptions": 1, "activeSubscriptions": 1}),
        )  # fmt: skip
        code, answer = self.call("POST", "/api/push/test", {"message": "hi"})
        self.assertEqual((code, answer["success"], answer["sent"], answer["failed"]), (200, True, 1, 0))
        self.assertEqual(json.loads(keys.decrypt(self.sender.posts[-1].body))["body"], "hi")
        self.assertEqual(
            self.call("POST", "/api/push/unsubscribe", {"endpoint": ENDPOINT}),
            (200, {"success": True, "removed": True}),
        )
        self.assertEqual(self.call("GET", "/api/push/status")[1]["totalSubscriptions"], 0)

    def test_bad_input(self) -> None:
        """Bad bodies get a 4xx JSON error, never a traceback."""
        keys = BrowserKeys()
        for path, body, raw in [
            ("/api/push/subscribe", None, b"{nope"),
            ("/api/push/subscribe", None, b"[]"),
            ("/api/push/subscribe", {"endpoint": "https://x.example/"}, None),
            ("/api/push/subscribe", keys.subscription("javascript:alert(1)"), None),
            ("/api/push/subscribe", keys.subscription(ENDPOINT, kinds=[1]), None),
            ("/api/push/unsubscribe", {}, None),
            ("/api/push/test", {"message": 5}, None),
            ("/api/push/test", {"message": "x" * 1000}, None),
        ]:
            code, answer = self.call("POST", path, body, raw=raw)
            self.assertEqual(code, 400, (path, body, raw, answer))
            self.assertIsInstance(answer["error"], str)

    def test_full(self) -> None:
        """Past MAX_SUBSCRIPTIONS a new subscription is a 409."""
        keys = BrowserKeys()
        for i in range(MAX_SUBSCRIPTIONS):
            self.assertEqual(
                self.call("POST", "/api/push/subscribe", keys.subscription(f"{ENDPOINT}/{i}"))[0], 200
            )
        code, answer = self.call("POST", "/api/push/subscribe", keys.subscription(f"{ENDPOINT}/x"))
        self.assertEqual(code, 409, answer)

    def test_off(self) -> None:
        """Without a notifier (--no-push) the routes answer 503 "Push notifications not
        configured", and the status says so."""
        self.api.push = PushAPI(None, self.clock.seconds)
        code, answer = self.call("GET", "/api/push/vapid-public-key")
        self.assertEqual((code, answer["error"]), (503, "Push notifications not configured"))
        self.assertIsInstance(answer["message"], str)
        self.assertEqual(
            self.call("POST", "/api/push/subscribe", BrowserKeys().subscription(ENDPOINT))[0], 503
        )
        self.assertEqual(self.call("GET", "/api/push/status")[1]["enabled"], False)


class PushEndToEndTests(DaemonTestCase):
    """The real daemon sends real, signed, encrypted messages to a push service on loopback."""

    shared = False
    timeout = 90

    async def _set_up(self) -> None:
        await super()._set_up()
        self.push = PushService(reactor)
        await self.push.start()
        self.addCleanup(lambda: defer.ensureDeferred(self.push.stop()))
        self.base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        self.daemon = await self.start_daemon(self.base)
        self.client = self.client_for(self.daemon)
        self.addCleanup(self._end_sessions)
        self.push.vapid_key = (await self.client.get("/api/push/vapid-public-key"))["publicKey"]

    async def subscribe(self, name: str, **more: Any) -> None:
        code, answer, _ = await self.client.request(
            "POST", "/api/push/subscribe", self.push.subscribe(name, **more)
        )
        self.assertEqual(code, 200, answer)

    async def test_session_exit_pushed(self) -> None:
        """A session that exits reaches a subscription that picked session-exit: the push
        service gets a message signed by the daemon's VAPID key (ES256, for its origin)
        that decrypts, with the subscription's private key, to the notification."""
        await self.subscribe("phone", kinds=["session-exit"])
        sid = await self.create(["sh", "-c", "exit 3"])
        message = await self.push.wait(1)
        self.assertEqual(self.push.refused, [])
        self.assertEqual(message.path, "/push/phone")
        self.assertEqual(message.claims["aud"], self.push.origin)
        note = message.payload
        self.assertEqual(note["title"], "Session failed (exit 3)")
        self.assertEqual(note["url"], f"/#session={sid}")
        self.assertEqual((note["event"]["type"], note["event"]["sessionId"]), ("session-exit", sid))
        self.assertEqual(note["event"]["exitCode"], 3)

    async def test_test_route_and_gone(self) -> None:
        """POST /api/push/test reaches every subscription; one whose push service answers
        410 is dropped, and the status counts what is left."""
        await self.subscribe("a", kinds=["bell"])
        await self.subscribe("b")
        self.push.answer("b", 410)
        code, answer, _ = await self.client.request("POST", "/api/push/test", {"message": "ping"})
        self.assertEqual((code, answer["sent"], answer["failed"]), (200, 1, 1), answer)
        [message] = self.push.messages
        self.assertEqual((message.path, message.payload["body"]), ("/push/a", "ping"))
        self.assertEqual(len(self.push.turned_away), 1)
        status = await self.client.get("/api/push/status")
        self.assertEqual((status["totalSubscriptions"], status["activeSubscriptions"]), (1, 1))

    async def test_subscriptions_survive_a_restart(self) -> None:
        """A daemon started again with the same files has the same key and the same
        subscriptions, and sends to them."""
        await self.subscribe("kept", kinds=["session-start"])
        key = self.push.vapid_key
        await self.daemon.stop()
        for name in ("vibetwist.vapid.pem", "vibetwist.push.json"):
            self.assertEqual(stat.S_IMODE((self.base / name).stat().st_mode), 0o600, name)
        again = Daemon(reactor, self.base)
        await again.start()
        self.addCleanup(lambda: defer.ensureDeferred(again.stop()))
        self.daemon = again
        self.client = client = Client(reactor, again)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        self.assertEqual((await client.get("/api/push/vapid-public-key"))["publicKey"], key)
        self.assertEqual((await client.get("/api/push/status"))["totalSubscriptions"], 1)
        sid = await self.create(["sleep", "30"])
        message = await self.push.wait(1)
        self.assertEqual((message.payload["event"]["type"], message.payload["event"]["sessionId"]),
                         ("session-start", sid))  # fmt: skip

    async def test_no_push(self) -> None:
        """With --no-push the daemon makes no key and the routes answer 503."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        off = Daemon(reactor, base, args=("--no-push",))
        await off.start()
        self.addCleanup(lambda: defer.ensureDeferred(off.stop()))
        client = Client(reactor, off)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        code, body, _ = await client.request("GET", "/api/push/vapid-public-key")
        self.assertEqual((code, body["error"]), (503, "Push notifications not configured"))
        self.assertFalse((base / "vibetwist.vapid.pem").exists())


class PushOptionsTests(SynchronousTestCase):
    """The options of Web Push."""

    def setUp(self) -> None:
        self.folder = Path(tempfile.mkdtemp())
        os.chmod(self.folder, 0o700)

    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--control-dir", str(self.folder / "control"), *args])
        return options

    def test_defaults(self) -> None:
        """The key and the subscriptions are kept beside the token secret, and the contact
        is a mailto: URL."""
        options = self.parse()
        self.assertEqual(options["push-key-file"], self.folder / "vibetwist.vapid.pem")
        self.assertEqual(options["push-subscriptions"], self.folder / "vibetwist.push.json")
        self.assertTrue(options["push-contact"].startswith("mailto:"))

    def test_refused(self) -> None:
        """A contact that is not a mailto: or https: URL, or a key file others may read, is a
        usage error."""
        self.assertRaises(UsageError, self.parse, "--push-contact", "me")
        key = self.folder / "key.pem"
        key.write_bytes(b"x")
        os.chmod(key, 0o644)
        self.assertRaises(UsageError, self.parse, "--push-key-file", str(key))
        self.parse("--push-key-file", str(key), "--no-push")
