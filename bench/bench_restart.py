"""Benchmark a restart in place: how long the switch takes, and what clients see of it.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_restart.py                        # 1 and 100 sessions, 3 restarts each
    python bench/bench_restart.py --sessions 1,100,300 --rounds 5 --json out.json

For each session count the script starts a daemon of its own (``twistd -n vibetunnel
--measure-lag`` on 127.0.0.1, as ``bench_daemon.py`` does), creates that many
sessions (``cat``, and one counter printing a numbered line every 5 ms), watches the
counter with a WebSocket viewer that reconnects as soon as its socket closes, and
asks ``/api/health`` every 10 ms on a new connection each time. Then it sends
``SIGUSR2`` ``--rounds`` times, each once the previous restart is over, and
measures, per restart:

check
    What the daemon logged: how long the start check of the code installed now took
    (a child process importing it and parsing the command line), while it served on.
drain
    From when it stopped serving (listening sockets no longer read, WebSockets
    closed with 1012) to the exec: requests under way answered.
not serving
    What the new daemon logged: from when the old one stopped serving to when its
    reactor runs, having taken over every socket and session.
signal to answer
    From the SIGUSR2 to the first health answer of the new daemon (its uptime
    starts again).
longest health wait, errors
    The longest a health request waited for its answer (it sits in the listening
    socket's backlog during the switch), and how many failed (none should).
viewer gap
    The longest time between two messages of the counter's viewer: the last
    output of the old daemon, the close, the reconnect, the new daemon's replay.

At the end the counter's recording must hold every number once. The daemon is
stopped (SIGTERM, SIGKILL after 10 s) and everything it left is removed.
``--sessions-outlive-daemon`` runs the daemons so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from treq.client import HTTPClient
from twisted.internet import defer, endpoints, task
from twisted.web.client import Agent, HTTPConnectionPool

# bench/ for bench_daemon's helpers, and the checkout for the tests' programs.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_daemon import (  # noqa: E402 (found through the paths set just above)
    HOST,
    IDLE_KEEP,
    START_TIMEOUT,
    Api,
    fmt,
    install_watchdog,
    machine,
    read_log,
    say,
    start_daemon,
    stop_daemon,
    wait_running,
)

from tests.support.programs import counter  # noqa: E402

COUNTER = counter(0.005, sys.executable)
CHECKED = re.compile(r"restart: the daemon as installed now starts \(checked in (\d+) ms\)")
DRAINED = re.compile(r"restart: handing over (\d+) sessions .*\((\d+) ms after serving stopped\)")
TOOK_OVER = re.compile(r"restart: took over (\d+) sessions .* serving again (\d+) ms after")
REFUSED = ("restart refused", "restart failed", "restart abandoned")
HEALTH_EVERY = 0.010
RESTART_TIMEOUT = 120.0


class Viewer(WebSocketClientProtocol):
    """The counter's viewer: the arrival time of every message, and its close code."""

    def onOpen(self) -> None:
        self.factory.owner.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.owner.arrivals.append(time.perf_counter())

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.owner.closed(code)


class Watcher:
    """Keeps one viewer of a session connected: it reconnects as soon as its socket closes."""

    def __init__(self, reactor: Any, port: int, session: str) -> None:
        self.reactor = reactor
        self.port = port
        self.session = session
        self.arrivals: list[float] = []
        self.closes: list[int | None] = []
        self.running = True
        self.socket: Viewer | None = None

    def connect(self) -> None:
        factory = WebSocketClientFactory(
            f"ws://{HOST}:{self.port}/ws/sessions/{self.session}", reactor=self.reactor
        )
        factory.protocol = Viewer
        factory.owner = self
        factory.setProtocolOptions(openHandshakeTimeout=30, closeHandshakeTimeout=2)
        endpoint = endpoints.TCP4ClientEndpoint(self.reactor, HOST, self.port, timeout=30)
        endpoint.connect(factory).addErrback(lambda _: self.closed(None))

    def opened(self, socket: Viewer) -> None:
        self.socket = socket

    def closed(self, code: int | None) -> None:
        self.socket = None
        self.closes.append(code)
        if self.running and code not in (1000, 4404):  # 1000: the session has ended
            self.connect()

    def stop(self) -> None:
        self.running = False
        if self.socket is not None:
            self.socket.dropConnection(abort=True)

    def longest_gap(self, start: float, end: float) -> float | None:
        times = [t for t in self.arrivals if start <= t <= end]
        gaps = [b - a for a, b in zip(times, times[1:])]
        return max(gaps) * 1000 if gaps else None


class Poller:
    """Asks /api/health every HEALTH_EVERY seconds, each time on a new connection."""

    def __init__(self, reactor: Any, port: int) -> None:
        self.reactor = reactor
        self.client = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        self.base = f"http://{HOST}:{port}"
        #: (sent, answered, status or error name, uptime)
        self.answers: list[tuple[float, float, Any, float | None]] = []
        self.running = True
        self.done: defer.Deferred[None] | None = None

    def start(self) -> None:
        self.done = defer.Deferred.fromCoroutine(self._loop())

    async def _loop(self) -> None:
        import treq

        while self.running:
            sent = time.perf_counter()
            try:
                response = await self.client.get(self.base + "/api/health", timeout=60)
                body = json.loads(await treq.content(response))
                self.answers.append((sent, time.perf_counter(), response.code, body.get("uptime")))
            except Exception as exc:  # noqa: BLE001 (counted, never raised)
                self.answers.append((sent, time.perf_counter(), type(exc).__name__, None))
            await task.deferLater(self.reactor, HEALTH_EVERY)

    def first_new(self, after: float) -> float | None:
        """When the first answer of a new daemon (its uptime fell) came, after a time."""
        previous = None
        for _, answered, _, uptime in self.answers:
            if uptime is None:
                continue
            if previous is not None and uptime < previous and answered >= after:
                return answered
            previous = uptime
        return None

    def window(self, start: float, end: float) -> list[tuple[float, float, Any, float | None]]:
        return [a for a in self.answers if start <= a[0] <= end]


def logged(pattern: re.Pattern[str], log: list[str]) -> list[tuple[str, ...]]:
    return [m.groups() for m in map(pattern.search, log) if m]


async def restart_once(reactor: Any, daemon: Any, log_path: str) -> dict[str, Any]:
    before = len(logged(TOOK_OVER, read_log(log_path)))
    refused = sum(line.count(r) for line in read_log(log_path) for r in REFUSED)
    start = time.perf_counter()
    os.kill(daemon.pid, signal.SIGUSR2)
    while True:
        log = read_log(log_path)
        if len(logged(TOOK_OVER, log)) > before:
            break
        if sum(line.count(r) for line in log for r in REFUSED) > refused:
            raise RuntimeError("the restart did not happen: " + " | ".join(log[-5:]))
        if time.perf_counter() - start > RESTART_TIMEOUT:
            raise RuntimeError("the restart took too long")
        await task.deferLater(reactor, 0.01)
    took = logged(TOOK_OVER, log)[-1]
    return {
        "signalled": start,
        "check_ms": int(logged(CHECKED, log)[-1][0]),
        "drain_ms": int(logged(DRAINED, log)[-1][1]),
        "handed_sessions": int(logged(DRAINED, log)[-1][0]),
        "took_over": int(took[0]),
        "not_serving_ms": int(took[1]),
    }


def counted(path: str) -> tuple[int, bool]:
    """How many counter lines the recording holds, and whether each number is there once."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[1:-1]
    text = "".join(e[2] for e in map(json.loads, lines) if len(e) == 3 and e[1] == "o")
    numbers = [int(line[1:]) for line in text.split("\r\n")[:-1]]
    return len(numbers), numbers == list(range(1, len(numbers) + 1))


async def bench_one(reactor: Any, count: int, args: argparse.Namespace) -> dict[str, Any]:
    """A daemon with count sessions, restarted --rounds times."""
    workdir = tempfile.mkdtemp(prefix="vibetwist-bench-restart-")
    daemon = start_daemon(reactor, workdir, args.sessions_outlive_daemon)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.cachedConnectionTimeout = IDLE_KEEP  # before the daemon closes them
    api: Api | None = None
    watcher = poller = None
    result: dict[str, Any] = {"sessions": count, "rounds": []}
    try:
        port = await daemon.port.addTimeout(START_TIMEOUT, reactor)
        api = Api(reactor, HTTPClient(Agent(reactor, pool=pool)), port)
        created: list[str] = []
        await api.create(COUNTER, created)
        counter = created[0]
        for _ in range(count - 1):
            await api.create(["cat"], created)
        started = await wait_running(reactor, api, created, timeout=120)
        if started["not_running"]:
            raise RuntimeError(f"sessions not running: {started}")
        say(f"{count} sessions running")
        watcher = Watcher(reactor, port, counter)
        watcher.connect()
        poller = Poller(reactor, port)
        poller.start()
        await task.deferLater(reactor, 1.0)
        for n in range(args.rounds):
            one = await restart_once(reactor, daemon, daemon.log.name)
            await task.deferLater(reactor, 1.0)
            end = time.perf_counter()
            window = poller.window(one["signalled"], end)
            new = poller.first_new(one["signalled"])
            one["signal_to_answer_ms"] = (new - one["signalled"]) * 1000 if new else None
            one["longest_health_ms"] = max(((b - a) * 1000 for a, b, _, _ in window), default=None)
            one["health_answers"] = len(window)
            one["health_errors"] = [s for _, _, s, _ in window if s != 200]
            one["viewer_gap_ms"] = watcher.longest_gap(one["signalled"], end)
            one.pop("signalled")
            result["rounds"].append(one)
            say(f"{count} sessions, restart {n + 1}: {one}")
        result["viewer_closes"] = watcher.closes
        await api.call("DELETE", f"/api/sessions/{counter}")
        await task.deferLater(reactor, 0.5)
        result["counter_lines"], result["counter_each_once"] = counted(
            os.path.join(workdir, "control", counter, "stdout")
        )
    finally:
        if watcher is not None:
            watcher.stop()
        if poller is not None:
            poller.running = False
            if poller.done is not None:
                await poller.done
        if api is not None:
            for session in await api.sessions() or []:
                await api.call("DELETE", f"/api/sessions/{session['id']}")
        result["daemon_stop"] = await stop_daemon(reactor, daemon)
        await pool.closeCachedConnections()
        if args.keep_dir:
            result["workdir"] = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    say("")
    flag = " (--sessions-outlive-daemon)" if results["args"]["sessions_outlive_daemon"] else ""
    say(
        f"vibetwist restart in place{flag}: medians of {results['args']['rounds']} restarts (max in brackets)"
    )
    say(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, {m['platform']}")
    say(f"load average (1, 5, 15 min): {m['load_before']} before, {m.get('load_after')} after")
    say("")
    columns = [
        ("check", "check_ms"),
        ("drain", "drain_ms"),
        ("not serving", "not_serving_ms"),
        ("signal to answer", "signal_to_answer_ms"),
        ("longest health", "longest_health_ms"),
        ("viewer gap", "viewer_gap_ms"),
    ]
    say(f"{'sessions':>8} " + " ".join(f"{name + ' ms':>20}" for name, _ in columns) + "  health errors")
    for one in results["runs"]:
        rounds = one.get("rounds", [])
        cells = []
        for _, key in columns:
            values = [r.get(key) for r in rounds]
            top = max((v for v in values if v is not None), default=None)
            cells.append(f"{fmt(median(values)):>11} ({fmt(top):>6})")
        errors = sum(len(r["health_errors"]) for r in rounds)
        answers = sum(r["health_answers"] for r in rounds)
        say(f"{one['sessions']:>8} " + " ".join(f"{c:>20}" for c in cells) + f"  {errors} of {answers}")
    say("")
    for one in results["runs"]:
        if "counter_lines" in one:
            say(
                f"{one['sessions']} sessions: the counter's recording holds {one['counter_lines']} lines,"
                f" each number once: {'yes' if one['counter_each_once'] else 'NO'};"
                f" viewer closes: {one.get('viewer_closes')}"
            )
        if one.get("error"):
            say(f"{one['sessions']} sessions: ERROR {one['error']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,100", help="session counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="restarts per session count")
    parser.add_argument("--timeout", type=float, default=600, help="seconds, overall")
    parser.add_argument("--json", metavar="OUT", help="write results as JSON here")
    parser.add_argument("--keep-dir", action="store_true", help="keep the daemons' logs")
    parser.add_argument("--sessions-outlive-daemon", action="store_true", help="run the daemons so")
    args = parser.parse_args(argv)
    args.counts = [int(n) for n in args.sessions.split(",")]
    if args.rounds < 1 or any(n < 1 for n in args.counts):
        parser.error("--rounds and every session count must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    install_watchdog(args.timeout + 120)  # a hung run ends, and kills its daemons

    async def bench(reactor: Any) -> None:
        results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items()}, "machine": machine()}
        results["runs"] = []
        failed = False
        for count in args.counts:
            try:
                results["runs"].append(await bench_one(reactor, count, args))
            except Exception as exc:  # noqa: BLE001 (reported with the rest)
                results["runs"].append({"sessions": count, "error": f"{type(exc).__name__}: {exc}"})
                failed = True
        results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        report(results)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(results, out, indent=2, default=str)
        failed = failed or any(not r.get("counter_each_once", False) for r in results["runs"])
        failed = failed or any(r["health_errors"] for one in results["runs"] for r in one.get("rounds", []))
        if failed:
            raise SystemExit(1)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(bench(reactor)))


if __name__ == "__main__":
    main()
