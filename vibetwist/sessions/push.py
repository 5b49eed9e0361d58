# -*- test-case-name: tests.test_push -*-
"""Web Push: session events sent to browsers' push services, so a phone hears of them with
the page closed.

:class:`PushSubscriptions` keeps the subscriptions in a file (0600, replaced whole and
atomically on every change) so they survive a restart. :class:`PushNotifier` listens to
:class:`vibetwist.sessions.events.SessionEvents` and, for every event, sends each
subscription that picked its kind one message: the notification
(:func:`vibetwist.model.webpush.payload`) encrypted for it, signed with the daemon's
VAPID key. A subscription whose push service answers 404 or 410 is gone and is dropped.

Sending never blocks the reactor: an event is sent once the reactor has written what
the pages' event streams got of it (two turns after it is published); each message is
encrypted on the reactor (one ECDH and one AES-GCM record, 0.5 to 1.3 ms here) and
posted by an
:class:`vibetwist.interfaces.IPushSender` (:class:`TreqPushSender`: treq on the
reactor, no thread), one message a turn, at most :data:`CONCURRENCY` posts at once
and :data:`MAX_WAITING` waiting; past that a message is dropped and logged.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from zope.interface import implementer

from vibetwist.errors import VibetwistError
from vibetwist.interfaces import IPushSender
from vibetwist.model.privatefiles import UnsafePath, check_private_file, read_private, write_private
from vibetwist.model.vapid import VapidKey
from vibetwist.model.webpush import (
    MAX_SUBSCRIPTIONS,
    TEST,
    Subscription,
    audience,
    decode_store,
    encode_store,
    encrypt,
    payload,
)
from vibetwist.sessions.events import SessionEvent, SessionEvents

#: Messages posted at once, and waiting to be posted.
CONCURRENCY = 8
MAX_WAITING = 1000
#: How long a push service keeps a message for a browser that is offline (seconds).
TTL = 24 * 3600
#: How long a post may take before it counts as failed.
POST_TIMEOUT = 15.0
#: Kinds of event that are sent with ``Urgency: high`` (a phone wakes for them).
URGENT = frozenset({"needs-input", "command-error", "bell", TEST})
#: Status codes that mean the subscription is gone for good.
GONE = frozenset({404, 410})
MAX_STORE = 1 << 20


class PushStoreError(VibetwistError):
    """The subscriptions file is unsafe or unreadable."""


class PushSubscriptions:
    """The subscriptions, by endpoint, kept in a file."""

    log = Logger()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_endpoint: dict[str, Subscription] = {}

    def load(self) -> None:
        """Read the file (none yet: no subscriptions); PushStoreError if it is unsafe."""
        try:
            if not check_private_file(self.path):
                return
            data = read_private(self.path, MAX_STORE)
        except UnsafePath as e:
            raise PushStoreError(f"the push subscriptions file {e}") from None
        except OSError as e:
            raise PushStoreError(f"cannot read the push subscriptions {self.path}: {e.strerror}") from e
        try:
            found = decode_store(data)
        except ValueError as e:
            # A file we cannot read must not keep the daemon from starting; it is replaced
            # at the next subscribe.
            self.log.warn("ignoring the push subscriptions in {path}: {why}", path=str(self.path), why=e)
            return
        self._by_endpoint = {s.endpoint: s for s in found}

    def _save(self) -> None:
        try:
            write_private(self.path, encode_store(self._by_endpoint.values()))
        except OSError as e:
            self.log.error("cannot save the push subscriptions to {path}: {why}", path=str(self.path), why=e)

    def __len__(self) -> int:
        return len(self._by_endpoint)

    def __iter__(self) -> Any:
        return iter(list(self._by_endpoint.values()))

    def get(self, endpoint: str) -> Subscription | None:
        return self._by_endpoint.get(endpoint)

    def add(self, subscription: Subscription) -> bool:
        """Keep subscription (replacing one of the same endpoint); False if there are
        MAX_SUBSCRIPTIONS others already."""
        if subscription.endpoint not in self._by_endpoint and len(self) >= MAX_SUBSCRIPTIONS:
            return False
        self._by_endpoint[subscription.endpoint] = subscription
        self._save()
        return True

    def remove(self, endpoint: str) -> bool:
        """Forget the subscription of endpoint; False if there was none."""
        if self._by_endpoint.pop(endpoint, None) is None:
            return False
        self._save()
        return True


@attrs.frozen
class Delivery:
    """What became of one event's messages."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0


@implementer(IPushSender)
class TreqPushSender:
    """Posts messages with treq over a pool of persistent connections, on the reactor."""

    def __init__(self, reactor: Any, timeout: float = POST_TIMEOUT) -> None:
        import treq
        from twisted.web.client import Agent, HTTPConnectionPool

        self._reactor = reactor
        self._timeout = timeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 2
        self._treq = treq
        self._client = treq.client.HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=timeout))

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        response = await self._client.post(
            url,
            data=body,
            headers=Headers({name: [value] for name, value in headers.items()}),
            timeout=self._timeout,
            allow_redirects=False,
        )
        # The answer is a few bytes at most; read it so the connection can be used again.
        await self._treq.content(response)
        return int(response.code)

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Deferred[int]:
        return Deferred.fromCoroutine(self._post(url, headers, body))

    def close(self) -> Deferred[None]:
        return self._pool.closeCachedConnections()


class PushNotifier:
    """Sends session events to the push subscriptions that picked their kinds."""

    log = Logger()

    def __init__(
        self,
        key: VapidKey,
        subscriptions: PushSubscriptions,
        sender: IPushSender,
        events: SessionEvents,
        contact: str,
        reactor: Any,
        concurrency: int = CONCURRENCY,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.key = key
        self.subscriptions = subscriptions
        self._sender = sender
        self._events = events
        self._contact = contact
        self._reactor = reactor
        self._concurrency = concurrency
        self._max_waiting = max_waiting
        #: Messages waiting to be encrypted and posted, and how many posts are out.
        self._queue: deque[tuple[Subscription, bytes, str, Deferred[bool]]] = deque()
        self._posting = 0
        self._next_turn: Any = None
        #: Endpoints whose last message failed (not 404/410): not "active" in the status.
        self.failing: set[str] = set()
        #: Counts since start: messages sent, failed, dropped (queue full); subscriptions dropped.
        self.counts = {"sent": 0, "failed": 0, "dropped": 0, "gone": 0}

    def start(self) -> None:
        self._events.subscribe(self._heard)

    def stop(self) -> Any:
        self._events.unsubscribe(self._heard)
        if self._next_turn is not None and self._next_turn.active():
            self._next_turn.cancel()
        self._next_turn = None
        return self._sender.close()

    def status(self) -> dict[str, Any]:
        """``GET /api/push/status``, in VibeTunnel's shape."""
        total = len(self.subscriptions)
        active = sum(s.endpoint not in self.failing for s in self.subscriptions)
        return {
            "enabled": True,
            "configured": True,
            "hasVapidKeys": True,
            "totalSubscriptions": total,
            "activeSubscriptions": active,
        }

    def subscribe(self, subscription: Subscription) -> bool:
        self.failing.discard(subscription.endpoint)
        return self.subscriptions.add(subscription)

    def unsubscribe(self, endpoint: str) -> bool:
        self.failing.discard(endpoint)
        return self.subscriptions.remove(endpoint)

    async def test(self, message: str | None) -> Delivery:
        """Publish a test notification (every page of /api/events sees it too) and send it
        to every subscription; what became of it, once every message was answered."""
        event = self._events.publish(
            TEST, title="vibetwist", body=message or "Test notification", message=message or ""
        )
        return await self.deliver(event, list(self.subscriptions))

    # -- sending ------------------------------------------------------------------------

    def _heard(self, event: SessionEvent) -> None:
        if event.type == TEST:
            return  # test() sends it, and waits for the answers
        if any(s.wants(event.type) for s in self.subscriptions):
            self._reactor.callLater(0, self._after_writes, event)

    def _after_writes(self, event: SessionEvent) -> None:
        # What the event's other subscribers (the pages' event streams) wrote is sent by
        # the reactor's next round of I/O, which comes after this turn's timed calls: a
        # second zero delay puts the encrypting after it, so that no page waits for it.
        self._reactor.callLater(0, self._fan_out, event)

    def _fan_out(self, event: SessionEvent) -> None:
        targets = [s for s in self.subscriptions if s.wants(event.type)]
        if targets:
            self.deliver(event, targets)

    def deliver(self, event: SessionEvent, targets: list[Subscription]) -> Deferred[Delivery]:
        """Send event to each of targets; a Deferred of what became of the messages."""
        body = payload(event.to_json())
        urgency = "high" if event.type in URGENT else "normal"
        sends: list[Deferred[bool]] = []
        dropped = 0
        for subscription in targets:
            if len(self._queue) >= self._max_waiting:
                dropped += 1
                continue
            sent: Deferred[bool] = Deferred()
            self._queue.append((subscription, body, urgency, sent))
            sends.append(sent)
        self._schedule()
        if dropped:
            self.counts["dropped"] += dropped
            self.log.warn("push: {n} messages dropped, {w} already waiting", n=dropped, w=len(self._queue))
        if not sends:
            return succeed(Delivery(dropped=dropped))

        def tally(results: list[tuple[bool, Any]]) -> Delivery:
            sent = sum(1 for ok, value in results if ok and value)
            return Delivery(sent=sent, failed=len(results) - sent, dropped=dropped)

        return DeferredList(sends, consumeErrors=True).addCallback(tally)

    def _schedule(self) -> None:
        if self._next_turn is None and self._queue and self._posting < self._concurrency:
            self._next_turn = self._reactor.callLater(0, self._post_next)

    def _post_next(self) -> None:
        """Encrypt and post one message; the next one waits a turn, so that this one's
        bytes go out (and other work is done) between two encryptions."""
        self._next_turn = None
        if not self._queue or self._posting >= self._concurrency:
            return
        subscription, body, urgency, sent = self._queue.popleft()
        self._posting += 1

        def done(result: bool) -> None:
            self._posting -= 1
            self._schedule()
            sent.callback(result)

        Deferred.fromCoroutine(self._send(subscription, body, urgency)).addCallback(done)
        self._schedule()

    async def _send(self, subscription: Subscription, body: bytes, urgency: str) -> bool:
        """Post one message; True if the push service took it."""
        try:
            headers = {
                "Authorization": self.key.authorization(audience(subscription.endpoint), self._contact),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "TTL": str(TTL),
                "Urgency": urgency,
            }
            encrypted = encrypt(subscription, body)
            code = await self._sender.post(subscription.endpoint, headers, encrypted)
        except Exception as e:
            self._failed(subscription, f"{type(e).__name__}: {e}")
            return False
        if 200 <= code < 300:
            self.counts["sent"] += 1
            self.failing.discard(subscription.endpoint)
            return True
        if code in GONE:
            self.counts["gone"] += 1
            self.log.info(
                "push: {endpoint} is gone ({code}); subscription dropped",
                endpoint=_short(subscription.endpoint),
                code=code,
            )
            self.failing.discard(subscription.endpoint)
            # Only the subscription that failed: it may have been replaced meanwhile.
            if self.subscriptions.get(subscription.endpoint) == subscription:
                self.subscriptions.remove(subscription.endpoint)
            return False
        self._failed(subscription, f"answered {code}")
        return False

    def _failed(self, subscription: Subscription, why: str) -> None:
        self.counts["failed"] += 1
        self.failing.add(subscription.endpoint)
        self.log.warn(
            "push: sending to {endpoint} failed: {why}", endpoint=_short(subscription.endpoint), why=why
        )


def _short(endpoint: str) -> str:
    """An endpoint for the log: its origin and the start of its path (the rest identifies
    the browser)."""
    return endpoint[: endpoint.find("/", 8) + 9] + "..." if len(endpoint) > 40 else endpoint
