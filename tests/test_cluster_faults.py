"""The faults a cluster survives, each against real processes.

Every test runs a real nats-server, host daemons started with ``--nats --host-id``
and gateway daemons started with ``--gateway --nats``, each a process of its own
(L{tests.support.cluster.Cluster}), and breaks one of them: a host killed with
``kill -9``, the nats-server restarted while output flows, a gateway killed, a
viewer that stops reading; and a client without the cluster's credentials.
The figures the tests measure (how long an answer took, a gateway's memory) are
printed to the test log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python import log
from twisted.trial import unittest

from tests.support.cluster import Cluster
from tests.support.daemon import SSEStream, WSClient, kill_quietly, open_ws, poll, within
from tests.support.e2e import recorded_output
from tests.support.screens import screen_of
from tests.support.vt import SHELL, VT, LocalTerminal, start_terminal
from vibetwist.model.snapshot import decode, decode_buffers_frame

#: A program that writes 0, 1, 2, ... one number a line, steadily.
COUNTER = ["bash", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done"]

#: The longest a gateway may take to answer for a session of a host that is gone.
QUICK = 0.1


def numbers(text: str) -> list[int]:
    """The whole numbers a counter wrote, one a line (a last line still being written left
    out, and lines other than numbers: a mangled number shows as a gap)."""
    lines = text.replace("\r\n", "\n").split("\n")[:-1]
    return [int(line) for line in lines if line.isdigit()]


def assert_counted(testcase: unittest.TestCase, text: str, what: str) -> list[int]:
    """The counter's numbers in text are 0, 1, 2, ... each once, in order; they are returned."""
    seen = numbers(text)
    testcase.assertTrue(seen, f"{what}: no numbers")
    first_wrong = next((i for i, n in enumerate(seen) if n != i), None)
    testcase.assertIsNone(
        first_wrong,
        f"{what}: a gap or a duplicate at line {first_wrong}: {seen[max(0, (first_wrong or 0) - 3) :][:8]}",
    )
    return seen


def figure(name: str, value: float, unit: str) -> None:
    """A measured figure, for the test log (_trial_temp/test.log) and the console."""
    line = f"FIGURE {name}: {value:.1f} {unit}"
    log.msg(line)
    print(line)


class ClusterCase(unittest.TestCase):
    """Tests with a cluster of their own, every process of it ended after the test."""

    timeout = 120
    #: Options of the nats-server (token, user and password).
    nats_options: dict[str, Any] = {}

    def make_cluster(self) -> Cluster:
        base = Path(tempfile.mkdtemp(prefix="cluster-faults-", dir=os.getcwd()))
        cluster = Cluster(reactor, base, dict(self.nats_options))
        self.addCleanup(lambda: defer.ensureDeferred(cluster.stop()))
        return cluster

    async def started_cluster(
        self, hosts: tuple[str, ...] = ("alpha", "beta"), gateways: tuple[str, ...] = ("gw-a", "gw-b")
    ) -> Cluster:
        cluster = self.make_cluster()
        await cluster.start(hosts, gateways)
        return cluster

    def terminal(self, cluster: Cluster, host: str, argv: list[str]) -> LocalTerminal:
        """argv run in a terminal of the test's, with vt writing to the host's control dir;
        killed after the test."""
        terminal = start_terminal(cluster.hosts[host], argv)

        def end() -> defer.Deferred[None]:
            if terminal.code is None and terminal.transport is not None:
                kill_quietly(terminal.transport.pid, signal.SIGKILL)  # type: ignore[attr-defined]
                return terminal.ended
            return defer.succeed(None)

        self.addCleanup(end)
        return terminal

    async def listed(self, cluster: Cluster, gateway: str) -> dict[str, dict[str, Any]]:
        """Session id -> session, as a gateway lists them."""
        return {s["id"]: s for s in await cluster.client(gateway).get("/api/sessions")}

    async def wait_listed(
        self, cluster: Cluster, check: Any, what: str, timeout: float = 15.0
    ) -> dict[str, dict[str, Any]]:
        """Wait until check(listing) holds for every gateway's listing; the last listing."""
        last: dict[str, dict[str, Any]] = {}

        async def every() -> bool:
            nonlocal last
            for gateway in cluster.gateways:
                last = await self.listed(cluster, gateway)
                if not check(last):
                    return False
            return True

        await poll(reactor, every, timeout, 0.1, what)
        return last

    async def open_viewer(self, cluster: Cluster, gateway: str, sid: str) -> WSClient:
        ws: WSClient = await open_ws(reactor, cluster.gateways[gateway], f"/ws/sessions/{sid}")
        self.addCleanup(lambda: ws.transport.abortConnection() if ws.transport else None)
        return ws


class HostKilledTests(ClusterCase):
    """A host dies with ``kill -9`` and comes back."""

    async def test_host_killed_and_back(self) -> None:
        """Both gateways list the host down within 10 s and its sessions no more; requests
        for its sessions get 503 within 100 ms; a viewer of another host's counter through
        a gateway misses nothing meanwhile; the host back lists its exited sessions from
        disk and its vt session, which ran on meanwhile."""
        cluster = await self.started_cluster()
        exited, _ = await cluster.create("gw-a", ["echo", "exited-on-alpha"], host="alpha")
        running, _ = await cluster.create("gw-a", ["cat"], host="alpha")
        counter, _ = await cluster.create("gw-a", COUNTER, host="beta")
        local = self.terminal(cluster, "alpha", [*VT, *SHELL])
        local.type(b"echo vt-before-$((1+1))\r")
        await local.see(b"vt-before-2")

        def vt_session(listing: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
            return next(
                (s for s in listing.values() if s.get("attachedViaVT") and s["host"] == "alpha"), None
            )

        listing = await self.wait_listed(
            cluster,
            lambda got: (
                got.get(exited, {}).get("status") == "exited"
                and got.get(running, {}).get("status") == "running"
                and vt_session(got) is not None
            ),
            "alpha's sessions listed by both gateways",
        )
        vt_sid = vt_session(listing)["id"]  # type: ignore[index]
        viewer: SSEStream = await cluster.client("gw-a").stream(counter)
        await poll(reactor, lambda: len(numbers(viewer.output())) > 20, 10, what="the counter through gw-a")

        watching = await self.open_viewer(cluster, "gw-b", running)
        await watching.wait_for(lambda: any(t.get("type") == "replay" for t in watching.texts()), 10)

        await cluster.hosts["alpha"].crash()
        killed = reactor.seconds()
        counted_at_kill = len(numbers(viewer.output()))
        took = await cluster.wait_hosts({"alpha": "down", "beta": "up"}, timeout=10)
        figure("host down at both gateways after kill -9", took * 1000, "ms")
        # A viewer open on the dead host's session hears it once its gateway sees the host
        # down and closes its tunnels, and the relay's attempts to reopen the leg (0.25 s to
        # 4 s apart, in case the host was only slow) find nobody: within 18 s of the kill,
        # where waiting out the tunnel's 15 s silence first would take some 23 s.
        await watching.wait_for(lambda: watching.close_code is not None, 18 - (reactor.seconds() - killed))
        figure("open viewer of the dead host told after kill -9", (reactor.seconds() - killed) * 1000, "ms")
        self.assertEqual(watching.texts()[-1], {"type": "error", "message": "host alpha is unreachable"})
        self.assertEqual(watching.close_code, 1011)
        for gateway in cluster.gateways:
            listing = await self.listed(cluster, gateway)
            self.assertFalse(
                [s["id"] for s in listing.values() if s["host"] == "alpha" and s["status"] == "running"],
                f"{gateway} still lists sessions of alpha as running",
            )
            self.assertIn(counter, listing)

        unreachable = {"error": "host alpha is unreachable"}
        for gateway in cluster.gateways:
            client = cluster.client(gateway)
            for method, path, body in (
                ("GET", f"/api/sessions/{running}/text", None),
                ("POST", f"/api/sessions/{running}/input", {"text": "lost\r"}),
            ):
                started = time.monotonic()
                code, answer, _ = await client.request(method, path, body)
                elapsed = time.monotonic() - started
                figure(
                    f"{gateway} {method} {path.replace(running, 'ID')} for a dead host", elapsed * 1000, "ms"
                )
                self.assertEqual((code, answer), (503, unreachable), f"{gateway} {method} {path}")
                self.assertLess(elapsed, QUICK, f"{gateway} {method} {path}")
            started = time.monotonic()
            ws = await self.open_viewer(cluster, gateway, running)
            await ws.wait_for(lambda w=ws: w.close_code is not None, 5)  # type: ignore[misc]
            elapsed = time.monotonic() - started
            figure(f"{gateway} /ws/sessions/ID error frame for a dead host", elapsed * 1000, "ms")
            self.assertEqual(ws.texts(), [{"type": "error", "message": "host alpha is unreachable"}])
            self.assertEqual(ws.close_code, 1011)
            self.assertLess(elapsed, QUICK, f"{gateway} /ws/sessions")

        # Output of the other host went on arriving, every number once.
        await poll(
            reactor,
            lambda: len(numbers(viewer.output())) > counted_at_kill + 100,
            10,
            what="more of the counter after the kill",
        )
        assert_counted(self, viewer.output(), "the counter through gw-a while alpha died")
        self.assertIsNone(viewer.reason, "the stream of beta's session ended")
        figure("seconds of the counter viewed across the fault", reactor.seconds() - killed, "s")

        # vt's program runs on without its daemon; alpha back with the same control dir.
        local.type(b"echo vt-alone-$((2+2))\r")
        await local.see(b"vt-alone-4")
        await cluster.start_host("alpha")
        await cluster.wait_hosts({"alpha": "up"})
        listing = await self.wait_listed(
            cluster,
            lambda got: (
                got.get(exited, {}).get("status") == "exited"
                and got.get(vt_sid, {}).get("status") == "running"
                and got[vt_sid]["host"] == "alpha"
            ),
            "alpha's exited and vt sessions back at both gateways",
        )
        local.type(b"echo vt-after-$((3+3))\r")
        for gateway in cluster.gateways:
            await cluster.client(gateway).wait_text(vt_sid, "vt-after-6", timeout=10)
        assert_counted(self, viewer.output(), "the counter through gw-a after alpha came back")


def counter_until(stop_file: Path) -> list[str]:
    """A counter that counts until stop_file exists, then prints its last line and waits."""
    return [
        "bash",
        "-c",
        f"i=0; while [ ! -e {stop_file} ]; do echo $i; i=$((i+1)); sleep 0.01; done; "
        "echo counted-$i; exec cat",
    ]


def recording_of(cluster: Cluster, host: str, sid: str) -> str:
    """The output text of a session's recording in its host's control dir."""
    return recorded_output(cluster.hosts[host].control_dir / sid / "stdout")


def replays(ws: WSClient) -> int:
    return sum(1 for message in ws.texts() if message.get("type") == "replay")


def screen_text(ws: WSClient) -> str:
    """The rows of the screen a /ws/sessions viewer shows ("" before its first replay)."""
    return "\n".join(screen_of(ws).lines()).rstrip() if replays(ws) else ""


class NATSRestartTests(ClusterCase):
    """The nats-server stops and starts again (same port, same store) while output flows."""

    async def heartbeats(self, cluster: Cluster, gateway: str) -> dict[str, tuple[str, str]]:
        """Host -> (status, last heartbeat) as a gateway lists them."""
        hosts = await cluster.client(gateway).get("/api/hosts")
        return {h["host"]: (h["status"], h["lastHeartbeat"]) for h in hosts}

    async def test_nats_restarted_while_output_flows(self) -> None:
        """Hosts and gateways reconnect by themselves; the host's recording has every
        number the counter wrote; a viewer through a gateway gets a fresh replay and then
        the host's screen; /api/hosts lists every host up again."""
        cluster = await self.started_cluster()
        stop_file = cluster.base / "stop-counting"
        sid, _ = await cluster.create("gw-a", counter_until(stop_file), host="alpha", cols=80, rows=24)
        viewer = await self.open_viewer(cluster, "gw-b", sid)
        await viewer.wait_for(lambda: replays(viewer) == 1 and len(viewer.binaries()) > 10)
        beats = {gateway: await self.heartbeats(cluster, gateway) for gateway in cluster.gateways}

        recorded_before = len(numbers(recording_of(cluster, "alpha", sid)))
        await cluster.nats.stop()
        # While NATS is away the counter goes on: the viewer misses what it writes now.
        await poll(
            reactor,
            lambda: len(numbers(recording_of(cluster, "alpha", sid))) > recorded_before + 30,
            10,
            what="output while NATS is away",
        )
        await cluster.nats.start()
        came_back = reactor.seconds()

        async def beating() -> bool:
            # Up, and heartbeats newer than those before the stop: the hosts' records went
            # on, and the gateways' watches with them.
            for gateway, before in beats.items():
                now = await self.heartbeats(cluster, gateway)
                if any(now.get(host, ("", ""))[1] <= beat for host, (_, beat) in before.items()):
                    return False
                if {status for status, _ in now.values()} != {"up"}:
                    return False
            return True

        await poll(reactor, beating, 30, 0.1, "new heartbeats of every host at both gateways")
        figure(
            "new heartbeats of every host at both gateways after the nats-server came back",
            (reactor.seconds() - came_back) * 1000,
            "ms",
        )
        await viewer.wait_for(lambda: replays(viewer) >= 2, 20)
        self.assertIsNone(viewer.close_code, "the viewer's socket closed")
        self.assertNotIn("error", [m["type"] for m in viewer.texts()])

        await self.wait_listed(cluster, lambda got: sid in got, "the session listed again")
        stop_file.touch()
        host = cluster.client("alpha")
        final = await host.wait_text(sid, "counted-", timeout=10)

        async def same_screen() -> bool:
            return screen_text(viewer) == (await host.text(sid)).rstrip()

        await poll(reactor, same_screen, 10, what="the viewer's screen equal to the host's")
        self.assertIn("counted-", final)
        last = int(re.search(r"counted-(\d+)", final).group(1))  # type: ignore[union-attr]
        recorded = recording_of(cluster, "alpha", sid)
        seen = assert_counted(self, recorded, "the host's recording across the NATS restart")
        self.assertEqual(len(seen), last, "the recording's numbers up to the last one counted")
        self.assertIn(f"counted-{last}", recorded)


class GatewayKilledTests(ClusterCase):
    """A gateway dies with ``kill -9``; its clients go to the other one."""

    async def test_clients_move_to_the_other_gateway(self) -> None:
        """A client of the killed gateway that reconnects to the other one gets a fresh
        replay of each open session, its screen the host's; the sessions ran on."""
        cluster = await self.started_cluster()
        sids = {}
        for host in ("alpha", "beta"):
            sids[host], _ = await cluster.create("gw-a", ["cat"], host=host, cols=80, rows=24)
            await cluster.client("gw-a").request(
                "POST", f"/api/sessions/{sids[host]}/input", {"text": f"before-on-{host}\r"}
            )
        pids = {host: (await cluster.client(host).session(sid))["pid"] for host, sid in sids.items()}
        viewers = {host: await self.open_viewer(cluster, "gw-a", sid) for host, sid in sids.items()}
        previews = await self.previews(cluster, "gw-a", sids)
        for host, ws in viewers.items():
            await ws.wait_for(lambda ws=ws, host=host: f"before-on-{host}" in screen_text(ws))
        await previews.wait_for(lambda: all(previewed(previews, sids[h], f"before-on-{h}") for h in sids))

        await cluster.gateways["gw-a"].crash()
        for ws in [*viewers.values(), previews]:
            await within(reactor, ws.closed, 10, "the killed gateway's sockets closing")
        for host, sid in sids.items():
            direct = cluster.client(host)
            info = await direct.session(sid)
            self.assertEqual((info["status"], info["pid"]), ("running", pids[host]))
            await cluster.client("gw-b").request(
                "POST", f"/api/sessions/{sid}/input", {"text": f"after-on-{host}\r"}
            )
            await direct.wait_text(sid, f"after-on-{host}")

        for host, sid in sids.items():
            ws = await self.open_viewer(cluster, "gw-b", sid)
            direct = cluster.client(host)

            async def redrawn(ws: WSClient = ws, direct: Any = direct, sid: str = sid) -> bool:
                return (
                    replays(ws) == 1
                    and "\n".join(screen_of(ws).lines()).rstrip() == (await direct.text(sid)).rstrip()
                )

            await poll(reactor, redrawn, 10, what=f"{host}'s session redrawn through gw-b")
            screen = screen_text(ws)
            self.assertIn(f"before-on-{host}", screen)
            self.assertIn(f"after-on-{host}", screen)
        previews = await self.previews(cluster, "gw-b", sids)
        await previews.wait_for(lambda: all(previewed(previews, sids[h], f"after-on-{h}") for h in sids))
        listing = await self.listed(cluster, "gw-b")
        self.assertEqual({listing[sid]["status"] for sid in sids.values()}, {"running"})

    async def previews(self, cluster: Cluster, gateway: str, sids: dict[str, str]) -> WSClient:
        """A /buffers socket at a gateway subscribed to every session of sids, as the
        browser's session list opens it."""
        ws: WSClient = await open_ws(reactor, cluster.gateways[gateway], "/buffers")
        self.addCleanup(lambda: ws.transport.abortConnection() if ws.transport else None)
        for sid in sids.values():
            ws.send_json({"type": "subscribe", "sessionId": sid})
        return ws


def previewed(ws: WSClient, sid: str, text: str) -> bool:
    """Whether a /buffers socket got a snapshot of sid showing text."""
    for payload in ws.binaries():
        frame_sid, snapshot = decode_buffers_frame(payload)
        if frame_sid == sid and any(text in "".join(c.char for c in row) for row in decode(snapshot).rows):
            return True
    return False


#: What the flood's last line says (the program writes it, so no echo of a command shows it).
FLOOD_END = b"FLOOD-2-END"
#: Bytes the flood program writes.
FLOOD_BYTES = 30_000_000


def flooder() -> list[str]:
    """A program that, each time a line is typed, writes FLOOD_BYTES of text and FLOOD_END."""
    return [
        "bash",
        "-c",
        f"while read x; do head -c {FLOOD_BYTES} /dev/zero | tr '\\0' x | fold -w 79; "
        "echo FLOOD-$((1+1))-END; done",
    ]


class Tail(WSClient):
    """A /ws/sessions client that counts the bytes it gets and keeps only the last of them,
    with the time it saw FLOOD_END (and how many times)."""

    def onOpen(self) -> None:
        super().onOpen()
        self.received = 0
        self.tail = b""
        self.ends: list[float] = []

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary:
            super().onMessage(payload, isBinary)
            return
        self.received += len(payload)
        self.tail = (self.tail + payload)[-2 * len(FLOOD_END) :]
        if FLOOD_END in self.tail:
            self.ends.append(reactor.seconds())
            self.tail = b""
        self._check()


def vm_rss(pid: int) -> int:
    """The resident memory of a process, in bytes (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class SlowViewerTests(ClusterCase):
    """A viewer on a gateway stops reading while the session writes tens of MB."""

    timeout = 180

    async def viewer(self, cluster: Cluster, daemon: Any, sid: str) -> Tail:
        ws: Tail = await open_ws(reactor, daemon, f"/ws/sessions/{sid}", Tail)
        self.addCleanup(lambda: ws.transport.abortConnection() if ws.transport else None)
        await ws.wait_for(lambda: replays(ws) >= 1)
        return ws

    async def flood(self, cluster: Cluster, sid: str, viewers: dict[str, Tail]) -> dict[str, float]:
        """Type a line, wait until every viewer of viewers saw the flood's end; the seconds each took."""
        before = {name: len(ws.ends) for name, ws in viewers.items()}
        started = reactor.seconds()
        code, body, _ = await cluster.client("gw-b").request(
            "POST", f"/api/sessions/{sid}/input", {"text": "go\r"}
        )
        self.assertEqual(code, 200, body)
        await poll(
            reactor,
            lambda: all(len(ws.ends) > before[name] for name, ws in viewers.items()),
            90,
            0.05,
            "the flood's end at every reading viewer",
        )
        return {name: ws.ends[-1] - started for name, ws in viewers.items()}

    async def test_stalled_viewer_slows_nobody(self) -> None:
        """Viewers straight at the host and through the other gateway see the flood end
        about as fast with a stalled viewer on gw-a as without; gw-a's memory grows by a
        bounded amount while the flood passes the stalled viewer, which gets the end once
        it reads again."""
        cluster = await self.started_cluster(("alpha",), ("gw-a", "gw-b"))
        sid, _ = await cluster.create("gw-a", flooder(), host="alpha", cols=80, rows=24)
        reading = {
            "direct": await self.viewer(cluster, cluster.hosts["alpha"], sid),
            "gw-b": await self.viewer(cluster, cluster.gateways["gw-b"], sid),
        }
        free = await self.flood(cluster, sid, reading)
        for name, seconds in free.items():
            figure(
                f"flood of {FLOOD_BYTES // 1_000_000} MB seen by the {name} viewer, nobody stalled",
                seconds,
                "s",
            )

        stalled = await self.viewer(cluster, cluster.gateways["gw-a"], sid)
        # Its replay shows the first flood's end; then it stops reading.
        await poll(reactor, lambda: stalled.ends, 10, what="the replay at the viewer to stall")
        stalled.pause()
        gateway = cluster.gateways["gw-a"]
        rss_before = vm_rss(gateway.pid)  # type: ignore[arg-type]
        got_before = stalled.received
        slowed = await self.flood(cluster, sid, reading)
        rss_after = vm_rss(gateway.pid)  # type: ignore[arg-type]
        for name, seconds in slowed.items():
            figure(
                f"flood of {FLOOD_BYTES // 1_000_000} MB seen by the {name} viewer, one stalled on gw-a",
                seconds,
                "s",
            )
        growth = rss_after - rss_before
        figure("gw-a VmRSS before the flood past the stalled viewer", rss_before / 1024, "KiB")
        figure("gw-a VmRSS after the flood past the stalled viewer", rss_after / 1024, "KiB")
        figure("gw-a VmRSS growth", growth / 1024, "KiB")
        self.assertEqual(stalled.received, got_before, "the stalled viewer read meanwhile")
        self.assertEqual(len(stalled.ends), 1)
        self.assertLess(growth, 16 * 1024 * 1024, "gw-a held the flood for its stalled viewer")
        for name in reading:
            self.assertLess(slowed[name], 3 * free[name] + 3, f"the {name} viewer slowed by a stalled one")

        stalled.resume()
        await poll(
            reactor, lambda: len(stalled.ends) > 1, 30, what="the flood's end at the viewer reading again"
        )
        figure(
            "bytes the stalled viewer got of the second flood", (stalled.received - got_before) / 1024, "KiB"
        )
        self.assertIn("skipped", [m["type"] for m in stalled.texts()])


#: A plain nats-py client: connect to argv[1], then ask vt.h.alpha; prints what happened.
NATS_CLIENT = """
import asyncio, sys
import nats

async def main(url):
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
    except Exception as e:
        print("refused", type(e).__name__)
        return
    try:
        reply = await nc.request("vt.h.alpha", b"{}", timeout=3)
        print("answered", reply.data.decode())
    except Exception as e:
        print("unanswered", type(e).__name__)
    finally:
        await nc.close()

asyncio.run(main(sys.argv[1]))
"""


class TokenCredentialsTests(ClusterCase):
    """The nats-server asks for a token: the cluster's daemons have it, others cannot connect."""

    nats_options: dict[str, Any] = {"token": "the-cluster-token"}
    wrong = "not-the-token@"

    async def plain_client(self, userinfo: str) -> str:
        scheme, _, rest = self.cluster.nats.url.partition("://")
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", NATS_CLIENT, f"{scheme}://{userinfo}{rest}"], env=dict(os.environ)
        )
        self.assertEqual(code, 0, err)
        return out.decode().strip()

    async def test_only_the_clusters_credentials_reach_a_host(self) -> None:
        """Host and gateway given the credentials work; a client without them, or with wrong
        ones, is refused by the server, so it never reaches vt.h.alpha, which answers a
        client that has them."""
        self.cluster = await self.started_cluster(("alpha",), ("gw-a",))
        sid, host = await self.cluster.create("gw-a", ["bash", "-c", "echo creds-$((1+1)); exec cat"])
        self.assertEqual(host, "alpha")
        await self.cluster.client("gw-a").wait_text(sid, "creds-2", timeout=10)
        for userinfo in ("", self.wrong):
            answer = await self.plain_client(userinfo)
            self.assertTrue(answer.startswith("refused"), f"{userinfo!r}: {answer}")
        answer = await self.plain_client(self.cluster.userinfo)
        self.assertTrue(answer.startswith("answered"), answer)
        self.assertIn("error", json.loads(answer.split(" ", 1)[1]))


class PasswordCredentialsTests(TokenCredentialsTests):
    """The same with a user and password."""

    nats_options = {"user": "cluster", "password": "the-cluster-password"}
    wrong = "cluster:not-the-password@"
