"""The daemon in memory: L{APITestCase} puts a SessionService with a fake launcher and the
REST API behind the HostOriginCheck, on a Clock, and calls it through treq's StubTreq."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.server.api import API
from vibetwist.server.hostcheck import HostOriginCheck
from vibetwist.sessions.screenfeed import ScreenScheduler
from vibetwist.sessions.service import SessionService
from vibetwist.testing import FakeLauncher, pump

#: The origin the in-memory API is called at, and the headers of a JSON request.
BASE = "http://127.0.0.1:4020"
JSON = {"Content-Type": "application/json"}


class APITestCase(SynchronousTestCase):
    """A daemon in memory: SessionService + API behind the HostOriginCheck, on a Clock."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp, True)
        (self.tmp / "home").mkdir()
        self.clock = Clock()
        self.launcher = FakeLauncher()
        self.service = SessionService(
            self.tmp / "control",
            reactor=self.clock,
            launcher=self.launcher,
            shell="/bin/sh",
            scrollback=100,
            environ={"HOME": str(self.tmp / "home"), "PATH": "/usr/bin:/bin"},
            screens=ScreenScheduler(self.clock, busy_delay=0),
        )
        self.service.startService()
        self.api = API(self.service, self.clock)
        self.treq = StubTreq(HostOriginCheck(self.api.resource()))

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        d = self.treq.request(method, BASE + path, data=data, headers=headers or JSON)
        pump(self.clock)
        self.treq.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        kind = response.headers.getRawHeaders("content-type", [""])[0]
        if kind.startswith("application/json"):
            return response.code, json.loads(content)
        return response.code, content

    def create(self, **body: Any) -> str:
        body.setdefault("command", ["cat"])
        code, answer = self.call("POST", "/api/sessions", body)
        self.assertEqual(code, 200, answer)
        pump(self.clock)
        return str(answer["sessionId"])
