"""How soon what happens in a session reaches a client of ``GET /api/events``.

Starts a daemon of this checkout (``--command-min-seconds 0.5``, a clean HOME), follows
``/api/events`` from a thread that notes when each event arrives, and has programs in
sessions write down (wall clock, this machine) the moment each thing happens:

- ``bell``: ``--sessions`` programs ring the bell every 1.3 s (the daemon sends at most
  one bell a second per session), noting the time just before each write;
- ``title``: the same programs set their title every 0.1 s;
- ``command-finished``: an interactive bash runs ``sh -c 'sleep 0.6; date +%s.%N >> F'``
  again and again: the time noted is just before the command exits; the event comes once
  bash has taken its terminal back and printed its prompt;
- ``needs-input``: a program prints a prompt, notes the time and reads its terminal (and
  works 0.5 s on each answer); the daemon waits for 1 s of quiet before it looks, so this
  one is about 1 s by design.

It prints, for each kind, how many events came and the p50, p90 and largest delay
from the moment noted to the event's arrival; and how long the daemon's own look at
output takes (the scanner for BEL and OSC strings, per MB of plain output).

    .venv/bin/python bench/bench_events.py               # about 40 s
    .venv/bin/python bench/bench_events.py --rounds 40 --sessions 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_idle import HERE, request, start_daemon, stop_daemon  # noqa: E402 (found through the path above)

RINGER = """
import sys, time
path, rounds = sys.argv[1], int(sys.argv[2])
time.sleep(1.0)
with open(path, "a") as out:
    for i in range(rounds):
        for j in range(11):
            t = time.time()
            sys.stdout.write(f"\\033]2;title {i}-{j}\\007")
            sys.stdout.flush()
            print("title", i, j, t, file=out, flush=True)
            time.sleep(0.1)
        t = time.time()
        sys.stdout.write("\\a")
        sys.stdout.flush()
        print("bell", i, 0, t, file=out, flush=True)
        time.sleep(0.2)
time.sleep(60)
"""

ASKER = """
import sys, time
path, rounds = sys.argv[1], int(sys.argv[2])
for i in range(rounds):
    sys.stdout.write(f"answer {i}? ")
    sys.stdout.flush()
    with open(path, "a") as out:
        print("ask", i, 0, time.time(), file=out, flush=True)
    sys.stdin.readline()
    time.sleep(0.5)  # some work: a prompt right after the answer's echo is not waiting
"""


class EventReader(threading.Thread):
    """Follows /api/events, noting (arrival time, event) for each."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.ready = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        self.ready.set()
        kind = None
        while True:
            line = response.fp.readline()
            if not line:
                return
            arrived = time.time()
            if line.startswith(b"event:"):
                kind = line[6:].strip().decode()
            elif line.startswith(b"data:") and kind is not None:
                self.events.append((arrived, dict(json.loads(line[5:]), type=kind)))
                kind = None


def noted(path: Path) -> dict[tuple[str, str, str], float]:
    """The moments the programs noted: (kind, round, step) -> time."""
    found = {}
    if path.exists():
        for line in path.read_text().splitlines():
            kind, i, j, t = line.split()
            found[(kind, i, j)] = float(t)
    return found


def delays(reader: EventReader, moments: dict[tuple[str, str, str], float], sessions: dict[str, Path]) -> Any:
    result: dict[str, list[float]] = {"bell": [], "title": [], "command-finished": [], "needs-input": []}
    seen_bells: dict[str, int] = {}
    commands: dict[str, int] = {}
    asks: dict[str, int] = {}
    for arrived, event in reader.events:
        sid = event.get("sessionId")
        if sid not in sessions:
            continue
        marks = moments[sid]
        kind = event["type"]
        if kind == "title" and event["title"].startswith("title "):
            i, j = event["title"][6:].split("-")
            key = ("title", i, j)
        elif kind == "bell":
            n = seen_bells.get(sid, 0)
            seen_bells[sid] = n + 1
            key = ("bell", str(n), "0")
        elif kind == "command-finished":
            n = commands.get(sid, 0)
            commands[sid] = n + 1
            key = ("done", str(n), "0")
        elif kind == "needs-input":
            n = asks.get(sid, 0)
            asks[sid] = n + 1
            key = ("ask", str(n), "0")
        else:
            continue
        if key in marks:
            result[kind].append(arrived - marks[key])
    return result


def figures(values: list[float]) -> str:
    if not values:
        return "none"
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return (
        f"{len(values):4} events, p50 {1000 * statistics.median(values):7.1f} ms, "
        f"p90 {1000 * p90:7.1f} ms, max {1000 * values[-1]:7.1f} ms"
    )


def scanner_cost() -> float:
    """Milliseconds the daemon's scanner takes per MB of plain terminal output."""
    from vibetwist.model.termsignals import SignalScanner

    chunk = ("drwxr-xr-x  2 user user  4096 Dec  3 14:33 \x1b[01;34msrc\x1b[0m\r\n" * 64)[:4095]
    scanner = SignalScanner()
    count = 2000
    start = time.perf_counter()
    for _ in range(count):
        scanner.feed(chunk)
    seconds = time.perf_counter() - start
    return 1000 * seconds / (count * len(chunk) / 1e6)


def watch_cost() -> float:
    """Microseconds a session's activity watch takes per output read while a command runs
    (so it asks a real PTY for its foreground group each time), scanner included."""
    import pty
    from types import SimpleNamespace

    from twisted.internet.task import Clock

    from vibetwist.sessions.activity import ActivityMonitor
    from vibetwist.sessions.events import SessionEvents

    master, slave = pty.openpty()
    try:
        process = SimpleNamespace(pid=os.getpid(), foreground=lambda: os.tcgetpgrp(master))
        session = SimpleNamespace(
            id="bench", process=process, live=True, info=SimpleNamespace(name="bench", command=("bash",))
        )
        clock = Clock()
        watch = ActivityMonitor(clock, SessionEvents()).watch(session)
        watch._command = SimpleNamespace(group=-1, line="make", started=0.0)  # noqa: SLF001 (a command runs)
        chunk = ("drwxr-xr-x  2 user user  4096 Dec  3 14:33 \x1b[01;34msrc\x1b[0m\r\n" * 64)[:4095]
        count = 5000
        start = time.perf_counter()
        for _ in range(count):
            watch.output(chunk)
        return 1e6 * (time.perf_counter() - start) / count
    finally:
        os.close(master)
        os.close(slave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="bells (and 11 titles each) per session")
    parser.add_argument("--sessions", type=int, default=4, help="sessions ringing at once")
    parser.add_argument("--commands", type=int, default=15)
    parser.add_argument("--asks", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    print(
        f"vibetwist events benchmark: {len(os.sched_getaffinity(0))} CPUs, "
        f"Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    daemon, port = start_daemon("events", HERE, ["--command-min-seconds", "0.5"], work)
    try:
        reader = EventReader(port)
        reader.start()
        reader.ready.wait(10)
        sessions: dict[str, Path] = {}

        def create(command: list[str]) -> str:
            code, body = request(port, "POST", "/api/sessions", {"command": command, "workingDir": str(work)})
            if code != 200:
                raise RuntimeError(f"create answered {code}: {body!r}")
            return str(body["sessionId"])

        for n in range(args.sessions):
            path = work / f"ring-{n}.txt"
            sessions[create([sys.executable, "-c", RINGER, str(path), str(args.rounds)])] = path
        done = work / "done.txt"
        shell = create(["bash"])
        sessions[shell] = done
        asks = work / "asks.txt"
        asker = create([sys.executable, "-c", ASKER, str(asks), str(args.asks)])
        sessions[asker] = asks
        time.sleep(1.5)
        for i in range(args.commands):
            command = f"sh -c 'sleep 0.6; echo done {i} 0 $(date +%s.%N) >> {done}'\r"
            request(port, "POST", f"/api/sessions/{shell}/input", {"text": command})
            time.sleep(1.0)
        for _ in range(args.asks):
            deadline = time.time() + 5
            before = sum(1 for _, e in reader.events if e["type"] == "needs-input")
            while time.time() < deadline:
                if sum(1 for _, e in reader.events if e["type"] == "needs-input") > before:
                    break
                time.sleep(0.02)
            request(port, "POST", f"/api/sessions/{asker}/input", {"text": "yes\r"})
        deadline = time.time() + args.rounds * 1.5 + 10
        ringers = [path for path in sessions.values() if path.name.startswith("ring-")]
        while time.time() < deadline:
            if all(sum(k[0] == "bell" for k in noted(p)) >= args.rounds for p in ringers):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        moments = {sid: noted(path) for sid, path in sessions.items()}
        result = delays(reader, moments, sessions)
        for kind in ("bell", "title", "command-finished", "needs-input"):
            print(f"  {kind:17} {figures(result[kind])}", flush=True)
        print(f"  scanner: {scanner_cost():.2f} ms per MB of plain output (ls -l lines, 4095-byte reads)")
        print(f"  watch: {watch_cost():.1f} us per output read while a command runs (tcgetpgrp included)")
    finally:
        stop_daemon(daemon)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
