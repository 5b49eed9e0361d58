"""POST /api/sessions/:id/wait against the real daemon: matched, timed out, ended, idle,
and the refusals."""

from __future__ import annotations

import json
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived

from tests.support.daemon import poll, sleep, within
from tests.support.e2e import DaemonTestCase


class WaitAPITests(DaemonTestCase):
    """The wait route's outcomes, on real programs in real terminals."""

    async def wait(self, sid: str, body: dict, timeout: float = 20.0) -> tuple[int, dict]:
        code, answer, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/wait", body, timeout=timeout
        )
        return code, answer

    async def test_matched_in_output_and_on_screen(self) -> None:
        """A wait on output answers as soon as the program prints the pattern, with the text
        matched and a recording offset that the next wait can start after; a screen wait
        answers at once for what the screen shows."""
        sid = await self.create(["cat"])
        # The terminal echoes the line, then cat prints it: both must be in.
        pending = defer.ensureDeferred(self.wait(sid, {"pattern": r"he\w+o\r\nhello", "on": "output"}))
        await sleep(reactor, 0.3)
        self.assertFalse(pending.called)
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "hello\r"})
        code, answer = await within(reactor, pending, 10, "the wait's answer")
        self.assertEqual((code, answer["matched"], answer["text"]), (200, True, "hello\r\nhello"))
        recording = (self.daemon.control_dir / sid / "stdout").read_bytes()
        self.assertLessEqual(answer["offset"], len(recording))
        self.assertEqual(recording[answer["offset"] - 1 : answer["offset"]], b"\n")
        self.assertIn(b"hello", recording[: answer["offset"]])
        code, screen = await self.wait(sid, {"pattern": "hello"})
        self.assertEqual((code, screen["matched"], screen["text"]), (200, True, "hello"))
        # After the offset, the old hello no longer counts; a new one does.
        later = defer.ensureDeferred(
            self.wait(sid, {"pattern": "hello", "on": "output", "after": answer["offset"], "timeout": 10})
        )
        await sleep(reactor, 0.3)
        self.assertFalse(later.called)
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "hello again\r"})
        code, again = await within(reactor, later, 10, "the second wait")
        self.assertEqual(code, 200)
        self.assertGreater(again["offset"], answer["offset"])

    async def test_timed_out(self) -> None:
        """A pattern that does not show within the timeout answers 408 with an error."""
        sid = await self.create(["cat"])
        started = reactor.seconds()
        code, answer = await self.wait(sid, {"pattern": "never", "on": "output", "timeout": 0.5})
        self.assertJSONError(code, answer, 408)
        self.assertGreaterEqual(reactor.seconds() - started, 0.45)

    async def test_program_ended_first(self) -> None:
        """A program that ends before the pattern shows answers matched false, exited, with
        its exit code; so does a wait on a session that has ended already, while what the
        program printed last still matches."""
        sid = await self.create(["bash", "-c", "sleep 0.5; echo last words; exit 7"])
        code, answer = await self.wait(sid, {"pattern": "never", "on": "output"})
        self.assertEqual((code, answer), (200, {"matched": False, "exited": True, "exitCode": 7}))
        code, answer = await self.wait(sid, {"pattern": "never"})
        self.assertEqual((code, answer), (200, {"matched": False, "exited": True, "exitCode": 7}))
        code, answer = await self.wait(sid, {"pattern": "last words", "on": "output", "after": 0})
        self.assertEqual((code, answer["matched"]), (200, True))
        code, answer = await self.wait(sid, {"pattern": "last words"})
        self.assertEqual((code, answer["matched"]), (200, True))

    async def test_idle(self) -> None:
        """An idle wait answers once the program has printed nothing for that long."""
        sid = await self.create(["bash", "-c", "for i in 1 2 3 4; do echo tick$i; sleep 0.3; done; sleep 60"])
        started = reactor.seconds()
        code, answer = await self.wait(sid, {"idle": 1.0, "timeout": 15})
        self.assertEqual((code, answer["matched"], answer["idle"]), (200, True, 1.0))
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        recording = (self.daemon.control_dir / sid / "stdout").read_bytes()
        self.assertIn(b"tick4", recording[: answer["offset"]])

    async def test_refusals(self) -> None:
        """Bad bodies are 400 with an error, an unknown session 404, a body that is not JSON 415."""
        sid = await self.create(["cat"])
        for body in (
            {},
            {"pattern": "(", "on": "output"},
            {"pattern": "a", "idle": 1},
            {"pattern": "a", "timeout": 100000},
            {"pattern": "a", "on": "elsewhere"},
            {"idle": -1},
            {"pattern": "a", "after": "0"},
        ):
            code, answer = await self.wait(sid, body)
            self.assertJSONError(code, answer, 400, json.dumps(body))
        code, answer = await self.wait("no-such-session", {"pattern": "a"})
        self.assertJSONError(code, answer, 404)
        code, answer, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/wait", data=b"pattern=a", headers={"Content-Type": "text/plain"}
        )
        self.assertJSONError(code, answer, 415)

    async def test_share_token_refused(self) -> None:
        """A read-only share link may not wait on its session (403)."""
        sid = await self.create(["cat"])
        code, share, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200)
        code, answer, _ = await self.client.request(
            "POST",
            f"/api/sessions/{sid}/wait",
            {"pattern": "a"},
            headers={"Authorization": f"Bearer {share['token']}"},
        )
        self.assertJSONError(code, answer, 403)

    async def test_limit_and_clients_gone(self) -> None:
        """A session holds at most 200 pending waits (the next is 503 with Retry-After); waits
        whose clients hang up are forgotten, so new ones are taken again."""
        sid = await self.create(["cat"])
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        refused: list[Any] = []
        pending = []
        for _ in range(201):
            d = http.post(
                self.daemon.url(f"/api/sessions/{sid}/wait"),
                json={"pattern": "never", "on": "output", "timeout": 60},
            )
            d.addCallback(refused.append)
            d.addErrback(lambda f: f.trap(defer.CancelledError, ResponseNeverReceived))
            pending.append(d)
        await poll(reactor, lambda: refused, 20, what="one wait of 201 refused")
        await sleep(reactor, 0.5)
        self.assertEqual([r.code for r in refused], [503], "200 are taken, one is refused")
        self.assertEqual(refused[0].headers.getRawHeaders(b"retry-after"), [b"1"])
        self.assertIn(b"200 waits", await refused[0].content())
        for d in pending:
            d.cancel()

        async def taken() -> bool:
            code, answer = await self.wait(sid, {"pattern": "x", "timeout": 0.2})
            return code == 408

        await poll(reactor, taken, 20, interval=0.2, what="a wait taken again")


class WaitRestartTests(DaemonTestCase):
    """Waits pending while the daemon restarts in place."""

    async def test_restart_answers_waits(self) -> None:
        """A restart in place answers pending waits 503 with Retry-After and is not held up
        by them; the same wait, asked again of the new daemon, matches."""
        sid = await self.create(["bash", "-c", "read line; echo got-$line; sleep 60"])
        pending = defer.ensureDeferred(
            self.client.request(
                "POST", f"/api/sessions/{sid}/wait", {"pattern": "got-x", "timeout": 120}, timeout=60
            )
        )
        await sleep(reactor, 0.3)
        await self.daemon.restart()
        code, answer, response = await within(reactor, pending, 30, "the wait's answer")
        self.assertJSONError(code, answer, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"1"])
        again = defer.ensureDeferred(
            self.client.request(
                "POST", f"/api/sessions/{sid}/wait", {"pattern": "got-x", "timeout": 20}, timeout=30
            )
        )
        await sleep(reactor, 0.3)
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "x\r"})
        code, answer, _ = await within(reactor, again, 30, "the second wait")
        self.assertEqual((code, answer["matched"]), (200, True))
