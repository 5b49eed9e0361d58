"""Benchmark POST /api/sessions/:id/wait: what waits cost a busy session, and how soon they answer.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_wait.py             # about two minutes
    python bench/bench_wait.py --quick     # smaller sizes, a smoke test
    python bench/bench_wait.py --json out.json

The script starts a daemon of its own on 127.0.0.1 (``twistd -n vibetunnel
--measure-lag``, as ``bench_daemon.py`` does, with a clean HOME), talks to it with
:mod:`vibetwist.client` on the Twisted reactor of this process, and stops it at the
end, whatever happens.

throughput
    ``head -c N /dev/urandom | base64`` in a session, from its create to its exit
    (the session's status polled every 20 ms), each case ``--repeat`` times (5),
    interleaved, medians: MB/s of output with no wait, with 100
    output waits for patterns that never show (literal ones, then ones that start
    with a character class, which the regular expression engine cannot skip ahead
    for), with 100 screen waits, and with 50 of each. The daemon's CPU seconds per
    run and its worst reactor stall (``/api/stats``) are printed beside each.
latency
    ``cat`` in a session, its SSE stream followed: a wait on output for a marker is
    posted, then the marker typed; the time from typing to the SSE stream's line
    with the marker, and to the wait's answer, p50 and p90 over the rounds; again
    with 100 waits pending on the same session.

Figures are MB/s (10**6 bytes) and milliseconds. Read single runs on a shared
machine as sizes, not promises.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import treq
from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_daemon import install_watchdog, kill_if_alive, machine, start_daemon  # noqa: E402

from vibetwist.client import Client  # noqa: E402

HOST = "127.0.0.1"


def cpu_seconds(pid: int | None) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def stats(url: str, reset: bool = False) -> dict[str, Any]:
    response = await treq.get(f"{url}/api/stats" + ("?reset=1" if reset else ""))
    return dict(await response.json())


async def until_exited(reactor: Any, client: Client, sid: str, limit: float = 120.0) -> float:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if (await client.session(sid))["status"] == "exited":
            return time.perf_counter()
        await sleep(reactor, 0.02)
    raise TimeoutError(f"{sid} still running after {limit} s")


async def flood(
    reactor: Any, client: Client, url: str, pid: int | None, size: int, waits: list[dict[str, Any]]
) -> dict[str, Any]:
    """One base64 flood of size random bytes with these waits pending on its session."""
    # The program waits for a line on stdin, so the waits are in place before it prints.
    sid = await client.create(["bash", "-c", f"read go; head -c {size} /dev/urandom | base64"])
    await client.wait(sid, idle=0.2, timeout=10)
    pending = [defer.ensureDeferred(client.wait(sid, timeout=600, **w)) for w in waits]
    await sleep(reactor, 0.3 + len(waits) * 0.002)
    await stats(url, reset=True)
    cpu = cpu_seconds(pid)
    began = time.perf_counter()
    await client.send_text(sid, "go\r")
    ended = await until_exited(reactor, client, sid)
    lag = (await stats(url))["reactorLag"]["maxMs"]
    answers = await defer.gatherResults(pending) if pending else []
    # base64 writes a line of 76 characters per 57 bytes; the terminal ends each with \r\n.
    bytes_out = (size + 2) // 3 * 4 + 2 * ((size + 56) // 57)
    exited = sum(1 for a in answers if a.exited)
    await client.kill(sid)
    return {
        "waits": len(waits),
        "mb_per_s": bytes_out / (ended - began) / 1e6,
        "seconds": ended - began,
        "daemon_cpu_s": cpu_seconds(pid) - cpu,
        "max_lag_ms": lag,
        "answered_exited": exited,
    }


def output_waits(count: int, kind: str) -> list[dict[str, Any]]:
    if kind == "literal":
        return [{"pattern": f"never-shows-{i}", "on": "output"} for i in range(count)]
    return [{"pattern": f"[#@%]{{2}}\\d+-{i}", "on": "output"} for i in range(count)]


def screen_waits(count: int) -> list[dict[str, Any]]:
    return [{"pattern": f"never-on-screen-{i}"} for i in range(count)]


async def phase_throughput(
    reactor: Any, client: Client, url: str, pid: int | None, size: int, repeat: int
) -> list[dict]:
    runs = []
    cases = [
        ("no wait", []),
        ("100 output waits, literal", output_waits(100, "literal")),
        ("100 output waits, class-led", output_waits(100, "class")),
        ("100 screen waits", screen_waits(100)),
        ("50 output + 50 screen", output_waits(50, "literal") + screen_waits(50)),
    ]
    tries: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in cases}
    for _ in range(repeat):  # interleaved, so a busy spell of the machine hits every case
        for name, waits in cases:
            tries[name].append(await flood(reactor, client, url, pid, size, waits))
    for name, _ in cases:
        done = tries[name]
        run = {
            "case": name,
            "waits": done[0]["waits"],
            "tries": done,
            "mb_per_s": statistics.median(t["mb_per_s"] for t in done),
            "daemon_cpu_s": statistics.median(t["daemon_cpu_s"] for t in done),
            "max_lag_ms": max(t["max_lag_ms"] or 0 for t in done),
        }
        runs.append(run)
        print(
            f"  {name:30} {run['mb_per_s']:6.2f} MB/s (median of {len(done)})  "
            f"daemon cpu {run['daemon_cpu_s']:5.2f} s  max lag {run['max_lag_ms']:.1f} ms",
            flush=True,
        )
    return runs


async def latency(reactor: Any, client: Client, rounds: int, background: int) -> dict[str, Any]:
    """Type markers into cat; time to the SSE line and to the wait's answer."""
    sid = await client.create(["cat"])
    await client.wait(sid, idle=0.2, timeout=10)
    others = [
        defer.ensureDeferred(client.wait(sid, f"never-{i}", on="output", timeout=600))
        for i in range(background)
    ]
    seen: dict[str, float] = {}
    stream = client.output(sid)

    async def follow() -> None:
        async for text in stream:
            now = time.perf_counter()
            for word in text.split():
                if word.startswith("mark") and word not in seen:
                    seen[word] = now

    following = defer.ensureDeferred(follow())
    following.addErrback(lambda f: None)
    to_stream, to_wait = [], []
    for i in range(rounds):
        marker = f"mark{i:04d}x"
        waiting = defer.ensureDeferred(client.wait(sid, marker, on="output", timeout=10))
        await sleep(reactor, 0.05)
        typed = time.perf_counter()
        await client.send_text(sid, marker + "\r")
        result = await waiting
        answered = time.perf_counter()
        if not result.matched:
            raise RuntimeError(f"{marker} not matched: {result}")
        await sleep(reactor, 0.02)
        if marker in seen:
            to_stream.append((seen[marker] - typed) * 1000)
        to_wait.append((answered - typed) * 1000)
    stream.close()
    await client.kill(sid)
    for other in others:
        await other
    return {
        "background_waits": background,
        "rounds": rounds,
        "typed_to_stream_ms": quantiles(to_stream),
        "typed_to_wait_ms": quantiles(to_wait),
    }


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None}
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
    }


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="bench-wait-")
    os.environ["HOME"] = os.path.join(workdir, "home")  # no rc files of the user's
    os.mkdir(os.environ["HOME"])
    daemon = start_daemon(reactor, workdir)
    results: dict[str, Any] = {"machine": machine()}
    try:
        port = await daemon.port
        url = f"http://{HOST}:{port}"
        client = Client(url, reactor=reactor)
        size = 5_000_000 if args.quick else 20_000_000
        print(f"throughput: base64 of {size / 1e6:g} MB of random bytes", flush=True)
        repeat = 1 if args.quick else args.repeat
        results["throughput"] = await phase_throughput(reactor, client, url, daemon.pid, size, repeat)
        rounds = 20 if args.quick else 60
        results["latency"] = []
        for background in (0, 100):
            figures = await latency(reactor, client, rounds, background)
            results["latency"].append(figures)
            print(
                f"latency with {background:3} other waits: typed -> stream p50 "
                f"{figures['typed_to_stream_ms']['p50']:.2f} ms, typed -> wait p50 "
                f"{figures['typed_to_wait_ms']['p50']:.2f} ms (p90 {figures['typed_to_wait_ms']['p90']:.2f})",
                flush=True,
            )
        await client.close()
    finally:
        if daemon.pid is not None and not daemon.ended.called:
            os.kill(daemon.pid, 15)
            await daemon.ended
        kill_if_alive(daemon)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--repeat", type=int, default=5, help="tries of each throughput case")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    install_watchdog(args.timeout)
    results: dict[str, Any] = {}

    async def go(reactor: Any) -> None:
        results.update(await run(reactor, args))
        print(f"machine: {results['machine']}")
        if args.json:
            with open(args.json, "w") as out:
                json.dump(results, out, indent=2)

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))


if __name__ == "__main__":
    main()
