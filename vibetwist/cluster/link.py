# -*- test-case-name: tests.test_cluster_link -*-
"""A daemon's one connection to NATS, used from the reactor.

:class:`NATSLink` runs the official nats-py client in an asyncio loop on a thread of its
own, so that a daemon without ``--nats`` keeps its epoll reactor and nothing of asyncio
runs in it. Everything of the link's API is called, and calls back, on the reactor
thread:

- work for the loop (publish, subscribe, request, key-value operations) is appended to
  one ordered queue and handed over with one wake-up of the loop per batch;
- what the loop has for the reactor (messages, replies, state changes) is appended to
  another queue and handed over with one ``callFromThread`` per batch, so a flood of
  messages does not wake the reactor once per message.

Connecting retries forever, the first connection too; once connected, nats-py reconnects
by itself and the link re-subscribes, and restarts its key-value watches.

Every subject the link receives replies and tunnel frames on is under its inbox prefix
(``_INBOX.h.<host-id>`` for a host, ``_INBOX.g.<gateway-id>`` for a gateway): its own
inboxes (:meth:`NATSLink.new_inbox`) and nats-py's, for requests, JetStream calls and
key-value watches, so that NATS permissions can let a daemon read its own inboxes only.
"""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KV_DEL, KV_PURGE
from nats.js.kv import KeyValue as _NATSKeyValue
from twisted.internet import defer
from twisted.internet.error import ConnectError
from twisted.logger import Logger
from twisted.python.failure import Failure

from .options import NATSConfig

T = TypeVar("T")

log = Logger()

#: The inbox prefix of a link not given one: nats-py's own.
DEFAULT_INBOX_PREFIX = "_INBOX"
#: A subject of literal tokens (no wildcards), as an inbox prefix must be.
_LITERAL_SUBJECT = re.compile(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*")

#: The states :meth:`NATSLink.when_state` reports.
STATES = ("connected", "disconnected", "reconnected", "closed")


class LinkError(ConnectError):
    """NATS could not carry a request; a connect failure for Twisted's clients."""


class Unreachable(LinkError):
    """Nobody subscribes to the subject a request went to (NATS's "no responders")."""


class RequestTimeout(LinkError):
    """A request got no reply in its time."""


class LinkDown(LinkError):
    """The link is not connected to NATS (not yet, no longer, or stopped)."""


@dataclass(frozen=True)
class Message:
    """One NATS message as the reactor sees it."""

    subject: str
    reply: str
    data: bytes


class Subscription:
    """A subscription of a link; pass it to :meth:`NATSLink.unsubscribe`."""

    def __init__(self, subject: str, callback: Callable[[Message], None]) -> None:
        self.subject = subject
        self.callback = callback
        self.active = True
        #: nats-py's subscription, set and used on the loop thread only.
        self._nats: Any = None


def _translate(error: BaseException) -> BaseException:
    """The link's own exception for a nats-py one (others pass through)."""
    if isinstance(error, nats.errors.NoRespondersError):
        return Unreachable("no responders")
    if isinstance(error, (nats.errors.TimeoutError, asyncio.TimeoutError)):
        return RequestTimeout("no reply in time")
    if isinstance(
        error,
        (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.ConnectionDrainingError,
            nats.errors.StaleConnectionError,
            nats.errors.OutboundBufferLimitError,
        ),
    ):
        return LinkDown(type(error).__name__)
    return error


class KeyValue:
    """A JetStream key-value bucket, seen from the reactor."""

    def __init__(self, link: NATSLink, bucket: str, kv: _NATSKeyValue) -> None:
        self._link = link
        self.bucket = bucket
        self._kv = kv

    def put(self, key: str, value: bytes) -> defer.Deferred[int]:
        """Store value under key; fires with the new revision."""
        return self._link._call(lambda nc: self._kv.put(key, value))

    def get(self, key: str) -> defer.Deferred[bytes | None]:
        """The value of key, or None when it has none (never set, deleted or expired)."""

        async def get(nc: Client) -> bytes | None:
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
            return entry.value

        return self._link._call(get)

    def create(self, key: str, value: bytes) -> defer.Deferred[bool]:
        """Store value under key only if the key has no value; fires with whether it did."""

        async def create(nc: Client) -> bool:
            try:
                await self._kv.create(key, value)
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
            return True

        return self._link._call(create)

    def delete(self, key: str) -> defer.Deferred[None]:
        """Remove the value of key (watchers see None)."""

        async def delete(nc: Client) -> None:
            await self._kv.delete(key)

        return self._link._call(delete)

    def watch_all(self, callback: Callable[[str, bytes | None], None]) -> Watch:
        """Call callback(key, value) with every key's current value, then with every
        change (value None: deleted). The watch is made anew after each reconnect, and
        keys deleted meanwhile are then reported as None. Call the result to stop."""
        watch = Watch(self._link, self._kv, callback)
        self._link._submit(watch._run_on_loop)
        return watch


class Watch:
    """A running :meth:`KeyValue.watch_all`; call it to stop watching.

    ``ready`` fires once the values present when the watch began have been reported.
    """

    def __init__(
        self, link: NATSLink, kv: _NATSKeyValue, callback: Callable[[str, bytes | None], None]
    ) -> None:
        self._link = link
        self._kv = kv
        self._callback = callback
        self.ready: defer.Deferred[None] = defer.Deferred()
        self._stopped = False
        # Loop side.
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None

    def __call__(self) -> None:
        """Stop the watch: its callback is not called again."""
        if self._stopped:
            return
        self._stopped = True
        self._link._submit(self._stop_on_loop)

    def _deliver(self, key: str, value: bytes | None) -> None:
        if not self._stopped:
            self._callback(key, value)

    def _became_ready(self) -> None:
        if not self.ready.called:
            self.ready.callback(None)

    async def _run_on_loop(self, nc: Client) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        self._link._watches.add(self)

    async def _stop_on_loop(self, nc: Client) -> None:
        self._link._watches.discard(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _restart_on_loop(self) -> None:
        """After a reconnect: end the current watcher; _watch makes a new one."""
        watcher = self._watcher
        if watcher is not None:
            asyncio.get_running_loop().create_task(_quietly(watcher.stop()))

    async def _watch(self) -> None:
        known: set[str] = set()
        post = self._link._post
        while True:
            try:
                self._watcher = watcher = await self._kv.watchall()
                seen: set[str] = set()
                initial = True
                async for entry in watcher:
                    if entry is None:
                        if initial:
                            initial = False
                            for key in known - seen:
                                known.discard(key)
                                post(self._deliver, key, None)
                            post(self._became_ready)
                        continue
                    value = None if entry.operation in (KV_DEL, KV_PURGE) else entry.value
                    if value is None:
                        known.discard(entry.key)
                    else:
                        known.add(entry.key)
                    seen.add(entry.key)
                    post(self._deliver, entry.key, value)
            except asyncio.CancelledError:
                if self._watcher is not None:
                    await _quietly(self._watcher.stop())
                raise
            except Exception as error:
                post(log.warn, "nats: watch of {bucket} failed: {error}", bucket=self._kv._name, error=error)
                await asyncio.sleep(self._link._config.reconnect_wait)


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending on loop (nats-py's own among them) and let them end."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        pass


class NATSLink:
    """One nats-py connection in an asyncio loop on its own thread; used from the reactor.

    inbox_prefix is the subject every inbox of the link is under (ValueError unless it
    is dot-separated tokens of letters, digits, "_", "-" and "$").
    """

    def __init__(
        self, reactor: Any, config: NATSConfig, name: str, inbox_prefix: str = DEFAULT_INBOX_PREFIX
    ) -> None:
        if not _LITERAL_SUBJECT.fullmatch(inbox_prefix):
            raise ValueError(f"inbox prefix {inbox_prefix!r} is not a subject of literal tokens")
        #: Every inbox of the link, its own and nats-py's, is a subject under this.
        self.inbox_prefix = inbox_prefix
        #: The reactor everything of the link is called and calls back on.
        self.reactor = reactor
        self._reactor = reactor
        self._config = config
        self._name = name
        self.connected = False
        self._state_callbacks: list[Callable[[str], None]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = _Once()
        self._stopped: _Once | None = None
        self._stopping = False
        # Loop -> reactor: callables to run on the reactor, in order.
        self._inbound_lock = threading.Lock()
        self._inbound: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        # Reactor -> loop: operations to run on the loop, in order.
        self._outbound_lock = threading.Lock()
        self._outbound: list[Callable[[Client], Awaitable[Any]]] = []
        # Loop side only.
        self._said = ""
        self._said_at = -1e9
        self._batch: deque[Callable[[Client], Awaitable[Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._nc: Client | None = None
        self._subscriptions: set[Subscription] = set()
        self._watches: set[Watch] = set()
        self._main: asyncio.Task[None] | None = None

    # -- lifecycle

    def start(self) -> defer.Deferred[None]:
        """Start the loop's thread and connect; fires once first connected (it retries
        for as long as it takes)."""
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run, name=f"nats-{self._name}", daemon=True)
            self._thread.start()
        return self._started.wait()

    def stop(self) -> defer.Deferred[None]:
        """Drain and close the connection and end the loop's thread."""
        if self._stopped is not None:
            return self._stopped.wait()
        self._stopped = _Once()
        self._stopping = True
        if self._loop is None or self._thread is None:
            self._stopped.fire(None)
            return self._stopped.wait()
        self._loop.call_soon_threadsafe(self._begin_stop)
        return self._stopped.wait()

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self._wake = asyncio.Event()
        self._main = loop.create_task(self._serve())
        try:
            loop.run_until_complete(self._main)
        except BaseException:
            pass
        finally:
            try:
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
            self._reactor.callFromThread(self._thread_ended)

    def _thread_ended(self) -> None:
        if self._thread is not None:
            self._thread.join(1.0)
        was_connected = self.connected
        self.connected = False
        self._started.fire(LinkDown("stopped before it connected"))
        if was_connected:
            self._notify("closed")
        if self._stopped is not None:
            self._stopped.fire(None)

    def _begin_stop(self) -> None:
        if self._main is not None:
            self._main.cancel()

    # -- loop side

    async def _serve(self) -> None:
        nc = await self._connect()
        try:
            await self._work(nc)
        except asyncio.CancelledError:
            pass
        # What the reactor asked for before stop() (a tunnel's close, a last record) still
        # goes out before the connection drains.
        try:
            await asyncio.wait_for(self._work_off(nc), 2.0)
        except (Exception, asyncio.CancelledError):
            pass
        for watch in list(self._watches):
            await watch._stop_on_loop(nc)
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), 2.0)
        except Exception:
            pass
        finally:
            await _quietly(nc.close())

    async def _connect(self) -> Client:
        options = self._config.connect_options()
        while True:
            nc = Client()
            try:
                await nc.connect(
                    name=self._name,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    closed_cb=self._on_closed,
                    inbox_prefix=self.inbox_prefix,
                    **options,
                )
            except asyncio.CancelledError:
                await _quietly(nc.close())
                raise
            except Exception as error:
                await _quietly(nc.close())
                self._say(error)
                await asyncio.sleep(self._config.reconnect_wait)
                continue
            self._nc = nc
            self._post(self._set_state, "connected")
            return nc

    async def _work(self, nc: Client) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            await self._work_off(nc)

    async def _work_off(self, nc: Client) -> None:
        """Run the operations queued so far, in order."""
        with self._outbound_lock:
            self._batch.extend(self._outbound)
            self._outbound = []
        batch = self._batch
        while batch:
            operation = batch.popleft()
            try:
                await operation(nc)
            except Exception as error:
                self._post(log.warn, "nats: operation failed: {error}", error=error)

    async def _on_error(self, error: Exception) -> None:
        self._say(error)

    def _say(self, error: BaseException) -> None:
        """Log a connection's error: the same one once, and again every 30 s, not on
        every attempt of a server that stays away. Called on the loop thread."""
        text = f"{type(error).__name__}: {error}".rstrip(": ")
        now = asyncio.get_running_loop().time()
        if text != self._said or now - self._said_at >= 30:
            self._said, self._said_at = text, now
            self._post(log.info, "nats: {error}", error=text)

    async def _on_disconnected(self) -> None:
        if not self._stopping:
            self._post(self._set_state, "disconnected")

    async def _on_reconnected(self) -> None:
        for watch in list(self._watches):
            watch._restart_on_loop()
        self._post(self._set_state, "reconnected")

    async def _on_closed(self) -> None:
        pass

    def _post(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run function(*args, **kwargs) on the reactor; called from the loop thread."""
        with self._inbound_lock:
            first = not self._inbound
            self._inbound.append((function, args, kwargs))
        if first:
            self._reactor.callFromThread(self._drain_inbound)

    # -- reactor side

    def _drain_inbound(self) -> None:
        with self._inbound_lock:
            batch, self._inbound = self._inbound, []
        for function, args, kwargs in batch:
            try:
                function(*args, **kwargs)
            except Exception:
                log.failure("nats: a callback failed")

    def _submit(self, operation: Callable[[Client], Awaitable[Any]]) -> None:
        """Queue operation(nc) for the loop, in order with every other."""
        if self._stopping or self._loop is None:
            return
        with self._outbound_lock:
            first = not self._outbound
            self._outbound.append(operation)
        if first:
            try:
                self._loop.call_soon_threadsafe(self._wake_loop)
            except RuntimeError:
                pass  # the loop has closed

    def _wake_loop(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _call(self, coroutine: Callable[[Client], Awaitable[T]]) -> defer.Deferred[T]:
        """Run coroutine(nc) as a task of its own on the loop; fires with its result."""
        result: defer.Deferred[T] = defer.Deferred()
        if self._stopping or self._loop is None:
            result.errback(LinkDown("the link is stopped"))
            return result

        def settle(outcome: Any, failed: bool) -> None:
            if result.called:
                return
            if failed:
                result.errback(outcome)
            else:
                result.callback(outcome)

        async def run() -> None:
            try:
                value = await coroutine(self._nc_or_fail())
            except Exception as error:
                self._post(settle, _translate(error), True)
            else:
                self._post(settle, value, False)

        async def begin(nc: Client) -> None:
            asyncio.get_running_loop().create_task(run())

        self._submit(begin)
        return result

    def _nc_or_fail(self) -> Client:
        if self._nc is None:
            raise LinkDown("not connected")
        return self._nc

    def _set_state(self, state: str) -> None:
        self.connected = state in ("connected", "reconnected")
        self._notify(state)
        if state == "connected":
            self._started.fire(None)

    def _notify(self, state: str) -> None:
        for callback in list(self._state_callbacks):
            try:
                callback(state)
            except Exception:
                log.failure("nats: a state callback failed")

    # -- the API

    def when_state(self, callback: Callable[[str], None]) -> None:
        """Call callback with each new state: one of :data:`STATES`."""
        self._state_callbacks.append(callback)

    def publish(self, subject: str, payload: bytes) -> None:
        """Send payload to subject; never waits (dropped when the link is stopped)."""

        async def publish(nc: Client) -> None:
            await nc.publish(subject, payload)

        self._submit(publish)

    def request(self, subject: str, payload: bytes, timeout: float) -> defer.Deferred[bytes]:
        """Send payload to subject and fire with the first reply's data.

        Errbacks with :class:`Unreachable` when nobody subscribes, :class:`RequestTimeout`
        when no reply comes within timeout seconds, :class:`LinkDown` when not connected.
        """
        if not self.connected:
            return defer.fail(LinkDown("not connected to NATS"))

        async def request(nc: Client) -> bytes:
            message = await nc.request(subject, payload, timeout=timeout)
            return message.data

        return self._call(request)

    def subscribe(self, subject: str, callback: Callable[[Message], None]) -> defer.Deferred[Subscription]:
        """Call callback with every message on subject, in order, on the reactor; fires
        once the server has the subscription. It is renewed after each reconnect."""
        subscription = Subscription(subject, callback)
        done: defer.Deferred[Subscription] = defer.Deferred()

        def deliver(message: Message) -> None:
            if subscription.active:
                subscription.callback(message)

        async def handler(msg: Msg) -> None:
            self._post(deliver, Message(msg.subject, msg.reply, msg.data))

        async def subscribe(nc: Client) -> None:
            if not subscription.active:
                return
            # No pending limits: the handler only hands each message to the reactor.
            subscription._nats = await nc.subscribe(
                subject, cb=handler, pending_msgs_limit=0, pending_bytes_limit=0
            )
            self._subscriptions.add(subscription)
            # The server has the subscription once it answers a ping sent after it; the
            # wait is a task of its own so that later operations need not wait.
            asyncio.get_running_loop().create_task(confirm(nc))

        async def confirm(nc: Client) -> None:
            await _quietly(nc.flush(timeout=5))
            self._post(confirmed)

        def confirmed() -> None:
            if not done.called:
                done.callback(subscription)

        if self._stopping or self._loop is None:
            return defer.fail(LinkDown("the link is stopped"))
        self._submit(subscribe)
        return done

    def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription: its callback is not called again."""
        subscription.active = False

        async def unsubscribe(nc: Client) -> None:
            self._subscriptions.discard(subscription)
            if subscription._nats is not None:
                await _quietly(subscription._nats.unsubscribe())
                subscription._nats = None

        self._submit(unsubscribe)

    def new_inbox(self) -> str:
        """A subject nobody else uses, to receive on, under the link's inbox prefix."""
        return f"{self.inbox_prefix}.{uuid.uuid4().hex}"

    def key_value(self, bucket: str, ttl: float, history: int = 1) -> defer.Deferred[KeyValue]:
        """The key-value bucket named bucket, made (values kept ttl seconds, history
        revisions per key) when it does not exist yet."""

        async def open_bucket(nc: Client) -> KeyValue:
            js = nc.jetstream()
            try:
                kv = await js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                kv = await js.create_key_value(bucket=bucket, ttl=ttl, history=history)
            return KeyValue(self, bucket, kv)

        return self._call(open_bucket)


class _Once:
    """An outcome that happens once, and Deferreds of it for any number of waiters."""

    def __init__(self) -> None:
        self.called = False
        self._outcome: Any = None
        self._waiters: list[defer.Deferred[None]] = []

    def fire(self, outcome: Any) -> None:
        if self.called:
            return
        self.called = True
        self._outcome = outcome
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._settle(waiter)

    def wait(self) -> defer.Deferred[None]:
        waiter: defer.Deferred[None] = defer.Deferred()
        if self.called:
            self._settle(waiter)
        else:
            self._waiters.append(waiter)
        return waiter

    def _settle(self, waiter: defer.Deferred[None]) -> None:
        if isinstance(self._outcome, BaseException):
            waiter.errback(Failure(self._outcome))
        else:
            waiter.callback(None)
