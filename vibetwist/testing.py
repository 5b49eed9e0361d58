# -*- test-case-name: tests.test_session -*-
"""Test doubles for code that uses vibetwist: a launcher that starts nothing, a push
sender that sends nothing, and an in-memory NATS for code that takes a NATS link."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from zope.interface import implementer

from vibetwist.cluster.link import LinkDown, Message, RequestTimeout, Subscription, Unreachable
from vibetwist.interfaces import ILauncher, IPushSender, ITerminalEvents, ITerminalProcess
from vibetwist.model.handover import HandedTerminal


@implementer(ITerminalProcess)
class FakeTerminalProcess:
    """A program that never ran: records what it is sent; tests play its part."""

    def __init__(self, pid: int, events: ITerminalEvents, launch: Launch) -> None:
        self.pid = pid
        self.events = events
        self.launch = launch
        self.written: list[bytes] = []
        self.sizes: list[tuple[int, int]] = []
        self.signals: list[int] = []
        self.hung_up = False
        self.running = True
        #: Whether it is handed over to the next daemon (a restart in place).
        self.handed_over = False
        #: The terminal's foreground process group: the program's own, until a test runs
        #: a command in it (None: unknown).
        self.foreground_group: int | None = pid

    # ITerminalProcess
    def write(self, data: bytes) -> None:
        self.written.append(data)

    def resize(self, cols: int, rows: int) -> None:
        self.sizes.append((cols, rows))

    def signal_all(self, signal: int) -> None:
        self.signals.append(signal)

    def hang_up(self) -> None:
        self.hung_up = True

    def foreground(self) -> int | None:
        return self.foreground_group

    def hand_over(self) -> HandedTerminal:
        self.handed_over = True
        return HandedTerminal(fd=1000 + self.pid % 1000, pid=self.pid)

    def take_back(self) -> None:
        self.handed_over = False

    # what the program does
    def say(self, data: bytes) -> None:
        """The program writes data to its terminal."""
        self.events.output(data)

    def exit(self, code: int) -> None:
        """The program exits with code and its terminal drains and closes."""
        self.running = False
        self.events.leader_exited(code)
        self.events.ended(code)


@attrs.frozen
class Launch:
    """One call to launch()."""

    executable: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    cols: int
    rows: int


@implementer(ILauncher)
class FakeLauncher:
    """An ILauncher that starts no program and hands out FakeTerminalProcesses."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.processes: list[FakeTerminalProcess] = []
        self.fail = fail
        self._next_pid = 40000

    def launch(
        self,
        executable: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        cols: int,
        rows: int,
        events: ITerminalEvents,
    ) -> ITerminalProcess:
        if self.fail is not None:
            raise self.fail
        self._next_pid += 1
        process = FakeTerminalProcess(
            self._next_pid, events, Launch(executable, list(argv), dict(env), cwd, cols, rows)
        )
        self.processes.append(process)
        return process

    def adopt(self, terminal: HandedTerminal, events: ITerminalEvents) -> ITerminalProcess:
        """A FakeTerminalProcess for the program an earlier daemon handed over."""
        process = FakeTerminalProcess(terminal.pid, events, Launch("", [], {}, "", 0, 0))
        self.processes.append(process)
        return process

    @property
    def last(self) -> FakeTerminalProcess:
        return self.processes[-1]


@attrs.frozen
class Post:
    """One message given to a MemoryPushSender."""

    url: str
    headers: dict[str, str]
    body: bytes
    #: Fire it with a status code (or errback it) to answer the post.
    answer: Deferred[int]


@implementer(IPushSender)
class MemoryPushSender:
    """An IPushSender that keeps every post; it answers each with ``status`` at once, or,
    with ``status=None``, leaves the answer to the test (``posts[i].answer``)."""

    def __init__(self, status: int | None = 201) -> None:
        self.status = status
        self.posts: list[Post] = []
        self.closed = False

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Deferred[int]:
        answer: Deferred[int] = Deferred()
        self.posts.append(Post(url, dict(headers), body, answer))
        if self.status is not None:
            answer.callback(self.status)
        return answer

    def close(self) -> None:
        self.closed = True


def pump(clock: Any, turns: int = 50) -> None:
    """Run a task.Clock's zero-delay calls (spawns, screen slices) until none are left."""
    for _ in range(turns):
        if not any(call.getTime() <= clock.seconds() for call in clock.getDelayedCalls()):
            return
        clock.advance(0)


class MemoryNATS:
    """An in-memory NATS for unit tests of code that takes a
    :class:`~vibetwist.cluster.link.NATSLink`: :meth:`link` makes links to it that have the
    real link's API (publish, subscribe with ``*`` and ``>`` wildcards, request with
    no-responders, key-value buckets with watches), delivering on the reactor in order, a
    batch per turn as the real link does. :meth:`kill` and :meth:`start` play a server
    going away and coming back."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.running = True
        self._links: list[MemoryLink] = []
        self._subscriptions: list[tuple[str, Any, MemoryLink]] = []
        self._buckets: dict[str, dict[str, tuple[int, bytes, float]]] = {}
        self._bucket_ttl: dict[str, float] = {}
        self._watches: dict[str, list[Any]] = {}
        self._revision = 0
        self._queue: list[tuple[Any, tuple[Any, ...]]] = []

    def link(self, name: str = "memory") -> MemoryLink:
        """A new link to this server (not started)."""
        link = MemoryLink(self, name)
        self._links.append(link)
        return link

    # -- playing the server

    async def kill(self) -> None:
        """The server goes away: every started link is disconnected."""
        self.running = False
        for link in self._links:
            link._set_state("disconnected")

    stop = kill

    async def start(self) -> None:
        """The server is back: links reconnect (and those waiting to start, connect)."""
        self.running = True
        for link in self._links:
            if link._started_once and not link._stopped:
                link._set_state("reconnected")
            elif link._starting is not None and not link._stopped:
                link._connect()

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    async def cleanup(self) -> None:
        pass

    # -- the broker

    def _later(self, function: Any, *args: Any) -> None:
        first = not self._queue
        self._queue.append((function, args))
        if first:
            self.reactor.callLater(0, self._drain)

    def _drain(self) -> None:
        batch, self._queue = self._queue, []
        for function, args in batch:
            function(*args)

    def _matching(self, subject: str) -> list[tuple[str, Any, MemoryLink]]:
        return [entry for entry in self._subscriptions if _subject_matches(entry[0], subject)]

    def _publish(self, subject: str, reply: str, data: bytes) -> None:
        for _, subscription, link in self._matching(subject):
            if link.connected:
                self._later(link._deliver, subscription, Message(subject, reply, bytes(data)))


def _subject_matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject matches a subscription's pattern (``*`` one token, ``>`` the rest)."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(wanted) == len(tokens)


class MemoryLink:
    """A link to a :class:`MemoryNATS`, with the API of :class:`~vibetwist.cluster.link.NATSLink`."""

    def __init__(self, server: MemoryNATS, name: str) -> None:
        self.reactor = server.reactor
        self.server = server
        self.name = name
        self.connected = False
        self._state_callbacks: list[Any] = []
        self._starting: list[Deferred[None]] | None = None
        self._started_once = False
        self._stopped = False
        self._inbox = 0

    def start(self) -> Deferred[None]:
        started: Deferred[None] = Deferred()
        if self.connected:
            started.callback(None)
            return started
        if self._starting is None:
            self._starting = []
            if self.server.running:
                self.server._later(self._connect)
        self._starting.append(started)
        return started

    def _connect(self) -> None:
        if self._stopped or self.connected or not self.server.running:
            return
        self._started_once = True
        self._set_state("connected")
        waiters, self._starting = self._starting or [], None
        for waiter in waiters:
            waiter.callback(None)

    def stop(self) -> Deferred[None]:
        stopped: Deferred[None] = Deferred()
        if not self._stopped:
            self._stopped = True
            self.server._subscriptions = [e for e in self.server._subscriptions if e[2] is not self]
            was = self.connected
            self.connected = False
            if was:
                self._notify("closed")
            waiters, self._starting = self._starting or [], None
            for waiter in waiters:
                waiter.errback(LinkDown("stopped before it connected"))
        stopped.callback(None)
        return stopped

    def _set_state(self, state: str) -> None:
        if self._stopped or not self._started_once:
            return
        self.connected = state in ("connected", "reconnected")
        self._notify(state)

    def _notify(self, state: str) -> None:
        for callback in list(self._state_callbacks):
            callback(state)

    def when_state(self, callback: Any) -> None:
        self._state_callbacks.append(callback)

    def _deliver(self, subscription: Any, message: Any) -> None:
        if subscription.active and self.connected:
            subscription.callback(message)

    def publish(self, subject: str, payload: bytes) -> None:
        if self.connected:
            self.server._publish(subject, "", payload)

    def request(self, subject: str, payload: bytes, timeout: float) -> Deferred[bytes]:
        answer: Deferred[bytes] = Deferred()
        if not self.connected:
            answer.errback(LinkDown("not connected to NATS"))
            return answer
        if not self.server._matching(subject):
            self.server._later(answer.errback, Unreachable("no responders"))
            return answer
        inbox = self.new_inbox()

        def replied(message: Any) -> None:
            self._forget(reply)
            if not answer.called:
                timer.cancel()
                answer.callback(message.data)

        def timed_out() -> None:
            self._forget(reply)
            answer.errback(RequestTimeout("no reply in time"))

        reply = Subscription(inbox, replied)
        self.server._subscriptions.append((inbox, reply, self))
        timer = self.reactor.callLater(timeout, timed_out)
        self.server._publish(subject, inbox, payload)
        return answer

    def _forget(self, subscription: Any) -> None:
        subscription.active = False
        self.server._subscriptions = [e for e in self.server._subscriptions if e[1] is not subscription]

    def subscribe(self, subject: str, callback: Any) -> Deferred[Any]:
        subscription = Subscription(subject, callback)
        self.server._subscriptions.append((subject, subscription, self))
        done: Deferred[Any] = Deferred()
        self.server._later(done.callback, subscription)
        return done

    def unsubscribe(self, subscription: Any) -> None:
        self._forget(subscription)

    def new_inbox(self) -> str:
        self._inbox += 1
        return f"_INBOX.{self.name}.{self._inbox}"

    def key_value(self, bucket: str, ttl: float, history: int = 1) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        if not self.connected:
            done.errback(LinkDown("not connected to NATS"))
            return done
        self.server._buckets.setdefault(bucket, {})
        self.server._bucket_ttl.setdefault(bucket, ttl)
        self.server._later(done.callback, MemoryKeyValue(self, bucket))
        return done


class MemoryKeyValue:
    """A key-value bucket of a :class:`MemoryNATS`, with the API of the real link's; values
    older than the bucket's ttl read as None (and, as on nats-server 2.9, their expiry is
    not reported to watches)."""

    def __init__(self, link: MemoryLink, bucket: str) -> None:
        self._link = link
        self._server = link.server
        self.bucket = bucket

    def _values(self) -> dict[str, tuple[int, bytes, float]]:
        return self._server._buckets[self.bucket]

    def _answer(self, value: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        if not self._link.connected:
            done.errback(LinkDown("not connected to NATS"))
        else:
            self._server._later(done.callback, value)
        return done

    def _fresh(self, key: str) -> tuple[int, bytes, float] | None:
        entry = self._values().get(key)
        if entry is None or self._server.reactor.seconds() - entry[2] > self._server._bucket_ttl[self.bucket]:
            return None
        return entry

    def _store(self, key: str, value: bytes | None) -> int:
        self._server._revision += 1
        revision = self._server._revision
        if value is None:
            self._values().pop(key, None)
        else:
            self._values()[key] = (revision, bytes(value), self._server.reactor.seconds())
        for watch in self._server._watches.get(self.bucket, []):
            self._server._later(watch._report, key, value)
        return revision

    def put(self, key: str, value: bytes) -> Deferred[int]:
        if not self._link.connected:
            return self._answer(None)
        return self._answer(self._store(key, value))

    def get(self, key: str) -> Deferred[bytes | None]:
        entry = self._fresh(key)
        return self._answer(None if entry is None else entry[1])

    def create(self, key: str, value: bytes) -> Deferred[bool]:
        if not self._link.connected:
            return self._answer(None)
        if self._fresh(key) is not None:
            return self._answer(False)
        self._store(key, value)
        return self._answer(True)

    def delete(self, key: str) -> Deferred[None]:
        if not self._link.connected:
            return self._answer(None)
        self._store(key, None)
        return self._answer(None)

    def watch_all(self, callback: Any) -> MemoryWatch:
        watch = MemoryWatch(self, callback)
        self._server._watches.setdefault(self.bucket, []).append(watch)
        for key in sorted(self._values()):
            entry = self._fresh(key)
            if entry is not None:
                self._server._later(watch._report, key, entry[1])
        self._server._later(watch._became_ready)
        return watch


class MemoryWatch:
    """A watch of a :class:`MemoryKeyValue`; call it to stop; ``ready`` as the real one's."""

    def __init__(self, kv: MemoryKeyValue, callback: Any) -> None:
        self._kv = kv
        self._callback = callback
        self.ready: Deferred[None] = Deferred()
        self._stopped = False

    def __call__(self) -> None:
        self._stopped = True
        watches = self._kv._server._watches.get(self._kv.bucket, [])
        if self in watches:
            watches.remove(self)

    def _report(self, key: str, value: bytes | None) -> None:
        if not self._stopped:
            self._callback(key, value)

    def _became_ready(self) -> None:
        if not self.ready.called:
            self.ready.callback(None)
