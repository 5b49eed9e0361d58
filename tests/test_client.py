"""vibetwist.client (asynchronous and synchronous), ``vt wait`` and examples/repl.py against
the real daemon."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, utils

from tests.support.daemon import within
from tests.support.e2e import DaemonTestCase
from vibetwist.client import Client, ClientError, ServerEvent, WaitResult

ROOT = Path(__file__).resolve().parent.parent

SYNC_SCRIPT = """
import json, sys
from vibetwist.client import SyncClient

vt = SyncClient(sys.argv[1])
sid = vt.create(["bash", "-c", "read line; echo got-$line; exit 5"])
ready = vt.wait(sid, idle=0.3, timeout=10)
vt.send_text(sid, "abc")
vt.send_key(sid, "enter")
found = vt.wait(sid, r"got-\\w+", on="output", after=0, timeout=10)
late = vt.wait(sid, "never", timeout=0.3)
output = "".join(vt.output(sid))
print(json.dumps({
    "matched": found.matched, "text": found.text, "offset": found.offset, "idle": ready.matched,
    "late": [late.matched, late.exited, late.exit_code, late.timed_out],
    "output": output, "status": vt.session(sid)["status"],
}))
vt.close()
"""


class ClientTests(DaemonTestCase):
    """The client's calls, each against the daemon."""

    def make_client(self) -> Client:
        client = Client(self.daemon.url(""), reactor=reactor)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return client

    async def test_drive_a_session(self) -> None:
        """The client creates a session, types text and keys, waits for output, reads the
        screen, and follows the output to the program's end and exit code."""
        client = self.make_client()
        sid = await client.create(["bash", "-c", "read a; read b; echo sum=$((a+b)); exit 3"], cols=60)
        self.sessions.append(sid)
        self.assertEqual((await client.session(sid))["initialCols"], 60)
        await client.send_text(sid, "2\r")
        await client.send_text(sid, "40")
        await client.send_key(sid, "enter")
        result = await client.wait(sid, r"sum=\d+", on="output", after=0, timeout=10)
        self.assertEqual((result.matched, result.text), (True, "sum=42"))
        self.assertIsInstance(result.offset, int)
        self.assertIn("sum=42", await client.text(sid))
        stream = client.output(sid)
        chunks = [text async for text in stream]
        self.assertIn("sum=42", "".join(chunks))
        self.assertEqual((stream.exited, stream.exit_code), (True, 3))
        ended = await client.wait(sid, "never")
        self.assertEqual(ended, WaitResult(matched=False, exited=True, exit_code=3))
        self.assertIn(sid, [s["id"] for s in await client.sessions()])

    async def test_timeout_and_refusals(self) -> None:
        """A wait that times out is a result; a refused request raises ClientError with the
        status and the daemon's message."""
        client = self.make_client()
        sid = await client.create(["cat"])
        self.sessions.append(sid)
        self.assertEqual(
            await client.wait(sid, "never", timeout=0.3), WaitResult(matched=False, timed_out=True)
        )
        with self.assertRaises(ClientError) as caught:
            await client.wait(sid, "(")
        self.assertEqual(caught.exception.status, 400)
        with self.assertRaises(ClientError) as missing:
            await client.text("no-such-session")
        self.assertEqual((missing.exception.status, missing.exception.message), (404, "Session not found"))
        await client.kill(sid)
        ended = await client.wait(sid, "never", on="output", timeout=10)
        self.assertTrue(ended.exited)

    async def test_follow_events(self) -> None:
        """The client follows /api/events: connected, then the start and exit of a session."""
        client = self.make_client()
        events = client.events()
        first = await within(reactor, events.__anext__(), 10, "the connected event")
        self.assertEqual(first.type, "connected")
        sid = await client.create(["bash", "-c", "exit 2"])
        self.sessions.append(sid)
        seen: list[ServerEvent] = []

        async def until_exit() -> None:
            async for event in events:
                if isinstance(event.data, dict) and event.data.get("sessionId") == sid:
                    seen.append(event)
                    if event.type == "session-exit":
                        return

        await within(reactor, until_exit(), 10, "the session's exit event")
        events.close()
        self.assertEqual([e.type for e in seen][-1], "session-exit")
        self.assertEqual(seen[-1].data["exitCode"], 2)
        self.assertTrue(all(e.id for e in seen))

    async def test_sync_client(self) -> None:
        """The synchronous client does the same from a script that runs no reactor."""
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, ["-c", SYNC_SCRIPT, self.daemon.url("")], env=dict(os.environ)
        )
        self.assertEqual(code, 0, err)
        result = json.loads(out)
        self.assertEqual((result["matched"], result["text"], result["idle"]), (True, "got-abc", True))
        self.assertEqual(result["late"][:3], [False, True, 5])
        self.assertIn("got-abc", result["output"])
        self.assertEqual(result["status"], "exited")


class VtWaitTests(DaemonTestCase):
    """``vt wait ID REGEX``: its output and exit statuses."""

    async def vt_wait(self, *args: str) -> tuple[bytes, bytes, int]:
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            ["-m", "vibetwist.vt", "wait", "--server", self.daemon.url(""), *args],
            env={k: v for k, v in os.environ.items() if k != "VIBETUNNEL_SESSION_ID"},
        )
        return out, err, code

    async def test_exit_statuses(self) -> None:
        """0 and the match on stdout when it shows, 1 at the timeout, 2 when the program ended
        first, 3 for a bad pattern or an unknown session."""
        sid = await self.create(["bash", "-c", "echo ready-42; sleep 60"])
        out, err, code = await self.vt_wait(sid, r"ready-\d+", "--timeout", "10")
        self.assertEqual((code, out), (0, b"ready-42\n"), err)
        out, err, code = await self.vt_wait(sid, "never", "--timeout", "0.3", "--on", "output")
        self.assertEqual(code, 1, err)
        self.assertIn(b"did not show", err)
        ended = await self.create(["bash", "-c", "exit 9"])
        await self.client.wait_status(ended, "exited")
        out, err, code = await self.vt_wait(ended, "never")
        self.assertEqual(code, 2, err)
        self.assertIn(b"exit code 9", err)
        out, err, code = await self.vt_wait(sid, "(")
        self.assertEqual(code, 3)
        self.assertIn(b"400", err)
        out, err, code = await self.vt_wait("no-such-session", "x")
        self.assertEqual(code, 3)
        out, err, code = await self.vt_wait(sid)
        self.assertEqual(code, 3)


class ReplExampleTests(DaemonTestCase):
    """examples/repl.py drives a real Python REPL."""

    async def test_repl_example(self) -> None:
        """The example types expressions into python3, prints the REPL's answers and sees
        it exit cleanly."""
        script = ROOT / "examples" / "repl.py"
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            [str(script), "--url", self.daemon.url(""), "6 * 7", "'ab' * 2"],
            env=dict(os.environ),
        )
        self.assertEqual(code, 0, err)
        lines: Any = out.decode().splitlines()
        self.assertEqual(lines, ["6 * 7 -> 42", "'ab' * 2 -> 'abab'", "the REPL ended with exit code 0"])
