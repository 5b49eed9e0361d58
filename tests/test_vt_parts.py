"""The small parts of vt: signals named in kill commands, exit codes, the ls table, options."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from vibetwist.vt import DEFAULT_URL, _server, main
from vibetwist.vt._forward import signal_number, wait_code
from vibetwist.vt._remote import format_sessions


class PartsTests(SynchronousTestCase):
    def test_signal_number(self) -> None:
        """A kill command's signal may be a number or a name with or without SIG; anything
        else is refused."""
        self.assertEqual(signal_number(15), signal.SIGTERM)
        self.assertEqual(signal_number("SIGKILL"), signal.SIGKILL)
        self.assertEqual(signal_number("hup"), signal.SIGHUP)
        for bad in (0, -1, 999, True, "SIGNOPE", "1; rm", None, 1.5):
            self.assertIsNone(signal_number(bad), bad)

    def test_wait_code(self) -> None:
        """A wait status becomes the exit status, or 128+N for signal N."""
        self.assertEqual(wait_code(7 << 8), 7)
        self.assertEqual(wait_code(signal.SIGKILL), 128 + signal.SIGKILL)

    def test_format_sessions(self) -> None:
        """vt ls prints a header and one aligned row per session, with exit codes."""
        table = format_sessions(
            [
                {"id": "a1", "status": "running", "name": "bash (~)", "command": ["bash"]},
                {"id": "b22", "status": "exited", "exitCode": 3, "name": "x", "command": ["make", "all"]},
            ]
        )
        lines = table.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "STATUS", "NAME", "COMMAND"])
        self.assertEqual(lines[1].split(), ["a1", "running", "bash", "(~)", "bash"])
        self.assertEqual(lines[2].split(), ["b22", "exited(3)", "x", "make", "all"])
        self.assertEqual(lines[1].index("running"), lines[2].index("exited(3)"))

    def test_server_option(self) -> None:
        """--server URL (or =URL) wins over $VIBETWIST_URL, which wins over the default."""
        self.assertEqual(_server(["ls"], {}), (DEFAULT_URL, ["ls"]))
        self.assertEqual(_server(["ls"], {"VIBETWIST_URL": "http://h:1/"}), ("http://h:1", ["ls"]))
        self.assertEqual(_server(["--server", "http://x:2", "ls"], {}), ("http://x:2", ["ls"]))
        self.assertEqual(
            _server(["attach", "id", "--server=http://y:3"], {}), ("http://y:3", ["attach", "id"])
        )

    def test_unsafe_control_dir_refused(self) -> None:
        """vt runs nothing and says why when its control directory sits in a folder others may
        write (they could read or replace the session's files)."""
        shared = Path(tempfile.mkdtemp()) / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        marker = shared.parent / "ran"
        self.patch(os, "environ", {"VIBETUNNEL_CONTROL_DIR": str(shared / "control"), "PATH": os.defpath})
        errors: list[str] = []
        self.patch(sys.stderr, "write", errors.append)
        self.assertEqual(main(["touch", str(marker)]), 1)
        self.assertIn("vt: the control directory:", "".join(errors))
        self.assertIn("may be changed by other users", "".join(errors))
        self.assertFalse(marker.exists())
        self.assertFalse((shared / "control").exists())

    def test_nested_refused(self) -> None:
        """Inside a session, vt refuses to run a command and says why."""
        self.patch(os, "environ", {"VIBETUNNEL_SESSION_ID": "abc"})
        errors: list[str] = []
        self.patch(sys.stderr, "write", errors.append)
        self.assertEqual(main(["true"]), 1)
        self.assertIn("nested vt is refused", "".join(errors))
