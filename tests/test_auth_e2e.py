"""End-to-end tests of login and share links: the real daemon with a login, real sockets."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest

from tests.support.credentials import FAST, openssh_line, sign
from tests.support.daemon import Client, Daemon, poll, within
from tests.support.login import LoginDaemonTestCase, log_in
from vibetwist.login.passwords import format_password_file
from vibetwist.model.snapshot import decode_buffers_frame


class _StatusLine(Protocol):
    """Collects an HTTP answer until its status line is complete."""

    def __init__(self) -> None:
        self.data = b""
        self.status: defer.Deferred[int] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n" in self.data and not self.status.called:
            self.status.callback(int(self.data.split(b" ", 2)[1]))


async def handshake_status(daemon: Daemon, path: str) -> int:
    """The status a WebSocket opening handshake for path gets (101 is an upgrade)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", daemon.port, timeout=5)
    protocol = await connectProtocol(endpoint, _StatusLine())
    transport: Any = protocol.transport
    transport.write(request.encode())
    try:
        return await within(reactor, protocol.status, 5, "the handshake's answer")
    finally:
        transport.abortConnection()


class LoginTests(LoginDaemonTestCase):
    """Login over real HTTP; nothing but the open routes without a token."""

    async def test_refused_without_token(self) -> None:
        """Without a token the API is a 401 with WWW-Authenticate; health and config are open."""
        stranger = self.anonymous()
        code, body, response = await stranger.request("GET", "/api/sessions")
        self.assertEqual((code, body), (401, {"error": "Authentication required"}))
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"), ['Bearer realm="VibeTunnel"'])
        self.assertEqual((await stranger.request("GET", "/api/health"))[0], 200)
        config = (await stranger.request("GET", "/api/auth/config"))[1]
        self.assertEqual(config, {"enableSSHKeys": False, "disallowUserPassword": False, "noAuth": False})
        self.assertEqual((await stranger.request("GET", "/api/logs"))[0], 401)

    async def test_wrong_password(self) -> None:
        """A wrong password is a 401, the same as an unknown user."""
        stranger = self.anonymous()
        answers = []
        for user in ["tester", "nobody"]:
            code, body, _ = await stranger.request(
                "POST", "/api/auth/password", {"userId": user, "password": "wrong"}
            )
            answers.append((code, body))
        self.assertEqual(answers, [(401, {"error": "Invalid username or password"})] * 2)

    async def test_token_works_and_verifies(self) -> None:
        """The login token opens the API and verifies."""
        self.assertEqual(await self.client.get("/api/sessions"), [])
        self.assertEqual(await self.client.get("/api/auth/verify"), {"valid": True, "userId": "tester"})

    async def test_websocket_without_token_refused_before_upgrade(self) -> None:
        """A WebSocket handshake without a valid token is refused with 401 before the upgrade;
        with the token it upgrades (101)."""
        for path in ["/buffers", "/buffers?token=forged", "/ws/sessions/x", "/ws/input?sessionId=x"]:
            self.assertEqual(await handshake_status(self.daemon, path), 401, path)
        with_token = f"/buffers?token={self.client.token}"
        self.assertEqual(await handshake_status(self.daemon, with_token), 101)

    async def test_access_log_has_no_token(self) -> None:
        """The access log records requests made with ?token= without the token, also when the
        name is spelled with percent-escapes (?%74oken=, which the daemon reads as token)."""
        token = self.client.token
        assert token is not None
        stranger = self.anonymous()
        for name in ["token", "%74oken"]:
            marker = f"marker=e2e-redact-{name[:1]}"
            code, _, _ = await stranger.request("GET", f"/api/sessions?{name}={token}&{marker}")
            self.assertEqual(code, 200)
            await poll(reactor, lambda m=marker: m in self.daemon.log(), what="the access log line")
            log = self.daemon.log()
            self.assertIn(f"{name}=[redacted]&{marker}", log)
            self.assertNotIn(token, log)
            self.assertNotIn(token.split(".")[2], log)


class ShareTests(LoginDaemonTestCase):
    """A share link over real REST, SSE and WebSockets."""

    async def shared_session(self) -> tuple[str, str]:
        """A running shell that printed a marker, and a share token for it."""
        sid = await self.create(["bash", "--norc", "--noprofile"], cols=60, rows=10)
        await self.client.wait_status(sid, "running")
        code, body, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/input", {"text": "echo share-$((6*7))\r"}
        )
        self.assertEqual(code, 200)
        await self.client.wait_text(sid, "share-42")
        code, link, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200, link)
        return sid, str(link["token"])

    async def test_reads_over_rest_and_sse(self) -> None:
        """A share token reads the session, its text, its SSE stream and its recording."""
        sid, token = await self.shared_session()
        viewer = self.anonymous(token)
        self.assertEqual((await viewer.session(sid))["id"], sid)
        self.assertIn("share-42", await viewer.text(sid))
        stream = await viewer.stream(sid)
        await poll(reactor, lambda: "share-42" in stream.output(), what="share-42 on the stream")
        code, recording, _ = await viewer.request("GET", f"/api/sessions/{sid}/recording")
        self.assertEqual(code, 200)
        self.assertIn(b"share-42", recording)

    async def test_refused_everything_else(self) -> None:
        """Input, resize, kill, list, create: 403 read-only; the session keeps running."""
        sid, token = await self.shared_session()
        other = await self.create(["cat"])
        viewer = self.anonymous(token)
        attempts: list[tuple[str, str, Any]] = [
            ("POST", f"/api/sessions/{sid}/input", {"text": "exit\r"}),
            ("POST", f"/api/sessions/{sid}/resize", {"cols": 20, "rows": 5}),
            ("DELETE", f"/api/sessions/{sid}", None),
            ("GET", "/api/sessions", None),
            ("POST", "/api/sessions", {"command": ["true"]}),
            ("GET", f"/api/sessions/{other}", None),
            ("GET", f"/api/sessions/{other}/text", None),
        ]
        for method, path, body in attempts:
            code, answer, _ = await viewer.request(method, path, body)
            self.assertEqual((code, answer), (403, {"error": "This link is read-only"}), path)
        self.assertEqual((await self.client.session(sid))["status"], "running")

    async def test_websockets(self) -> None:
        """The byte stream is read-only, /buffers serves only its session, /ws/input is refused."""
        sid, token = await self.shared_session()
        other = await self.create(["cat"])
        stream = await self.ws(f"/ws/sessions/{sid}?readonly=0&token={token}")
        await stream.wait_for(lambda: [t for t in stream.texts() if t["type"] == "replay"])
        self.assertTrue(stream.texts()[0]["readOnly"])
        stream.send_json({"type": "input", "data": "exit\r"})
        await stream.wait_for(lambda: [t for t in stream.texts() if t["type"] == "error"])
        self.assertIn(b"share-42", b"".join(stream.binaries()))

        buffers = await self.ws(f"/buffers?token={token}")
        buffers.send_json({"type": "subscribe", "sessionId": other})
        buffers.send_json({"type": "subscribe", "sessionId": sid})
        await buffers.wait_for(lambda: [t for t in buffers.texts() if t["type"] == "subscribed"])
        self.assertIn({"type": "error", "message": "This link is read-only"}, buffers.texts())
        self.assertEqual({decode_buffers_frame(f)[0] for f in buffers.binaries()}, {sid})

        for path in [f"/ws/input?sessionId={sid}&token={token}", f"/ws/sessions/{other}?token={token}"]:
            self.assertEqual(await handshake_status(self.daemon, path), 403, path)
        self.assertEqual((await self.client.session(sid))["status"], "running")


class KeyAndFileLoginTests(unittest.TestCase):
    """A daemon whose logins are a password file and SSH keys (no environment credentials)."""

    timeout = 60

    async def test_password_file_and_ssh_key(self) -> None:
        """A password-file user and an authorized Ed25519 key both log in; strangers do not."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        base.mkdir(parents=True, exist_ok=True)
        passwords = base / "passwords"
        passwords.write_text(format_password_file({"alice": FAST.hash("alice's password")}))
        os.chmod(passwords, 0o600)
        key = Ed25519PrivateKey.generate()
        authorized = base / "authorized_keys"
        authorized.write_text(openssh_line(key) + "\n")
        args = ("--password-file", str(passwords), "--ssh-keys", "--authorized-keys", str(authorized))
        daemon = Daemon(reactor, base, args=args)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))

        config = (await client.request("GET", "/api/auth/config"))[1]
        self.assertEqual(config, {"enableSSHKeys": True, "disallowUserPassword": False, "noAuth": False})
        self.assertEqual((await client.request("GET", "/api/sessions"))[0], 401)
        with_password = await log_in(client, "alice", "alice's password")

        user = pwd.getpwuid(os.getuid()).pw_name
        code, challenge, _ = await client.request("POST", "/api/auth/challenge", {"userId": user})
        self.assertEqual(code, 200, challenge)
        answer = {
            "challengeId": challenge["challengeId"],
            "publicKey": openssh_line(key),
            "signature": sign(key, challenge),
        }
        code, body, _ = await client.request("POST", "/api/auth/ssh-key", answer)
        self.assertEqual((code, body["userId"], body["authMethod"]), (200, user, "ssh-key"))
        self.assertEqual((await client.request("POST", "/api/auth/ssh-key", answer))[0], 401)

        stranger = Ed25519PrivateKey.generate()
        _, challenge, _ = await client.request("POST", "/api/auth/challenge", {"userId": user})
        answer = {
            "challengeId": challenge["challengeId"],
            "publicKey": openssh_line(stranger),
            "signature": sign(stranger, challenge),
        }
        self.assertEqual((await client.request("POST", "/api/auth/ssh-key", answer))[0], 401)

        for token in [with_password, body["token"]]:
            client.token = token
            self.assertEqual(await client.get("/api/sessions"), [])
