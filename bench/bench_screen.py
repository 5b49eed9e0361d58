"""Benchmark the screen model against stock pyte, side by side, in one run.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_screen.py                 # about a minute
    python bench/bench_screen.py --json out.json # also write machine-readable results

Options: ``--stock-mb 0.5`` and ``--fast-mb 8`` (how much of each input each screen
is fed: stock pyte is slow), ``--cols 120 --rows 40 --scrollback 10000``.

Throughput: each input is fed the way the daemon feeds it (text slices of
``vibetwist.screenfeed.SLICE`` characters) to stock ``pyte.HistoryScreen`` +
``pyte.Stream`` and to ``vibetwist.screen.TerminalScreen``, both with 10,000 lines
of scrollback; MB/s counts UTF-8 bytes of input.  The inputs:

ls
    ``ls -laR --color=always /usr`` (from a PTY, so lines end in CR LF).
base64
    base64 of random bytes, 76 columns, CR LF.
tui
    a full-screen program redrawing: every frame homes the cursor, moves to each
    row, writes coloured cells and a status line in reverse video, erases to the
    end of line, and parks the cursor.

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
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import version

import pyte

from vibetwist.screen import TerminalScreen
from vibetwist.screenfeed import SLICE

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock-mb", type=float, default=0.5)
    parser.add_argument("--fast-mb", type=float, default=8.0)
    parser.add_argument("--cols", type=int, default=120)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--scrollback", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures to this file")
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
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
