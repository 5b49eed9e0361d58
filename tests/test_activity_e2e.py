"""End-to-end tests of session activity against the real daemon: an interactive bash in a
real PTY whose commands, bells and titles come out of ``GET /api/events``, a program
reading its terminal, resuming with ``Last-Event-ID``, and ``activity`` in the session
list. The parts alone are in L{tests.test_activity}."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import reactor

from tests.support.daemon import SSEStream, poll, sleep
from tests.support.e2e import DaemonTestCase

#: The end of bash's default prompt.
PROMPT = "#" if os.geteuid() == 0 else "$"
#: An OSC 133 D mark with the last command's exit code, written before each prompt.
MARKS = "PROMPT_COMMAND='printf \"\\033]133;D;%s\\007\" $?'\r"


class EventsTestCase(DaemonTestCase):
    async def stream(self) -> SSEStream:
        stream = await self.client.events()
        await poll(reactor, lambda: stream.named, what="the connected event")
        return stream

    async def shell(self) -> str:
        """A new interactive bash, at its prompt."""
        sid = await self.create(["bash"])
        await self.client.wait_text(sid, PROMPT, timeout=10)
        return sid

    async def event(self, stream: SSEStream, sid: str, kind: str, timeout: float = 15) -> dict[str, Any]:
        """The first event of kind for sid (waiting for it)."""

        def found() -> dict[str, Any] | None:
            for message in stream.named:
                if message["event"] == kind and message["data"].get("sessionId") == sid:
                    return message
            return None

        return await poll(reactor, found, timeout=timeout, what=f"a {kind} event of {sid}")

    def of(self, stream: SSEStream, sid: str, *kinds: str) -> list[dict[str, Any]]:
        return [m["data"] for m in stream.named if m["event"] in kinds and m["data"].get("sessionId") == sid]

    async def type(self, sid: str, text: str) -> None:
        code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": text})
        self.assertEqual(code, 200, body)


class ShellEventsTests(EventsTestCase):
    """Events of a bash session, with --command-min-seconds 1 to keep them quick."""

    daemon_args = ("--command-min-seconds", "1")

    async def test_sleep_then_false(self) -> None:
        """`sleep 4; false` typed into bash with its default settings is command-finished with
        the command that held the terminal (`sleep 4`) and its duration, and no exit code;
        the session is active with that command in the foreground while it runs."""
        stream = await self.stream()
        sid = await self.shell()
        await self.type(sid, "sleep 4; false\r")
        await sleep(reactor, 1.0)
        activity = (await self.client.session(sid))["activity"]
        self.assertEqual((activity["state"], activity["foreground"]), ("active", "sleep 4"))
        self.assertRegex(activity["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        message = await self.event(stream, sid, "command-finished")
        data = message["data"]
        name = (await self.client.session(sid))["name"]
        self.assertEqual((data["command"], data["sessionName"]), ("sleep 4", name))
        self.assertNotIn("exitCode", data)
        self.assertGreaterEqual(data["duration"], 3900)
        self.assertLess(data["duration"], 6000)
        self.assertEqual(self.of(stream, sid, "command-error", "needs-input"), [])

    async def test_exit_codes_from_marks(self) -> None:
        """With a PROMPT_COMMAND that writes OSC 133 D marks, bash tells the exit code:
        `sleep 1.5; false` is command-error with exitCode 1, `sleep 1.5; true` command-finished
        with exitCode 0."""
        stream = await self.stream()
        sid = await self.shell()
        await self.type(sid, MARKS)
        await self.type(sid, "sleep 1.5; false\r")
        error = (await self.event(stream, sid, "command-error"))["data"]
        self.assertEqual((error["command"], error["exitCode"]), ("sleep 1.5", 1))
        self.assertGreaterEqual(error["duration"], 1400)
        await self.type(sid, "sleep 1.5; true\r")
        finished = (await self.event(stream, sid, "command-finished"))["data"]
        self.assertEqual((finished["command"], finished["exitCode"]), ("sleep 1.5", 0))

    async def test_bell_and_title(self) -> None:
        """A BEL printed in the session is a bell event (two within a second are one); a
        title set with OSC 2 is a title event, and the BEL that ends the OSC is no bell."""
        stream = await self.stream()
        sid = await self.shell()
        await self.type(sid, "printf '\\033]2;building things\\007'; printf '\\a\\a'\r")
        title = (await self.event(stream, sid, "title"))["data"]
        self.assertEqual(title["title"], "building things")
        bell = (await self.event(stream, sid, "bell"))["data"]
        name = (await self.client.session(sid))["name"]
        self.assertEqual((bell["sessionName"], bell["command"]), (name, "bash"))
        await sleep(reactor, 0.5)
        self.assertEqual(len(self.of(stream, sid, "bell")), 1)
        self.assertEqual(len(self.of(stream, sid, "title")), 1)

    async def test_needs_input(self) -> None:
        """A program that prints a prompt and reads its terminal is needs-input, and its
        activity says so with the program in the foreground; an answer ends the wait, and
        the next prompt, after some work, is needs-input again."""
        stream = await self.stream()
        program = "import time; input('Name? '); time.sleep(0.5); input('Again? ')"
        sid = await self.create([sys.executable, "-c", program])
        data = (await self.event(stream, sid, "needs-input"))["data"]
        self.assertEqual(data["command"], f"{sys.executable} -c {program}")
        activity = (await self.client.session(sid))["activity"]
        self.assertEqual(activity["state"], "needs-input")
        await self.type(sid, "me\r")

        async def active() -> dict[str, Any] | None:
            state = (await self.client.session(sid))["activity"]
            return state if state["state"] != "needs-input" else None

        await poll(reactor, active, timeout=5, what="the wait to end")
        await poll(
            reactor, lambda: len(self.of(stream, sid, "needs-input")) == 2, timeout=10, what="a second wait"
        )

    async def test_needs_input_of_an_event_loop(self) -> None:
        """A program waiting on its terminal in an event loop (epoll, as asyncio and node
        programs do) needs input too."""
        stream = await self.stream()
        program = (
            "import selectors, sys; s = selectors.EpollSelector(); s.register(0, selectors.EVENT_READ); "
            "print('ready? ', end='', flush=True); s.select()"
        )
        sid = await self.create([sys.executable, "-c", program])
        await self.event(stream, sid, "needs-input")

    async def test_shell_prompt_needs_nothing(self) -> None:
        """An interactive bash at its prompt (reading its terminal) is idle, not needs-input."""
        stream = await self.stream()
        sid = await self.shell()
        await sleep(reactor, 3.5)
        self.assertEqual(self.of(stream, sid, "needs-input"), [])
        self.assertEqual((await self.client.session(sid))["activity"]["state"], "idle")

    async def test_resume(self) -> None:
        """A client that reconnects with Last-Event-ID (or ?lastEventId=) gets the events after
        that id it missed, in order, then live ones; one with an id from an earlier daemon
        gets every kept event."""
        stream = await self.stream()
        first = await self.create(["sh", "-c", "printf '\\a'; sleep 30"])
        bell = await self.event(stream, first, "bell")
        stream.abort()
        missed = await self.create(["sh", "-c", "exit 4"])
        await self.client.wait_status(missed, "exited", timeout=10)
        resumed = await self.client.events(last_event_id=bell["id"])
        by_query = await self.client.events(params={"lastEventId": bell["id"]})
        for again in (resumed, by_query):
            await poll(
                reactor,
                lambda s=again: len(self.of(s, missed, "session-exit")),
                timeout=10,
                what="the missed",
            )
            self.assertEqual(again.named[0]["event"], "connected")
            # Other tests' sessions may have events too (their ends), but none before the bell.
            replayed = again.named[1:]
            self.assertEqual(
                [m["event"] for m in replayed if m["data"].get("sessionId") == missed],
                ["session-start", "session-exit"],
            )
            self.assertEqual(self.of(again, first, "session-start", "bell"), [])
            ids = [int(m["id"]) for m in replayed]
            self.assertEqual(ids, sorted(ids))
            self.assertGreater(ids[0], int(bell["id"]))
        await self.type(first, "x")
        await self.client.request("DELETE", f"/api/sessions/{first}")
        await self.event(resumed, first, "session-exit")
        earlier = await self.client.events(last_event_id="999999999")
        await poll(reactor, lambda: len(earlier.named) > 3, timeout=10, what="every kept event")
        self.assertEqual(earlier.named[1]["id"], "1")
        newest = max(int(m["id"]) for m in earlier.named[1:])
        nothing = await self.client.events(last_event_id="not a number")
        await sleep(reactor, 0.3)
        self.assertEqual(nothing.named[0]["event"], "connected")
        # Nothing replayed: whatever else comes is live (other tests' sessions ending).
        self.assertTrue(all(int(m["id"]) > newest for m in nothing.named[1:]), nothing.named)


class DefaultMinimumTests(EventsTestCase):
    """The default --command-min-seconds, 3."""

    async def test_default_minimum(self) -> None:
        """With the default minimum, `sleep 1` is no event and `sleep 4; false` is
        command-finished."""
        stream = await self.stream()
        sid = await self.shell()
        await self.type(sid, "sleep 1\r")
        await sleep(reactor, 1.5)
        await self.type(sid, "sleep 4; false\r")
        data = (await self.event(stream, sid, "command-finished"))["data"]
        self.assertEqual(data["command"], "sleep 4")
        self.assertEqual(len(self.of(stream, sid, "command-finished", "command-error")), 1)
