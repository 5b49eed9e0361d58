"""Benchmark the screen model against stock pyte, side by side, in one run.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_screen.py                 # about a minute
    python bench/bench_screen.py --json out.json # also write machine-readable results

Options: ``--stock-mb 0.5`` and ``--fast-mb 8`` (how much of each input each screen
is fed: stock pyte is slow), ``--cols 120 --rows 40 --scrollback 10000``.

Throughput: each input is fed the way the daemon feeds it (text slices of
``vibetwist.sessions.screenfeed.SLICE`` characters) to stock ``pyte.HistoryScreen`` +
``pyte.Stream`` and to ``vibetwist.screen.terminal.TerminalScreen``, both with 10,000 lines
of scrollback; MB/s counts UTF-8 bytes of input.  The inputs:

ls
    ``ls -laR --color=always /usr`` (from a PTY, so lines end in CR LF).
base64
    base64 of random bytes, 76 columns, CR LF.
tui
    a full-screen program redrawing: every frame homes the cursor, moves to each
    row, writes coloured cells and a status line in reverse video, erases to the
    end of line, and parks the cursor.

Staleness (``--floods``, off by default: it takes a few minutes): a real daemon
(``twistd -n vibetunnel --measure-lag``) runs ``cat`` of a 10 MB and a 100 MB flood of
base64, of ``ls -laR --color=always`` output, of LF-only ``y`` lines (``stty
-opost``) and of 300-column base64 lines (``--flood-kinds``) in a 120x40 session; the program
writes the time when ``cat`` ends, and ``GET /api/sessions/ID/text`` is polled until
it shows the flood's last line.  The figure is how long after the output stopped the
screen showed it (given up on after 60 s), with the daemon's worst reactor stall
(``reactorLag.maxMs``) during the flood, each against issue 17's target (100 ms, 10 ms)
with PASS or MISS.

Memory, with tracemalloc: a 120-column screen after 10,000 full lines have
scrolled into its scrollback, and an idle 80x24 session whose screen has been
looked at once (a snapshot) with empty scrollback; stock pyte's HistoryScreen
for comparison.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pyte

from vibetwist.screen.terminal import TerminalScreen
from vibetwist.sessions.screenfeed import SLICE

MB = 1_000_000


def ls_input(size: int) -> str:
    """``ls -laR --color=always /usr`` as a PTY would deliver it (CR LF), at least ``size`` bytes."""
    out = subprocess.run(
        ["ls", "-laR", "--color=always", "/usr"], capture_output=True, check=False
    ).stdout.decode("utf-8", "replace")
    text = out.replace("\n", "\r\n")
    while len(text.encode()) < size:
        text += text
    return text


def base64_input(size: int) -> str:
    raw = base64.encodebytes(random.Random(1).randbytes(size * 3 // 4 + 1)).decode("ascii")
    return raw.replace("\n", "\r\n")


def tui_input(size: int, cols: int, rows: int) -> str:
    """Frames of a full-screen program: cursor moves, colours, erase to end of line."""
    rnd = random.Random(2)
    words = ["alpha", "beta", "gamma", "delta", "load", "cpu", "mem", "42.0%", "1234", "ok"]
    frames = ["\x1b[?1049h\x1b[?25l\x1b[2J"]
    total = 0
    while total < size:
        parts = ["\x1b[H"]
        for y in range(1, rows):
            parts.append(f"\x1b[{y};1H")
            x = 0
            while x < cols - 12:
                word = rnd.choice(words)
                parts.append(f"\x1b[{rnd.choice((31, 32, 33, 36, 37))}m{word}\x1b[0m ")
                x += len(word) + 1
            parts.append("\x1b[K")
        parts.append(f"\x1b[{rows};1H\x1b[7m{' F1 Help  F10 Quit':<{cols}}\x1b[0m")
        parts.append(f"\x1b[{rnd.randint(1, rows)};{rnd.randint(1, cols)}H")
        frame = "".join(parts)
        frames.append(frame)
        total += len(frame)
    return "".join(frames)


def stock_feeder(cols: int, rows: int, scrollback: int) -> Callable[[str], None]:
    screen = pyte.HistoryScreen(cols, rows, history=scrollback)
    return pyte.Stream(screen).feed


def fast_feeder(cols: int, rows: int, scrollback: int) -> Callable[[str], None]:
    return TerminalScreen(cols, rows, scrollback).feed


def throughput(feed: Callable[[str], None], text: str) -> float:
    """MB/s of UTF-8 input, fed in daemon-sized slices."""
    slices = [text[i : i + SLICE] for i in range(0, len(text), SLICE)]
    start = time.perf_counter()
    for piece in slices:
        feed(piece)
    elapsed = time.perf_counter() - start
    return len(text.encode("utf-8")) / MB / elapsed


def traced_bytes(make: Callable[[], object]) -> int:
    """Bytes still allocated by ``make()`` once it returns (its result kept alive)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = make()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def full_lines(cols: int, count: int) -> str:
    rnd = random.Random(3)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    line = "".join(rnd.choice(alphabet) for _ in range(cols * 50))
    return "".join(line[(i * 7) % (cols * 49) :][:cols] + "\r\n" for i in range(count))


def memory(cols: int, rows: int, scrollback: int) -> dict[str, int]:
    text = full_lines(cols, scrollback + rows)

    def fast_full() -> object:
        screen = TerminalScreen(cols, rows, scrollback)
        for i in range(0, len(text), SLICE):
            screen.feed(text[i : i + SLICE])
        assert screen.scrollback_lines == scrollback
        return screen

    def stock_full() -> object:
        screen = pyte.HistoryScreen(cols, rows, history=scrollback)
        stream = pyte.Stream(screen)
        for i in range(0, len(text), SLICE):
            stream.feed(text[i : i + SLICE])
        return stream

    def fast_idle() -> object:
        screen = TerminalScreen(80, 24, scrollback)
        screen.snapshot()
        return screen

    def stock_idle() -> object:
        screen = pyte.HistoryScreen(80, 24, history=scrollback)
        stream = pyte.Stream(screen)
        stream.feed("")
        return stream

    # Warm the shared caches first: they are paid once per daemon, not per session.
    fast_full()
    fast_idle()
    return {
        "fast_full": traced_bytes(fast_full),
        "stock_full": traced_bytes(stock_full),
        "fast_idle": traced_bytes(fast_idle),
        "stock_idle": traced_bytes(stock_idle),
    }


MARKER = "END-OF-FLOOD"
#: The kinds of flood, in the order they run; ``--flood-kinds`` picks some.
FLOOD_KINDS = ("base64", "ls", "yes", "wide")
#: Issue 17's targets for a flood: the screen current this soon after the output stops,
#: and no reactor stall longer than this during or after it.
TARGET_STALE_MS = 100.0
TARGET_LAG_MS = 10.0
#: How long a flood's screen may stay stale before the bench gives up on it.
STALE_LIMIT_S = 60.0


def flood_file(path: str, kind: str, size: int) -> None:
    """``size`` bytes of one kind of output, then the marker on a line of its own.

    ``base64`` and ``ls`` have LF line ends (the PTY adds the CR); ``yes`` is
    ``y`` lines for a terminal with ``stty -opost`` (LF only, so the screen walks
    down a staircase and wraps); ``wide`` is base64 in 300-column lines, each
    wrapped by a 120-column screen.
    """
    with open(path, "w") as out:
        if kind == "base64":
            out.write(base64_input(size).replace("\r\n", "\n"))
        elif kind == "ls":
            out.write(ls_input(size)[:size].replace("\r\n", "\n"))
        elif kind == "yes":
            out.write("y\n" * (size // 2))
        elif kind == "wide":
            flat = base64_input(size).replace("\r\n", "")
            out.write("\n".join(flat[i : i + 300] for i in range(0, len(flat), 300)))
        else:
            raise ValueError(f"no such flood: {kind}")
        out.write(f"\r\n{MARKER}\r\n")


def verdict(value: float | None, target: float) -> str:
    return "MISS" if value is None or value > target else "PASS"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(port: int, method: str, path: str, body: object = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        raw = answer.read()
    return raw.decode("utf-8") if path.endswith("/text") else json.loads(raw or b"null")


def floods(
    sizes: list[int], workdir: str, checkout: str | None, kinds: tuple[str, ...] = FLOOD_KINDS
) -> list[dict[str, object]]:
    """Staleness after each flood and the reactor's worst stall, through a real daemon."""
    port = free_port()
    control = os.path.join(workdir, "control")
    os.mkdir(control)
    argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile="]
    argv += ["vibetunnel", "--listen", f"tcp:{port}:interface=127.0.0.1", "--control-dir", control]
    with open(os.path.join(workdir, "daemon.log"), "wb") as log:
        env = dict(os.environ)
        if checkout:
            env["PYTHONPATH"] = checkout
        daemon = subprocess.Popen([*argv, "--measure-lag"], stdout=log, stderr=log, cwd=workdir, env=env)
    results = []
    try:
        for _ in range(100):
            try:
                call(port, "GET", "/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        for kind in kinds:
            for size in sizes:
                path = os.path.join(workdir, "flood")
                stamp = os.path.join(workdir, "stamp")
                flood_file(path, kind, size)
                if os.path.exists(stamp):
                    os.unlink(stamp)
                setup = "stty -opost; " if kind == "yes" else ""
                script = f"{setup}sleep 0.5; cat {path}; date +%s.%N > {stamp}; sleep 600"
                call(port, "GET", "/api/stats?reset=1")
                session = call(
                    port, "POST", "/api/sessions", {"command": ["sh", "-c", script], "cols": 120, "rows": 40}
                )
                session_id = session["sessionId"]
                shown = stopped = None
                deadline = time.time() + 600  # the output itself
                while time.time() < deadline:
                    text = call(port, "GET", f"/api/sessions/{session_id}/text")
                    answered = time.time()
                    if stopped is None and os.path.exists(stamp):
                        with open(stamp) as stamped:
                            written = stamped.read().strip()
                        if written:  # date(1) writes it in one go
                            stopped = float(written)
                            deadline = stopped + STALE_LIMIT_S
                    lines = [line for line in text.splitlines() if line.strip()]
                    if lines and lines[-1].strip() == MARKER and stopped is not None:
                        shown = answered
                        break
                lag = call(port, "GET", "/api/stats")["reactorLag"]["maxMs"]
                call(port, "DELETE", f"/api/sessions/{session_id}")
                stale = None if shown is None or stopped is None else (shown - stopped) * 1000
                results.append({"input": kind, "mb": size / MB, "stale_ms": stale, "max_lag_ms": lag})
                shows = f"{stale:8.0f} ms" if stale is not None else f"not within {STALE_LIMIT_S:g} s"
                print(
                    f"flood {kind:<7} {size / MB:>5.0f} MB: screen current {shows} after the output stopped"
                    f" (target <= {TARGET_STALE_MS:g} ms: {verdict(stale, TARGET_STALE_MS)});"
                    f" worst reactor stall {lag} ms"
                    f" (target <= {TARGET_LAG_MS:g} ms: {verdict(lag, TARGET_LAG_MS)})",
                    flush=True,
                )
    finally:
        daemon.terminate()
        daemon.wait(10)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock-mb", type=float, default=0.5)
    parser.add_argument("--fast-mb", type=float, default=8.0)
    parser.add_argument("--cols", type=int, default=120)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--scrollback", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--floods", action="store_true", help="also measure staleness after floods")
    parser.add_argument("--flood-mb", type=float, nargs="*", default=[10, 100])
    parser.add_argument(
        "--flood-kinds",
        default=",".join(FLOOD_KINDS),
        help=f"comma-separated, of {','.join(FLOOD_KINDS)}",
    )
    parser.add_argument("--daemon-checkout", help="run the daemon from this checkout (to compare commits)")
    args = parser.parse_args(argv)
    cols, rows, scrollback = args.cols, args.rows, args.scrollback
    fast_size = int(args.fast_mb * MB)
    stock_size = int(args.stock_mb * MB)
    inputs = {
        "ls": ls_input(fast_size),
        "base64": base64_input(fast_size),
        "tui": tui_input(fast_size, cols, rows),
    }
    print(
        f"python {platform.python_version()}, pyte {version('pyte')}, {platform.machine()}, "
        f"{os.cpu_count()} cpus; {cols}x{rows}, scrollback {scrollback}, slices of {SLICE}"
    )
    results: dict[str, object] = {}
    print(f"{'input':<8} {'stock MB/s':>11} {'vibetwist MB/s':>15} {'ratio':>7}")
    failed = False
    for name, text in inputs.items():
        stock = throughput(stock_feeder(cols, rows, scrollback), text[:stock_size])
        fast = throughput(fast_feeder(cols, rows, scrollback), text)
        ratio = fast / stock
        failed |= ratio < 10
        results[name] = {"stock_mbps": stock, "fast_mbps": fast, "ratio": ratio}
        print(f"{name:<8} {stock:>11.2f} {fast:>15.2f} {ratio:>6.1f}x")
    mem = memory(cols, rows, scrollback)
    results["memory"] = mem
    print(
        f"memory, {scrollback} full lines of {cols} columns: stock {mem['stock_full'] / MB:.1f} MB, "
        f"vibetwist {mem['fast_full'] / MB:.2f} MB (target <= 8 MB)"
    )
    print(
        f"memory, idle 80x24: stock {mem['stock_idle'] / 1000:.1f} kB, "
        f"vibetwist {mem['fast_idle'] / 1000:.1f} kB (target <= 500 kB)"
    )
    failed |= mem["fast_full"] > 8 * MB or mem["fast_idle"] > 500_000
    if args.floods:
        with tempfile.TemporaryDirectory() as workdir:
            kinds = tuple(args.flood_kinds.split(","))
            unknown = set(kinds) - set(FLOOD_KINDS)
            if unknown:
                parser.error(f"--flood-kinds: unknown {', '.join(sorted(unknown))}")
            sizes = [int(mb * MB) for mb in args.flood_mb]
            flooded = floods(sizes, workdir, args.daemon_checkout, kinds)
            results["floods"] = flooded
            print(
                f"floods (issue 17, target 4: current within {TARGET_STALE_MS:g} ms,"
                f" no stall over {TARGET_LAG_MS:g} ms):"
            )
            for each in flooded:
                stale, lag = each["stale_ms"], each["max_lag_ms"]
                good = verdict(stale, TARGET_STALE_MS) == verdict(lag, TARGET_LAG_MS) == "PASS"  # type: ignore[arg-type]
                print(f"  {each['input']:<7} {each['mb']:>5g} MB: {'PASS' if good else 'MISS'}")
                failed |= not good
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
