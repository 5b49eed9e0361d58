"""What an idle daemon costs: its CPU with many idle sessions, in one run.

Starts a daemon of this checkout (and, with ``--checkout DIR``, one of another
checkout, e.g. ``git archive`` of an older commit, for a before/after), creates
``--sessions`` idle sessions (``cat``, waiting for input), lets it settle, then
reads the daemon's CPU time (``/proc/PID/stat``) and context switches over
``--seconds``. Each configuration runs ``--rounds`` times, one daemon at a time:

- ``default``: as started with no options (the 250 ms lag monitor, metrics on);
- ``measure-lag``: with ``--measure-lag`` (a 1 ms timer);
- ``no-metrics``: with ``--no-metrics``;
- ``lag S s`` (``--lag-interval S``): the always-on lag monitor ticking every S seconds;
- ``checkout``: the other checkout, with no options.

    .venv/bin/python bench/bench_idle.py                 # about 3 minutes
    .venv/bin/python bench/bench_idle.py --checkout /tmp/old --lag-interval 0.05 --seconds 30

The figures are small: run it on a quiet machine and read them as sizes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
LISTENING = re.compile(rb"vibetwist listening on http://127\.0\.0\.1:(\d+)/")
TICKS = os.sysconf("SC_CLK_TCK")


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        kind = response.getheader("content-type") or ""
        return response.status, json.loads(raw) if kind.startswith("application/json") else raw
    finally:
        connection.close()


def cpu_and_switches(pid: int) -> tuple[float, int]:
    """CPU seconds and context switches (voluntary and not) of a process's threads: from
    /proc/PID/schedstat (nanoseconds) where the kernel has it, else /proc/PID/stat (ticks
    of 10 ms)."""
    try:
        cpu = (
            sum(
                int(Path(task, "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
            / 1e9
        )
    except (OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        fields = stat[stat.rfind(b")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
    switches = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if "ctxt_switches:" in line:
            switches += int(line.split()[1])
    return cpu, switches


def start_daemon(
    label: str, checkout: Path, args: list[str], work: Path, prelude: str = ""
) -> tuple[Any, int]:
    """A daemon of checkout with options args, its files in work (a clean HOME there): the
    process and its port. Its log is work/daemon.log."""
    (work / "home").mkdir(exist_ok=True)
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 (the child holds it; closed here)
    env = {
        "HOME": str(work / "home"),
        "PATH": os.environ.get("PATH", os.defpath),
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(checkout),
    }
    argv = [
        sys.executable, "-c", prelude + "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
        "vibetunnel", "--listen", "tcp:0:interface=127.0.0.1", "--control-dir", str(work / "control"), *args,
    ]  # fmt: skip
    try:
        daemon = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()
    deadline = time.monotonic() + 30
    while True:
        match = LISTENING.search((work / "daemon.log").read_bytes())
        if match:
            return daemon, int(match.group(1))
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop_daemon(daemon)
            raise RuntimeError(f"{label}: the daemon did not start:\n{(work / 'daemon.log').read_text()}")
        time.sleep(0.05)


def stop_daemon(daemon: Any) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def run_one(
    label: str,
    checkout: Path,
    args: list[str],
    sessions: int,
    seconds: float,
    prelude: str = "",
    command: str = "cat",
    settle: float = 3.0,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    daemon, port = start_daemon(label, checkout, args, work, prelude)
    try:
        ids = []
        for _ in range(sessions):
            code, body = request(
                port, "POST", "/api/sessions", {"command": [command], "workingDir": str(work)}
            )
            if code != 200:
                raise RuntimeError(f"{label}: create answered {code}: {body!r}")
            ids.append(body["sessionId"])
        deadline = time.monotonic() + 60
        while True:
            code, listed = request(port, "GET", "/api/sessions")
            if sum(s["status"] == "running" for s in listed) >= sessions:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: sessions did not all start")
            time.sleep(0.2)
        time.sleep(settle)  # let start-up work (screens, session.json saves, prompts) finish
        cpu0, switches0 = cpu_and_switches(daemon.pid)
        wall0 = time.monotonic()
        time.sleep(seconds)
        cpu1, switches1 = cpu_and_switches(daemon.pid)
        wall = time.monotonic() - wall0
        for session_id in ids:
            request(port, "DELETE", f"/api/sessions/{session_id}")
        return {
            "label": label,
            "cpu_percent": round(100 * (cpu1 - cpu0) / wall, 3),
            "cpu_ms_per_s": round(1000 * (cpu1 - cpu0) / wall, 2),
            "switches_per_s": round((switches1 - switches0) / wall, 1),
        }
    finally:
        stop_daemon(daemon)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--checkout", type=Path, help="another checkout to compare with (no options)")
    parser.add_argument(
        "--lag-interval",
        type=float,
        action="append",
        default=[],
        help="also this checkout with the always-on lag monitor ticking every SECONDS (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--command", default="cat", help="the program of each idle session (cat; bash: a shell at its prompt)"
    )
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after all run before measuring")
    parser.add_argument(
        "--default-only", action="store_true", help="leave out the measure-lag and no-metrics configurations"
    )
    args = parser.parse_args()
    configs: list[tuple[str, Path, list[str], str]] = [
        ("default", HERE, [], ""),
    ]
    if not args.default_only:
        configs += [("measure-lag", HERE, ["--measure-lag"], ""), ("no-metrics", HERE, ["--no-metrics"], "")]
    for interval in args.lag_interval:
        # The daemon's interval is a constant the options do not change: set it before tap loads.
        prelude = f"import vibetwist._reactor.lag as lag; lag.COARSE_INTERVAL = {interval!r}; "
        configs.append((f"lag {interval:g} s", HERE, [], prelude))
    if args.checkout:
        configs.append(("checkout", args.checkout.resolve(), [], ""))
    print(
        f"vibetwist idle benchmark: {args.sessions} idle sessions of {args.command}, "
        f"{args.seconds:g} s windows, "
        f"{len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = []
    for round_ in range(args.rounds):
        for label, checkout, extra, prelude in configs:
            result = run_one(
                label, checkout, extra, args.sessions, args.seconds, prelude, args.command, args.settle
            )
            result["round"] = round_ + 1
            results.append(result)
            print(
                f"  round {round_ + 1} {label:12} daemon CPU {result['cpu_percent']:6.2f}% "
                f"({result['cpu_ms_per_s']:6.2f} ms/s), {result['switches_per_s']:7.1f} context switches/s",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
