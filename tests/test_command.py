"""Tests for vibetwist.model.launch: from a requested command to what is exec'd."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from vibetwist.errors import BadRequest
from vibetwist.model.launch import (
    DAEMON_SECRETS,
    default_name,
    display_directory,
    plan_launch,
    resolve_directory,
)


class CommandTests(SynchronousTestCase):
    """Commands, directories and names."""

    env = {"PATH": "/usr/bin:/bin", "HOME": "/home/u"}

    def test_program_found(self) -> None:
        """A program on PATH runs as given, with TERM and the session id set."""
        plan = plan_launch(["ls", "-l"], "/", "sid1", "/bin/sh", self.env)
        self.assertTrue(plan.executable.endswith("/ls"))
        self.assertEqual(plan.argv, ("ls", "-l"))
        self.assertEqual(plan.env["TERM"], "xterm-256color")
        self.assertEqual(plan.env["VIBETUNNEL_SESSION_ID"], "sid1")
        self.assertEqual(plan.env["PATH"], "/usr/bin:/bin")

    def test_daemon_secrets_left_out(self) -> None:
        """The daemon's credentials in its environment reach no session; the rest does."""
        env = dict(self.env, VIBETUNNEL_USERNAME="u", VIBETUNNEL_PASSWORD="p", VIBETWIST_TOKEN="t", KEEP="k")
        plan = plan_launch(["ls"], "/", "sid1", "/bin/sh", env)
        self.assertEqual([name for name in DAEMON_SECRETS if name in plan.env], [])
        self.assertEqual(plan.env["KEEP"], "k")
        self.assertIn("VIBETWIST_TOKEN", env)

    def test_bare_shell_is_login(self) -> None:
        """A bare shell runs as a login shell."""
        self.assertEqual(plan_launch(["bash"], "/", "s", "/bin/sh", self.env).argv, ("bash", "-l"))

    def test_not_a_program(self) -> None:
        """Anything else runs through the shell, quoted."""
        plan = plan_launch(["nonexistent-cmd", "it's"], "/", "s", "/bin/sh", self.env)
        self.assertEqual(plan.argv, ("/bin/sh", "-c", "nonexistent-cmd 'it'\"'\"'s'"))

    def test_directories(self) -> None:
        """A missing directory is a 400; none means home; ~ is expanded."""
        self.assertEqual(resolve_directory(None, "/home/u"), "/home/u")
        self.assertRaises(BadRequest, resolve_directory, "/no/such/place", "/home/u")
        self.assertRaises(BadRequest, resolve_directory, 5, "/home/u")
        with tempfile.NamedTemporaryFile() as f:
            self.assertRaises(BadRequest, resolve_directory, f.name, "/home/u")
        self.assertEqual(resolve_directory("~", "/x"), os.path.expanduser("~"))

    def test_names(self) -> None:
        """Default names show the basename and the directory with ~ for home."""
        self.assertEqual(default_name(["/usr/bin/vim", "x"], "/home/u/src", "/home/u"), "vim (~/src)")
        self.assertEqual(display_directory("/home/user2", "/home/u"), "/home/user2")
