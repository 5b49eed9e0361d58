"""Benchmark a real vibetwist daemon over its REST API, in one run.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_daemon.py                  # defaults below
    python bench/bench_daemon.py --json out.json  # also write machine-readable results

Options: ``--sessions 100`` (sessions kept live for the list and burst figures),
``--burst 50`` (creates fired at once), ``--requests 100`` and ``--concurrency 10`` and
``--rate 50`` (shape of the paced phases: that many requests, that many in flight,
started at most that many per second), ``--rounds 20`` (first-output repeats),
``--timeout 300`` (seconds for the whole run), ``--keep-dir`` (keep the daemon's log),
``--sessions-outlive-daemon`` (run the daemon so, each session's program held by a
holder process of its own; then the holders' memory is measured too).

The script starts its own daemon (``twistd -n vibetunnel --measure-lag``) on
127.0.0.1 with a temporary control directory, talks to it with one keep-alive treq
client on the Twisted reactor, and stops it at the end, whatever happens.
Only 2xx answers count as successes; failures are counted by status code (or error
name) and never enter the latency figures. The figures, all in milliseconds:

health
    ``GET /api/health``: 200 sequential requests, then ``--requests`` at
    ``--concurrency`` in flight paced at ``--rate`` per second (the create shape).
create
    ``POST /api/sessions`` running ``cat``: 20 sequential, then the paced shape;
    every created session must then reach "running". The ratio create p50 / paced
    health p50 is the cost of a create over a bare request (target <= 1.5). Paced
    figures are higher than sequential ones on an idle machine: they include the
    cost of waking idle processes between requests, the same for both.
list
    ``GET /api/sessions`` with ``--sessions`` sessions live, same paced shape.
first output
    POST a session running ``printf ready``, connect its SSE stream, time until the
    first "o" event with text; compared with a raw PTY's spawn-to-first-byte
    (``pty.openpty`` + ``subprocess.Popen``) of the same program in the same run.
burst
    ``--burst`` POSTs at once with ``--sessions`` live: the daemon's worst reactor
    stall (``reactorLag.maxMs`` of ``/api/stats``, a 1 ms timer) from just before the
    burst until all are running (target <= 10 ms), and the daemon's RSS.
delete
    At the end every session is deleted (``--concurrency`` in flight), must exit,
    and ``POST /api/cleanup-exited`` must leave none; then the daemon gets SIGTERM.
lag
    The same stall figure for every phase, read from ``/api/stats?reset=1``.
memory per session
    The daemon's RSS growth from before the first create to after the burst, per
    live session; with ``--sessions-outlive-daemon`` also each holder's memory
    (``/proc/PID/smaps_rollup``: RSS, PSS, and its own pages, private clean + dirty).
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import platform
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer, error, protocol, task
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)

HOST = "127.0.0.1"
LISTENING = re.compile(rb"vibetwist listening on http://127\.0\.0\.1:(\d+)/")
ACCESS_LINE = re.compile(r'"[A-Z]+ [^ "]* HTTP/1\.[01]" (\d{3}) ')
REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 30.0
#: Seconds an idle kept-alive connection is kept: less than the daemon's --request-timeout.
IDLE_KEEP = 20.0
RUNNING_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
JSON_HEADERS = {b"Content-Type": [b"application/json"]}
DAEMONS: list[DaemonProcess] = []
TARGET_CREATE_RATIO = 1.5
SEQUENTIAL_HEALTH = 200
SEQUENTIAL_CREATES = 20
TARGET_BURST_LAG_MS = 10.0
#: Issue 17: create to first output within twice a raw PTY spawn's, measured in the same run.
TARGET_FIRST_OUTPUT_RATIO = 2.0
#: Issue 17: the list of (up to 1000) sessions answers within this, p50.
TARGET_LIST_MS = 10.0
# What one request can fail with; counted by name, never raised.
HTTP_ERRORS = (
    error.ConnectError,
    error.ConnectionLost,
    ResponseFailed,
    ResponseNeverReceived,
    RequestTransmissionFailed,
    defer.CancelledError,
    defer.TimeoutError,
    OSError,
)


# ---------------------------------------------------------------------------
# Figures


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Timings:
    """Latencies of successful requests, and failures counted by kind."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def add(self, reply: Reply) -> None:
        if reply.ok:
            self.latencies_ms.append(reply.ms)
        else:
            self.failures[reply.kind] += 1

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        out: dict[str, Any] = {
            "ok": len(lat),
            "failed": sum(self.failures.values()),
            "failures": dict(self.failures),
            "elapsed_s": round(self.elapsed_s, 3),
        }
        if self.elapsed_s > 0:
            out["per_s"] = round((len(lat) + out["failed"]) / self.elapsed_s, 1)
        if lat:
            out.update(
                avg=sum(lat) / len(lat),
                p50=percentile(lat, 50),
                p99=percentile(lat, 99),
                min=min(lat),
                max=max(lat),
            )
        return out


# ---------------------------------------------------------------------------
# HTTP


@dataclass
class Reply:
    """One HTTP exchange: status (None on a transport error), body, time taken."""

    status: int | None
    body: bytes
    ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def kind(self) -> str:
        return str(self.status) if self.status is not None else self.error

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Api:
    """The daemon's REST API through one keep-alive treq client.

    Once ``stopped`` is set (the overall timeout), a cancelled request raises
    instead of being counted, so every phase unwinds.
    """

    def __init__(self, reactor: Any, client: HTTPClient, port: int) -> None:
        self._reactor = reactor
        self.client = client
        self.base = f"http://{HOST}:{port}"
        self.stopped = False

    async def call(self, method: str, path: str, body: Any = None) -> Reply:
        """Send one request, read the whole answer, and time both."""
        data = None if body is None else json.dumps(body).encode()
        headers = JSON_HEADERS if body is not None else None
        start = time.perf_counter()
        try:
            response = await self.client.request(
                method,
                self.base + path,
                data=data,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            )
            content = await treq.content(response).addTimeout(REQUEST_TIMEOUT, self._reactor)
        except HTTP_ERRORS as exc:
            if self.stopped:
                raise
            ms = (time.perf_counter() - start) * 1000
            return Reply(None, b"", ms, type(exc).__name__)
        ms = (time.perf_counter() - start) * 1000
        return Reply(response.code, content, ms)

    async def stats(self, reset: bool = False) -> dict[str, Any] | None:
        reply = await self.call("GET", "/api/stats" + ("?reset=1" if reset else ""))
        data = reply.json() if reply.ok else None
        return data if isinstance(data, dict) else None

    async def sessions(self) -> list[dict[str, Any]] | None:
        reply = await self.call("GET", "/api/sessions")
        data = reply.json() if reply.ok else None
        return data if isinstance(data, list) else None

    async def create(self, command: list[str], created: list[str]) -> Reply:
        """POST a session; a 2xx answer without a sessionId counts as a failure."""
        body = {"command": command, "cols": 80, "rows": 24}
        reply = await self.call("POST", "/api/sessions", body)
        data = reply.json() if reply.ok else None
        if reply.ok:
            if isinstance(data, dict) and isinstance(data.get("sessionId"), str):
                created.append(data["sessionId"])
            else:
                reply.status, reply.error = None, "no sessionId"
        return reply


async def run_paced(
    reactor: Any,
    count: int,
    concurrency: int,
    rate: float,
    op: Callable[[], Awaitable[Reply]],
) -> Timings:
    """Run ``op`` count times, at most concurrency in flight, started <= rate/s.

    rate 0 means unpaced. Latency is timed from the moment a request is sent.
    """
    timings = Timings()
    next_index = iter(range(count))
    start = time.perf_counter()

    async def worker() -> None:
        for index in next_index:
            if rate > 0:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    await task.deferLater(reactor, delay)
            timings.add(await op())

    workers = [defer.Deferred.fromCoroutine(worker()) for _ in range(concurrency)]
    await defer.gatherResults(workers, consumeErrors=True)
    timings.elapsed_s = time.perf_counter() - start
    return timings


async def wait_running(
    reactor: Any, api: Api, ids: list[str], timeout: float = RUNNING_TIMEOUT
) -> dict[str, Any]:
    """Poll the session list until every id is "running" (bounded by timeout)."""
    start = time.perf_counter()
    wanted = set(ids)
    states: dict[str, str] = {}
    while time.perf_counter() - start < timeout:
        listing = await api.sessions()
        if listing is not None:
            states = {
                s["id"]: s.get("status") for s in listing if isinstance(s, dict) and s.get("id") in wanted
            }
            if all(states.get(i) == "running" for i in wanted):
                break
        await task.deferLater(reactor, 0.05)
    not_running = Counter(str(states.get(i, "missing")) for i in wanted)
    not_running.pop("running", None)
    return {
        "running": sum(1 for i in wanted if states.get(i) == "running"),
        "not_running": dict(not_running),
        "wait_ms": (time.perf_counter() - start) * 1000,
    }


# ---------------------------------------------------------------------------
# Server-Sent Events and the raw PTY


class StreamReader(protocol.Protocol):
    """Reads an SSE body: notes when the first "o" event with text arrives."""

    def __init__(self) -> None:
        self.buffer = b""
        self.first_is_header: bool | None = None
        self.first_output_at: float | None = None
        self.output = ""
        self.exit_event: list[Any] | None = None
        self.events_after_exit = 0
        self.clean_end = False
        self.done: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            self.message(raw, now)

    def message(self, raw: bytes, now: float) -> None:
        lines = [ln[5:] for ln in raw.split(b"\n") if ln.startswith(b"data:")]
        if not lines:
            return  # a comment such as ":heartbeat"
        try:
            event = json.loads(b"\n".join(ln.removeprefix(b" ") for ln in lines))
        except ValueError:
            return
        if self.first_is_header is None:
            self.first_is_header = isinstance(event, dict)
            return
        if self.exit_event is not None:
            self.events_after_exit += 1
        elif isinstance(event, list) and event[:1] == ["exit"]:
            self.exit_event = event
        elif isinstance(event, list) and len(event) >= 3 and event[1] == "o":
            self.output += str(event[2])
            if event[2] and self.first_output_at is None:
                self.first_output_at = now

    def connectionLost(self, reason: Any = None) -> None:
        self.clean_end = reason is not None and reason.check(ResponseDone) is not None
        if not self.done.called:
            self.done.callback(None)


def raw_pty_first_byte(argv: list[str], timeout: float = 5.0) -> float | None:
    """Milliseconds from openpty to the first byte the program writes, or None.

    Blocks this process's reactor for that time, which is fine here: nothing
    else of ours is in flight while it runs.
    """
    start = time.perf_counter()
    master, slave = pty.openpty()
    try:
        child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    first = None
    try:
        ready, _, _ = select.select([master], [], [], timeout)
        if ready and os.read(master, 4096):
            first = (time.perf_counter() - start) * 1000
    except OSError:
        pass
    finally:
        os.close(master)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=timeout)
    return first


async def daemon_first_output(reactor: Any, api: Api) -> dict[str, Any]:
    """Create a ``printf ready`` session and time its first SSE output event."""
    start = time.perf_counter()
    created: list[str] = []
    reply = await api.create(["printf", "ready"], created)
    result: dict[str, Any] = {"create": reply.kind, "ms": None}
    if not created:
        return result
    session = created[0]
    reader = StreamReader()
    try:
        response = await api.client.get(
            f"{api.base}/api/sessions/{session}/stream",
            unbuffered=True,
            timeout=REQUEST_TIMEOUT,
        )
        result["stream"] = str(response.code)
        response.deliverBody(reader)
        await reader.done.addTimeout(REQUEST_TIMEOUT, reactor)
    except HTTP_ERRORS as exc:
        if api.stopped:
            raise
        result["stream"] = type(exc).__name__
        if reader.transport is not None:
            reader.transport.stopProducing()
    if reader.first_output_at is not None:
        result["ms"] = (reader.first_output_at - start) * 1000
    result.update(
        header_first=reader.first_is_header,
        output_ok="ready" in reader.output,
        exit=reader.exit_event,
        events_after_exit=reader.events_after_exit,
        clean_end=reader.clean_end,
        delete=(await api.call("DELETE", f"/api/sessions/{session}")).kind,
    )
    return result


# ---------------------------------------------------------------------------
# The daemon


class DaemonProcess(protocol.ProcessProtocol):
    """The twistd child: its output goes to a log file; it reports its port."""

    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "wb")  # noqa: SIM115 (closed in processEnded)
        self.partial = b""
        self.port: defer.Deferred[int] = defer.Deferred()
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self.exit_code: int | None = None
        self.pid: int | None = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self.log.write(data)
        self.log.flush()
        self.partial = (self.partial + data)[-4096:]
        match = LISTENING.search(self.partial)
        if match and not self.port.called:
            self.port.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.log.close()
        if reason.check(ProcessDone, ProcessTerminated):
            self.exit_code = reason.value.exitCode
            if self.exit_code is None:
                self.exit_code = -(reason.value.signal or 0)
        if not self.port.called:
            self.port.errback(RuntimeError("daemon exited before listening"))
        self.ended.callback(self.exit_code)


def daemon_argv(control_dir: str, outlive: bool = False) -> list[str]:
    """twistd through this interpreter (``python -m twisted`` is ``twist``)."""
    return [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "-n",
        "--pidfile=",
        "vibetunnel",
        "--listen",
        f"tcp:0:interface={HOST}",
        "--control-dir",
        control_dir,
        "--measure-lag",
    ] + (["--sessions-outlive-daemon"] if outlive else [])


def start_daemon(reactor: Any, workdir: str, outlive: bool = False) -> DaemonProcess:
    control_dir = os.path.join(workdir, "control")
    os.mkdir(control_dir)
    daemon = DaemonProcess(os.path.join(workdir, "daemon.log"))
    argv = daemon_argv(control_dir, outlive)
    reactor.spawnProcess(daemon, argv[0], argv, env=dict(os.environ), path=workdir)
    DAEMONS.append(daemon)
    atexit.register(kill_if_alive, daemon)
    return daemon


def kill_if_alive(daemon: DaemonProcess) -> None:
    """Last resort at interpreter exit: the daemon must never outlive us."""
    if daemon.pid is not None and not daemon.ended.called:
        try:
            os.kill(daemon.pid, signal.SIGKILL)
        except OSError:
            pass


def when_ended(daemon: DaemonProcess) -> defer.Deferred[None]:
    """A fresh Deferred that fires when the daemon has ended."""
    ended: defer.Deferred[None] = defer.Deferred()

    def fire(result: Any) -> Any:
        if not ended.called:
            ended.callback(None)
        return result

    daemon.ended.addBoth(fire)
    return ended


async def stop_daemon(reactor: Any, daemon: DaemonProcess) -> dict[str, Any]:
    """SIGTERM, wait; SIGKILL if it does not end in time."""
    start = time.perf_counter()
    result: dict[str, Any] = {"killed": False}
    for sig in ("TERM", "KILL"):
        if daemon.ended.called:
            break
        result["killed"] = sig == "KILL"
        try:
            daemon.transport.signalProcess(sig)
        except error.ProcessExitedAlready:
            break
        try:
            await when_ended(daemon).addTimeout(STOP_TIMEOUT, reactor)
        except defer.TimeoutError:
            continue
    result["exit_code"] = daemon.exit_code
    result["stop_ms"] = (time.perf_counter() - start) * 1000
    return result


def read_log(log_path: str) -> list[str]:
    try:
        with open(log_path, "rb") as log:
            return log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def log_problems(lines: list[str], limit: int = 12) -> list[str]:
    """Lines of the daemon's log that look like errors, 5xx answers included."""
    marks = ("Traceback", "Unhandled", "Error", "error", "CRITICAL", "Exception")
    found = []
    for line in lines:
        access = ACCESS_LINE.search(line)
        if access and access.group(1).startswith("5") or (not access and any(m in line for m in marks)):
            found.append(line[:300])
    more = [f"... {len(found) - limit} more"] if len(found) > limit else []
    return found[:limit] + more


def access_statuses(lines: list[str]) -> dict[str, int]:
    """Status codes the daemon's access log recorded, counted."""
    return dict(Counter(m.group(1) for m in map(ACCESS_LINE.search, lines) if m))


def log_tail(lines: list[str], count: int = 15) -> list[str]:
    """The last lines of the log that are not access-log lines."""
    return [line for line in lines if not ACCESS_LINE.search(line)][-count:]


def _is_holder(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"vibetwist.vt._hold" in f.read()
    except OSError:
        return False


def holders_of(programs: list[int]) -> list[int]:
    """The holder processes (``--sessions-outlive-daemon``) of these programs: their parents."""
    found = []
    for pid in programs:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        if _is_holder(parent):
            found.append(parent)
    return found


def holders_in(control_dir: str) -> list[int]:
    """Holder processes with a file of control_dir open (left over, if the daemon is gone)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or not _is_holder(int(name)):
            continue
        try:
            targets = [os.readlink(f"/proc/{name}/fd/{fd}") for fd in os.listdir(f"/proc/{name}/fd")]
        except OSError:
            continue
        if any(t.startswith(control_dir + os.sep) for t in targets):
            found.append(int(name))
    return found


def memory_of(pids: list[int]) -> dict[str, Any]:
    """Mean RSS, PSS and own (private) memory of these processes, in bytes."""
    totals: Counter = Counter()
    counted = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                lines = [line.split() for line in f if line.endswith("kB\n")]
            fields = {words[0].rstrip(":"): int(words[1]) * 1024 for words in lines}
        except (OSError, ValueError, IndexError):
            continue
        counted += 1
        totals["rss"] += fields.get("Rss", 0)
        totals["pss"] += fields.get("Pss", 0)
        totals["own"] += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    mean = {k: v / counted for k, v in totals.items()} if counted else {}
    return {"processes": counted, **mean}


def processes_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        alive.append(pid)
    return alive


# ---------------------------------------------------------------------------
# Phases: each fills ``results`` so a timeout still leaves what was measured


def say(text: str) -> None:
    print(text, flush=True)


async def measure_lag(api: Api, results: dict[str, Any], name: str, phase: Any) -> Any:
    """Run one phase between ``/api/stats?reset=1`` and ``/api/stats``."""
    await api.stats(reset=True)
    value = await phase
    stats = await api.stats()
    lag = stats.get("reactorLag", {}) if stats else {}
    results.setdefault("lag_ms", {})[name] = lag.get("maxMs")
    results.setdefault("rss_bytes", {})[name] = stats.get("rssBytes") if stats else None
    return value


async def phase_health(reactor: Any, api: Api, args: Any, results: dict) -> None:
    def health() -> Awaitable[Reply]:
        return api.call("GET", "/api/health")

    seq = await run_paced(reactor, SEQUENTIAL_HEALTH, 1, 0, health)
    results["health_sequential"] = seq.summary()
    paced = await run_paced(reactor, args.requests, args.concurrency, args.rate, health)
    results["health_paced"] = paced.summary()
    say("health: done")


async def phase_create(reactor: Any, api: Api, args: Any, results: dict, live: list[str]) -> None:
    created: list[str] = []

    def create() -> Awaitable[Reply]:
        return api.create(["cat"], created)

    seq = await run_paced(reactor, SEQUENTIAL_CREATES, 1, 0, create)
    results["create_sequential"] = seq.summary()
    paced = await run_paced(reactor, args.requests, args.concurrency, args.rate, create)
    results["create_paced"] = paced.summary()
    results["create_started"] = await wait_running(reactor, api, created)
    live.extend(created)
    say(f"create: {len(created)} created, {results['create_started']}")


async def top_up(reactor: Any, api: Api, args: Any, live: list[str]) -> None:
    """Unmeasured creates until --sessions sessions are live."""
    missing = max(0, args.sessions - len(live))
    if missing:
        created: list[str] = []
        await run_paced(reactor, missing, args.concurrency, 0, lambda: api.create(["cat"], created))
        await wait_running(reactor, api, created)
        live.extend(created)


async def phase_list(reactor: Any, api: Api, args: Any, results: dict) -> None:
    listing = await api.sessions()
    results["list_live_sessions"] = len(listing) if listing is not None else None
    timings = await run_paced(
        reactor,
        args.requests,
        args.concurrency,
        args.rate,
        lambda: api.call("GET", "/api/sessions"),
    )
    results["list_paced"] = timings.summary()
    say(f"list: done with {results['list_live_sessions']} sessions live")


async def phase_first_output(reactor: Any, api: Api, args: Any, results: dict) -> None:
    """Alternate daemon and raw PTY rounds so both see the same machine."""
    daemon_ms, raw_ms, problems = Timings(), Timings(), Counter()
    for _ in range(args.rounds):
        round_ = await daemon_first_output(reactor, api)
        if round_["ms"] is not None and round_["output_ok"]:
            daemon_ms.latencies_ms.append(round_["ms"])
        else:
            daemon_ms.failures["no output"] += 1
        problems.update(first_output_problems(round_))
        raw = raw_pty_first_byte(["printf", "ready"])
        if raw is None:
            raw_ms.failures["no output"] += 1
        else:
            raw_ms.latencies_ms.append(raw)
    results["first_output_daemon"] = daemon_ms.summary()
    results["first_output_raw_pty"] = raw_ms.summary()
    results["first_output_problems"] = dict(problems)
    say("first output: done")


def first_output_problems(round_: dict[str, Any]) -> list[str]:
    """Stream defects of one round, named (empty when all is well)."""
    found = []
    if round_["create"] != "200":
        found.append(f"create {round_['create']}")
    if round_.get("stream") != "200":
        found.append(f"stream {round_.get('stream')}")
        return found
    if not round_["header_first"]:
        found.append("first message not the header")
    if not round_["output_ok"]:
        found.append("output 'ready' missing")
    if round_["exit"] is None:
        found.append("no exit event")
    elif round_["exit"][1:2] != [0]:
        found.append(f"exit code {round_['exit'][1:2]}")
    if round_["events_after_exit"]:
        found.append("events after exit")
    if not round_["clean_end"]:
        found.append("stream did not end cleanly")
    if round_["delete"] != "200":
        found.append(f"delete {round_['delete']}")
    return found


async def phase_burst(reactor: Any, api: Api, args: Any, results: dict, live: list[str]) -> None:
    created: list[str] = []
    timings = Timings()

    async def one() -> None:
        timings.add(await api.create(["cat"], created))

    await api.stats(reset=True)
    start = time.perf_counter()
    burst = [defer.Deferred.fromCoroutine(one()) for _ in range(args.burst)]
    await defer.gatherResults(burst, consumeErrors=True)
    timings.elapsed_s = time.perf_counter() - start
    started = await wait_running(reactor, api, created)
    started["all_running_ms"] = (time.perf_counter() - start) * 1000
    stats = await api.stats()
    live.extend(created)
    lag = (stats or {}).get("reactorLag", {}).get("maxMs")
    results.setdefault("lag_ms", {})["burst"] = lag
    results["burst_create"] = timings.summary()
    results["burst_started"] = started
    results["burst_live_before"] = len(live) - len(created)
    results["burst_stats"] = stats
    before = (results.get("rss_bytes") or {}).get("health")
    if stats and before and live:
        results["daemon_bytes_per_session"] = (stats["rssBytes"] - before) / len(live)
    if args.sessions_outlive_daemon:
        programs = [s["pid"] for s in await api.sessions() or [] if isinstance(s.get("pid"), int)]
        results["holder_memory"] = memory_of(holders_of(programs))
    say(f"burst: {len(created)} created, {started}")


async def delete_all(reactor: Any, api: Api, args: Any) -> dict[str, Any]:
    """DELETE every session, wait for all to exit, then remove the exited."""
    listing = await api.sessions() or []
    pids = [s["pid"] for s in listing if isinstance(s.get("pid"), int)]
    ids = iter([s.get("id") for s in listing])
    timings = await run_paced(
        reactor,
        len(listing),
        args.concurrency,
        0,
        lambda: api.call("DELETE", f"/api/sessions/{next(ids)}"),
    )
    start = time.perf_counter()
    remaining = listing
    while remaining and time.perf_counter() - start < STOP_TIMEOUT:
        await task.deferLater(reactor, 0.1)
        listing = await api.sessions() or []
        remaining = [s for s in listing if s.get("status") != "exited"]
    cleanup = await api.call("POST", "/api/cleanup-exited")
    after = await api.sessions()
    return {
        "deleted": timings.summary(),
        "all_exited_ms": (time.perf_counter() - start) * 1000,
        "still_running": len(remaining),
        "cleanup_exited": cleanup.kind,
        "left_after_cleanup": len(after) if after is not None else None,
        "pids": pids,
    }


async def run_phases(reactor: Any, api: Api, args: Any, results: dict) -> None:
    live: list[str] = []
    results["phase"] = "health"
    await measure_lag(api, results, "health", phase_health(reactor, api, args, results))
    results["phase"] = "create"
    await measure_lag(api, results, "create", phase_create(reactor, api, args, results, live))
    results["phase"] = "top-up"
    await top_up(reactor, api, args, live)
    results["phase"] = "list"
    await measure_lag(api, results, "list", phase_list(reactor, api, args, results))
    results["phase"] = "first output"
    await measure_lag(api, results, "first_output", phase_first_output(reactor, api, args, results))
    results["phase"] = "burst"
    await phase_burst(reactor, api, args, results, live)
    results["phase"] = "done"


async def run(reactor: Any, args: Any) -> dict[str, Any]:
    """Start the daemon, run every phase under the overall timeout, clean up."""
    results: dict[str, Any] = {"args": vars(args), "machine": machine()}
    workdir = tempfile.mkdtemp(prefix="vibetwist-bench-")
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max(args.concurrency, args.burst) + 2
    # Let go of idle connections before the daemon closes them (--request-timeout, 30 s):
    # a request sent on one it is closing just then would fail.
    pool.cachedConnectionTimeout = IDLE_KEEP
    client = HTTPClient(Agent(reactor, pool=pool))
    daemon = start_daemon(reactor, workdir, args.sessions_outlive_daemon)
    try:
        port = await daemon.port.addTimeout(START_TIMEOUT, reactor)
        say(f"daemon pid {daemon.pid} listening on {HOST}:{port}")
        await run_bounded(reactor, Api(reactor, client, port), args, results)
        results["cleanup"] = await delete_all(reactor, Api(reactor, client, port), args)
        results["delete"] = results["cleanup"]["deleted"]
    except Exception as exc:  # noqa: BLE001 (reported with the partial results)
        results.setdefault("error", f"{type(exc).__name__}: {exc}")
    finally:
        results["daemon_stop"] = await stop_daemon(reactor, daemon)
        pids = results.get("cleanup", {}).get("pids", [])
        results["leaked_pids"] = processes_alive(pids)
        results["leaked_pids"] += holders_in(os.path.join(workdir, "control"))
        for pid in results["leaked_pids"]:
            os.kill(pid, signal.SIGKILL)  # our daemon's children (or holders), by id
        log = read_log(daemon.log.name)
        results["daemon_log_problems"] = log_problems(log)
        results["daemon_access_statuses"] = access_statuses(log)
        if "error" in results:
            results["daemon_log_tail"] = log_tail(log)
        await pool.closeCachedConnections()
        results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        if args.keep_dir:
            results["workdir"] = workdir
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


async def run_bounded(reactor: Any, api: Api, args: Any, results: dict) -> None:
    """Run the phases; at ``--timeout`` cancel them and note where they were."""
    phases = defer.Deferred.fromCoroutine(run_phases(reactor, api, args, results))

    def expire() -> None:
        api.stopped = True
        phases.cancel()

    timer = reactor.callLater(args.timeout, expire)
    try:
        await phases
    except Exception as exc:  # noqa: BLE001 (reported; cleanup still runs)
        if api.stopped:
            results["error"] = f"overall timeout in phase {results['phase']}"
        else:
            results["error"] = f"{type(exc).__name__} in phase {results['phase']}: {exc}"
    finally:
        if timer.active():
            timer.cancel()
    if "error" in results:
        say(f"stopped early: {results['error']}")


# ---------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def latency_rows(results: dict[str, Any]) -> list[str]:
    names = [
        ("health_sequential", "health, sequential"),
        ("health_paced", "health, paced"),
        ("create_sequential", "create, sequential"),
        ("create_paced", "create, paced"),
        ("list_paced", "list, paced, sessions live"),
        ("burst_create", "create, burst at once"),
        ("delete", "delete all, unpaced"),
        ("first_output_daemon", "first output, vibetwist"),
        ("first_output_raw_pty", "first output, raw PTY"),
    ]
    head = f"{'figure (ms)':30} {'ok':>4} {'fail':>4}"
    head += "".join(f" {c:>8}" for c in ("avg", "p50", "p99", "min", "max"))
    rows = [head, "-" * len(head)]
    for key, label in names:
        s = results.get(key)
        if s is None:
            continue
        row = f"{label:30} {s['ok']:>4} {s['failed']:>4}"
        row += "".join(f" {fmt(s.get(c)):>8}" for c in ("avg", "p50", "p99", "min", "max"))
        rows.append(row)
        if s["failures"]:
            rows.append(f"{'':30} failures: {s['failures']}")
    return rows


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= target else "MISS"


def figure_rows(results: dict[str, Any]) -> list[str]:
    def get(key: str) -> float | None:
        return (results.get(key) or {}).get("p50")

    create_ratio = ratio(get("create_paced"), get("health_paced"))
    create_seq = ratio(get("create_sequential"), get("health_sequential"))
    list_ratio = ratio(get("list_paced"), get("health_paced"))
    first_ratio = ratio(get("first_output_daemon"), get("first_output_raw_pty"))
    stats = results.get("burst_stats") or {}
    lag = stats.get("reactorLag", {}).get("maxMs")
    rss = stats.get("rssBytes")
    per = results.get("daemon_bytes_per_session")
    holders = results.get("holder_memory") or {}
    holder_rows = []
    if holders.get("processes"):
        holder_rows.append(
            (
                "holder memory, own",
                fmt(holders["own"] / 2**20, " MiB"),
                f"each of {holders['processes']}: PSS {fmt(holders['pss'] / 2**20)} MiB,"
                f" RSS {fmt(holders['rss'] / 2**20)} MiB",
            )
        )
    burst = results["args"]["burst"]
    figures = [
        (
            "create p50 / health p50",  # the paced shape of both
            fmt(create_ratio),
            f"target <= {TARGET_CREATE_RATIO}: {verdict(create_ratio, TARGET_CREATE_RATIO)}",
        ),
        (
            "create p50 / health p50, seq.",
            fmt(create_seq),
            "one at a time, for reference",
        ),
        (
            "list p50 / health p50",
            fmt(list_ratio),
            f"{results.get('list_live_sessions')} sessions live",
        ),
        (
            "list p50",
            fmt(get("list_paced"), " ms"),
            f"{results.get('list_live_sessions')} sessions live; target <= {TARGET_LIST_MS:g} ms"
            f" (issue 17: with 1000, --sessions 1000): {verdict(get('list_paced'), TARGET_LIST_MS)}",
        ),
        (
            "first output vibetwist / raw",
            fmt(first_ratio),
            f"p50 {fmt(get('first_output_daemon'))} vs raw PTY spawn {fmt(get('first_output_raw_pty'))} ms"
            f" in this run; target <= {TARGET_FIRST_OUTPUT_RATIO:g}:"
            f" {verdict(first_ratio, TARGET_FIRST_OUTPUT_RATIO)}",
        ),
        (
            f"reactor stall, burst of {burst}",
            fmt(lag, " ms"),
            (
                f"target <= {TARGET_BURST_LAG_MS:g} ms: {verdict(lag, TARGET_BURST_LAG_MS)};"
                f" {results.get('burst_live_before')} live before,"
                f" {stats.get('sessions')} after"
            ),
        ),
        ("daemon RSS after burst", fmt(rss and rss / 2**20, " MiB"), ""),
        (
            "daemon RSS per session",
            fmt(per and per / 2**10, " KiB"),
            "growth from before the first create to after the burst",
        ),
        *holder_rows,
        ("reactor stall per phase", "", f"{results.get('lag_ms')} ms"),
    ]
    return [f"{label:30} {value:>10}   {note}" for label, value, note in figures]


def describe_exit(code: int | None) -> str:
    """twistd ends itself with the signal that stopped it, so -15 is normal."""
    if code is None:
        return "still running?"
    if code < 0:
        return f"ended by signal {-code}"
    return f"exit status {code}"


def health_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for key in ("create_started", "burst_started"):
        s = results.get(key)
        if s:
            rows.append(
                f"{key}: {s['running']} running {s['wait_ms']:.0f} ms after the last"
                " answer"
                + (f", {s['all_running_ms']:.0f} ms after the first POST" if "all_running_ms" in s else "")
                + (f", not running: {s['not_running']}" if s["not_running"] else "")
            )
    if results.get("first_output_problems"):
        rows.append(f"first-output stream problems: {results['first_output_problems']}")
    cleanup = results.get("cleanup")
    if cleanup:
        rows.append(
            f"cleanup: DELETE {cleanup['deleted']['ok']} ok,"
            f" {cleanup['deleted']['failed']} failed; all exited in"
            f" {cleanup['all_exited_ms']:.0f} ms ({cleanup['still_running']} not),"
            f" cleanup-exited {cleanup['cleanup_exited']},"
            f" {cleanup['left_after_cleanup']} left"
        )
    stop = results.get("daemon_stop", {})
    rows.append(
        f"daemon stop: {describe_exit(stop.get('exit_code'))}"
        f" {fmt(stop.get('stop_ms'), ' ms')} after SIGTERM"
        + (" (needed SIGKILL)" if stop.get("killed") else "")
    )
    if results.get("leaked_pids"):
        rows.append(f"session processes left alive (killed): {results['leaked_pids']}")
    if results.get("daemon_access_statuses"):  # only with --access-log
        statuses = results["daemon_access_statuses"]
        rows.append(f"daemon access log, answers by status: {statuses}")
    for line in results.get("daemon_log_problems", []):
        rows.append(f"daemon log: {line}")
    if results.get("error"):
        rows.append(f"ERROR: {results['error']}")
        rows.extend(f"  daemon: {line}" for line in results.get("daemon_log_tail", []))
    return rows


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    a = results["args"]
    say("")
    say(
        f"vibetwist daemon benchmark: paced = {a['requests']} requests,"
        f" {a['concurrency']} in flight, <= {a['rate']}/s"
    )
    if a.get("sessions_outlive_daemon"):
        say("daemon run with --sessions-outlive-daemon")
    say(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, {m['platform']}")
    say(f"load average (1, 5, 15 min): {m['load_before']} before, {m['load_after']} after")
    say("")
    for line in latency_rows(results):
        say(line)
    say("")
    for line in figure_rows(results) + health_rows(results):
        say(line)


# ---------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100, help="sessions kept live")
    parser.add_argument("--burst", type=int, default=50, help="creates fired at once")
    parser.add_argument("--requests", type=int, default=100, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=10, help="in flight")
    parser.add_argument("--rate", type=float, default=50, help="starts per second")
    parser.add_argument("--rounds", type=int, default=20, help="first-output repeats")
    parser.add_argument("--timeout", type=float, default=300, help="seconds, overall")
    parser.add_argument("--json", metavar="OUT", help="write results as JSON here")
    parser.add_argument("--keep-dir", action="store_true", help="keep the daemon log")
    parser.add_argument(
        "--sessions-outlive-daemon",
        action="store_true",
        help="run the daemon so (each session held by a process of its own)",
    )
    args = parser.parse_args(argv)
    for name in ("sessions", "burst", "requests", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def install_watchdog(seconds: float) -> None:
    """Hard stop if the reactor itself ever hangs: kill the daemon and exit."""

    def expire(signum: int, frame: Any) -> None:
        print("watchdog: overall time exceeded, killing the daemon", file=sys.stderr)
        for daemon in DAEMONS:
            kill_if_alive(daemon)
        os._exit(3)

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(seconds))


def finish(results: dict[str, Any], args: argparse.Namespace) -> None:
    report(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2, default=str)
    if results.get("error"):
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Cleanup after the phases is bounded too: about a minute at most.
    install_watchdog(args.timeout + START_TIMEOUT + 90)

    async def bench(reactor: Any) -> None:
        results = await run(reactor, args)
        finish(results, args)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(bench(reactor)))


if __name__ == "__main__":
    main()
