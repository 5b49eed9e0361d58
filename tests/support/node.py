"""A Node process running one of the tests' scripts, spoken to a JSON line at a time."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any


class NodeScript:
    """``node SCRIPT``, kept running: each :meth:`call` writes one JSON line and reads one back."""

    def __init__(self, script: Path) -> None:
        node = shutil.which("node")
        if node is None:
            raise AssertionError("node is not installed: ./dev test installs nodejs")
        self._process = subprocess.Popen(
            [node, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8"
        )

    def call(self, request: Any) -> Any:
        """Send ``request`` as one JSON line; the JSON line the script answers with."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise AssertionError(f"node ended (code {self._process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process.wait(10)
