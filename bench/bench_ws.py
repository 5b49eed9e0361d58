"""Benchmark the daemon's WebSockets against a raw PTY, in one run.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_ws.py                  # about three minutes
    python bench/bench_ws.py --quick          # smaller sizes, for a smoke test
    python bench/bench_ws.py --json out.json  # also write machine-readable results
    python bench/bench_ws.py --quick --profile daemon.prof  # where the daemon's time goes

The script starts two daemons of its own on 127.0.0.1 (``twistd -n vibetunnel
--measure-lag``, the second one also with ``--compress``), talks to them with
Autobahn WebSocket clients and treq on the Twisted reactor of this process, and
stops them at the end, whatever happens, killing any session process left. The
physical limits are measured in the same run, so both sides see the same machine:

physical limits
    A raw PTY read loop (``pty.openpty`` + ``subprocess.Popen``, ``os.read`` of 64 KiB
    until EOF), a bare Twisted PTY read loop (``spawnProcess(usePTY=True)`` in a
    subprocess of its own, ``python bench_ws.py --bare-twisted CMD...``), the faster
    of two tries of each; and a raw PTY keystroke echo (one byte written to
    ``stty raw -echo; cat``, read back).
echo
    The same echo program in a session: one byte as a binary frame on
    ``/ws/sessions/ID`` until its echo arrives as a binary frame; and the byte sent
    on ``/ws/input`` with the echo read on the byte stream. Medians against the raw
    PTY echo and ttyd's 181 us.
throughput
    One byte-stream viewer, connected before the program starts, of
    ``head -c 50000000 /dev/urandom | base64`` and of ``stty -opost; yes | head -c
    100000000``: bytes after the replay until the exit message, over the time from
    the first byte to the last, against the raw PTY and the bare Twisted loop. The
    base64 case again on the ``--compress`` daemon with permessage-deflate: rate,
    wire bytes, and the daemon's CPU seconds per MB (``/proc/PID/stat``).
fan-out
    A program writing 1 MB/s, watched by 1, 10, 50 and 100 byte-stream viewers: each
    viewer's rate (target >= 90% of 1 MB/s), the daemon's RSS and worst reactor
    stall; then ``stty -opost; yes`` unthrottled with as many viewers: the aggregate
    rate, and this process's own CPU (the clients may be the limit).
staleness
    ``echo`` of a unique marker typed on ``/ws/input`` into a shell: the time from
    the marker's arrival on a byte-stream viewer to the ``/buffers`` snapshot that
    shows it; and the same after a flood of base64.
leaks
    1,000 WebSocket connects and closes, mixed: half an upgrade request then abort,
    abort right after the handshake, normal close, and a viewer dropped while its
    new session spawns (then the session deleted). Before and after: the daemon's
    file descriptors, sessions, RSS, and processes of the deleted sessions.

``--profile OUT`` runs the plain daemon under twistd's cProfile (which slows it) and
saves its statistics to OUT when it stops; read them with ``python -m pstats OUT``.
``--sessions-outlive-daemon`` runs both daemons so: each session's program is held by
a holder process of its own, which reads its PTY and writes its recording (the
daemon's CPU figures then leave the holder's out).

Figures are MB/s (10**6 bytes), microseconds for echoes, milliseconds for staleness.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import pty
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateResponseAccept
from treq.client import HTTPClient
from twisted.internet import defer, endpoints, protocol, task
from twisted.web.client import Agent, HTTPConnectionPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_daemon as bd  # noqa: E402 (found through the path set just above)
from bench_daemon import (  # noqa: E402
    HOST,
    IDLE_KEEP,
    START_TIMEOUT,
    Api,
    DaemonProcess,
    daemon_argv,
    delete_all,
    fmt,
    kill_if_alive,
    log_problems,
    log_tail,
    machine,
    percentile,
    processes_alive,
    ratio,
    read_log,
    say,
    stop_daemon,
)

from vibetwist.model.snapshot import decode, decode_buffers_frame  # noqa: E402

MB = 1e6
CONNECT_TIMEOUT = 10.0
STEP_TIMEOUT = 30.0
TTYD_ECHO_US = 181.0
TTYD_OPOST_SHARE = 0.41
TARGET_BASE64_SHARE = 0.90
TARGET_OPOST_SHARE = 0.90
TARGET_FANOUT_SHARE = 0.90
#: Issue 17: echo p50 within 3x and p99 within 4x of the raw PTY; /ws/input within 20% of that.
TARGET_ECHO_P50_X = 3.0
TARGET_ECHO_P99_X = 4.0
TARGET_INPUT_OVER = 1.2
#: Issue 17: the unthrottled aggregate at 100 viewers >= 80% of that at 50.
TARGET_CEILING_KEEP = 0.8
#: Seconds between keys when the echo is paced as a person types.
PACE = 0.020
FANOUT_RATE = 1e6
#: Printed by the throughput programs just before their stream: the clock starts there.
START = "STARTING"
#: Seconds the fan-out programs wait before their first output, so every viewer is there.
SOURCE_DELAY = 2.0
ECHO_PROGRAM = ["sh", "-c", "stty raw -echo; printf R; exec cat"]
SHELL = ["sh", "-i"]
#: Writes 4 KB lines at FANOUT_RATE bytes/s, paced against the clock, after SOURCE_DELAY s.
PACED_SOURCE = [
    sys.executable,
    "-c",
    "import os, string, time\n"
    f"time.sleep({SOURCE_DELAY})\n"
    "line = ((string.ascii_letters + string.digits) * 70)[:4095].encode() + b'\\n'\n"
    "start, sent = time.monotonic(), 0\n"
    "while True:\n"
    "    sent += os.write(1, line)\n"
    f"    delay = start + sent / {FANOUT_RATE} - time.monotonic()\n"
    "    if delay > 0:\n"
    "        time.sleep(delay)\n",
]
#: Every session id this run created, for the last-resort kill of their processes.
SESSION_IDS: set[str] = set()


@dataclass
class Sizes:
    """How much each phase does; ``--quick`` shrinks everything."""

    base64_bytes: int = 50_000_000
    opost_bytes: int = 100_000_000
    echo_rounds: int = 500
    paced_rounds: int = 150
    viewers: tuple[int, ...] = (1, 10, 50, 100)
    window_s: float = 4.0
    ceiling_window_s: float = 2.0
    stale_rounds: int = 20
    flood_bytes: int = 5_000_000
    cycles: int = 1000
    concurrency: int = 10
    cases: tuple[str, ...] = ("base64", "opost")


QUICK = Sizes(
    base64_bytes=5_000_000,
    opost_bytes=20_000_000,
    echo_rounds=100,
    paced_rounds=40,
    viewers=(1, 10),
    window_s=1.5,
    ceiling_window_s=1.0,
    stale_rounds=5,
    flood_bytes=500_000,
    cycles=100,
)


def base64_command(size: int) -> list[str]:
    return ["sh", "-c", f"sleep 0.5; echo {START}; head -c {size} /dev/urandom | base64"]


def opost_command(size: int) -> list[str]:
    return ["sh", "-c", f"stty -opost; sleep 0.5; echo {START}; yes | head -c {size}"]


# ---------------------------------------------------------------------------
# Physical limits: a raw PTY and a bare Twisted PTY, in this process or a child


def spawn_on_pty(argv: list[str]) -> tuple[int, subprocess.Popen]:
    """The program on a fresh PTY; returns the master end and the child."""
    master, slave = pty.openpty()
    try:
        child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    return master, child


def reap(child: subprocess.Popen) -> None:
    """Kill what is left of the program's session (a pipeline's other members too) and wait."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        pass  # already gone
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=5)


def raw_pty_rate(argv: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Bytes/s of a tight ``os.read`` loop on the master until EOF, first byte to last.

    Blocks the reactor while it runs, which is fine: nothing of ours is in flight.
    """
    master, child = spawn_on_pty(argv)
    total, first, last = 0, None, None
    deadline = time.perf_counter() + timeout
    try:
        while time.perf_counter() < deadline:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the slave side is closed
                break
            if not data:
                break
            last = time.perf_counter()
            if first is None:
                first, total = last, -len(data)  # the rate counts from the first read
            total += len(data)
    finally:
        os.close(master)
        reap(child)
    return rate_figures(total, first, last)


def rate_figures(count: int, first: float | None, last: float | None) -> dict[str, Any]:
    """count bytes between the clock readings first and last, as MB/s (None without a span)."""
    seconds = (last - first) if first is not None and last is not None else 0.0
    return {
        "bytes": count,
        "seconds": round(seconds, 4),
        "mb_s": count / seconds / MB if seconds > 0 else None,
    }


class _CountingPTY(protocol.ProcessProtocol):
    """Counts what a PTY child writes; the bare Twisted read loop."""

    def __init__(self, done: defer.Deferred) -> None:
        self.done = done
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.last = time.perf_counter()
        if self.first is None:
            self.first = self.last
            self.count = -len(data)
        self.count += len(data)

    def processEnded(self, reason: Any) -> None:
        self.done.callback(rate_figures(self.count, self.first, self.last))


def bare_twisted_main(argv: list[str]) -> None:
    """``--bare-twisted CMD...``: print the JSON rate figures of a Twisted PTY read loop."""

    async def measure(reactor: Any) -> None:
        done: defer.Deferred = defer.Deferred()
        reactor.spawnProcess(_CountingPTY(done), argv[0], argv, env=dict(os.environ), usePTY=True)
        print(json.dumps(await done.addTimeout(120, reactor)), flush=True)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(measure(reactor)))


def bare_twisted_rate(argv: list[str]) -> dict[str, Any]:
    """The bare Twisted loop in a child process: its own reactor, its own core."""
    cmd = [sys.executable, os.path.abspath(__file__), "--bare-twisted", *argv]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=150, check=True).stdout
        return json.loads(out.splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "mb_s": None}


def raw_pty_echo(rounds: int, warmup: int = 50, pace: float = 0.0) -> dict[str, Any]:
    """Microseconds from writing one byte to a raw-mode ``cat`` to reading it back,
    ``pace`` seconds between rounds (0: back to back)."""
    master, child = spawn_on_pty(ECHO_PROGRAM)
    times: list[float] = []
    failures = 0
    try:
        if not read_until(master, b"R", 5.0):
            return {"error": "echo program never started"}
        for index in range(warmup + rounds):
            if pace:
                time.sleep(pace)
            start = time.perf_counter()
            os.write(master, b"x")
            if not read_until(master, b"x", 1.0):
                failures += 1
                continue
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1e6)
    finally:
        os.close(master)
        reap(child)
    return spread(times, failures)


def read_until(fd: int, wanted: bytes, timeout: float) -> bool:
    """Read the PTY master until wanted shows up (True) or timeout seconds pass (False)."""
    deadline = time.perf_counter() + timeout
    seen = b""
    while wanted not in seen:
        left = deadline - time.perf_counter()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        seen = seen[-16:] + os.read(fd, 4096)
    return True


def spread(values: list[float], failures: int = 0) -> dict[str, Any]:
    """Median, p90, p99, min and max of the values, and how many rounds failed."""
    out: dict[str, Any] = {"n": len(values), "failed": failures}
    if values:
        out.update(
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            min=min(values),
            max=max(values),
        )
    return out


# ---------------------------------------------------------------------------
# The daemons, and what /proc says about them


def spawn_daemon(
    reactor: Any, workdir: str, name: str, extra: list[str], profile: str | None = None
) -> DaemonProcess:
    """One daemon with a control directory and log of its own under workdir.

    With profile, twistd runs it under cProfile and saves the statistics there
    when it stops (read them with ``python -m pstats``).
    """
    control_dir = os.path.join(workdir, name)
    os.mkdir(control_dir)
    daemon = DaemonProcess(os.path.join(workdir, f"{name}.log"))
    argv = daemon_argv(control_dir) + extra
    if profile:
        at = argv.index("-n")
        argv[at:at] = [f"--profile={os.path.abspath(profile)}", "--profiler=cprofile", "--savestats"]
    reactor.spawnProcess(daemon, argv[0], argv, env=dict(os.environ), path=workdir)
    bd.DAEMONS.append(daemon)  # the watchdog and the exit hook kill it
    atexit.register(kill_if_alive, daemon)
    return daemon


def proc_stat(pid: int | None) -> list[bytes]:
    """Fields of /proc/PID/stat after the command name (state first), or []."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2 :].split()


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (its children not included)."""
    fields = proc_stat(pid)
    if len(fields) < 13:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int | None) -> Counter:
    """A process's open file descriptors, counted by kind: socket, pipe, a path's directory..."""
    kinds: Counter = Counter()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        kinds[target.split(":", 1)[0] if ":" in target else os.path.dirname(target) or target] += 1
    return kinds


def session_processes(ids: set[str]) -> dict[int, str]:
    """Live processes (zombies excluded) started for one of these session ids.

    The daemon puts ``VIBETUNNEL_SESSION_ID`` into every session's environment,
    which survives a setsid or a double fork.
    """
    marks = {f"VIBETUNNEL_SESSION_ID={i}".encode(): i for i in ids}
    found: dict[int, str] = {}
    if not marks:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        owner = next((marks[v] for v in env if v in marks), None)
        if owner is not None and proc_stat(int(entry.name))[:1] not in ([b"Z"], []):
            found[int(entry.name)] = owner
    return found


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------
# WebSocket clients


class Socket(WebSocketClientProtocol):
    """One client connection: counts binary bytes, keeps text messages, wakes waiters.

    ``watch`` is called with each binary payload and its arrival time; ``until``
    returns a Deferred that fires with the first message a predicate accepts.
    """

    def __init__(self) -> None:
        super().__init__()
        self.opened: defer.Deferred[Socket] = defer.Deferred()
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self.texts: list[dict[str, Any]] = []
        self.binary_bytes = 0
        self.replay_at: float | None = None
        self.skipped = 0
        self.watch: Any = None
        self._waiters: list[tuple[Any, defer.Deferred]] = []

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        now = time.perf_counter()
        if isBinary:
            self.binary_bytes += len(payload)
            if self.watch is not None:
                self.watch(payload, now)
        else:
            try:
                message = json.loads(payload)
            except ValueError:
                message = {"type": "unparsable"}
            self.texts.append(message)
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "replay":
                self.replay_at = now
            elif kind == "skipped":
                self.skipped += 1
        if self._waiters:
            self._wake(payload, isBinary, now)

    def _wake(self, payload: bytes, binary: bool, now: float) -> None:
        for waiter in list(self._waiters):
            test, d = waiter
            if test(payload, binary):
                self._waiters.remove(waiter)
                d.callback(now)

    def until(self, test: Any) -> defer.Deferred[float]:
        """Fires with the arrival time of the next message for which test(payload, binary)."""
        d: defer.Deferred[float] = defer.Deferred()
        self._waiters.append((test, d))
        return d

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"closed before open: {code} {reason}"))
        if not self.ended.called:
            self.ended.callback(code)

    def send_json(self, value: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(value).encode(), isBinary=False)


def text_is(kind: str) -> Any:
    """A predicate for ``Socket.until``: a text message of that type."""
    return lambda payload, binary: not binary and f'"{kind}"'.encode() in payload


def binary_has(marker: bytes) -> Any:
    """A predicate for ``Socket.until``: a binary message that contains marker."""
    return lambda payload, binary: binary and marker in payload


class Clients:
    """Connects Autobahn client sockets to one daemon, and remembers them to close them."""

    def __init__(self, reactor: Any, port: int, compress: bool = False) -> None:
        self.reactor = reactor
        self.port = port
        self.compress = compress
        self.open: set[Socket] = set()

    def factory(self, path: str) -> WebSocketClientFactory:
        factory = WebSocketClientFactory(f"ws://{HOST}:{self.port}{path}", reactor=self.reactor)
        factory.protocol = Socket
        options: dict[str, Any] = {"openHandshakeTimeout": CONNECT_TIMEOUT, "closeHandshakeTimeout": 2}
        if self.compress:
            options["perMessageCompressionOffers"] = [PerMessageDeflateOffer()]
            options["perMessageCompressionAccept"] = PerMessageDeflateResponseAccept
        factory.setProtocolOptions(**options)
        return factory

    async def connect(self, path: str, wait_open: bool = True) -> Socket:
        endpoint = endpoints.TCP4ClientEndpoint(self.reactor, HOST, self.port, timeout=CONNECT_TIMEOUT)
        sock = await endpoint.connect(self.factory(path))
        self.open.add(sock)
        sock.ended.addBoth(lambda result: self.open.discard(sock) or result)
        if wait_open:
            await sock.opened.addTimeout(CONNECT_TIMEOUT, self.reactor)
        return sock

    async def viewer(self, session: str) -> Socket:
        """A byte-stream viewer of the session, once its replay message arrived."""
        sock = await self.connect(f"/ws/sessions/{session}")
        if sock.replay_at is None:
            await sock.until(text_is("replay")).addTimeout(CONNECT_TIMEOUT, self.reactor)
        return sock

    async def close(self, socks: Any = None) -> None:
        """Close sockets (all still open by default) and wait, bounded, for them to end."""
        socks = list(self.open if socks is None else socks)
        for sock in socks:
            if sock.state == sock.STATE_OPEN:
                sock.sendClose(1000)
            elif not sock.ended.called:
                sock.dropConnection(abort=True)
        waits = [sock.ended for sock in socks if not sock.ended.called]
        if waits:
            try:
                await defer.DeferredList(waits, consumeErrors=True).addTimeout(5, self.reactor)
            except defer.TimeoutError:
                for sock in socks:
                    if not sock.ended.called and sock.transport is not None:
                        sock.transport.abortConnection()


class DaemonApi(Api):
    """The REST API of one daemon, which also knows the daemon's pid and control directory.

    Its keep-alive connections come from ``pool``, which the fd census empties first so
    that only the daemon's own fds are counted.
    """

    def __init__(
        self, reactor: Any, pool: HTTPConnectionPool, port: int, pid: int | None, control_dir: str
    ) -> None:
        super().__init__(reactor, HTTPClient(Agent(reactor, pool=pool)), port)
        self.reactor = reactor
        self.pool = pool
        self.daemon_pid = pid
        self.control_dir = control_dir

    def recorded(self, session: str) -> int | None:
        """Bytes in the session's recording so far (its file in our control directory)."""
        try:
            return os.path.getsize(os.path.join(self.control_dir, session, "stdout"))
        except OSError:
            return None


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds)


async def bounded(reactor: Any, d: Any, seconds: float = STEP_TIMEOUT) -> Any:
    return await defer.ensureDeferred(d).addTimeout(seconds, reactor)


async def new_session(api: DaemonApi, command: list[str]) -> str:
    """POST a session; its id, or RuntimeError naming what the daemon answered."""
    created: list[str] = []
    reply = await api.create(command, created)
    if not created:
        raise RuntimeError(f"create {command[:3]} failed: {reply.kind} {reply.body[:200]!r}")
    SESSION_IDS.update(created)
    return created[0]


async def remove_session(reactor: Any, api: DaemonApi, session: str) -> None:
    """DELETE twice: the first ends a running session, the second removes it once exited."""
    await api.call("DELETE", f"/api/sessions/{session}")
    for _ in range(40):
        reply = await api.call("GET", f"/api/sessions/{session}")
        if not reply.ok or (reply.json() or {}).get("status") == "exited":
            break
        await sleep(reactor, 0.05)
    await api.call("DELETE", f"/api/sessions/{session}")


async def screen_shows(reactor: Any, api: DaemonApi, session: str, text: str) -> None:
    """Poll the session's screen text until it shows text."""
    while text not in (await api.call("GET", f"/api/sessions/{session}/text")).body.decode(
        "utf-8", "replace"
    ):
        await sleep(reactor, 0.05)


async def lag_and_rss(api: DaemonApi) -> dict[str, Any]:
    """The worst reactor stall since the last reset (and reset it), and the RSS."""
    stats = await api.stats(reset=True) or {}
    rss = stats.get("rssBytes")
    return {"lag_ms": (stats.get("reactorLag") or {}).get("maxMs"), "rss_mib": rss and rss / 2**20}


# ---------------------------------------------------------------------------
# Phases: each fills ``results`` so a timeout still leaves what was measured


async def phase_echo(reactor: Any, api: DaemonApi, clients: Clients, sizes: Sizes, results: dict) -> None:
    results["echo_raw_us"] = raw_pty_echo(sizes.echo_rounds)
    session = await new_session(api, ECHO_PROGRAM)
    await bounded(reactor, screen_shows(reactor, api, session, "R"))  # raw mode is on
    viewer = await clients.viewer(session)
    typist = await clients.connect(f"/ws/input?sessionId={session}")
    await sleep(reactor, 0.2)

    async def rounds(send: Any, count: int = sizes.echo_rounds, pace: float = 0.0) -> dict[str, Any]:
        times: list[float] = []
        failures = 0
        for index in range(50 + count):
            if pace:
                await sleep(reactor, pace)
            arrived = viewer.until(binary_has(b"x"))
            start = time.perf_counter()
            send()
            try:
                at = await bounded(reactor, arrived, 2.0)
            except defer.TimeoutError:
                failures += 1
                continue
            if index >= 50:
                times.append((at - start) * 1e6)
        return spread(times, failures)

    await api.stats(reset=True)
    results["echo_stream_us"] = await rounds(lambda: viewer.sendMessage(b"x", isBinary=True))
    results["echo_input_us"] = await rounds(lambda: typist.sendMessage(b"x", isBinary=False))
    # As a person types: one key every PACE seconds, the raw PTY measured the same way.
    paced = sizes.paced_rounds
    results["echo_raw_paced_us"] = raw_pty_echo(paced, warmup=10, pace=PACE)
    results["echo_stream_paced_us"] = await rounds(
        lambda: viewer.sendMessage(b"x", isBinary=True), paced, PACE
    )
    results["echo_input_paced_us"] = await rounds(
        lambda: typist.sendMessage(b"x", isBinary=False), paced, PACE
    )
    results["echo_daemon"] = await lag_and_rss(api)
    await clients.close([viewer, typist])
    await remove_session(reactor, api, session)
    say(f"echo: stream p50 {fmt(results['echo_stream_us'].get('p50'))} us")


async def stream_rate(reactor: Any, api: DaemonApi, clients: Clients, command: list[str]) -> dict[str, Any]:
    """One viewer of a session from before its first output to its exit message.

    The viewer joins while the program sleeps. The clock starts with the message
    that holds START (printed just before the stream, so the replay is left out)
    and the rate counts the bytes of the messages after it, as the raw loops count
    the reads after their first. The recording's last write (its mtime) tells when
    the daemon had read everything: how fast it recorded, and how far behind the
    viewer's exit message came.
    """
    session = await new_session(api, command)
    viewer = await clients.viewer(session)
    replay = next((t for t in viewer.texts if t.get("type") == "replay"), {})
    live: dict[str, Any] = {"bytes": 0, "first": None, "last": None}

    def watch(payload: bytes, now: float) -> None:
        if live["first"] is not None:
            live["bytes"] += len(payload)
            live["last"] = now
        elif START.encode() in payload:
            live["first"], live["first_wall"] = now, time.time()

    viewer.watch = watch
    viewer.until(text_is("exit")).addCallback(lambda at: live.update(exit_wall=time.time()))
    cpu_before, client_before = cpu_seconds(api.daemon_pid), client_cpu()
    await api.stats(reset=True)
    await bounded(reactor, viewer.ended, 120)
    out = rate_figures(live["bytes"], live["first"], live["last"])
    try:
        recorded_at = os.stat(os.path.join(api.control_dir, session, "stdout")).st_mtime
    except OSError:
        recorded_at = None
    if recorded_at is not None and "first_wall" in live and recorded_at > live["first_wall"]:
        out["recorded_mb_s"] = live["bytes"] / (recorded_at - live["first_wall"]) / MB
        if "exit_wall" in live:
            out["behind_at_end_s"] = live["exit_wall"] - recorded_at
    cpu_after = cpu_seconds(api.daemon_pid)
    if cpu_before is not None and cpu_after is not None:
        out["daemon_cpu_s"] = round(cpu_after - cpu_before, 3)
    out["client_cpu_s"] = round(client_cpu() - client_before, 3)
    out["exit"] = next((t.get("code") for t in viewer.texts if t.get("type") == "exit"), None)
    out["skipped"] = viewer.skipped
    out["replay_offset"] = replay.get("offset")
    stats = viewer.trafficStats
    out["wire_bytes"] = stats.incomingOctetsWireLevel
    out["app_bytes"] = stats.incomingOctetsAppLevel
    out["messages"] = stats.incomingWebSocketMessages
    out["deflate"] = viewer.websocket_extensions_in_use != []
    out.update(await lag_and_rss(api))
    await remove_session(reactor, api, session)
    return out


async def phase_throughput(
    reactor: Any, api: DaemonApi, clients: Clients, deflate: Any, sizes: Sizes, results: dict
) -> None:
    """Raw PTY, bare Twisted, and the daemon, one case after the other on the same machine."""
    cases = [
        ("base64", base64_command(sizes.base64_bytes)),
        ("opost", opost_command(sizes.opost_bytes)),
    ]
    for name, command in cases:
        if name not in sizes.cases:
            continue
        # A limit is the best the machine allows: the faster of two tries of each loop.
        raw = [raw_pty_rate(command), raw_pty_rate(command)]
        bare = [bare_twisted_rate(command), bare_twisted_rate(command)]
        results[f"{name}_raw"] = max(raw, key=lambda r: r.get("mb_s") or 0)
        results[f"{name}_bare"] = max(bare, key=lambda r: r.get("mb_s") or 0)
        results[f"{name}_ws"] = await stream_rate(reactor, api, clients, command)
        say(
            f"throughput {name}: raw {fmt(results[f'{name}_raw']['mb_s'])},"
            f" bare Twisted {fmt(results[f'{name}_bare']['mb_s'])},"
            f" vibetwist {fmt(results[f'{name}_ws']['mb_s'])} MB/s"
        )
    if deflate is not None:
        deflate_api, deflate_clients = deflate
        command = base64_command(sizes.base64_bytes)
        results["base64_deflate"] = await stream_rate(reactor, deflate_api, deflate_clients, command)
        say(f"throughput base64 with deflate: {fmt(results['base64_deflate']['mb_s'])} MB/s")


async def measure_window(
    reactor: Any, api: DaemonApi, viewers: list[Socket], window: float, others: list[Socket] | None = None
) -> dict[str, Any]:
    """Every viewer's received rate over a window, and what the daemon and this process spent.

    The rates of others, viewers already there, are summed up apart (``others_*``).
    """
    await api.stats(reset=True)
    others = others or []
    before = [v.binary_bytes for v in viewers]
    others_before = [v.binary_bytes for v in others]
    skipped = sum(v.skipped for v in viewers)
    cpu, client, start = cpu_seconds(api.daemon_pid), client_cpu(), time.perf_counter()
    await sleep(reactor, window)
    elapsed = time.perf_counter() - start
    rates = [(v.binary_bytes - b) / elapsed / MB for v, b in zip(viewers, before)]
    cpu_after = cpu_seconds(api.daemon_pid)
    step = {
        "viewers": len(viewers),
        "min_mb_s": min(rates),
        "p50_mb_s": percentile(rates, 50),
        "sum_mb_s": sum(rates),
        "skips": sum(v.skipped for v in viewers) - skipped,
        "closed": sum(1 for v in viewers if v.ended.called),
        "client_cpu": (client_cpu() - client) / elapsed,
        "daemon_cpu": (cpu_after - cpu) / elapsed if cpu is not None and cpu_after is not None else None,
    }
    if others:
        others_rates = [(v.binary_bytes - b) / elapsed / MB for v, b in zip(others, others_before)]
        step.update(others_min_mb_s=min(others_rates), others_p50_mb_s=percentile(others_rates, 50))
    step.update(await lag_and_rss(api))
    return step


async def add_viewers(reactor: Any, clients: Clients, session: str, count: int) -> list[Socket]:
    """count byte-stream viewers of the session, connected ten at a time."""
    viewers: list[Socket] = []
    while len(viewers) < count:
        batch = [defer.ensureDeferred(clients.viewer(session)) for _ in range(min(10, count - len(viewers)))]
        viewers.extend(await bounded(reactor, defer.gatherResults(batch)))
    return viewers


async def fanout_step(
    reactor: Any, api: DaemonApi, clients: Clients, command: list[str], count: int, window: float
) -> tuple[dict[str, Any], str, list[Socket]]:
    """A fresh session whose program waits SOURCE_DELAY s, count viewers joined meanwhile,
    then their rates once output flows. Returns the figures, the session and the viewers."""
    created = time.perf_counter()
    session = await new_session(api, command)
    viewers = await add_viewers(reactor, clients, session, count)
    await sleep(reactor, max(0.0, created + SOURCE_DELAY + 0.5 - time.perf_counter()))
    step = await measure_window(reactor, api, viewers, window)
    offsets = [next((t.get("offset") for t in v.texts if t.get("type") == "replay"), None) for v in viewers]
    known = [offset for offset in offsets if offset is not None]
    step["late_joiners"] = sum(1 for offset in known if offset > min(known))
    say(
        f"  {count} viewers: min {step['min_mb_s']:.2f}, median {step['p50_mb_s']:.2f},"
        f" sum {step['sum_mb_s']:.1f} MB/s, daemon CPU {pct(step['daemon_cpu'])},"
        f" client CPU {pct(step['client_cpu'])}"
    )
    return step, session, viewers


async def phase_fanout(reactor: Any, api: DaemonApi, clients: Clients, sizes: Sizes, results: dict) -> None:
    """Each viewer count on a fresh session, every viewer there before the output starts;
    then ten more viewers join the busiest one while it runs."""
    results["fanout_idle_rss_mib"] = (await lag_and_rss(api))["rss_mib"]
    for key, command, window in (
        ("fanout", PACED_SOURCE, sizes.window_s),
        ("ceiling", ["sh", "-c", f"stty -opost; sleep {SOURCE_DELAY}; exec yes"], sizes.ceiling_window_s),
    ):
        say("fan-out of 1 MB/s:" if key == "fanout" else "aggregate ceiling, unthrottled:")
        results[key] = []
        for count in sizes.viewers:
            step, session, viewers = await fanout_step(reactor, api, clients, command, count, window)
            results[key].append(step)
            if key == "fanout" and count == sizes.viewers[-1]:
                recorded = api.recorded(session)
                joiners = await add_viewers(reactor, clients, session, 10)
                results["fanout_join"] = await measure_window(reactor, api, joiners, window, viewers)
                offsets = [t["offset"] for v in joiners for t in v.texts if t.get("type") == "replay"]
                if recorded is not None and offsets:
                    # How far the screen their replay showed was behind the recording.
                    results["fanout_join"]["replay_behind_mb"] = (recorded - min(offsets)) / MB
                say(f"  10 more joining: min {results['fanout_join']['min_mb_s']:.2f} MB/s")
            await clients.close()
            await remove_session(reactor, api, session)


class BufferWatch:
    """The /buffers subscriber of a staleness round: notes when a snapshot shows the marker."""

    def __init__(self, sock: Socket) -> None:
        self.marker = ""
        self.shown: defer.Deferred[float] | None = None
        self.snapshots = 0
        sock.watch = self.snapshot

    def expect(self, marker: str) -> defer.Deferred[float]:
        self.marker = marker
        self.shown = defer.Deferred()
        return self.shown

    def snapshot(self, payload: bytes, now: float) -> None:
        self.snapshots += 1
        if self.shown is None or self.shown.called:
            return
        _, data = decode_buffers_frame(payload)
        text = "\n".join("".join(cell.char for cell in row) for row in decode(data).rows)
        if self.marker in text:
            self.shown.callback(now)


async def stale_round(
    reactor: Any,
    viewer: Socket,
    typist: Socket,
    buffers: BufferWatch,
    marker: str,
    prefix: str = "",
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Type ``echo`` of a marker (split by quotes, so only the output shows it whole)."""
    streamed = viewer.until(binary_has(marker.encode()))
    shown = buffers.expect(marker)
    last_before: list[float] = []
    viewer.watch = lambda payload, now: last_before.append(now) if not shown.called else None
    half = len(marker) // 2
    typist.sendMessage(f'{prefix}echo {marker[:half]}""{marker[half:]}'.encode(), isBinary=False)
    typist.sendMessage(b"\x00enter\x00", isBinary=False)
    out: dict[str, Any] = {}
    try:
        stream_at = await bounded(reactor, streamed, timeout)
        snap_at = await bounded(reactor, shown, timeout)
    except defer.TimeoutError:
        out["timeout"] = True
        return out
    finally:
        viewer.watch = None
    out["ms"] = (snap_at - stream_at) * 1000
    last = [t for t in last_before if t <= snap_at]
    out["from_last_output_ms"] = (snap_at - last[-1]) * 1000 if last else None
    return out


async def phase_staleness(reactor: Any, api: DaemonApi, clients: Clients, sizes: Sizes, results: dict) -> str:
    """Returns the shell session, which the leak phase reuses as a screen with content."""
    session = await new_session(api, SHELL)
    viewer = await clients.viewer(session)
    typist = await clients.connect(f"/ws/input?sessionId={session}")
    subscriber = await clients.connect("/buffers")
    buffers = BufferWatch(subscriber)
    subscriber.send_json({"type": "subscribe", "sessionId": session})
    await bounded(reactor, subscriber.until(text_is("subscribed")))
    await sleep(reactor, 0.5)
    await api.stats(reset=True)
    rounds = [
        await stale_round(reactor, viewer, typist, buffers, f"MARK{index:04d}X")
        for index in range(sizes.stale_rounds)
    ]
    ok = [r["ms"] for r in rounds if "ms" in r]
    results["stale_ms"] = spread(ok, len(rounds) - len(ok))
    results["stale_last_output_ms"] = spread(
        [r["from_last_output_ms"] for r in rounds if r.get("from_last_output_ms") is not None]
    )
    flood = f"head -c {sizes.flood_bytes} /dev/urandom | base64; "
    results["stale_flood"] = await stale_round(
        reactor, viewer, typist, buffers, "MARKFLOODX", prefix=flood, timeout=90.0
    )
    results["stale_daemon"] = await lag_and_rss(api)
    results["stale_snapshots"] = buffers.snapshots
    await clients.close([viewer, typist, subscriber])
    say(f"staleness: p50 {fmt(results['stale_ms'].get('p50'))} ms, flood {results['stale_flood']}")
    return session


class HalfUpgrade(protocol.Protocol):
    """Sends half of a WebSocket upgrade request, then aborts the connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ended: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        )
        self.transport.write(request.encode())
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.ended.callback(None)


async def one_cycle(
    reactor: Any, api: DaemonApi, clients: Clients, index: int, session: str, deleted: list[str]
) -> str:
    """One connect/close of the mix; returns its kind and outcome, counted by the caller."""
    path = f"/ws/sessions/{session}" if index % 2 else "/buffers"
    kind = (
        "half upgrade",
        "half upgrade",
        "half upgrade",
        "abort at open",
        "abort at open",
        "normal close",
        "normal close",
        "normal close",
        "normal close",
        "drop while spawning",
    )[index % 10]
    if kind == "half upgrade":
        endpoint = endpoints.TCP4ClientEndpoint(reactor, HOST, clients.port, timeout=CONNECT_TIMEOUT)
        half = await endpoint.connect(protocol.Factory.forProtocol(lambda: HalfUpgrade(path)))
        await half.ended
        return kind
    if kind == "drop while spawning":
        fresh = await new_session(api, ["cat"])
        sock = await clients.connect(f"/ws/sessions/{fresh}", wait_open=False)
        sock.opened.addErrback(lambda failure: None)  # it is meant never to open
        sock.transport.abortConnection()
        await api.call("DELETE", f"/api/sessions/{fresh}")
        deleted.append(fresh)
        return kind
    sock = await clients.connect(path)
    if kind == "abort at open":
        sock.dropConnection(abort=True)
        return kind
    if path == "/buffers":
        sock.send_json({"type": "subscribe", "sessionId": session})
        await bounded(reactor, sock.until(text_is("subscribed")), CONNECT_TIMEOUT)
    elif sock.replay_at is None:
        await bounded(reactor, sock.until(text_is("replay")), CONNECT_TIMEOUT)
    sock.sendClose(1000)
    code = await bounded(reactor, sock.ended, CONNECT_TIMEOUT)
    return kind if code == 1000 else f"{kind}: close code {code}"


async def daemon_census(api: DaemonApi, deleted: list[str]) -> dict[str, Any]:
    """What the daemon holds: fds (and of which kinds), sessions, RSS; and what deleted sessions left."""
    stats = await api.stats() or {}
    rss = stats.get("rssBytes")
    await api.pool.closeCachedConnections()  # our keep-alive connections are not the daemon's
    await sleep(api.reactor, 0.2)
    fds: Counter = Counter()
    for kind, count in open_fds(api.daemon_pid).items():
        fds["session files" if kind.startswith(api.control_dir) else kind] += count
    return {
        "fds": sum(fds.values()),
        "fd_kinds": dict(fds),
        "sessions": stats.get("sessions"),
        "statuses": stats.get("statuses"),
        "rss_mib": rss and rss / 2**20,
        "processes_of_deleted": len(session_processes(set(deleted))),
    }


async def phase_leaks(
    reactor: Any, api: DaemonApi, clients: Clients, session: str, sizes: Sizes, results: dict
) -> None:
    deleted: list[str] = []
    results["leaks_before"] = await daemon_census(api, deleted)
    outcomes: Counter = Counter()
    indexes = iter(range(sizes.cycles))

    async def worker() -> None:
        for index in indexes:
            try:
                outcomes[await one_cycle(reactor, api, clients, index, session, deleted)] += 1
            except Exception as exc:  # noqa: BLE001 (counted: a failed cycle is a figure)
                outcomes[f"failed: {type(exc).__name__}"] += 1

    await api.stats(reset=True)
    start = time.perf_counter()
    await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(sizes.concurrency)])
    results["leaks_seconds"] = time.perf_counter() - start
    results["leaks_outcomes"] = dict(outcomes)
    await sleep(reactor, 3.0)  # close handshakes and the deleted sessions' ends settle
    results["leaks_daemon"] = await lag_and_rss(api)
    results["leaks_after"] = await daemon_census(api, deleted)
    results["leaks_deleted"] = len(deleted)
    cleanup = await api.call("POST", "/api/cleanup-exited")
    results["leaks_cleanup"] = cleanup.kind
    after = await daemon_census(api, deleted)
    results["leaks_after_cleanup"] = {k: after[k] for k in ("fds", "sessions", "statuses")}
    say(f"leaks: {dict(outcomes)}; before {results['leaks_before']}; after {results['leaks_after']}")


#: The phases in their order; ``--phases`` picks some (leaks needs staleness's shell).
PHASES = ("echo", "throughput", "fan-out", "staleness", "leaks")


async def run_phases(
    reactor: Any, main: tuple, deflate: Any, sizes: Sizes, results: dict, phases: tuple[str, ...] = PHASES
) -> None:
    api, clients = main
    if "echo" in phases:
        results["phase"] = "echo"
        await phase_echo(reactor, api, clients, sizes, results)
    if "throughput" in phases:
        results["phase"] = "throughput"
        await phase_throughput(reactor, api, clients, deflate, sizes, results)
    if "fan-out" in phases:
        results["phase"] = "fan-out"
        await phase_fanout(reactor, api, clients, sizes, results)
    if "staleness" in phases:
        results["phase"] = "staleness"
        shell = await phase_staleness(reactor, api, clients, sizes, results)
        if "leaks" in phases:
            results["phase"] = "leaks"
            await phase_leaks(reactor, api, clients, shell, sizes, results)
    results["phase"] = "done"


# ---------------------------------------------------------------------------
# Orchestration


async def start(
    reactor: Any,
    workdir: str,
    name: str,
    extra: list[str],
    pool: HTTPConnectionPool,
    profile: str | None = None,
) -> Any:
    daemon = spawn_daemon(reactor, workdir, name, extra, profile)
    port = await daemon.port.addTimeout(START_TIMEOUT, reactor)
    api = DaemonApi(reactor, pool, port, daemon.pid, os.path.join(workdir, name))
    say(f"daemon {name} pid {daemon.pid} listening on {HOST}:{port}")
    return daemon, api, Clients(reactor, port, compress="--compress" in extra)


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Start both daemons, run the phases under the overall timeout, clean up."""
    sizes = QUICK if args.quick else Sizes()
    sizes = dataclasses.replace(sizes, cases=tuple(args.cases.split(",")))
    results: dict[str, Any] = {"args": vars(args), "sizes": vars(sizes), "machine": machine()}
    results["machine"]["kernel"] = os.uname().release
    workdir = tempfile.mkdtemp(prefix="vibetwist-bench-ws-")
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = sizes.concurrency + 4
    pool.cachedConnectionTimeout = IDLE_KEEP  # before the daemon closes them
    daemons: list[DaemonProcess] = []
    apis: list[Api] = []
    try:
        common = ["--no-metrics"] if args.no_metrics else []
        if args.sessions_outlive_daemon:
            common.append("--sessions-outlive-daemon")
        daemon, api, clients = await start(reactor, workdir, "plain", common, pool, args.profile)
        daemons.append(daemon)
        apis.append(api)
        deflate = None
        if not args.no_deflate:
            daemon2, api2, clients2 = await start(reactor, workdir, "deflate", ["--compress", *common], pool)
            daemons.append(daemon2)
            apis.append(api2)
            deflate = (api2, clients2)
        phases = run_phases(reactor, (api, clients), deflate, sizes, results, tuple(args.phases.split(",")))
        await run_bounded(reactor, apis, phases, args.timeout, results)
        for each in (clients, deflate[1] if deflate else None):
            if each is not None:
                await each.close()
        results["cleanup"] = await delete_all(reactor, api, argparse.Namespace(concurrency=10))
    except Exception as exc:  # noqa: BLE001 (reported with the partial results)
        results.setdefault("error", f"{type(exc).__name__}: {exc}")
    finally:
        for daemon in daemons:
            results.setdefault("daemon_stop", []).append(await stop_daemon(reactor, daemon))
        pids = list(session_processes(SESSION_IDS))
        results["leaked_pids"] = processes_alive(pids)
        for pid in results["leaked_pids"]:
            os.kill(pid, signal.SIGKILL)  # processes of our own sessions, by id
        problems = []
        for daemon in daemons:
            log = read_log(daemon.log.name)
            problems += log_problems(log)
            if "error" in results:
                results.setdefault("daemon_log_tail", []).extend(log_tail(log))
        results["daemon_log_problems"] = problems
        await pool.closeCachedConnections()
        results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        if args.keep_dir:
            results["workdir"] = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


async def run_bounded(
    reactor: Any, apis: list[DaemonApi], phases: Any, seconds: float, results: dict
) -> None:
    """Run the phases; after ``seconds`` cancel them, noting the phase they were in.

    The APIs are marked stopped first, so a cancelled request unwinds its phase
    instead of being counted as a failure; the clean-up requests count again.
    """
    running = defer.Deferred.fromCoroutine(phases)

    def expire() -> None:
        results["error"] = f"overall timeout in phase {results['phase']}"
        for api in apis:
            api.stopped = True
        running.cancel()

    timer = reactor.callLater(seconds, expire)
    try:
        await running
    except Exception as exc:  # noqa: BLE001 (reported; cleanup still runs)
        results.setdefault("error", f"{type(exc).__name__} in phase {results['phase']}: {exc}")
    if timer.active():
        timer.cancel()
    for api in apis:
        api.stopped = False
    if "error" in results:
        say(f"stopped early: {results['error']}")


# ---------------------------------------------------------------------------
# Report


def share(a: dict | None, b: dict | None) -> float | None:
    return ratio((a or {}).get("mb_s"), (b or {}).get("mb_s"))


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    good = value >= target if higher_is_better else value <= target
    return "PASS" if good else "MISS"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def echo_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    raw = r.get("echo_raw_us") or {}
    rows = []
    for key, label in (
        ("echo_raw_us", "raw PTY"),
        ("echo_stream_us", "/ws/sessions binary"),
        ("echo_input_us", "/ws/input, read on stream"),
        ("echo_raw_paced_us", f"raw PTY, paced {PACE * 1000:g} ms"),
        ("echo_stream_paced_us", f"/ws/sessions, paced {PACE * 1000:g} ms"),
        ("echo_input_paced_us", f"/ws/input, paced {PACE * 1000:g} ms"),
    ):
        s = r.get(key) or {}
        if key.endswith("_paced_us"):
            raw = r.get("echo_raw_paced_us") or {}
        p50 = s.get("p50")
        note = f"p90 {fmt(s.get('p90'))} p99 {fmt(s.get('p99'))} max {fmt(s.get('max'))}"
        if not key.startswith("echo_raw"):
            note += (
                f"; x{fmt(ratio(p50, raw.get('p50')))} raw PTY; ttyd {TTYD_ECHO_US:g} us:"
                f" {verdict(p50, TTYD_ECHO_US, higher_is_better=False)}"
            )
        if s.get("failed"):
            note += f"; {s['failed']} lost"
        rows.append((f"echo p50, {label}", fmt(p50, " us"), note))
    return rows


def throughput_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for name, label, target, versus in (
        ("base64", "base64", TARGET_BASE64_SHARE, "raw"),
        ("opost", "-opost yes", TARGET_OPOST_SHARE, "bare"),
    ):
        raw, bare, ws = r.get(f"{name}_raw"), r.get(f"{name}_bare"), r.get(f"{name}_ws") or {}
        rows.append((f"{label}: raw PTY", fmt((raw or {}).get("mb_s"), " MB/s"), "physical limit"))
        rows.append(
            (
                f"{label}: bare Twisted PTY",
                fmt((bare or {}).get("mb_s"), " MB/s"),
                f"{pct(share(bare, raw))} of raw",
            )
        )
        chosen = raw if versus == "raw" else bare
        got = share(ws, chosen)
        note = (
            f"{pct(share(ws, raw))} of raw, {pct(share(ws, bare))} of bare Twisted;"
            f" target >= {target:.0%} of {versus}: {verdict(got, target)}"
        )
        if name == "opost":
            note += f"; ttyd {TTYD_OPOST_SHARE:.0%} of raw"
        if ws.get("skipped") or ws.get("exit") not in (0, None):
            note += f"; skipped {ws.get('skipped')}, exit {ws.get('exit')}"
        rows.append((f"{label}: vibetwist, 1 viewer", fmt(ws.get("mb_s"), " MB/s"), note))
        rows.append(
            (
                f"{label}: vibetwist, PTY read",
                fmt(ws.get("recorded_mb_s"), " MB/s"),
                f"{pct(share({'mb_s': ws.get('recorded_mb_s')}, bare))} of bare Twisted (output over the"
                f" time to the recording's last write); the viewer's exit came"
                f" {fmt(ws.get('behind_at_end_s'), ' s')} after that write",
            )
        )
        rows.append(
            (
                f"{label}: daemon CPU",
                fmt(cpu_per_mb(ws), " ms/MB"),
                f"client CPU {fmt(ws.get('client_cpu_s'), ' s')}, lag {fmt(ws.get('lag_ms'), ' ms')},"
                f" {fmt(message_size(ws), ' KB')} a message",
            )
        )
    deflate = r.get("base64_deflate")
    if deflate:
        plain = r.get("base64_ws") or {}
        wire = ratio(deflate.get("app_bytes"), deflate.get("wire_bytes"))
        extra = None
        if cpu_per_mb(deflate) is not None and cpu_per_mb(plain) is not None:
            extra = cpu_per_mb(deflate) - cpu_per_mb(plain)
        rows.append(
            (
                "base64: deflate, 1 viewer",
                fmt(deflate.get("mb_s"), " MB/s"),
                f"{pct(share(deflate, plain))} of uncompressed; compressed {fmt(wire)}x;"
                f" {fmt(message_size(deflate), ' KB')} a message; deflate={deflate.get('deflate')};"
                f" PTY read {fmt(deflate.get('recorded_mb_s'), ' MB/s')},"
                f" exit {fmt(deflate.get('behind_at_end_s'), ' s')} after the last write",
            )
        )
        rows.append(
            (
                "base64: deflate, daemon CPU",
                fmt(cpu_per_mb(deflate), " ms/MB"),
                f"{fmt(extra, ' ms')} more per MB per viewer than uncompressed",
            )
        )
    return rows


def message_size(s: dict[str, Any]) -> float | None:
    """Mean KB (10**3 bytes, after inflating) of the messages a viewer got."""
    return s["app_bytes"] / s["messages"] / 1000 if s.get("messages") else None


def cpu_per_mb(s: dict[str, Any]) -> float | None:
    cpu, count = s.get("daemon_cpu_s"), s.get("bytes")
    return cpu * 1000 / (count / MB) if cpu is not None and count else None


def step_note(step: dict[str, Any]) -> str:
    """What a fan-out window cost, and what went wrong in it."""
    note = (
        f"lag {fmt(step['lag_ms'], ' ms')}, RSS {fmt(step['rss_mib'], ' MiB')},"
        f" daemon CPU {pct(step['daemon_cpu'])}, client CPU {pct(step['client_cpu'])}"
    )
    if step["client_cpu"] >= 0.9:
        note += "; CLIENT-BOUND (this process used a whole core)"
    for key in ("skips", "closed", "late_joiners"):
        if step.get(key):
            note += f"; {step[key]} {key.replace('_', ' ')}"
    return note


def fanout_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    target = TARGET_FANOUT_SHARE * FANOUT_RATE / MB
    steps = r.get("fanout") or []
    for step in steps:
        note = f"median {step['p50_mb_s']:.2f}; target >= {target:.2f}: {verdict(step['min_mb_s'], target)}; "
        rows.append(
            (
                f"1 MB/s to {step['viewers']} viewers, min",
                f"{step['min_mb_s']:.2f} MB/s",
                note + step_note(step),
            )
        )
    join = r.get("fanout_join")
    if join:
        note = f"median {join['p50_mb_s']:.2f}, over their first {r['sizes']['window_s']:g} s; "
        note += f"replay {fmt(join.get('replay_behind_mb'), ' MB')} behind the recording; meanwhile"
        note += f" the {r['fanout'][-1]['viewers']} there got min {fmt(join.get('others_min_mb_s'))}"
        note += f" median {fmt(join.get('others_p50_mb_s'))} MB/s; "
        rows.append(
            ("10 joining a 1 MB/s session, min", f"{join['min_mb_s']:.2f} MB/s", note + step_note(join))
        )
    if steps:
        rows.append(
            (
                f"daemon RSS, {steps[-1]['viewers']} viewers",
                fmt(steps[-1]["rss_mib"], " MiB"),
                f"{fmt(steps[0]['rss_mib'], ' MiB')} with {steps[0]['viewers']};"
                f" {fmt(r.get('fanout_idle_rss_mib'), ' MiB')} idle before the fan-out",
            )
        )
    for step in r.get("ceiling") or []:
        rows.append(
            (
                f"unthrottled to {step['viewers']} viewers, sum",
                f"{step['sum_mb_s']:.1f} MB/s",
                f"per viewer min {step['min_mb_s']:.2f} median {step['p50_mb_s']:.2f}; " + step_note(step),
            )
        )
    return rows


def stale_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    s = r.get("stale_ms") or {}
    last = r.get("stale_last_output_ms") or {}
    flood = r.get("stale_flood") or {}
    size = r["sizes"]["flood_bytes"] / MB
    return [
        (
            "snapshot staleness p50",
            fmt(s.get("p50"), " ms"),
            f"max {fmt(s.get('max'), ' ms')}, {s.get('n')} rounds, {s.get('failed')} timed out; from the"
            f" last stream frame p50 {fmt(last.get('p50'), ' ms')}; quiet period 50 ms",
        ),
        (
            f"snapshot staleness after {size:g} MB",
            fmt(flood.get("ms"), " ms"),
            "timed out"
            if flood.get("timeout")
            else f"from the last stream frame {fmt(flood.get('from_last_output_ms'), ' ms')}",
        ),
    ]


def leak_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    before, after = r.get("leaks_before"), r.get("leaks_after")
    if not before or not after:
        return []
    clean = r.get("leaks_after_cleanup") or {}
    return [
        (
            f"{sum(r.get('leaks_outcomes', {}).values())} connect/close cycles",
            fmt(r.get("leaks_seconds"), " s"),
            f"{r.get('leaks_outcomes')}",
        ),
        (
            "daemon fds before / after",
            f"{before['fds']} / {after['fds']}",
            f"{clean.get('fds')} after cleanup-exited; by kind, before {before['fd_kinds']},"
            f" after {after['fd_kinds']}",
        ),
        (
            "sessions before / after",
            f"{before['sessions']} / {after['sessions']}",
            f"{after['statuses']}; {r.get('leaks_deleted')} created and deleted;"
            f" {clean.get('sessions')} after cleanup",
        ),
        ("processes of deleted sessions", str(after["processes_of_deleted"]), "target 0"),
        (
            "daemon RSS before / after",
            f"{fmt(before['rss_mib'])} / {fmt(after['rss_mib'])} MiB",
            f"lag during the cycles {fmt((r.get('leaks_daemon') or {}).get('lag_ms'), ' ms')}",
        ),
    ]


def echo_targets(r: dict[str, Any], suffix: str, shape: str) -> list[tuple[str, str, str, str]]:
    """Issue 17's echo targets for one shape (back to back, or paced)."""
    raw = r.get(f"echo_raw{suffix}") or {}
    stream = r.get(f"echo_stream{suffix}") or {}
    typed = r.get(f"echo_input{suffix}") or {}
    rows = []
    for q, times in (("p50", TARGET_ECHO_P50_X), ("p99", TARGET_ECHO_P99_X)):
        got = ratio(stream.get(q), raw.get(q))
        rows.append(
            (
                f"echo {q} /ws/sessions, {shape}",
                f"x{fmt(got)}",
                f"<= x{times:g} of raw PTY ({fmt(stream.get(q))} / {fmt(raw.get(q))} us)",
                verdict(got, times, higher_is_better=False),
            )
        )
        over = ratio(typed.get(q), stream.get(q))
        rows.append(
            (
                f"echo {q} /ws/input, {shape}",
                f"x{fmt(over)}",
                f"<= x{TARGET_INPUT_OVER:g} of /ws/sessions ({fmt(typed.get(q))} / {fmt(stream.get(q))} us)",
                verdict(over, TARGET_INPUT_OVER, higher_is_better=False),
            )
        )
    return rows


def target_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Issue 17's targets that this bench measures: figure, value, target with its limit, verdict."""
    rows = []
    for name, label, target, versus, limit in (
        ("base64", "base64, 1 viewer", TARGET_BASE64_SHARE, "raw", "raw PTY"),
        ("opost", "-opost yes, 1 viewer", TARGET_OPOST_SHARE, "bare", "bare Twisted"),
    ):
        ws = r.get(f"{name}_ws")
        if ws is None:
            continue
        chosen = r.get(f"{name}_{versus}") or {}
        got = share(ws, chosen)
        rows.append(
            (
                label,
                pct(got),
                f">= {target:.0%} of {limit} ({fmt(ws.get('mb_s'))} / {fmt(chosen.get('mb_s'))} MB/s);"
                f" daemon CPU {fmt(cpu_per_mb(ws), ' ms/MB')}",
                verdict(got, target),
            )
        )
    if r.get("echo_stream_us"):
        rows += echo_targets(r, "_us", "back to back")
    if r.get("echo_stream_paced_us"):
        rows += echo_targets(r, "_paced_us", f"paced {PACE * 1000:g} ms")
    ceiling = {step["viewers"]: step["sum_mb_s"] for step in r.get("ceiling") or []}
    if 50 in ceiling and 100 in ceiling:
        kept = ratio(ceiling[100], ceiling[50])
        rows.append(
            (
                "unthrottled, 100 viewers / 50",
                pct(kept),
                f">= {TARGET_CEILING_KEEP:.0%} ({ceiling[100]:.1f} / {ceiling[50]:.1f} MB/s summed)",
                verdict(kept, TARGET_CEILING_KEEP),
            )
        )
    join = r.get("fanout_join")
    if join:
        rows.append(
            (
                "10 joining a busy session, min",
                f"{join['min_mb_s']:.2f} MB/s",
                "reach live output within 1 s: not timed here"
                f" (their rate over their first {r['sizes']['window_s']:g} s)",
                "n/a",
            )
        )
    return rows


def report(results: dict[str, Any], json_path: str | None = None) -> None:
    """Print the table (and write every figure as JSON to json_path, if given)."""
    if json_path:
        with open(json_path, "w") as out:
            json.dump(results, out, indent=2, default=str)
    m = results["machine"]
    say("")
    flags = [flag for flag in ("quick", "no_metrics", "sessions_outlive_daemon") if results["args"].get(flag)]
    say("vibetwist WebSocket benchmark" + "".join(f" (--{flag.replace('_', '-')})" for flag in flags))
    say(f"machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}, Python {m['python']}")
    say(f"load average (1, 5, 15 min): {m['load_before']} before, {m.get('load_after')} after")
    say("")
    rows = echo_rows(results) + throughput_rows(results) + fanout_rows(results)
    rows += stale_rows(results) + leak_rows(results)
    for label, value, note in rows:
        say(f"{label:36} {value:>14}   {note}")
    say("")
    targets = target_rows(results)
    if targets:
        say("issue 17's targets, each against its limit measured in this run:")
        for label, value, note, verdict_ in targets:
            say(f"  {verdict_:4} {label:36} {value:>8}   {note}")
        say("  not measured here: 1 MB/s to 300 viewers, a joiner's time to live output")
        say("")
    if results.get("echo_daemon"):
        say(f"echo phase: daemon lag {results['echo_daemon']}")
    cleanup = results.get("cleanup")
    if cleanup:
        say(
            f"cleanup: {cleanup['deleted']['ok']} deleted, {cleanup['still_running']} still running,"
            f" {cleanup['left_after_cleanup']} left"
        )
    for stop in results.get("daemon_stop", []):
        say(
            f"daemon stop: exit {stop.get('exit_code')} after {fmt(stop.get('stop_ms'), ' ms')}"
            + (" (needed SIGKILL)" if stop.get("killed") else "")
        )
    if results.get("leaked_pids"):
        say(f"session processes left alive (killed): {results['leaked_pids']}")
    for line in results.get("daemon_log_problems", []):
        say(f"daemon log: {line}")
    if results.get("error"):
        say(f"ERROR: {results['error']}")
        for line in results.get("daemon_log_tail", []):
            say(f"  daemon: {line}")


# ---------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--no-deflate", action="store_true", help="skip the permessage-deflate daemon")
    parser.add_argument(
        "--no-metrics", action="store_true", help="start the daemons with --no-metrics (to compare)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds, overall")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, of {','.join(PHASES)} (leaks needs staleness)",
    )
    parser.add_argument(
        "--cases",
        default="base64,opost",
        help="the throughput cases: base64, opost or both (comma-separated)",
    )
    parser.add_argument("--json", metavar="OUT", help="write results as JSON here")
    parser.add_argument("--keep-dir", action="store_true", help="keep the daemons' logs")
    parser.add_argument("--profile", metavar="OUT", help="cProfile the plain daemon into OUT (slows it)")
    parser.add_argument(
        "--sessions-outlive-daemon",
        action="store_true",
        help="run the daemons so (each session held by a process of its own)",
    )
    args = parser.parse_args(argv)
    for value, known, what in (
        (args.phases, PHASES, "--phases"),
        (args.cases, ("base64", "opost"), "--cases"),
    ):
        unknown = set(value.split(",")) - set(known)
        if unknown:
            parser.error(f"{what}: unknown {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return args


def install_watchdog(seconds: float) -> None:
    """Hard stop if the reactor itself hangs: kill the daemons and their sessions, exit."""

    def expire(signum: int, frame: Any) -> None:
        print("watchdog: overall time exceeded, killing the daemons", file=sys.stderr)
        for daemon in bd.DAEMONS:
            kill_if_alive(daemon)
        for pid in session_processes(SESSION_IDS):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(3)

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(seconds))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--bare-twisted"]:
        bare_twisted_main(argv[1:])
        return
    args = parse_args(argv)
    install_watchdog(args.timeout + START_TIMEOUT + 120)

    async def bench(reactor: Any) -> None:
        results = await run(reactor, args)
        report(results, args.json)
        if results.get("error"):
            raise SystemExit(1)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(bench(reactor)))


if __name__ == "__main__":
    main()
