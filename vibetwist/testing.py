# -*- test-case-name: tests.test_session -*-
"""Test doubles for code that uses vibetwist: a launcher that starts nothing, and a push
sender that sends nothing."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from zope.interface import implementer

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
