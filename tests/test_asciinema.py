"""The recording download plays in asciinema 2.x (a real asciinema, in a real PTY)."""

from __future__ import annotations

import tempfile

from tests.support.api import APITestCase
from tests.support.asciinema import play


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
