"""The recording download plays in asciinema 2.x (a real asciinema, in a real PTY)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SkipTest

from .test_api import APITestCase


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


class AsciinemaTests(APITestCase):
    """asciinema play accepts the download, and would reject the raw file."""

    def test_download_plays(self) -> None:
        """The /recording download plays; the stdout file with its exit line does not."""
        sid = self.create()
        process = self.launcher.last
        process.say("hello \u4e2d\r\n".encode())
        process.exit(0)
        code, data = self.call("GET", f"/api/sessions/{sid}/recording")
        with tempfile.NamedTemporaryFile(suffix=".cast") as f:
            f.write(data)
            f.flush()
            status, shown = play(f.name)
        self.assertEqual(status, 0, shown)
        self.assertIn("hello 中".encode(), shown)
        status, _ = play(str(self.tmp / "control" / sid / "stdout"))
        self.assertNotEqual(status, 0)
