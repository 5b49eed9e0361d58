"""The other routes VibeTunnel's browser client calls (docs/protocol.md, section 2,
"VibeTunnel's other routes"): /api/config, /api/server/status, /api/auth/current-user,
/api/push/vapid-public-key (the key; the rest of Web Push is in tests.test_push) and POST
/api/logs/client, in memory and over real sockets
(/api/events is in tests.test_events)."""

from __future__ import annotations

import json
import os
import pwd
from typing import Any

from twisted.logger import Logger

from tests.support.api import APITestCase
from tests.support.e2e import DaemonTestCase
from tests.support.login import LoginDaemonTestCase
from vibetwist import __version__
from vibetwist.server.api import MAX_CLIENT_LOG

ME = pwd.getpwuid(os.getuid()).pw_name


class ClientLogTests(APITestCase):
    """POST /api/logs/client: validated, size-limited, logged at debug level."""

    def setUp(self) -> None:
        super().setUp()
        self.logged: list[dict[str, Any]] = []
        self.api.client_log = Logger(namespace="vibetwist.browser", observer=self.logged.append)

    def test_logged_at_debug(self) -> None:
        """A browser's line is logged at debug level, its arguments joined (non-strings as
        JSON), and answered {success: true}."""
        code, body = self.call(
            "POST", "/api/logs/client", {"level": "warn", "module": "terminal", "args": ["lost", {"n": 2}, 3]}
        )
        self.assertEqual((code, body), (200, {"success": True}))
        [event] = self.logged
        self.assertEqual(event["log_level"].name, "debug")
        self.assertEqual(event["log_namespace"], "vibetwist.browser")
        self.assertEqual(
            (event["console"], event["module"], event["text"]), ("warn", "terminal", 'lost {"n": 2} 3')
        )

    def test_tokens_redacted(self) -> None:
        """Tokens in a browser's line (a URL with ?token=, a Bearer header) never reach the log."""
        self.call(
            "POST",
            "/api/logs/client",
            {
                "level": "error",
                "module": "ws",
                "args": ["ws://h/ws/input?token=SECRET1", "Bearer SECRET2\nnext"],
            },
        )
        text = self.logged[0]["text"]
        self.assertNotIn("SECRET", text)
        self.assertNotIn("\n", text)

    def test_long_text_cut(self) -> None:
        """At most 4000 characters of a line are logged."""
        self.call("POST", "/api/logs/client", {"level": "log", "module": "m", "args": ["x" * 20000]})
        self.assertEqual(len(self.logged[0]["text"]), 4003)

    def test_malformed(self) -> None:
        """A body without a known level, a string module and an args array is a 400, and
        nothing is logged."""
        for body in [
            {},
            {"level": "shout", "module": "m", "args": []},
            {"level": "log", "module": 3, "args": []},
            {"level": "log", "module": "m" * 201, "args": []},
            {"level": "log", "module": "m", "args": "text"},
            {"level": "log", "module": "m"},
        ]:
            code, answer = self.call("POST", "/api/logs/client", body)
            self.assertEqual(code, 400, body)
            self.assertIn("error", answer)
        code, _ = self.call("POST", "/api/logs/client", raw=b"[1, 2")
        self.assertEqual(code, 400)
        self.assertEqual(self.logged, [])

    def test_size_limit(self) -> None:
        """A body over 64 KiB is a 413."""
        body = json.dumps({"level": "log", "module": "m", "args": ["x" * MAX_CLIENT_LOG]}).encode()
        code, answer = self.call("POST", "/api/logs/client", raw=body)
        self.assertEqual(code, 413)
        self.assertIn("at most", answer["error"])
        self.assertEqual(self.logged, [])

    def test_post_only(self) -> None:
        """GET /api/logs/client is a 405: nothing reads the logs back."""
        self.assertEqual(self.call("GET", "/api/logs/client")[0], 405)


class ClientRoutesTests(DaemonTestCase):
    """The routes over a real socket, with login off."""

    async def test_config(self) -> None:
        """/api/config names a repository base path, is configured, offers quick-start
        commands (the daemon's shell first) and notification preferences, all off."""
        config = await self.client.get("/api/config")
        self.assertEqual(
            set(config),
            {"repositoryBasePath", "serverConfigured", "quickStartCommands", "notificationPreferences"},
        )
        self.assertEqual((config["repositoryBasePath"], config["serverConfigured"]), ("~", True))
        commands = config["quickStartCommands"]
        self.assertEqual(commands[0], {"name": "shell", "command": "bash"})
        self.assertTrue(all(isinstance(c["command"], str) and c["command"] for c in commands))
        self.assertEqual(
            set(config["notificationPreferences"]),
            set(
                "enabled sessionStart sessionExit commandCompletion commandError bell claudeTurn "
                "soundEnabled vibrationEnabled".split()
            ),
        )
        self.assertFalse(any(config["notificationPreferences"].values()))

    async def test_server_status(self) -> None:
        """/api/server/status: no Mac app, not HQ mode, and the version."""
        self.assertEqual(
            await self.client.get("/api/server/status"),
            {"macAppConnected": False, "isHQMode": False, "version": __version__},
        )

    async def test_current_user_without_login(self) -> None:
        """With login off, the current user is the account the daemon runs as."""
        self.assertEqual(await self.client.get("/api/auth/current-user"), {"userId": ME})

    async def test_push_key(self) -> None:
        """/api/push/vapid-public-key answers the daemon's VAPID public key and enabled: true
        (tests.test_push has the rest of Web Push)."""
        code, body, _ = await self.client.request("GET", "/api/push/vapid-public-key")
        self.assertEqual((code, body["enabled"]), (200, True))
        self.assertEqual(len(body["publicKey"]), 87)

    async def test_client_logs(self) -> None:
        """POST /api/logs/client takes a browser's line (200), refuses a malformed one (400)
        and one over 64 KiB (413)."""
        line = {"level": "log", "module": "app", "args": ["hello"]}
        self.assertEqual(
            (await self.client.request("POST", "/api/logs/client", line))[:2], (200, {"success": True})
        )
        self.assertEqual((await self.client.request("POST", "/api/logs/client", {"level": 1}))[0], 400)
        huge = dict(line, args=["x" * MAX_CLIENT_LOG])
        self.assertEqual((await self.client.request("POST", "/api/logs/client", huge))[0], 413)


class ClientRoutesLoginTests(LoginDaemonTestCase):
    """The routes over a real socket, with login on: behind the gate like every route."""

    async def test_behind_the_gate(self) -> None:
        """Without a token each route is a 401."""
        anonymous = self.anonymous()
        for method, path, body in [
            ("GET", "/api/config", None),
            ("GET", "/api/server/status", None),
            ("GET", "/api/auth/current-user", None),
            ("GET", "/api/push/vapid-public-key", None),
            ("GET", "/api/push/status", None),
            ("POST", "/api/push/subscribe", {}),
            ("POST", "/api/push/test", {}),
            ("POST", "/api/logs/client", {"level": "log", "module": "m", "args": []}),
        ]:
            code, answer, _ = await anonymous.request(method, path, body)
            self.assertEqual((code, answer), (401, {"error": "Authentication required"}), path)

    async def test_current_user_is_the_one_logged_in(self) -> None:
        """With a login token, the current user is the one it was issued to."""
        self.assertEqual(await self.client.get("/api/auth/current-user"), {"userId": "tester"})
        self.assertEqual((await self.client.get("/api/server/status"))["version"], __version__)
