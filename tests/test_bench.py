"""The benchmarks of ``bench/`` run and print their figures (their sizes are not checked).

Each runs once with ``--quick`` as a process of its own, against the real daemons,
nats-server and sockets it starts; the test checks that it ends by itself with
status 0, prints every line of its report, measured each figure, and left no
session process behind. How fast anything was is the benchmark's business, never
the test's.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from twisted.internet import utils
from twisted.trial import unittest

BENCH = Path(__file__).resolve().parent.parent / "bench"


class ClusterBenchTests(unittest.TestCase):
    """``bench/bench_cluster.py --quick``."""

    timeout = 300

    async def test_quick_run(self) -> None:
        """A quick run measures every figure through a gateway and straight to the host,
        and with and without --nats, prints them with their ratios, and cleans up."""
        results = Path(tempfile.mkdtemp(prefix="bench-test-")) / "cluster.json"
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            [str(BENCH / "bench_cluster.py"), "--quick", "--json", str(results)],
            env=dict(os.environ),
        )
        text = out.decode("utf-8", "replace")
        self.assertEqual(code, 0, text[-3000:] + err.decode("utf-8", "replace")[-3000:])
        for line in (
            "through a gateway against straight to the host:",
            "the NATS thread on a host: --nats against without:",
            "create p50 (POST to first output)",
            "echo p50, back to back",
            "echo p99, 20 ms apart",
            "throughput, base64, 1 viewer",
            "viewers: slowest",
            "listing p99",
            "listing bytes per session",
            "sleep 3600",
            "per viewer",
        ):
            self.assertIn(line, text)
        figures = json.loads(results.read_text())
        for way in ("plain", "direct", "gateway"):
            self.assertIsInstance(figures[way]["create_ms"]["p50"], float, way)
            self.assertEqual(figures[way]["echo_us"]["n"], 40, way)
            self.assertEqual(figures[way]["echo_paced_us"]["n"], 20, way)
            self.assertGreater(figures[way]["base64"]["bytes"], 2_000_000, way)
        for way in ("direct", "gateway"):
            self.assertEqual(figures[way]["viewers"]["viewers"], 10, way)
            self.assertGreater(figures[way]["viewers"]["min_mb_s"], 0, way)
        self.assertEqual(figures["gateway"]["listing"]["sessions"], 30)
        self.assertEqual(figures["direct"]["listing"]["sessions"], 10)
        self.assertIsInstance(figures["gateway"]["viewers"]["bytes_per_viewer"], float)
        self.assertEqual(figures["session_processes_left"], 0)
        self.assertEqual(figures["log_problems"], {})
