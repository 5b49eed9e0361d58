"""Benchmark what ``vt`` costs in the user's own terminal, against the same program without it.

Run it from the repository root, with the project importable::

    PYTHONPATH=. python bench/bench_vt.py          # about half a minute

Each case runs a program in a fresh PTY that stands for the user's terminal, once
directly and once as ``vt PROGRAM`` (writing its session files to a temporary control
directory; no daemon needs to run):

keystroke
    A program reads its terminal raw and writes back each byte it reads. The bench
    writes one byte to the terminal and times until the echo comes back, ``--keys``
    times, one at a time: p50 and p99, in microseconds.
base64 / opost-yes
    ``base64`` of random data (``--mb`` MB of input) and ``stty -opost; yes``
    (``--mb`` x 8 MB). The bench reads the terminal in a tight ``os.read`` loop until
    the program ends: MB/s of terminal output, and vt's share of the raw figure.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Reads its terminal raw and writes back each read upper-cased (so the terminal's own
#: echo, before a program sets it raw, is never taken for the program's).
ECHO = (
    "import os, tty\n"
    "tty.setraw(0)\n"
    "os.write(1, b'READY')\n"
    "while True:\n"
    "    d = os.read(0, 1024)\n"
    "    if not d: break\n"
    "    os.write(1, d.upper())\n"
)
VT = [sys.executable, "-m", "vibetwist.vt"]


def spawn(argv: list[str], control: str) -> tuple[subprocess.Popen[bytes], int]:
    """argv in a new 80x24 terminal; the process and the terminal's master side."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, PYTHONPATH=ROOT, VIBETUNNEL_CONTROL_DIR=control, TERM="xterm-256color")
    env.pop("VIBETUNNEL_SESSION_ID", None)

    def ctty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, preexec_fn=ctty
    )
    os.close(slave)
    return process, master


def read_some(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def keystroke(argv: list[str], keys: int, control: str) -> list[float]:
    """Microseconds from writing a byte to the terminal to reading its echo, per byte."""
    process, master = spawn([*argv, sys.executable, "-c", ECHO], control)
    try:
        # Wait until the program runs with its terminal raw.
        got = b""
        deadline = time.monotonic() + 20
        while b"READY" not in got and time.monotonic() < deadline:
            got += read_some(master, 0.5)
        while read_some(master, 0.2):
            pass
        samples = []
        for i in range(keys):
            key = bytes([97 + i % 26])
            start = time.perf_counter()
            os.write(master, key)
            got = b""
            while key.upper() not in got:
                got += read_some(master, 5)
            samples.append((time.perf_counter() - start) * 1e6)
        return samples
    finally:
        process.kill()
        process.wait()
        os.close(master)


def throughput(argv: list[str], script: str, control: str) -> tuple[float, int]:
    """(MB/s, bytes) of terminal output read until the program ends."""
    process, master = spawn([*argv, "sh", "-c", script], control)
    total = 0
    start = time.perf_counter()
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            total += len(data)
    finally:
        elapsed = time.perf_counter() - start
        process.wait()
        os.close(master)
    return total / elapsed / 1e6, total


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    control = tempfile.mkdtemp(prefix="bench-vt-")
    data = tempfile.NamedTemporaryFile(prefix="bench-vt-", delete=False)
    data.write(os.urandom(args.mb * 1_000_000))
    data.close()
    try:
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
              f"Python {platform.python_version()}")  # fmt: skip
        print(f"{'case':<22}{'raw':>14}{'vt':>14}{'vt/raw':>9}")
        raw = keystroke([], args.keys, control)
        vt = keystroke(VT, args.keys, control)
        for label, p in (("keystroke p50 (us)", 0.5), ("keystroke p99 (us)", 0.99)):
            a, b = percentile(raw, p), percentile(vt, p)
            print(f"{label:<22}{a:>14.0f}{b:>14.0f}{b / a:>9.2f}")
        cases = {
            "base64 (MB/s)": f"base64 {data.name}",
            "opost yes (MB/s)": f"stty -opost; yes | head -c {args.mb * 8_000_000}",
        }
        for label, script in cases.items():
            a, a_bytes = throughput([], script, control)
            b, b_bytes = throughput(VT, script, control)
            sizes = f"({a_bytes / 1e6:.0f} / {b_bytes / 1e6:.0f} MB)"
            print(f"{label:<22}{a:>14.1f}{b:>14.1f}{b / a:>9.2f}   {sizes}")
    finally:
        os.unlink(data.name)
        shutil.rmtree(control, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
