"""The base of the end-to-end tests: a test case with a real daemon shared by its class.

L{DaemonTestCase} gives each test C{self.daemon} (a running L{Daemon}) and
C{self.client}; L{read_cast} reads a recording file the daemon wrote.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support.daemon import Client, Daemon


def read_cast(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    """The header and the event arrays (the exit line included) of a recording file;
    a last line still being written is left out."""
    lines = path.read_bytes().split(b"\n")[:-1]
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def output_of(events: list[list[Any]]) -> str:
    """The text of every output event among a recording's events."""
    return "".join(e[2] for e in events if len(e) == 3 and e[1] == "o")


def recorded_output(path: Path) -> str:
    """The text of every output event of a recording file."""
    return output_of(read_cast(path)[1])


#: The daemon each class shares between its tests, while its tests run.
_shared: dict[type, Daemon] = {}


class DaemonTestCase(unittest.TestCase):
    """Tests against one daemon shared by the tests of the class.

    Whichever test of the class runs first starts it; the first test of another class
    stops it (the last one is stopped when the test process exits). The tests of a class
    run in any order, so each looks only at the sessions it made: those of an earlier
    test may still be listed (deleted ones are killed, and stay listed once exited).
    A class with C{shared = False} starts the daemons it needs itself.
    """

    timeout = 60
    shared = True
    #: More options for the daemons the class starts.
    daemon_args: tuple[str, ...] = ()

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        self.sessions: list[str] = []
        cls = type(self)
        for other in [c for c in _shared if c is not cls]:
            await _shared.pop(other).stop()
        if self.shared:
            daemon = _shared.get(cls)
            if daemon is None or not daemon.running:
                daemon = await self.start_daemon(shared=True)
                _shared[cls] = daemon
            self.daemon = daemon
            self.client = self.client_for(daemon)
            self.addCleanup(self._end_sessions)

    async def start_daemon(
        self, base: Path | None = None, control_dir: Path | None = None, shared: bool = False
    ) -> Daemon:
        """A new running daemon; one not shared is stopped when the test ends."""
        if base is None:
            base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, control_dir, args=self.daemon_args)
        await daemon.start()
        if not shared:
            self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        return daemon

    def client_for(self, daemon: Daemon) -> Client:
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return client

    async def _end_sessions(self) -> None:
        """Delete the sessions this test made (killing running ones)."""
        if self.daemon.running:
            for sid in self.sessions:
                await self.client.request("DELETE", f"/api/sessions/{sid}")

    async def create(self, command: list[str], **fields: Any) -> str:
        sid = await self.client.create(command, **fields)
        self.sessions.append(sid)
        return sid

    def assertJSONError(self, code: int, body: Any, expected: int, what: str = "") -> None:
        """The answer has the expected status and a JSON body with an "error" string."""
        self.assertEqual(code, expected, f"{what}: {body!r}")
        self.assertIsInstance(body, dict, f"{what}: not JSON: {body!r}")
        self.assertIsInstance(body.get("error"), str, what)
