"""End-to-end tests with login on: a shared daemon that has a user and password in its
environment (L{CREDENTIALS}), and L{log_in} to get a token from it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor

from tests.support.daemon import Client, Daemon, WSClient, open_ws
from tests.support.e2e import DaemonTestCase

#: The login the daemon is started with.
CREDENTIALS = {"VIBETUNNEL_USERNAME": "tester", "VIBETUNNEL_PASSWORD": "correct horse"}


async def log_in(client: Client, user: str = "tester", password: str = "correct horse") -> str:
    """Log in with a password; the token."""
    code, body, _ = await client.request("POST", "/api/auth/password", {"userId": user, "password": password})
    if code != 200:
        raise AssertionError(f"login answered {code}: {body!r}")
    return str(body["token"])


class LoginDaemonTestCase(DaemonTestCase):
    """A shared daemon with login on (environment credentials); self.client is logged in."""

    listen = "tcp:0:interface=127.0.0.1"
    args: tuple[str, ...] = ("--access-log",)

    async def start_daemon(
        self, base: Path | None = None, control_dir: Path | None = None, shared: bool = False
    ) -> Daemon:
        if base is None:
            base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, control_dir, listen=self.listen, args=self.args, env=CREDENTIALS)
        await daemon.start()
        if not shared:
            self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        return daemon

    async def _set_up(self) -> None:
        await super()._set_up()
        self.client.token = await log_in(self.client)

    def anonymous(self, token: str | None = None) -> Client:
        """Another client of the daemon, with that token or none."""
        client = self.client_for(self.daemon)
        client.token = token
        return client

    async def ws(self, path: str) -> WSClient:
        client: WSClient = await open_ws(reactor, self.daemon, path)
        self.addCleanup(
            lambda: client.dropConnection(abort=True) if client.state != client.STATE_CLOSED else None
        )
        return client
