"""Restarting the real daemon in place (SIGUSR2, POST /api/server/restart) with real programs
running: nothing they print is lost or repeated, and everything goes on working."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor

from tests.support.daemon import (
    CHECKOUT,
    Client,
    Daemon,
    WSClient,
    kill_sessions,
    open_ws,
    parse_raw,
    pid_alive,
    poll,
    raw_request,
    sleep,
)
from tests.support.e2e import DaemonTestCase, recorded_output
from tests.support.programs import COUNTER, FLOOD_LINES, count_past, counted, flood, flooded

HEALTH = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


class RestartTests(DaemonTestCase):
    """Each test starts a daemon of its own and restarts it."""

    shared = False
    timeout = 240

    async def daemon_with(self, *args: str, env: dict[str, str] | None = None) -> tuple[Daemon, Client]:
        base = Path(tempfile.mkdtemp(prefix="restart-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, args=args, env=env)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        self.daemon = daemon
        self.client = self.client_for(daemon)
        self.addCleanup(self._kill_left_over)
        return daemon, self.client

    def _kill_left_over(self) -> None:
        kill_sessions(set(self.sessions))

    def recording(self, sid: str) -> Path:
        return self.daemon.control_dir / sid / "stdout"

    async def ws(self, path: str) -> WSClient:
        client: WSClient = await open_ws(reactor, self.daemon, path)
        self.addCleanup(
            lambda: client.dropConnection(abort=True) if client.state != client.STATE_CLOSED else None
        )
        return client

    async def test_sessions_go_on(self) -> None:
        """Across a SIGUSR2 the daemon keeps its pid and every session: a counter prints every
        number once into its recording, a bash keeps its half-typed line, top keeps its screen
        (rebuilt from the recording); WebSocket viewers see close 1012 and SSE streams end
        without an exit line, and new ones carry on; input, resize, kill, /text and /buffer work."""
        daemon, client = await self.daemon_with()
        counter = await self.create(COUNTER)
        shell = await self.create(["bash"], cols=90, rows=20)
        top = await self.create(["top", "-d", "0.5"], cols=100, rows=30)
        for sid in (counter, shell, top):
            await client.wait_status(sid, "running")
        await client.wait_text(shell, "~")  # the prompt
        await client.request("POST", f"/api/sessions/{shell}/input", {"text": "echo hal"})
        await client.wait_text(shell, "echo hal")
        await client.wait_text(top, "top -")
        await count_past(client, counter, 100)
        stream = await client.stream(counter)
        viewer = await self.ws(f"/ws/sessions/{counter}")
        buffers = await self.ws("/buffers")
        buffers.send_json({"type": "subscribe", "sessionId": top})
        await viewer.wait_for(lambda: any(m.get("type") == "replay" for m in viewer.texts()))
        pid = (await client.get("/api/health"))["pid"]

        await daemon.restart()

        self.assertEqual(await viewer.closed, 1012)
        self.assertEqual(await buffers.closed, 1012)
        await stream.ended
        self.assertTrue(stream.complete)
        self.assertFalse([m for m in stream.messages if isinstance(m, list) and m[0] == "exit"])
        health = await client.get("/api/health")
        self.assertEqual(health["pid"], pid)
        for sid in (counter, shell, top):
            info = await client.session(sid)
            self.assertEqual(info["status"], "running", sid)
            self.assertTrue(pid_alive(info["pid"]))

        # The half-typed line is still there: finish it.
        await client.request("POST", f"/api/sessions/{shell}/input", {"text": "f\r"})
        screen = await client.wait_text(shell, "\nhalf")
        self.assertIn("echo half", screen)
        size = {"cols": 70, "rows": 15}
        code, body, _ = await client.request("POST", f"/api/sessions/{shell}/resize", size)
        self.assertEqual(code, 200, body)
        buffer = await client.get(f"/api/sessions/{shell}/buffer")
        self.assertEqual(int.from_bytes(buffer[4:8], "little"), 70)
        await client.request("POST", f"/api/sessions/{shell}/input", {"text": "stty size\r"})
        await client.wait_text(shell, "15 70")

        # top's screen was rebuilt from its recording, and it goes on drawing and reading keys.
        await client.wait_text(top, "top -")
        await client.request("POST", f"/api/sessions/{top}/input", {"text": "q"})
        self.assertEqual((await client.wait_status(top, "exited", 10))["exitCode"], 0)

        # New viewers join where the old ones left.
        again = await self.ws(f"/ws/sessions/{counter}")
        await again.wait_for(lambda: any(m.get("type") == "replay" for m in again.texts()))
        seen = len(again.binaries())
        await again.wait_for(lambda: len(again.binaries()) > seen + 5)
        fresh = await client.stream(counter)
        await poll(reactor, lambda: "n" in fresh.output(), 10, what="the new stream's output")

        code, _, _ = await client.request("DELETE", f"/api/sessions/{counter}")
        self.assertEqual(code, 200)
        info = await client.wait_status(counter, "exited", 10)
        self.assertEqual(info["exitCode"], 128 + signal.SIGTERM)
        numbers = counted(recorded_output(self.recording(counter)))
        self.assertGreater(len(numbers), 200)
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
        # What the first stream got before the switch was the recording's beginning.
        before = counted(stream.output())
        self.assertEqual(before, numbers[: len(before)])

    async def test_restart_during_a_flood(self) -> None:
        """A restart while a program writes 20 MB loses and repeats no line of it."""
        daemon, client = await self.daemon_with()
        sid = await self.create(flood(2.5))
        await client.wait_status(sid, "running")
        path = self.recording(sid)
        await poll(reactor, lambda: path.stat().st_size > 1_000_000, 20, what="the flood under way")
        await daemon.restart()
        still = (await client.session(sid))["status"]
        self.assertEqual(still, "running", "the flood ended before the switch")
        info = await client.wait_status(sid, "exited", 60)
        self.assertEqual(info["exitCode"], 0)
        self.assertEqual(flooded(recorded_output(path)), list(range(FLOOD_LINES)))
        await client.wait_text(sid, f"{FLOOD_LINES - 1:08d} x")

    async def test_a_hundred_sessions(self) -> None:
        """A restart with 100 live sessions keeps all of them, each still answering."""
        daemon, client = await self.daemon_with()
        sids = [await self.create(["cat"]) for _ in range(100)]
        for sid in sids:
            await client.wait_status(sid, "running", 20)
        await daemon.restart()
        listed = {s["id"]: s for s in await client.get("/api/sessions")}
        self.assertEqual([listed[sid]["status"] for sid in sids], ["running"] * 100)
        for n, sid in enumerate(sids):
            await client.request("POST", f"/api/sessions/{sid}/input", {"text": f"ping-{n}\r"})
        for n, sid in enumerate(sids):
            await client.wait_text(sid, f"ping-{n}\nping-{n}", 20)

    async def test_ten_restarts_in_a_row(self) -> None:
        """Ten restarts one after the other: the counter's recording holds every number once,
        and the daemon is the same process throughout."""
        daemon, client = await self.daemon_with()
        sid = await self.create(COUNTER)
        await client.wait_status(sid, "running")
        pid = daemon.pid
        last = 0
        for n in range(10):
            last = await count_past(client, sid, last)
            await daemon.restart()
            self.assertEqual(daemon.restarts(), n + 1)
        self.assertEqual((await client.get("/api/health"))["pid"], pid)
        self.assertEqual((await client.session(sid))["status"], "running")
        await client.request("DELETE", f"/api/sessions/{sid}")
        await client.wait_status(sid, "exited", 10)
        numbers = counted(recorded_output(self.recording(sid)))
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))

    async def test_health_every_10ms_sees_no_error(self) -> None:
        """While the daemon restarts (asked by POST /api/server/restart), a client asking for
        /api/health every 10 ms on a new connection, and one on a kept-alive connection, get
        200 every time: the listening socket never closes. A share link may not restart it."""
        daemon, client = await self.daemon_with()
        sid = await self.create(["cat"])
        await client.wait_status(sid, "running")
        code, share, _ = await client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200)
        shared = Client(reactor, daemon, token=share["token"])
        self.addCleanup(lambda: defer.ensureDeferred(shared.close()))
        code, body, _ = await shared.request("POST", "/api/server/restart")
        self.assertEqual((code, body), (403, {"error": "This link is read-only"}))

        answers: dict[str, list[Any]] = {"fresh": [], "kept": []}
        uptimes: list[float] = []
        polling = True

        async def fresh() -> None:
            while polling:
                try:
                    status, _, body = parse_raw(await raw_request(reactor, daemon.port, HEALTH, 15))
                    answers["fresh"].append(status)
                    uptimes.append(json.loads(body)["uptime"])
                except Exception as e:
                    answers["fresh"].append(repr(e))
                await sleep(reactor, 0.01)

        async def kept() -> None:
            while polling:
                try:
                    answers["kept"].append((await client.request("GET", "/api/health", timeout=15))[0])
                except Exception as e:
                    answers["kept"].append(repr(e))
                await sleep(reactor, 0.01)

        loops = [defer.ensureDeferred(fresh()), defer.ensureDeferred(kept())]
        await sleep(reactor, 0.3)
        before = daemon.restarts()
        code, body, _ = await client.request("POST", "/api/server/restart", timeout=60)
        self.assertEqual((code, body), (200, {"success": True, "message": "Restarting"}))
        await daemon.restarted(before)
        await sleep(reactor, 0.5)
        polling = False
        await defer.gatherResults(loops)
        for name, got in answers.items():
            self.assertGreater(len(got), 20, name)
            self.assertEqual([a for a in got if a != 200], [], name)
        # The fresh connections saw the new daemon (its uptime starts again).
        self.assertTrue(any(b < a for a, b in zip(uptimes, uptimes[1:])), uptimes)
        self.assertEqual((await client.session(sid))["status"], "running")

    async def test_exit_codes_stay_real(self) -> None:
        """A program that exits while the daemon switches, and one that exits after, end with
        their own exit codes: the daemon is still their parent and reaps them."""
        daemon, client = await self.daemon_with()
        during = await self.create(["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"])
        after = await self.create(["sh", "-c", "read line; exit 7"])
        for sid in (during, after):
            await client.wait_status(sid, "running")
        pid = (await client.session(during))["pid"]
        before = daemon.restarts()
        os.kill(daemon.pid, signal.SIGUSR2)  # type: ignore[arg-type]
        await poll(reactor, lambda: "restart: handing over" in daemon.log(), 60, 0.005, "the switch")
        os.kill(pid, signal.SIGTERM)
        await daemon.restarted(before)
        self.assertEqual((await client.wait_status(during, "exited", 10))["exitCode"], 42)
        await client.request("POST", f"/api/sessions/{after}/input", {"text": "bye\r"})
        self.assertEqual((await client.wait_status(after, "exited", 10))["exitCode"], 7)

    async def test_sigterm_still_stops(self) -> None:
        """After a restart, SIGTERM still ends the programs the daemon started, and closes the
        WebSockets with 1001 ("going away")."""
        daemon, client = await self.daemon_with()
        sid = await self.create(["bash"])
        info = await client.wait_status(sid, "running")
        await daemon.restart()
        viewer = await self.ws("/buffers")
        await viewer.wait_for(lambda: viewer.texts())
        await daemon.stop()
        self.assertEqual(await viewer.closed, 1001)
        await poll(reactor, lambda: not pid_alive(info["pid"]), 10, what="the program's end")
        saved = json.loads((daemon.control_dir / sid / "session.json").read_text())
        self.assertEqual(saved["status"], "exited")

    async def test_failed_hand_over(self) -> None:
        """When the daemon as installed now does not start, a restart does not happen: the
        reason is logged and answered (500), the old daemon serves on with its sessions, a
        second request meanwhile is refused (409), and once the installation is mended the
        restart goes through."""
        site = Path(tempfile.mkdtemp(prefix="site-", dir=os.getcwd()))
        self.addCleanup(shutil.rmtree, site, True)
        shutil.copytree(
            Path(CHECKOUT) / "vibetwist",
            site / "vibetwist",
            ignore=shutil.ignore_patterns("node_modules", "__pycache__"),
        )
        (site / "twisted" / "plugins").mkdir(parents=True)
        plugin = Path(CHECKOUT) / "twisted" / "plugins" / "vibetunnel_plugin.py"
        shutil.copy(plugin, site / "twisted" / "plugins")
        daemon, client = await self.daemon_with(env={"PYTHONPATH": str(site)})
        sid = await self.create(COUNTER)
        await client.wait_status(sid, "running")
        tap = site / "vibetwist" / "tap.py"
        good = tap.read_text()
        tap.write_text(good + "\nraise RuntimeError('an upgrade broken on purpose')\n")
        uptime = (await client.get("/api/health"))["uptime"]

        first = defer.ensureDeferred(client.request("POST", "/api/server/restart", timeout=60))
        await poll(reactor, lambda: "restart: checking" in daemon.log(), 10, what="the check under way")
        code, body, _ = await client.request("POST", "/api/server/restart")
        self.assertEqual((code, body["error"]), (409, "A restart is already under way"))
        code, body, _ = await first
        self.assertEqual(code, 500)
        self.assertIn("does not start", body["error"])
        self.assertIn("an upgrade broken on purpose", body["details"])
        self.assertIn("an upgrade broken on purpose", daemon.log())
        os.kill(daemon.pid, signal.SIGUSR2)  # type: ignore[arg-type]
        await poll(reactor, lambda: daemon.refusals() >= 2, 60, what="the second refusal")
        self.assertEqual(daemon.restarts(), 0)
        self.assertGreater((await client.get("/api/health"))["uptime"], uptime)
        self.assertEqual((await client.session(sid))["status"], "running")
        await count_past(client, sid, await count_past(client, sid, 0) + 10)

        tap.write_text(good)
        await daemon.restart()
        self.assertEqual((await client.session(sid))["status"], "running")
        await client.request("DELETE", f"/api/sessions/{sid}")
        await client.wait_status(sid, "exited", 10)
        numbers = counted(recorded_output(self.recording(sid)))
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
