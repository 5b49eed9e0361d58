"""Tests for share tokens on the WebSockets, over Autobahn's in-memory agent.

The site's gate refuses a share token on every other socket path before the
handshake (see test_auth); these tests check the sockets themselves also hold
a share token to reading its one session.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.testing import create_memory_agent
from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import WSClient as Client
from tests.support.sockets import SocketTestCase
from vibetwist.login.authority import Authority
from vibetwist.login.passwords import PasswordCheck
from vibetwist.login.tokens import Tokens
from vibetwist.model.snapshot import decode_buffers_frame
from vibetwist.server.websocket import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    BuffersProtocol,
    InputProtocol,
    TerminalStreamProtocol,
    WebSocketFactory,
)

READ_ONLY = {"type": "error", "message": "This link is read-only"}


class ShareSocketTests(SocketTestCase):
    """Sockets opened with a share token (login on) read one session and type nothing."""

    def setUp(self) -> None:
        super().setUp()
        self.tokens = Tokens(b"t" * 32)
        self.authority = Authority(
            self.tokens, self.clock, required=True, passwords=PasswordCheck(env_user="me", env_password="pw")
        )
        self.a, self.process_a = self.session()
        self.b, _ = self.session()
        self.token = self.tokens.share(self.a.id, 600)[0]

    def connect(
        self, protocol: type, path: str, compress: bool = False, client: type[Client] = Client
    ) -> Any:
        service: Any = self.service
        factory = WebSocketFactory(protocol, service, self.clock, self.cooperator, authority=self.authority)
        self.factory = factory
        self.built: list[Any] = []

        def build() -> Any:
            server = factory.buildProtocol(None)
            self.built.append(server)
            return server

        agent = create_memory_agent(self.net, self.pumper, build)
        d = agent.open(f"ws://127.0.0.1:4020{path}", {}, client)
        self.settle()
        return d

    def test_stream_is_read_only(self) -> None:
        """The byte stream says readOnly (even without ?readonly=1) and refuses input and resize."""
        client = self.successResultOf(
            self.connect(TerminalStreamProtocol, f"/ws/sessions/{self.a.id}?token={self.token}")
        )
        replay = client.texts()[0]
        self.assertEqual((replay["type"], replay["readOnly"]), ("replay", True))
        client.take()
        client.send_json({"type": "input", "data": "rm -rf /\r"})
        client.send_json({"type": "key", "key": "enter"})
        client.send_json({"type": "resize", "cols": 5, "rows": 5})
        client.sendMessage(b"typed", isBinary=True)
        self.settle()
        errors = [t for t in client.texts() if t["type"] == "error"]
        self.assertEqual(len(errors), 4)
        self.assertEqual(self.process_a.written, [])
        self.assertEqual(self.a.size, (20, 4))
        self.process_a.say(b"still watching")
        self.settle()
        self.assertIn(b"still watching", b"".join(client.binaries()))

    def test_stream_of_another_session(self) -> None:
        """A share token for A opening B's stream gets an error and a 4404 close."""
        client = self.successResultOf(
            self.connect(TerminalStreamProtocol, f"/ws/sessions/{self.b.id}?token={self.token}")
        )
        self.settle()
        self.assertEqual(client.texts(), [READ_ONLY])
        self.assertEqual(client.close_code, CLOSE_NOT_FOUND)

    def test_buffers_only_its_session(self) -> None:
        """/buffers with a share token subscribes to its session; any other gets an error frame."""
        client = self.successResultOf(self.connect(BuffersProtocol, f"/buffers?token={self.token}"))
        client.take()
        client.send_json({"type": "subscribe", "sessionId": self.b.id})
        client.send_json({"type": "subscribe", "sessionId": self.a.id})
        self.settle()
        got = client.take()
        self.assertEqual(client.texts(), [])
        texts = [m for binary, m in got if not binary]
        frames = [m for binary, m in got if binary]
        self.assertEqual(len(frames), 1)
        self.assertEqual(decode_buffers_frame(frames[0])[0], self.a.id)
        self.assertIn(b"This link is read-only", texts[0])
        self.assertIn(b'"subscribed"', texts[1])

    def test_input_socket_refused(self) -> None:
        """/ws/input with a share token closes with 4403 and writes nothing."""
        client = self.successResultOf(
            self.connect(InputProtocol, f"/ws/input?sessionId={self.a.id}&token={self.token}")
        )
        self.assertEqual(client.texts(), [READ_ONLY])
        self.assertEqual(client.close_code, CLOSE_FORBIDDEN)
        self.assertEqual(self.process_a.written, [])

    def test_no_token_denied(self) -> None:
        """With login on, a handshake without a valid token is denied (the real client sees
        the 401 in test_auth_e2e) and the socket never opens."""
        for path in ["/buffers", f"/ws/sessions/{self.a.id}?token=forged"]:
            d = self.connect(BuffersProtocol, path)
            self.assertNoResult(d)
            server = self.built[0]
            self.assertEqual(server.state, server.STATE_CLOSED)
            self.assertEqual(self.factory.connections, set())

    def test_login_token_types(self) -> None:
        """A login token opens a stream that may type."""
        token = self.tokens.login("me", "password", 600)
        client = self.successResultOf(
            self.connect(TerminalStreamProtocol, f"/ws/sessions/{self.a.id}?token={token}")
        )
        self.assertFalse(client.texts()[0]["readOnly"])
        client.send_json({"type": "input", "data": "ok"})
        self.settle()
        self.assertEqual(self.process_a.written, [b"ok"])


class NoAuthorityTests(SynchronousTestCase):
    """Sockets made without an authority (as in older tests) act for the local user."""

    def test_default_grant(self) -> None:
        """The default grant is full access."""
        self.assertFalse(TerminalStreamProtocol.grant.read_only)
