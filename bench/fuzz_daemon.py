"""Throw tens of thousands of hostile cases at a real daemon and count the answers.

Run it from the repository root::

    python bench/fuzz_daemon.py                 # 30,000 cases, a few minutes
    python bench/fuzz_daemon.py --cases 3000    # a quick run
    python bench/fuzz_daemon.py --seed 7 --workers 16
    python bench/fuzz_daemon.py --cases 6000 --passes 3   # leak or high-water mark?

It starts ``twistd -n vibetunnel`` of this checkout on a free loopback port with
its own control directory in a temporary folder, next to a canary file, then runs
the generators of ``tests/support/fuzz.py`` in phases:

raw http
    random bytes, broken request lines and methods, huge and garbage headers, bad
    chunked encoding, truncated bodies, invalid paths, host/origin tricks, pipelining;
json
    random JSON bodies (wrong types, huge numbers, NaN, odd text, nesting, cut short)
    on every POST/PATCH route;
paths
    session-id tricks (``..``, ``%2e%2e%2f``, ``%00``, slashes, long, unicode) on every
    route that takes an id, REST and WebSocket;
ws frames
    hostile frames (bad opcodes, reserved bits, unmasked, oversized, truncated, invalid
    UTF-8, fragmented control frames) on the three sockets;
ws json
    random JSON messages on the three sockets, each followed by a message the socket
    must still answer;
flood
    2,000 connections at once (idle, half a request, a request never read, reset);
control dir
    hostile folders, links and session files, then a restart of the daemon.

With ``--passes N`` the first five phases run N times over (new cases of the same
kinds) before the flood and the restart. After each pass it prints the daemon's RSS,
its pending timers and the objects it made since startup, by type, that changed
since the previous pass (from ``/api/stats?objects=1``). Memory that keeps growing
pass after pass is a leak; memory that grows in the first pass and then holds is
the allocator's high-water mark.

After each phase it checks that the daemon runs, that a session can be created, typed
into and read, that the canary is untouched and nothing new appeared beside the
control directory. It prints the cases per category, every status or close code, any
5xx or traceback, and the daemon's RSS and descriptors before and after. The exit
status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import fuzz  # noqa: E402

LISTENING = re.compile(rb"vibetwist listening on http://127\.0\.0\.1:(\d+)/")


class Daemon:
    """The daemon of this checkout in a subprocess."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.control_dir = base / "control"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = open(self.base / f"daemon-{self.runs}.log", "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(self.base / "home"), SHELL="/bin/bash")
        (self.base / "home").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "vibetunnel", "--listen", "tcp:0:interface=127.0.0.1", "--control-dir", str(self.control_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base, env=env,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log().encode())
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                raise SystemExit(f"the daemon exited while starting:\n{self.log()}")
            time.sleep(0.05)
        raise SystemExit("the daemon did not start within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return (self.base / f"daemon-{self.runs}.log").read_text(errors="replace")

    def rss_mb(self) -> float:
        assert self.process is not None
        pages = int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6

    def fds(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


class Run:
    """The phases, their tally and the checks between them."""

    def __init__(self, daemon: Daemon, args: argparse.Namespace) -> None:
        self.daemon = daemon
        self.args = args
        self.rng = random.Random(args.seed)
        self.tally = fuzz.Tally()
        self.problems: list[str] = []
        self.sink = ""
        self.before: dict[str, tuple[int, float]] = {}

    @property
    def port(self) -> int:
        return self.daemon.port

    def create(self, command: list[str]) -> str:
        code, body = fuzz.request(
            self.port, "POST", "/api/sessions", json.dumps({"command": command}).encode()
        )
        if code != 200:
            raise RuntimeError(f"create answered {code}: {body[:200]!r}")
        return str(json.loads(body)["sessionId"])

    def new_sink(self) -> None:
        self.sink = self.create(["sh", "-c", "stty raw -echo; cat > /dev/null"])
        time.sleep(0.3)

    def check(self, phase: str) -> None:
        """The daemon runs, nothing changed beside its control directory, a round trip works."""
        daemon = self.daemon
        if not daemon.alive:
            self.problems.append(f"{phase}: the daemon died:\n{daemon.log()[-3000:]}")
            raise SystemExit(1)
        if (daemon.base / "canary.txt").read_text() != "untouched\n":
            self.problems.append(f"{phase}: the canary changed")
        after = fuzz.tree_snapshot(daemon.base, daemon.control_dir)
        changed = sorted(
            p
            for p in set(after) | set(self.before)
            if after.get(p) != self.before.get(p) and not Path(p).name.startswith("daemon-")
        )
        if changed:
            self.problems.append(f"{phase}: changed outside the control directory: {changed[:10]}")
        if "Traceback" in daemon.log():
            self.problems.append(f"{phase}: the daemon logged a traceback")
        sid = self.create(["cat"])
        marker = uuid.uuid4().hex[:12]
        fuzz.request(self.port, "POST", f"/api/sessions/{sid}/input", json.dumps({"text": marker}).encode())
        deadline = time.monotonic() + 10
        while marker.encode() not in fuzz.request(self.port, "GET", f"/api/sessions/{sid}/text")[1]:
            if time.monotonic() > deadline:
                self.problems.append(f"{phase}: the round trip failed")
                break
            time.sleep(0.05)
        fuzz.request(self.port, "DELETE", f"/api/sessions/{sid}")
        code, info = fuzz.request(self.port, "GET", f"/api/sessions/{self.sink}")
        if code != 200 or json.loads(info)["status"] != "running":
            self.new_sink()

    def phase(self, name: str, work: Any) -> None:
        started = time.monotonic()
        cases = self.tally.total
        work()
        self.check(name)
        took = time.monotonic() - started
        faults = len(self.tally.faults)
        print(f"{name:12} {self.tally.total - cases:7} cases in {took:6.1f} s, faults so far {faults}")

    # -- the phases -----------------------------------------------------------------------

    def raw_http(self, count: int) -> None:
        paths = ["/", "/api/health", "/api/sessions", f"/api/sessions/{self.sink}", "/buffers", "/nowhere"]
        cases = [fuzz.raw_http_case(self.rng, paths) for _ in range(count)]
        fuzz.run_raw(self.port, cases, self.tally, self.args.workers)

    def json_bodies(self, count: int) -> None:
        fuzz.run_json_bodies(self.port, self.sink, self.rng, self.tally, count)

    def paths(self) -> None:
        tricks = [*fuzz.PATH_TRICKS, "..%2fdecoy-session", "%2e%2e%2fdecoy-session", "../decoy-session"]
        fuzz.run_paths(self.port, tricks, self.tally)

    def ws_frames(self, count: int) -> None:
        paths = ["/buffers", f"/ws/input?sessionId={self.sink}", f"/ws/sessions/{self.sink}"]
        cases = [(self.rng.choice(paths), fuzz.ws_attack(self.rng)) for _ in range(count)]
        fuzz.run_frames(self.port, cases, self.tally, self.args.workers)

    def ws_json(self, count: int) -> None:
        fuzz.run_ws_json(self.port, self.sink, self.rng, self.tally, count)

    def control_dir(self) -> None:
        daemon = self.daemon
        outside = fuzz.make_outside(daemon.base)
        self.before = fuzz.tree_snapshot(daemon.base, daemon.control_dir)
        made = fuzz.poison_control_dir(daemon.control_dir, outside, daemon.base / "canary.txt")
        daemon.stop()
        daemon.start()
        self.new_sink()
        for sid in [*made, "linked"]:
            for method, path in [
                ("GET", ""),
                ("GET", "/text"),
                ("GET", "/buffer"),
                ("GET", "/recording"),
                ("DELETE", ""),
            ]:
                code, _ = fuzz.request(self.port, method, f"/api/sessions/{sid}{path}")
                self.tally.record_code("control dir", code or "none", path)
        fuzz.request(self.port, "POST", "/api/cleanup-exited", b"")
        if (outside / "stdout").read_text() != "keep me\n":
            self.problems.append("control dir: a file outside was changed")

    def memory(self, label: str, previous: dict[str, int]) -> dict[str, int]:
        """Print the daemon's RSS, timers and object counts; answer the counts."""
        fuzz.request(self.port, "POST", "/api/cleanup-exited", b"")
        time.sleep(0.5)
        code, body = fuzz.request(self.port, "GET", "/api/stats?objects=1")
        stats = json.loads(body) if code == 200 else {}
        objects: dict[str, int] = stats.get("objects", {})
        timers = stats.get("delayedCalls", "?")
        print(f"{label}: RSS {self.daemon.rss_mb():.1f} MB, {self.daemon.fds()} descriptors, "
              f"{timers} timers, {sum(objects.values())} objects since startup")  # fmt: skip
        if previous:
            changed = {t: objects.get(t, 0) - previous.get(t, 0) for t in {*objects, *previous}}
            grown = sorted(((n, t) for t, n in changed.items() if n), reverse=True)[:8]
            print("  objects changed: " + (", ".join(f"{t} {n:+d}" for n, t in grown) or "none"))
        return objects

    def flood(self, count: int) -> None:
        time.sleep(0.3)
        baseline = self.daemon.fds()
        socks = fuzz.open_flood(self.port, count)
        code, _ = fuzz.request(self.port, "GET", "/api/health")
        self.tally.record_code("flood health", code or "none")
        peak = self.daemon.fds()
        fuzz.close_flood(socks)
        deadline = time.monotonic() + 20
        while self.daemon.fds() > baseline and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"flood: descriptors {baseline} before, {peak} during, {self.daemon.fds()} after")
        if self.daemon.fds() > baseline:
            self.problems.append(f"flood: descriptors did not come back to {baseline}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=30000, help="cases in all (default 30000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=8, help="connections at once for the floods")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--passes", type=int, default=1, help="run the phases this many times (default 1)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="vibetwist-fuzz-"))
    (base / "canary.txt").write_text("untouched\n")
    (base / "decoy-session").mkdir()
    (base / "decoy-session" / "session.json").write_text(
        json.dumps({"id": "decoy-session", "command": ["x"]})
    )
    daemon = Daemon(base)
    daemon.start()
    run = Run(daemon, args)
    started = time.monotonic()
    try:
        run.before = fuzz.tree_snapshot(base, daemon.control_dir)
        run.new_sink()
        time.sleep(0.5)
        rss, fds = daemon.rss_mb(), daemon.fds()
        print(f"daemon pid {daemon.process.pid if daemon.process else 0} on port {daemon.port}: "
              f"RSS {rss:.1f} MB, {fds} descriptors")  # fmt: skip
        n = args.cases // max(1, args.passes)
        objects = run.memory("start", {})
        for number in range(1, args.passes + 1):
            run.phase("raw http", lambda: run.raw_http(n * 40 // 100))
            run.phase("json", lambda: run.json_bodies(n * 20 // 100))
            run.phase("paths", run.paths)
            run.phase("ws frames", lambda: run.ws_frames(n * 28 // 100))
            run.phase("ws json", lambda: run.ws_json(n * 10 // 100))
            objects = run.memory(f"after pass {number} ({run.tally.total} cases)", objects)
        print(f"RSS {daemon.rss_mb():.1f} MB, {daemon.fds()} descriptors (before: {rss:.1f} MB, {fds})")
        run.phase("flood", lambda: run.flood(2000))
        run.phase("control dir", run.control_dir)
    finally:
        daemon.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\n{run.tally.report()}")
    fives = {code: count for code, count in run.tally.statuses.items() if code.startswith("5")}
    print(f"5xx answers: {fives or 'none'}; took {time.monotonic() - started:.0f} s")
    for problem in run.problems:
        print(f"PROBLEM: {problem}")
    return 1 if run.problems or run.tally.faults else 0


if __name__ == "__main__":
    sys.exit(main())
