"""Tests for vibetwist.tap: the options of twistd vibetunnel."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.tap import DEFAULT_LISTEN, Options, parse_byte_size


class OptionsTests(SynchronousTestCase):
    """The daemon's options, their defaults and their refusals."""

    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_defaults(self) -> None:
        """With no options it listens on 127.0.0.1:4020 with 10,000 lines of scrollback."""
        options = self.parse()
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])
        self.assertEqual(options["scrollback"], 10000)
        self.assertIsInstance(options["control-dir"], Path)

    def test_control_dir_from_environment(self) -> None:
        """$VIBETUNNEL_CONTROL_DIR sets the default control directory."""
        old = os.environ.get("VIBETUNNEL_CONTROL_DIR")
        os.environ["VIBETUNNEL_CONTROL_DIR"] = "/tmp/vt-env-test"
        try:
            self.assertEqual(self.parse()["control-dir"], Path("/tmp/vt-env-test"))
        finally:
            if old is None:
                del os.environ["VIBETUNNEL_CONTROL_DIR"]
            else:
                os.environ["VIBETUNNEL_CONTROL_DIR"] = old

    def test_listen_repeatable(self) -> None:
        """--listen may be given several times; loopback and unix endpoints are accepted."""
        options = self.parse(
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            "tcp6:0:interface=\\:\\:1",
            "--listen",
            "unix:/tmp/vt.sock",
        )
        self.assertEqual(len(options["listen"]), 3)

    def test_refuses_exposed_listen(self) -> None:
        """Listening beyond loopback is refused while there is no authentication."""
        for description in [
            "tcp:4020",
            "tcp:4020:interface=0.0.0.0",
            "tcp6:4020",
            "tcp:4020:interface=192.168.1.2",
            "nonsense:1",
        ]:
            self.assertRaises(usage.UsageError, self.parse, "--listen", description)

    def test_sizes(self) -> None:
        """--max-recording takes sizes with K, M, G suffixes; nonsense is refused."""
        self.assertEqual(parse_byte_size("512K"), 512 * 1024)
        self.assertEqual(parse_byte_size("2G"), 2 * 1024**3)
        self.assertEqual(parse_byte_size("100"), 100)
        self.assertEqual(self.parse("--max-recording", "10M")["max-recording"], 10 * 1024**2)
        self.assertRaises(usage.UsageError, self.parse, "--max-recording", "lots")
        self.assertRaises(usage.UsageError, self.parse, "--scrollback", "-1")

    def test_metrics_options(self) -> None:
        """Metrics are on by default; --metrics-listen takes an endpoint string, a malformed one
        is refused, and so is --metrics-listen with --no-metrics."""
        self.assertFalse(self.parse()["no-metrics"])
        self.assertIsNone(self.parse()["metrics-listen"])
        options = self.parse("--metrics-listen", "tcp:9120:interface=0.0.0.0")
        self.assertEqual(options["metrics-listen"], "tcp:9120:interface=0.0.0.0")
        self.assertRaises(usage.UsageError, self.parse, "--metrics-listen", "nonsense:1")
        self.assertRaises(
            usage.UsageError, self.parse, "--metrics-listen", "tcp:9120:interface=127.0.0.1", "--no-metrics"
        )
