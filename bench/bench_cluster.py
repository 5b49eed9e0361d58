# -*- test-case-name: tests.test_bench -*-
"""Benchmark the cluster: through a gateway against straight to the host, in one run.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_cluster.py                  # a few minutes
    python bench/bench_cluster.py --quick          # smaller sizes, a smoke test
    python bench/bench_cluster.py --json out.json  # also write machine-readable results
    python bench/bench_cluster.py --phases listing --hosts 5 --sessions-per-host 200

The script starts, on 127.0.0.1 only, a nats-server of its own (``nats-server -js`` on
a free port with a temporary store) and daemons as processes of their own
(``twistd -n vibetunnel --measure-lag``):

``plain``
    a host without ``--nats``: today's single-host daemon;
``host``
    a host with ``--nats URL --host-id bench-00``: the one every figure is measured on;
``gw1``, ``gw2``
    two gateways, ``--gateway --nats URL``.

Its clients (treq and Autobahn, on the Twisted reactor of this process) reach the host
straight ("direct") and through a gateway ("gateway"), one after the other in the
same run, so both see the same machine:

create
    POST ``printf ready``, then its ``/stream``: the time from the POST to the first
    output event (rounds alternate direct and gateway).
echo
    ``stty raw -echo; cat`` in a session, one byte sent as a binary frame on
    ``/ws/sessions/ID`` and timed until its echo comes back on the same socket: back
    to back, and paced 20 ms apart (each round waits 20 ms after the last echo).
throughput
    one ``/ws/sessions`` viewer of ``head -c N /dev/urandom | base64``, joined before
    the output starts: bytes over the time from the first to the last frame.
viewers
    a program writing 4 KB lines at 1 MB/s, watched by ``--viewers`` (100) viewers:
    all of them straight on the host, then as many split over the two gateways (half
    each); every viewer's rate over a window: the sum and the slowest. The gateways'
    RSS (``/proc/PID/status``) before and during gives the memory per viewer.
listing
    ``--hosts`` (10) hosts in all (the host above and more started for this phase,
    each a full daemon with ``--nats``), each with ``--sessions-per-host`` (100)
    sessions of ``sleep 3600`` (idle programs: what a listing reads is the sessions'
    metadata, which does not depend on the program); ``GET /api/sessions`` at a
    gateway (every host at once through its tunnel) against the same at one host.

The single-host figures (create, echo, throughput) are measured on ``plain`` too, so
the cost of the NATS thread on a host shows: ``host`` against ``plain``.

It stops by itself: ``--timeout`` bounds the phases, every wait has a limit, a
watchdog kills everything if the run hangs, and at the end every session is deleted,
the daemons get SIGTERM, the nats-server SIGKILL, and any process still carrying the
``VIBETUNNEL_SESSION_ID`` of one of its sessions is killed and reported. Exit status
1 means a phase failed or timed out; the partial figures are still printed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.web.client import HTTPConnectionPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_daemon as bd  # noqa: E402 (found through the path set just above)
import bench_ws as bw  # noqa: E402
from bench_daemon import (  # noqa: E402
    HOST,
    START_TIMEOUT,
    daemon_first_output,
    fmt,
    kill_if_alive,
    log_problems,
    machine,
    percentile,
    read_log,
    say,
    stop_daemon,
)
from bench_ws import (  # noqa: E402
    ECHO_PROGRAM,
    MB,
    PACED_SOURCE,
    SESSION_IDS,
    SOURCE_DELAY,
    Clients,
    DaemonApi,
    Socket,
    add_viewers,
    base64_command,
    binary_has,
    bounded,
    client_cpu,
    cpu_seconds,
    new_session,
    remove_session,
    screen_shows,
    session_processes,
    sleep,
    spawn_daemon,
    spread,
    stream_rate,
)

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"
#: The host every figure is measured on, and the prefix of the listing's other hosts.
HOST_ID = "bench-00"
#: The idle program of the listing's sessions.
IDLE_PROGRAM = ["sleep", "3600"]
#: Seconds between paced echo rounds.
PACE_S = 0.020
JOIN_TIMEOUT = 30.0
PHASES = ("create", "echo", "throughput", "viewers", "listing")


@dataclass(frozen=True)
class Sizes:
    """How much each phase does; ``--quick`` shrinks everything."""

    create_rounds: int = 20
    echo_rounds: int = 500
    paced_rounds: int = 200
    base64_bytes: int = 20_000_000
    viewers: int = 100
    window_s: float = 4.0
    hosts: int = 10
    sessions_per_host: int = 100
    list_requests: int = 100


QUICK = Sizes(
    create_rounds=4,
    echo_rounds=40,
    paced_rounds=20,
    base64_bytes=2_000_000,
    viewers=10,
    window_s=1.5,
    hosts=3,
    sessions_per_host=10,
    list_requests=10,
)


# ---------------------------------------------------------------------------
# The nats-server and the daemons


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        try:
            probe.connect((HOST, port))
        except OSError:
            return False
        return True


class NATSProcess(protocol.ProcessProtocol):
    """``nats-server -js`` on a free loopback port with a store under the work directory."""

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        self.store = os.path.join(workdir, "nats-store")
        self.log = open(os.path.join(workdir, "nats.log"), "wb")  # noqa: SIM115 (closed in processEnded)
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self, reactor: Any) -> None:
        argv = [NATS_SERVER, "-js", "-a", HOST, "-p", str(self.port), "-sd", self.store]
        reactor.spawnProcess(self, argv[0], argv, env={"PATH": os.environ.get("PATH", "")})
        atexit.register(self.kill)

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self.log.write(data)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.log.close()
        self.ended.callback(None)

    async def wait_accepting(self, reactor: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not accepts(self.port):
            if self.ended.called:
                raise RuntimeError("nats-server exited at start (see nats.log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not listen within {timeout} s")
            await sleep(reactor, 0.02)

    def kill(self) -> None:
        if self.pid is not None and not self.ended.called:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass


@dataclass
class Target:
    """One daemon's API and WebSocket clients, and the process behind them."""

    name: str
    daemon: bd.DaemonProcess
    api: DaemonApi
    clients: Clients


async def start_target(
    reactor: Any, pool: HTTPConnectionPool, workdir: str, name: str, extra: list[str], control_of: str = ""
) -> Target:
    """A daemon (a gateway with --gateway) and the clients that reach it.

    control_of names the daemon whose control directory holds the recordings its
    sessions write (a gateway's sessions are its host's).
    """
    daemon = spawn_daemon(reactor, workdir, name, extra)
    port = await daemon.port.addTimeout(START_TIMEOUT, reactor)
    control = os.path.join(workdir, control_of or name)
    api = DaemonApi(reactor, pool, port, daemon.pid, control)
    return Target(name, daemon, api, Clients(reactor, port))


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process (``VmRSS`` of ``/proc/PID/status``)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


async def hosts_up(reactor: Any, gateway: Target, names: set[str], timeout: float = JOIN_TIMEOUT) -> None:
    """Poll the gateway's ``/api/hosts`` until every named host is up."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await gateway.api.call("GET", "/api/hosts")
        listed = reply.json() if reply.ok else None
        up = {h.get("host") for h in listed or [] if isinstance(h, dict) and h.get("status") == "up"}
        if names <= up:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{gateway.name}: hosts {sorted(names - up)} not up within {timeout} s")
        await sleep(reactor, 0.1)


# ---------------------------------------------------------------------------
# Phases: each fills ``results`` so a timeout still leaves what was measured


async def phase_create(reactor: Any, targets: list[Target], sizes: Sizes, results: dict) -> None:
    """POST to first output, the targets' rounds interleaved."""
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    failed: dict[str, int] = {t.name: 0 for t in targets}
    for _ in range(sizes.create_rounds):
        for target in targets:
            round_ = await bounded(reactor, daemon_first_output(reactor, target.api))
            if round_["ms"] is not None and round_["output_ok"]:
                times[target.name].append(round_["ms"])
            else:
                failed[target.name] += 1
    for target in targets:
        results.setdefault(target.name, {})["create_ms"] = spread(times[target.name], failed[target.name])
    say(
        "create: "
        + ", ".join(f"{t.name} p50 {fmt(results[t.name]['create_ms'].get('p50'))} ms" for t in targets)
    )


async def echo_rounds(reactor: Any, viewer: Socket, rounds: int, pause: float) -> dict[str, Any]:
    """Microseconds from a one-byte binary frame to its echo's frame, pause s between rounds."""
    times: list[float] = []
    failures = 0
    for _ in range(rounds):
        if pause:
            await sleep(reactor, pause)
        arrived = viewer.until(binary_has(b"x"))
        start = time.perf_counter()
        viewer.sendMessage(b"x", isBinary=True)
        try:
            at = await bounded(reactor, arrived, 2.0)
        except defer.TimeoutError:
            failures += 1
            continue
        times.append((at - start) * 1e6)
    return spread(times, failures)


async def phase_echo(reactor: Any, targets: list[Target], sizes: Sizes, results: dict) -> None:
    for target in targets:
        session = await new_session(target.api, ECHO_PROGRAM)
        await bounded(reactor, screen_shows(reactor, target.api, session, "R"))  # raw mode is on
        viewer = await target.clients.viewer(session)
        await echo_rounds(reactor, viewer, 50, 0)  # warm-up
        out = results.setdefault(target.name, {})
        out["echo_us"] = await echo_rounds(reactor, viewer, sizes.echo_rounds, 0)
        out["echo_paced_us"] = await echo_rounds(reactor, viewer, sizes.paced_rounds, PACE_S)
        await target.clients.close([viewer])
        await remove_session(reactor, target.api, session)
        say(
            f"echo {target.name}: p50 {fmt(out['echo_us'].get('p50'))} us,"
            f" paced p50 {fmt(out['echo_paced_us'].get('p50'))} us"
        )


async def phase_throughput(reactor: Any, targets: list[Target], sizes: Sizes, results: dict) -> None:
    for target in targets:
        out = await stream_rate(reactor, target.api, target.clients, base64_command(sizes.base64_bytes))
        results.setdefault(target.name, {})["base64"] = out
        say(f"throughput {target.name}: {fmt(out.get('mb_s'))} MB/s")


async def viewer_window(reactor: Any, viewers: list[Socket], window: float) -> dict[str, Any]:
    """Every viewer's rate over the window: the sum, the median and the slowest."""
    before = [v.binary_bytes for v in viewers]
    skipped = sum(v.skipped for v in viewers)
    client, start = client_cpu(), time.perf_counter()
    await sleep(reactor, window)
    elapsed = time.perf_counter() - start
    rates = [(v.binary_bytes - b) / elapsed / MB for v, b in zip(viewers, before)]
    return {
        "viewers": len(viewers),
        "sum_mb_s": sum(rates),
        "p50_mb_s": percentile(rates, 50),
        "min_mb_s": min(rates),
        "skips": sum(v.skipped for v in viewers) - skipped,
        "closed": sum(1 for v in viewers if v.ended.called),
        "client_cpu": (client_cpu() - client) / elapsed,
    }


async def fanout(
    reactor: Any, host: Target, places: list[Target], count: int, window: float, watched: list[Target]
) -> dict[str, Any]:
    """count viewers of a fresh 1 MB/s session, spread evenly over places; their rates,
    and the RSS of the watched processes before the viewers came and during the window."""
    memory_before = {t.name: rss_bytes(t.daemon.pid) for t in watched}
    created = time.perf_counter()
    session = await new_session(host.api, PACED_SOURCE)
    viewers: list[Socket] = []
    for index, place in enumerate(places):
        share = count // len(places) + (1 if index < count % len(places) else 0)
        viewers.extend(await add_viewers(reactor, place.clients, session, share))
    await sleep(reactor, max(0.0, created + SOURCE_DELAY + 0.5 - time.perf_counter()))
    cpu = {t.name: cpu_seconds(t.daemon.pid) for t in watched}
    step = await viewer_window(reactor, viewers, window)
    step["cpu"] = {
        t.name: ((cpu_seconds(t.daemon.pid) or 0) - (cpu[t.name] or 0)) / window
        for t in watched
        if cpu[t.name] is not None
    }
    step["rss_before"] = memory_before
    step["rss_during"] = {t.name: rss_bytes(t.daemon.pid) for t in watched}
    for place in places:
        await place.clients.close()
    await remove_session(reactor, host.api, session)
    return step


async def phase_viewers(
    reactor: Any, host: Target, gateways: list[Target], sizes: Sizes, results: dict
) -> None:
    count = sizes.viewers
    watched = [host, *gateways]
    direct = await fanout(reactor, host, [host], count, sizes.window_s, watched)
    results.setdefault("direct", {})["viewers"] = direct
    say(f"{count} viewers direct: sum {direct['sum_mb_s']:.1f}, slowest {direct['min_mb_s']:.2f} MB/s")
    through = await fanout(reactor, host, gateways, count, sizes.window_s, watched)
    results.setdefault("gateway", {})["viewers"] = through
    per_gateway = count / len(gateways)
    grown = [
        (through["rss_during"][g.name] or 0) - (through["rss_before"][g.name] or 0)
        for g in gateways
        if through["rss_during"][g.name] and through["rss_before"][g.name]
    ]
    if grown:
        through["bytes_per_viewer"] = sum(grown) / len(grown) / per_gateway
    say(
        f"{count} viewers over {len(gateways)} gateways: sum {through['sum_mb_s']:.1f},"
        f" slowest {through['min_mb_s']:.2f} MB/s, {fmt(through.get('bytes_per_viewer'))} bytes per viewer"
    )


async def create_many(reactor: Any, target: Target, count: int, concurrency: int = 8) -> list[str]:
    """count idle sessions on the target, concurrency at a time."""
    made: list[str] = []
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            made.append(await new_session(target.api, IDLE_PROGRAM))

    await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(concurrency)])
    return made


async def timed_listings(target: Target, requests: int) -> tuple[dict[str, Any], int, int]:
    """requests sequential GET /api/sessions: milliseconds, and the last answer's sessions and
    bytes; ``fewest`` is the fewest sessions an answer held (a host left out of a listing)."""
    times: list[float] = []
    failed, count, size, fewest = 0, 0, 0, None
    for _ in range(requests):
        reply = await target.api.call("GET", "/api/sessions")
        listed = reply.json() if reply.ok else None
        if not isinstance(listed, list):
            failed += 1
            continue
        times.append(reply.ms)
        count, size = len(listed), len(reply.body)
        fewest = count if fewest is None else min(fewest, count)
    figures = spread(times, failed)
    figures["fewest"] = fewest
    return figures, count, size


async def phase_listing(
    reactor: Any,
    pool: HTTPConnectionPool,
    workdir: str,
    nats: NATSProcess,
    host: Target,
    gateway: Target,
    sizes: Sizes,
    results: dict,
    extra_hosts: list[Target],
) -> None:
    """sizes.hosts hosts of sizes.sessions_per_host idle sessions, listed at a gateway and at one host."""
    names = [f"bench-{index:02d}" for index in range(1, sizes.hosts)]
    for name in names:
        extra_hosts.append(
            await start_target(reactor, pool, workdir, name, ["--nats", nats.url, "--host-id", name])
        )
    say(f"listing: {len(extra_hosts)} more hosts started")
    for target in [host, *extra_hosts]:
        listed = await target.api.sessions() or []
        missing = sizes.sessions_per_host - len(listed)
        if missing > 0:
            await create_many(reactor, target, missing)
    await hosts_up(reactor, gateway, {HOST_ID, *names})
    total = sizes.hosts * sizes.sessions_per_host
    deadline = time.monotonic() + JOIN_TIMEOUT
    while len(await gateway.api.sessions() or []) < total and time.monotonic() < deadline:
        await sleep(reactor, 0.2)
    await timed_listings(gateway, 3)  # warm-up: every tunnel open once
    for target, key in ((host, "direct"), (gateway, "gateway")):
        figures, count, size = await timed_listings(target, sizes.list_requests)
        figures.update(sessions=count, bytes=size, bytes_per_session=size / count if count else None)
        results.setdefault(key, {})["listing"] = figures
    gw, one = results["gateway"]["listing"], results["direct"]["listing"]
    say(
        f"listing: gateway {gw['sessions']} sessions p50 {fmt(gw.get('p50'))} ms,"
        f" one host {one['sessions']} sessions p50 {fmt(one.get('p50'))} ms"
    )


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        k: v
        for k, v in (
            ("hosts", args.hosts),
            ("sessions_per_host", args.sessions_per_host),
            ("viewers", args.viewers),
        )
        if v is not None
    }
    sizes = replace(sizes, **overrides)
    results: dict[str, Any] = {"machine": machine(), "sizes": sizes.__dict__, "phase": "start"}
    workdir = tempfile.mkdtemp(prefix="bench-cluster-")
    results["workdir"] = workdir
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    nats = NATSProcess(workdir)
    SERVERS.append(nats)
    targets: list[Target] = []
    extra_hosts: list[Target] = []
    try:
        nats.start(reactor)
        await nats.wait_accepting(reactor)
        plain = await start_target(reactor, pool, workdir, "plain", [])
        host = await start_target(reactor, pool, workdir, "host", ["--nats", nats.url, "--host-id", HOST_ID])
        gateways = [
            await start_target(
                reactor, pool, workdir, name, ["--gateway", "--nats", nats.url], control_of="host"
            )
            for name in ("gw1", "gw2")
        ]
        targets = [plain, host, *gateways]
        for gateway in gateways:
            await hosts_up(reactor, gateway, {HOST_ID})
        results["rss_idle"] = {t.name: rss_bytes(t.daemon.pid) for t in targets}
        gateway = gateways[0]
        # Figures are named by how they reach the host: "gateway" is gw1.
        named = [
            Target("plain", plain.daemon, plain.api, plain.clients),
            Target("direct", host.daemon, host.api, host.clients),
            Target("gateway", gateway.daemon, gateway.api, gateway.clients),
        ]
        say(f"nats-server on {nats.url}, daemons up: {', '.join(t.name for t in targets)}")

        async def phases() -> None:
            chosen = [
                ("create", lambda: phase_create(reactor, named, sizes, results)),
                ("echo", lambda: phase_echo(reactor, named, sizes, results)),
                ("throughput", lambda: phase_throughput(reactor, named, sizes, results)),
                ("viewers", lambda: phase_viewers(reactor, host, gateways, sizes, results)),
                (
                    "listing",
                    lambda: phase_listing(
                        reactor, pool, workdir, nats, host, gateway, sizes, results, extra_hosts
                    ),
                ),
            ]
            for name, phase in chosen:
                if name in args.phases:
                    results["phase"] = name
                    await phase()
                    results[f"rss_after_{name}"] = {
                        t.name: rss_bytes(t.daemon.pid) for t in targets + extra_hosts
                    }
            results["phase"] = "done"

        await bw.run_bounded(reactor, [t.api for t in targets], phases(), args.timeout, results)
    except Exception as exc:  # noqa: BLE001 (reported; clean-up still runs)
        results.setdefault("error", f"{type(exc).__name__} at start: {exc}")
        say(f"stopped early: {results['error']}")
    finally:
        await clean_up(reactor, pool, nats, targets + extra_hosts, results)
        if not args.keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


async def clean_up(
    reactor: Any, pool: HTTPConnectionPool, nats: NATSProcess, targets: list[Target], results: dict
) -> None:
    """Delete every session of the hosts, stop the daemons and the nats-server, kill leftovers."""
    for target in targets:
        target.api.stopped = False
        await target.clients.close()
    for target in targets:
        if target.name.startswith("gw") or target.daemon.ended.called:
            continue
        listed = await target.api.sessions() or []
        for session in listed:
            await target.api.call("DELETE", f"/api/sessions/{session.get('id')}")
    await pool.closeCachedConnections()
    problems: dict[str, list[str]] = {}
    for target in targets:
        stopped = await stop_daemon(reactor, target.daemon)
        lines = log_problems(read_log(target.daemon.log.name))
        if stopped["killed"] or lines:
            problems[target.name] = (
                [f"killed after {stopped['stop_ms']:.0f} ms"] if stopped["killed"] else []
            ) + lines
    results["log_problems"] = problems
    nats.kill()
    try:
        await nats.ended.addTimeout(10, reactor)
    except defer.TimeoutError:
        pass
    left = session_processes(SESSION_IDS)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    results["session_processes_left"] = len(left)


# ---------------------------------------------------------------------------
# Report


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def mib(value: float | None) -> str:
    return f"{value / 2**20:.1f} MiB" if value is not None else "n/a"


def get(results: dict, *path: str) -> Any:
    for key in path:
        if not isinstance(results, dict):
            return None
        results = results.get(key)  # type: ignore[assignment]
    return results


#: (label, path in a target's results, unit) of every figure of the report.
FIGURES = (
    ("create p50 (POST to first output)", ("create_ms", "p50"), "ms"),
    ("echo p50, back to back", ("echo_us", "p50"), "us"),
    ("echo p99, back to back", ("echo_us", "p99"), "us"),
    ("echo p50, 20 ms apart", ("echo_paced_us", "p50"), "us"),
    ("echo p99, 20 ms apart", ("echo_paced_us", "p99"), "us"),
    ("throughput, base64, 1 viewer", ("base64", "mb_s"), "MB/s"),
    ("viewers: sum of rates", ("viewers", "sum_mb_s"), "MB/s"),
    ("viewers: slowest", ("viewers", "min_mb_s"), "MB/s"),
    ("listing p50", ("listing", "p50"), "ms"),
    ("listing p99", ("listing", "p99"), "ms"),
    ("listing bytes per session", ("listing", "bytes_per_session"), "B"),
)
#: The figures a host alone has: with --nats against without.
SINGLE_HOST = FIGURES[:6]


def rows(results: dict, left: str, right: str, figures: Any = FIGURES) -> list[tuple[str, str, str, str]]:
    """(figure, left, right, right / left) for the figures either of them has."""
    out = []
    for label, path, unit in figures:
        a, b = get(results, left, *path), get(results, right, *path)
        if a is None and b is None:
            continue
        out.append((label, fmt(a, " " + unit), fmt(b, " " + unit), ratio(b, a)))
    return out


def table(header: tuple[str, ...], lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    for row in [header, *lines]:
        say("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


def report(results: dict[str, Any], json_path: str | None) -> None:
    m, sizes = results["machine"], results["sizes"]
    say("")
    say(
        f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, {m['platform']};"
        f" load {m['load_before']} before, {m.get('load_after')} after"
    )
    say(
        "processes: nats-server -js; 'plain' a host without --nats; 'direct' a host with --nats"
        f" ({HOST_ID}); 'gateway' gw1 in front of it; the viewers phase also uses gw2"
    )
    say("")
    say("through a gateway against straight to the host:")
    table(("figure", "direct", "gateway", "gateway/direct"), rows(results, "direct", "gateway"))
    viewers = get(results, "gateway", "viewers") or {}
    direct_viewers = get(results, "direct", "viewers") or {}
    if viewers:
        say(
            f"  {sizes['viewers']} viewers of a 1 MB/s program (4 KB lines), over {sizes['window_s']} s;"
            f" direct: all on the host, gateway: half on each of gw1 and gw2"
        )
        for name, step in (("direct", direct_viewers), ("gateway", viewers)):
            if not step:
                continue
            cpu = ", ".join(f"{k} {v * 100:.0f}%" for k, v in step.get("cpu", {}).items())
            say(
                f"  {name}: median {step['p50_mb_s']:.2f} MB/s, skips {step['skips']},"
                f" closed {step['closed']}; CPU {cpu}, this process {step['client_cpu'] * 100:.0f}%"
            )
    listing = get(results, "gateway", "listing")
    if listing:
        say(
            f"  listing: {sizes['hosts']} hosts (full daemons with --nats) x {sizes['sessions_per_host']}"
            f" sessions of '{' '.join(IDLE_PROGRAM)}' (idle); gateway: {listing['sessions']} sessions,"
            f" {listing['bytes']} bytes, the fewest in one answer {listing.get('fewest')};"
            f" direct: one host's {get(results, 'direct', 'listing', 'sessions')}"
        )
    say("")
    say("the NATS thread on a host: --nats against without:")
    table(("figure", "without", "--nats", "--nats/without"), rows(results, "plain", "direct", SINGLE_HOST))
    say("")
    say("memory (RSS):")
    idle = results.get("rss_idle") or {}
    say("  idle: " + ", ".join(f"{k} {mib(v)}" for k, v in idle.items()))
    if viewers:
        during, per_viewer = viewers.get("rss_during", {}), viewers.get("bytes_per_viewer")
        say(
            f"  gateways with {sizes['viewers'] // 2} viewers each: "
            + ", ".join(f"{k} {mib(during.get(k))}" for k in ("gw1", "gw2"))
            + f"; per viewer {fmt(per_viewer and per_viewer / 1024, ' KiB')}"
        )
    after = results.get("rss_after_listing") or {}
    if after:
        say("  after the listing: " + ", ".join(f"{k} {mib(after.get(k))}" for k in ("host", "gw1", "gw2")))
    for name, lines in (results.get("log_problems") or {}).items():
        say(f"log of {name}:")
        for line in lines:
            say(f"  {line}")
    if results.get("session_processes_left"):
        say(f"session processes left after the daemons stopped (killed): {results['session_processes_left']}")
    if results.get("error"):
        say(f"FAILED: {results['error']}")
    if json_path:
        with open(json_path, "w") as out:
            json.dump(results, out, indent=2, default=str)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--hosts", type=int, help="hosts of the listing phase (10; --quick 3)")
    parser.add_argument(
        "--sessions-per-host", type=int, help="sessions per host for the listing (100; --quick 10)"
    )
    parser.add_argument("--viewers", type=int, help="viewers of the viewers phase (100; --quick 10)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for all phases (600)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--keep-dir", action="store_true", help="keep the daemons' logs and control directories"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"the phases to run, comma-separated (all: {','.join(PHASES)})",
    )
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(args.phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phases: {', '.join(unknown)}")
    if args.hosts is not None and args.hosts < 1:
        parser.error("--hosts must be at least 1")
    return args


#: The nats-servers this run started, for the watchdog.
SERVERS: list[NATSProcess] = []


def install_watchdog(seconds: float) -> None:
    """Hard stop if the reactor itself hangs: kill the nats-server, the daemons and their sessions."""

    def expire(signum: int, frame: Any) -> None:
        print("watchdog: overall time exceeded, killing everything this run started", file=sys.stderr)
        for server in SERVERS:
            server.kill()
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
    args = parse_args(argv)
    install_watchdog(args.timeout + START_TIMEOUT + 180)

    async def bench(reactor: Any) -> None:
        results = await run(reactor, args)
        report(results, args.json)
        if results.get("error"):
            raise SystemExit(1)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(bench(reactor)))


if __name__ == "__main__":
    main()
