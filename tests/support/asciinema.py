"""A real asciinema 2.x playing a recording in a real PTY (skipped when it is not installed)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest


def play(path: str) -> tuple[int, bytes]:
    """Run asciinema play on path in a PTY at high speed; its exit code and what it showed."""
    beside = os.path.join(os.path.dirname(sys.executable), "asciinema")
    asciinema = beside if os.access(beside, os.X_OK) else shutil.which("asciinema")
    if asciinema is None:
        raise SkipTest("asciinema is not installed")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [asciinema, "play", "-s", "100", path],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 10)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            shown += data
    finally:
        os.close(master)
    return proc.wait(timeout=10), shown
