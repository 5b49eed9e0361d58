"""Tests for vibetwist.login.gate: the gate in front of every route, logging in, and share links.

The daemon runs in memory (fake programs, a Clock) behind the same HostOriginCheck and
LoginGate as the real one, with login on unless a test says otherwise. Requests come
from a process of the daemon's own user unless a test sets another peer.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from tests.support.api import BASE, JSON, APITestCase
from tests.support.credentials import FAST, openssh_line, sign
from vibetwist.login.authority import (
    FAILURE_DELAY,
    FAILURE_WINDOW,
    HASHING_AT_ONCE,
    MAX_FAILURES,
    MAX_USER_FAILURES,
    MAX_WAITING,
    Authority,
    LoginRefused,
    TooManyAttempts,
)
from vibetwist.login.gate import (
    OPEN_PATHS,
    OTHER_USER,
    LoginGate,
    bearer_token,
    is_open,
    redact,
    redacted_log_formatter,
    share_allows,
)
from vibetwist.login.passwords import PasswordCheck
from vibetwist.login.sshkeys import SSHKeyLogin
from vibetwist.login.tokens import Grant, Tokens
from vibetwist.model.peercred import REMOTE, Peer
from vibetwist.server.api import API
from vibetwist.server.hostcheck import HostOriginCheck
from vibetwist.testing import pump

SECRET = b"k" * 32
AUTH_REQUIRED = {"error": "Authentication required"}
READ_ONLY = {"error": "This link is read-only"}
#: A process of the daemon's own user, and one of another user of the machine.
OWN_USER = Peer(os.getuid(), True)
OTHER_LOCAL_USER = Peer(os.getuid() + 4242, True)

#: What a share token may request (besides the open paths), as (method, route).
SHARE_ALLOWED = {
    ("GET", "/api/sessions/<session_id>"),
    ("GET", "/api/sessions/<session_id>/text"),
    ("GET", "/api/sessions/<session_id>/buffer"),
    ("GET", "/api/sessions/<session_id>/stream"),
    ("GET", "/api/sessions/<session_id>/recording"),
    ("GET", "/ws/sessions/<session_id>"),
    ("GET", "/buffers"),
}


def routes() -> list[tuple[str, str]]:
    """Every (method, route) the API registers."""
    found = []
    for rule in API.app.url_map.iter_rules():
        for method in sorted(rule.methods or ()):
            found.append((method, rule.rule))
    return found


class AuthTestCase(APITestCase):
    """The in-memory daemon of test_api, with a login: alice/pw (file), me/envpw (environment),
    and an Ed25519 key of "me"."""

    login_required = True
    #: Who makes the requests.
    peer = OWN_USER

    def setUp(self) -> None:
        super().setUp()
        self.key = Ed25519PrivateKey.generate()
        keys = Path(tempfile.mkdtemp()) / "authorized_keys"
        keys.write_text(openssh_line(self.key) + "\n")
        self.tokens = Tokens(SECRET)
        self.authority = Authority(
            self.tokens,
            self.clock,
            required=self.login_required,
            passwords=PasswordCheck({"alice": FAST.hash("pw")}, "me", "envpw", hasher=FAST),
            ssh=SSHKeyLogin(keys, "me", self.clock),
            run_blocking=lambda f, *args: succeed(f(*args)),
        )
        self.api = API(self.service, self.clock, authority=self.authority, peer_of=lambda request: self.peer)
        self.treq = StubTreq(
            HostOriginCheck(LoginGate(self.api.resource(), self.authority, lambda request: self.peer))
        )
        self.full = self.tokens.login("me", "password", 3600)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """One request; failed logins' delays pass on the clock."""
        all_headers = dict(headers or JSON)
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        d = self.treq.request(method, BASE + path, data=data, headers=all_headers)
        answered: list[Any] = []
        d.addBoth(lambda result: answered.append(True) or result)
        for _ in range(3):
            pump(self.clock)
            self.treq.flush()
            if answered:
                break
            self.clock.advance(FAILURE_DELAY)
        response = self.successResultOf(d)
        self.last_headers = response.headers
        content = self.successResultOf(response.content())
        kind = response.headers.getRawHeaders("content-type", [""])[0]
        if kind.startswith("application/json") and content:
            return response.code, json.loads(content)
        return response.code, content

    def create(self, **body: Any) -> str:
        body.setdefault("command", ["cat"])
        code, answer = self.call("POST", "/api/sessions", body, token=self.full)
        self.assertEqual(code, 200, answer)
        pump(self.clock)
        return str(answer["sessionId"])

    def share(self, session_id: str, **body: Any) -> dict[str, Any]:
        code, answer = self.call("POST", f"/api/sessions/{session_id}/share", body, token=self.full)
        self.assertEqual(code, 200, answer)
        return dict(answer)

    def exited(self) -> str:
        """A session whose program has printed "hi" and exited (its streams end)."""
        session_id = self.create()
        process = self.launcher.last
        process.say(b"hi")
        process.exit(0)
        pump(self.clock)
        return session_id


class CoverageTests(AuthTestCase):
    """No route is reachable without a token except the open list, and share tokens reach
    only their own session's read routes. New routes are covered by these tests unchanged."""

    def concrete(self, route: str, session_id: str) -> str:
        return route.replace("<session_id>", session_id)

    def test_open_routes_are_exactly_the_open_list(self) -> None:
        """The open routes are health, the login routes, the page and its static files,
        and nothing else."""
        registered = {route for _, route in routes()}
        expected = {
            "/",
            "/api/health",
            "/api/auth/config",
            "/api/auth/verify",
            "/api/auth/password",
            "/api/auth/challenge",
            "/api/auth/ssh-key",
        }
        self.assertEqual(OPEN_PATHS & registered, expected)
        static = {route for route in registered if is_open(route)} - expected
        self.assertTrue(all(route.startswith("/static/") for route in static), static)
        for route in ["/api/sessions", "/api/stats", "/buffers", "/ws/input", "/api/auth", "/staticx"]:
            self.assertFalse(is_open(route), route)

    def test_every_route_refuses_no_token(self) -> None:
        """Every registered route except the open ones answers 401 without a token."""
        session_id = self.exited()
        checked = 0
        for method, route in routes():
            if is_open(route):
                continue
            code, body = self.call(method, self.concrete(route, session_id), {})
            self.assertEqual(code, 401, (method, route))
            if method != "HEAD":
                self.assertEqual(body, AUTH_REQUIRED)
            self.assertEqual(
                self.last_headers.getRawHeaders("www-authenticate"), ['Bearer realm="VibeTunnel"']
            )
            checked += 1
        self.assertGreaterEqual(checked, 18)

    def test_every_route_refuses_a_bad_token(self) -> None:
        """A forged token is refused everywhere a token is needed."""
        session_id = self.exited()
        forged = Tokens(b"x" * 32).login("me", "password", 3600)
        for method, route in routes():
            if not is_open(route):
                code, _ = self.call(method, self.concrete(route, session_id), {}, token=forged)
                self.assertEqual(code, 401, (method, route))

    def test_share_token_reaches_only_its_read_routes(self) -> None:
        """With a share token, every route outside its read-only list answers 403."""
        session_id = self.exited()
        token = self.share(session_id)["token"]
        for method, route in routes():
            if is_open(route) and route != "/api/auth/verify":
                continue
            code, body = self.call(method, self.concrete(route, session_id), {}, token=token)
            if (method, route) in SHARE_ALLOWED:
                self.assertNotIn(code, (401, 403), (method, route, body))
            else:
                self.assertEqual(code, 403, (method, route))
                if method != "HEAD":
                    self.assertEqual(body, READ_ONLY)

    def test_full_token_reaches_every_read_route(self) -> None:
        """A login token passes the gate on every GET route (/api/events, a stream that
        never ends, in tests.test_events)."""
        session_id = self.exited()
        for method, route in routes():
            if method == "GET" and route != "/api/events":
                code, body = self.call(method, self.concrete(route, session_id), token=self.full)
                self.assertNotIn(code, (401, 403), (route, body))

    def test_no_log_endpoint(self) -> None:
        """No route reads logs back: /api/logs* is 401 without a token and 404 with one (the
        one log route, POST /api/logs/client, only takes a browser's lines)."""
        for path in ["/api/logs", "/api/logs/raw", "/api/logs/info", "/api/logs/clear"]:
            for method in ["GET", "POST", "DELETE"]:
                self.assertEqual(self.call(method, path)[0], 401, path)
                self.assertEqual(self.call(method, path, token=self.full)[0], 404, path)

    def test_dot_segments_refused(self) -> None:
        """Paths with . or .. segments (also percent-encoded) or NUL are 404 (no route has
        one), even after an open prefix."""
        for path in [
            "/api/auth/../sessions",
            "/api/auth/%2e%2e/sessions",
            "/api/health/..%2Fsessions",
            "/static/../api/sessions",
            "/api/sessions/%2E",
            "/api/sessions%00",
        ]:
            self.assertEqual(self.call("GET", path), (404, {"error": "Not found"}), path)

    def test_websocket_handshake_refused_before_upgrade(self) -> None:
        """A WebSocket handshake without a valid token is a 401 before any upgrade."""
        session_id = self.create()
        upgrade = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        for path in ["/buffers", f"/ws/input?sessionId={session_id}", f"/ws/sessions/{session_id}"]:
            code, body = self.call("GET", path, headers=upgrade)
            self.assertEqual((code, body), (401, AUTH_REQUIRED), path)
            code, _ = self.call("GET", path + ("&" if "?" in path else "?") + "token=nope", headers=upgrade)
            self.assertEqual(code, 401, path)


class LoginTests(AuthTestCase):
    """Password and SSH-key login give tokens that open the API."""

    def test_config(self) -> None:
        """The config names the methods that are on, and that login is on."""
        self.assertEqual(
            self.call("GET", "/api/auth/config"),
            (200, {"enableSSHKeys": True, "disallowUserPassword": False, "noAuth": False}),
        )

    def test_password_login(self) -> None:
        """A right password gives a token that works as Bearer and as ?token=."""
        for user, password in [("alice", "pw"), ("me", "envpw")]:
            code, body = self.call("POST", "/api/auth/password", {"userId": user, "password": password})
            self.assertEqual(code, 200, body)
            self.assertEqual((body["success"], body["userId"], body["authMethod"]), (True, user, "password"))
            self.assertEqual(self.call("GET", "/api/sessions", token=body["token"]), (200, []))
            self.assertEqual(self.call("GET", f"/api/sessions?token={body['token']}"), (200, []))
            self.assertEqual(
                self.call("GET", "/api/auth/verify", token=body["token"]),
                (200, {"valid": True, "userId": user}),
            )

    def test_wrong_password_and_unknown_user_look_the_same(self) -> None:
        """A wrong password and an unknown user get the same 401 answer, after a delay."""
        answers = [
            self.call("POST", "/api/auth/password", {"userId": user, "password": "nope"})
            for user in ["alice", "nobody"]
        ]
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0], (401, {"error": "Invalid username or password"}))
        d = self.treq.request(
            "POST", BASE + "/api/auth/password", data=b'{"userId":"alice","password":"x"}', headers=JSON
        )
        pump(self.clock)
        self.assertNoResult(d)
        self.clock.advance(FAILURE_DELAY)
        pump(self.clock)
        self.treq.flush()
        self.assertEqual(self.successResultOf(d).code, 401)

    def test_hashing_bounded(self) -> None:
        """At most HASHING_AT_ONCE password hashes are checked at once; the rest wait their turn."""
        started: list[Deferred[bool]] = []

        def slow(f: Any, *args: Any) -> Deferred[bool]:
            started.append(Deferred())
            return started[-1]

        authority = Authority(
            self.tokens,
            self.clock,
            passwords=PasswordCheck(env_user="me", env_password="pw"),
            run_blocking=slow,
        )
        logins = [
            Deferred.fromCoroutine(
                authority.password_login(f"10.0.0.{n}", {"userId": "me", "password": "pw"})
            )
            for n in range(5)
        ]
        self.assertEqual(len(started), HASHING_AT_ONCE)
        started[0].callback(True)
        self.assertEqual(self.successResultOf(logins[0])["userId"], "me")
        self.assertEqual(len(started), HASHING_AT_ONCE + 1)
        for d in started[1:]:
            d.callback(True)
        self.assertEqual(len(started), 5)
        for d in started[HASHING_AT_ONCE + 1 :]:
            d.callback(True)
        for login in logins:
            self.successResultOf(login)

    def test_bad_login_bodies(self) -> None:
        """Non-string credentials and malformed JSON are 400s."""
        self.assertEqual(self.call("POST", "/api/auth/password", {"userId": 1, "password": "pw"})[0], 400)
        self.assertEqual(self.call("POST", "/api/auth/password", raw=b"{nope")[0], 400)

    def test_failures_throttled_per_address(self) -> None:
        """After MAX_FAILURES failures an address gets 429, even with the right password,
        until the window has passed."""
        self.peer = REMOTE
        for _ in range(MAX_FAILURES):
            self.call("POST", "/api/auth/password", {"userId": "alice", "password": "guess"})
        right = {"userId": "alice", "password": "pw"}
        code, body = self.call("POST", "/api/auth/password", right)
        self.assertEqual(code, 429, body)
        self.clock.advance(FAILURE_WINDOW)
        self.assertEqual(self.call("POST", "/api/auth/password", right)[0], 200)

    def test_verify(self) -> None:
        """verify: 401 without or with a bad token, 403 with a share token."""
        self.assertEqual(self.call("GET", "/api/auth/verify")[0], 401)
        self.assertEqual(self.call("GET", "/api/auth/verify", token="junk")[0], 401)
        share = self.share(self.create())["token"]
        self.assertEqual(self.call("GET", "/api/auth/verify", token=share), (403, READ_ONLY))

    def test_ssh_key_login(self) -> None:
        """A challenge signed by a listed key gives a token; a replayed answer does not."""
        code, challenge = self.call("POST", "/api/auth/challenge", {"userId": "me"})
        self.assertEqual(code, 200, challenge)
        answer = {
            "challengeId": challenge["challengeId"],
            "publicKey": openssh_line(self.key),
            "signature": sign(self.key, challenge),
        }
        code, body = self.call("POST", "/api/auth/ssh-key", answer)
        self.assertEqual(code, 200, body)
        self.assertEqual((body["userId"], body["authMethod"]), ("me", "ssh-key"))
        self.assertEqual(self.call("GET", "/api/sessions", token=body["token"]), (200, []))
        self.assertEqual(self.call("POST", "/api/auth/ssh-key", answer)[0], 401)

    def test_ssh_key_of_a_stranger(self) -> None:
        """A key that is not listed is refused."""
        stranger = Ed25519PrivateKey.generate()
        _, challenge = self.call("POST", "/api/auth/challenge", {"userId": "me"})
        answer = {
            "challengeId": challenge["challengeId"],
            "publicKey": openssh_line(stranger),
            "signature": sign(stranger, challenge),
        }
        self.assertEqual(self.call("POST", "/api/auth/ssh-key", answer)[0], 401)

    def test_expired_login_token(self) -> None:
        """A login token past its expiry is refused."""
        old = Tokens(SECRET, now=lambda: 1_000_000.0).login("me", "password", 3600)
        self.assertEqual(self.call("GET", "/api/sessions", token=old), (401, AUTH_REQUIRED))

    def test_session_list_carries_no_secrets(self) -> None:
        """The session list holds no token, secret or share link, whatever was made."""
        session_id = self.create()
        link = self.share(session_id)
        code, listing = self.call("GET", "/api/sessions", token=self.full)
        self.assertEqual(code, 200)
        text = json.dumps(listing)
        for secret in [link["token"], self.full, SECRET.hex(), SECRET.decode()]:
            self.assertNotIn(secret, text)
        self.assertNotIn("token", text.lower())
        self.assertNotIn("secret", text.lower())


class PathTrickTests(AuthTestCase):
    """Ids with path tricks answer 4xx and touch no file."""

    TRICKS = [
        "..%2F..%2Fetc",
        "..%2Fvictim",
        "%2e%2e",
        "%2E%2E%2Fvictim",
        "..",
        "a%00b",
        "a%2Fb",
        "%252e%252e%252fvictim",
        "x" * 5000,
        "%C0%AE%C0%AE",
    ]

    def test_tricks_refused_and_nothing_touched(self) -> None:
        """Every route given a tricky id answers 4xx and no file outside is removed."""
        victim = self.tmp / "victim"
        victim.mkdir()
        (victim / "session.json").write_text("{}")
        keep = self.create()
        before = sorted(p.name for p in (self.tmp / "control").iterdir())
        for trick in self.TRICKS:
            for method, route in routes():
                if "<session_id>" not in route:
                    continue
                path = route.replace("<session_id>", trick)
                code, _ = self.call(method, path, {"text": "x"}, token=self.full)
                self.assertTrue(400 <= code < 500, (method, path[:80], code))
        self.assertTrue((victim / "session.json").exists())
        self.assertEqual(sorted(p.name for p in (self.tmp / "control").iterdir()), before)
        self.assertEqual(self.call("GET", f"/api/sessions/{keep}", token=self.full)[0], 200)


class ShareTests(AuthTestCase):
    """POST /api/sessions/<id>/share and what its token may do over REST."""

    def test_link(self) -> None:
        """A share answer has the token, the id, an ISO expiry a day away, and a fragment URL."""
        session_id = self.create()
        link = self.share(session_id)
        self.assertEqual(set(link), {"token", "sessionId", "expiresAt", "url"})
        self.assertEqual(link["sessionId"], session_id)
        self.assertEqual(link["url"], f"/#session={session_id}&share={link['token']}")
        expires = datetime.datetime.strptime(link["expiresAt"], "%Y-%m-%dT%H:%M:%S.000Z")
        delta = expires.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)
        self.assertLess(abs(delta.total_seconds() - 86400), 60)
        short = self.share(session_id, expiresIn=60)
        expires = datetime.datetime.strptime(short["expiresAt"], "%Y-%m-%dT%H:%M:%S.000Z")
        delta = expires.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)
        self.assertLess(abs(delta.total_seconds() - 60), 60)

    def test_bad_lifetimes(self) -> None:
        """expiresIn must be a whole number from 1 s to 30 days."""
        session_id = self.create()
        for value in [0, -5, 30 * 86400 + 1, "60", 1.5, True, None]:
            code, _ = self.call(
                "POST", f"/api/sessions/{session_id}/share", {"expiresIn": value}, token=self.full
            )
            self.assertEqual(code, 400, value)
        self.assertEqual(self.call("POST", "/api/sessions/nope/share", {}, token=self.full)[0], 404)

    def test_reads_its_session(self) -> None:
        """A share token reads its session, its text and its buffer."""
        session_id = self.create()
        self.launcher.last.say(b"shared words")
        pump(self.clock)
        token = self.share(session_id)["token"]
        code, info = self.call("GET", f"/api/sessions/{session_id}", token=token)
        self.assertEqual((code, info["id"]), (200, session_id))
        code, text = self.call("GET", f"/api/sessions/{session_id}/text?token={token}")
        self.assertEqual(code, 200)
        self.assertIn(b"shared words", text)
        self.assertEqual(self.call("GET", f"/api/sessions/{session_id}/buffer", token=token)[0], 200)

    def test_cannot_write_resize_kill_rename_list_or_create(self) -> None:
        """Input, resize, kill, rename, list, create and new share links are 403 and change nothing."""
        session_id = self.create()
        token = self.share(session_id)["token"]
        attempts = [
            ("POST", f"/api/sessions/{session_id}/input", {"text": "rm -rf /\r"}),
            ("POST", f"/api/sessions/{session_id}/resize", {"cols": 10, "rows": 5}),
            ("DELETE", f"/api/sessions/{session_id}", None),
            ("DELETE", f"/api/sessions/{session_id}/cleanup", None),
            ("PATCH", f"/api/sessions/{session_id}", {"name": "mine"}),
            ("GET", "/api/sessions", None),
            ("POST", "/api/sessions", {"command": ["sh"]}),
            ("POST", f"/api/sessions/{session_id}/share", {}),
            ("POST", "/api/cleanup-exited", None),
            ("GET", "/api/stats", None),
        ]
        for method, path, body in attempts:
            self.assertEqual(self.call(method, path, body, token=token), (403, READ_ONLY), path)
        self.assertEqual(self.launcher.last.written, [])
        code, info = self.call("GET", f"/api/sessions/{session_id}", token=self.full)
        self.assertEqual((info["status"], info["name"]), ("running", "cat (~)"))
        self.assertEqual(len(self.service.sessions), 1)

    def test_other_session_refused(self) -> None:
        """A share token for session A cannot read session B."""
        a, b = self.create(), self.create()
        token = self.share(a)["token"]
        for suffix in ["", "/text", "/buffer", "/stream", "/recording"]:
            self.assertEqual(self.call("GET", f"/api/sessions/{b}{suffix}", token=token), (403, READ_ONLY))
        self.assertEqual(self.call("GET", f"/ws/sessions/{b}?token={token}")[0], 403)

    def test_expired_and_tampered_refused(self) -> None:
        """An expired share token, or one whose session was changed, is a 401."""
        a, b = self.create(), self.create()
        old, _ = Tokens(SECRET, now=lambda: 1_000_000.0).share(a, 60)
        self.assertEqual(self.call("GET", f"/api/sessions/{a}", token=old), (401, AUTH_REQUIRED))
        header, payload, signature = self.share(a)["token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sid"] = b
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        forged = ".".join([header, forged_payload, signature])
        self.assertEqual(self.call("GET", f"/api/sessions/{b}", token=forged), (401, AUTH_REQUIRED))


class LoginOffTests(AuthTestCase):
    """With login off, requests need no token, but a token that is sent must be valid,
    and share tokens still only read."""

    login_required = False

    def test_open_without_token(self) -> None:
        """Without a token everything works as before, and config says noAuth."""
        self.assertEqual(self.call("GET", "/api/auth/config")[1]["noAuth"], True)
        session_id = self.create()
        self.assertEqual(self.call("GET", "/api/sessions")[0], 200)
        self.assertEqual(self.call("POST", f"/api/sessions/{session_id}/input", {"text": "x"})[0], 200)

    def test_share_tokens_still_read_only(self) -> None:
        """A share token made with login off still may not type."""
        session_id = self.create()
        code, link = self.call("POST", f"/api/sessions/{session_id}/share", {})
        self.assertEqual(code, 200)
        path = f"/api/sessions/{session_id}/input"
        self.assertEqual(self.call("POST", path, {"text": "x"}, token=link["token"]), (403, READ_ONLY))
        self.assertEqual(self.call("GET", f"/api/sessions/{session_id}", token=link["token"])[0], 200)

    def test_unknown_tokens_ignored(self) -> None:
        """A token the daemon does not know (empty, made up, forged, expired, of a login that no
        longer exists) is ignored: the request acts for the daemon's user as without one."""
        session_id = self.create()
        unknown = [
            "",
            "dev-token-1733222333444",
            Tokens(b"x" * 32).login("me", "password", 3600),
            Tokens(SECRET, now=lambda: 1_000_000.0).login("me", "password", 3600),
            self.tokens.login("someone-removed", "password", 3600),
        ]
        for token in unknown:
            self.assertEqual(self.call("GET", f"/api/sessions?token={token}")[0], 200, token)
            self.assertEqual(self.call("GET", "/api/sessions", token=token or None)[0], 200, token)
            code, _ = self.call(
                "POST", f"/api/sessions/{session_id}/input", {"text": "x"}, token=token or None
            )
            self.assertEqual(code, 200, token)

    def test_other_users_refused(self) -> None:
        """A process of another user of the machine gets 403 on every route but the open ones,
        whatever token it sends; a share token still lets it read that one session."""
        session_id = self.exited()
        link = self.share(session_id)
        self.peer = OTHER_LOCAL_USER
        checked = 0
        for method, route in routes():
            if is_open(route):
                continue
            path = route.replace("<session_id>", session_id)
            for token in [None, "dev-token-1", self.full]:
                self.assertEqual(self.call(method, path, {}, token=token)[0], 403, (method, route, token))
            checked += 1
        self.assertGreaterEqual(checked, 18)
        self.assertEqual(self.call("GET", "/api/sessions"), (403, {"error": OTHER_USER}))
        self.assertEqual(self.call("GET", "/api/health")[0], 200)
        self.assertEqual(self.call("GET", f"/api/sessions/{session_id}", token=link["token"])[0], 200)
        path = f"/api/sessions/{session_id}/input"
        self.assertEqual(self.call("POST", path, {"text": "x"}, token=link["token"]), (403, READ_ONLY))

    def test_unknown_local_peer_refused(self) -> None:
        """A local connection whose user could not be found (its socket closed, a proxy) is
        refused like another user's."""
        self.peer = Peer(None, True)
        self.assertEqual(self.call("GET", "/api/sessions"), (403, {"error": OTHER_USER}))

    def test_remote_peer_served(self) -> None:
        """A client of another machine (which reaches only a listener the user exposed with
        --allow-no-auth-on-network) is served without a token."""
        self.peer = REMOTE
        self.assertEqual(self.call("GET", "/api/sessions")[0], 200)


segments = st.sampled_from(["api", "sessions", "ws", "buffers", "text", "stream", "input", "A", "B", ""])


class ShareAllowsTests(SynchronousTestCase):
    """share_allows, the rule of what a read-only grant may request."""

    @given(st.lists(segments, max_size=5), st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE"]))
    def test_only_reads_of_its_session(self, parts: list[str], method: bytes) -> None:
        """A share grant for A may GET only A's read routes, the byte stream of A, and /buffers."""
        path = "/" + "/".join(parts)
        allowed = {
            "/api/sessions/A",
            "/api/sessions/A/text",
            "/api/sessions/A/buffer",
            "/api/sessions/A/stream",
            "/api/sessions/A/recording",
            "/ws/sessions/A",
            "/buffers",
        }
        expected = method == b"GET" and path in allowed
        self.assertEqual(share_allows(method, path, Grant(None, "A")), expected, path)

    def test_examples(self) -> None:
        """The read routes of A pass; B's, input and prefixes of A's id do not."""
        grant = Grant(None, "A")
        self.assertTrue(share_allows(b"GET", "/api/sessions/A/recording", grant))
        for path in ["/api/sessions/B", "/api/sessions/A/input", "/api/sessions/AA", "/ws/sessions/A/x"]:
            self.assertFalse(share_allows(b"GET", path, grant), path)


class TokenTextTests(SynchronousTestCase):
    """Tokens are found in requests and hidden in logs."""

    def test_bearer(self) -> None:
        """The Authorization header wins over ?token=; other schemes are ignored."""
        self.assertEqual(bearer_token("Bearer abc", "q"), "abc")
        self.assertEqual(bearer_token("bearer   abc ", None), "abc")
        self.assertEqual(bearer_token("Basic abc", "q"), "q")
        self.assertEqual(bearer_token("Bearer ", None), None)
        self.assertEqual(bearer_token(None, ""), None)

    @given(st.text(st.characters(whitelist_categories=["L", "N"], whitelist_characters="-_.~%+"), min_size=8))
    def test_redact(self, token: str) -> None:
        """Any token value in a query string or a Bearer header is replaced in log text."""
        line = f'"GET /ws/sessions/x?readonly=1&token={token}&a=1 HTTP/1.1" 200'
        redacted = redact(line)
        # Exactly the token is gone: the rest of the line is as it was (a token such as
        # "readonly" also appears elsewhere in the line, and stays there).
        self.assertEqual(redacted, '"GET /ws/sessions/x?readonly=1&token=[redacted]&a=1 HTTP/1.1" 200')
        self.assertEqual(redact(f"Authorization: Bearer {token}"), "Authorization: Bearer [redacted]")
        self.assertEqual(redact(f"/x?TOKEN={token}"), "/x?TOKEN=[redacted]")


class ThrottleTests(SynchronousTestCase):
    """Attempts count as they arrive, per client and per user name; hashing waits in a bounded
    queue; the daemon's own user is not throttled."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.started: list[Deferred[bool]] = []

        def slow(f: Any, *args: Any) -> Deferred[bool]:
            self.started.append(Deferred())
            return self.started[-1]

        self.authority = Authority(
            Tokens(SECRET),
            self.clock,
            passwords=PasswordCheck(env_user="me", env_password="pw"),
            run_blocking=slow,
        )

    def login(self, client: str | None, user: str = "me", password: str = "guess") -> Deferred[Any]:
        d = Deferred.fromCoroutine(
            self.authority.password_login(client, {"userId": user, "password": password})
        )
        d.addErrback(lambda failure: failure.value)
        return d

    def finish_hashes(self, result: bool = False) -> None:
        while any(not d.called for d in self.started):
            for d in [d for d in self.started if not d.called]:
                d.callback(result)
        self.clock.advance(FAILURE_DELAY)

    def test_sent_at_once(self) -> None:
        """Of 41 logins sent at once by one client, MAX_FAILURES are checked and the others are
        429 at once, the right password among them; the checked ones fail as usual."""
        logins = [self.login("10.0.0.1") for _ in range(40)] + [self.login("10.0.0.1", password="pw")]
        refused = [d for d in logins if d.called]
        self.assertEqual(len(refused), 41 - MAX_FAILURES)
        self.assertTrue(all(isinstance(self.successResultOf(d), TooManyAttempts) for d in refused))
        self.assertIs(logins[-1], refused[-1])
        self.assertEqual(len(self.started), HASHING_AT_ONCE)
        self.finish_hashes()
        self.assertEqual(len(self.started), MAX_FAILURES)
        self.assertTrue(all(isinstance(self.successResultOf(d), LoginRefused) for d in logins[:MAX_FAILURES]))
        self.assertIsInstance(self.successResultOf(self.login("10.0.0.1", password="pw")), TooManyAttempts)

    def test_success_is_given_back(self) -> None:
        """A login that succeeds does not count against its client."""
        for _ in range(MAX_FAILURES * 2):
            d = self.login("10.0.0.1", password="pw")
            self.started[-1].callback(True)
            self.assertEqual(self.successResultOf(d)["userId"], "me")

    def test_per_user(self) -> None:
        """MAX_USER_FAILURES failures for one user name from many clients block that name from
        any client, not the clients' other names."""
        clients = [f"10.0.{n}.1" for n in range(MAX_USER_FAILURES)]
        for client in clients:
            d = self.login(client)
            self.finish_hashes()
            self.assertIsInstance(self.successResultOf(d), LoginRefused)
        self.assertIsInstance(self.successResultOf(self.login("10.9.9.9", password="pw")), TooManyAttempts)
        other = self.login("10.9.9.9", user="alice")
        self.finish_hashes()
        self.assertIsInstance(self.successResultOf(other), LoginRefused)
        self.clock.advance(FAILURE_WINDOW)
        d = self.login("10.9.9.9", password="pw")
        self.started[-1].callback(True)
        self.assertEqual(self.successResultOf(d)["userId"], "me")

    def test_queue_bounded(self) -> None:
        """Past HASHING_AT_ONCE checks and MAX_WAITING waiting, a login is refused at once."""
        waiting = [self.login(f"10.1.{n}.1") for n in range(HASHING_AT_ONCE + MAX_WAITING)]
        self.assertFalse(any(d.called for d in waiting))
        self.assertIsInstance(self.successResultOf(self.login("10.2.0.1")), TooManyAttempts)
        self.finish_hashes()
        self.assertEqual(len(self.started), HASHING_AT_ONCE + MAX_WAITING)

    def test_checked_again_when_hashing_starts(self) -> None:
        """A login whose client reached the limit while it waited for a hashing thread is not
        checked: 429, and no hash is spent on it."""
        first = [self.login(f"10.3.{n}.1") for n in range(HASHING_AT_ONCE)]
        waiting = self.login("10.4.0.1")
        for _ in range(MAX_FAILURES):
            self.authority.throttle.failed("10.4.0.1")
        self.started[0].callback(False)
        self.assertIsInstance(self.successResultOf(waiting), TooManyAttempts)
        self.assertEqual(len(self.started), HASHING_AT_ONCE)
        self.finish_hashes()
        self.assertTrue(all(isinstance(self.successResultOf(d), LoginRefused) for d in first))

    def test_own_user_not_throttled(self) -> None:
        """Attempts of the daemon's own user (client None) are never throttled."""
        for _ in range(MAX_FAILURES + MAX_USER_FAILURES):
            d = self.login(None)
            self.finish_hashes()
            self.assertIsInstance(self.successResultOf(d), LoginRefused)
        d = self.login(None, password="pw")
        self.started[-1].callback(True)
        self.assertEqual(self.successResultOf(d)["userId"], "me")


class GrantTests(SynchronousTestCase):
    """What a token grants depends on the login methods as they are now."""

    def test_login_tokens_of_users_that_may_still_log_in(self) -> None:
        """A login token is honoured only while its user may log in the way it did."""
        tokens = Tokens(SECRET)
        keys = Path(tempfile.mkdtemp()) / "authorized_keys"
        ssh = SSHKeyLogin(keys, "me", Clock())
        authority = Authority(
            tokens, Clock(), required=True, passwords=PasswordCheck({"alice": "$argon2id$x"}), ssh=ssh
        )
        peer = REMOTE
        self.assertIsNotNone(authority.grant_for(tokens.login("alice", "password", 60), peer))
        self.assertIsNone(authority.grant_for(tokens.login("bob", "password", 60), peer))
        self.assertIsNotNone(authority.grant_for(tokens.login("me", "ssh-key", 60), peer))
        self.assertIsNone(authority.grant_for(tokens.login("alice", "ssh-key", 60), peer))
        self.assertIsNone(authority.grant_for(tokens.login("me", "password", 60), peer))
        self.assertIsNone(authority.grant_for(tokens.login("alice", "magic", 60), peer))
        self.assertIsNone(authority.login_grant(tokens.login("bob", "password", 60)))

    def test_login_off(self) -> None:
        """With login off the daemon's user and other machines act without a token, whatever
        token they send; other local users and unknown local peers get nothing but a share
        token's reading."""
        tokens = Tokens(SECRET)
        authority = Authority(tokens, Clock(), uid=1000)
        share, _ = tokens.share("abc", 60)
        for token in [None, "", "junk", tokens.login("x", "password", 60)]:
            self.assertEqual(authority.grant_for(token, Peer(1000, True)), Grant(None), token)
            self.assertEqual(authority.grant_for(token, REMOTE), Grant(None), token)
            self.assertIsNone(authority.grant_for(token, Peer(1001, True)), token)
            self.assertIsNone(authority.grant_for(token, Peer(None, True)), token)
        for peer in [Peer(1000, True), Peer(1001, True), REMOTE]:
            self.assertEqual(authority.grant_for(share, peer), Grant(None, "abc"))


class RedactionTests(SynchronousTestCase):
    """The access log never holds a token, however the query spells its name."""

    @given(
        st.sampled_from(["token", "%74oken", "toke%6E", "%54OKEN", "tok%65n", "+token"]),
        st.text("abc.-_", min_size=8),
    )
    def test_spellings(self, name: str, token: str) -> None:
        """Every spelling twisted.web reads as token (and ; as a separator) is redacted; other
        parameters stay."""
        for query in [f"?{name}={token}&a=1", f"?a=1;{name}={token}", f"?x=2&{name}={token}"]:
            line = redact(f'"GET /api/sessions{query} HTTP/1.1" 200 "http://127.0.0.1/{query}"')
            self.assertNotIn(token, line, query)
            self.assertIn("[redacted]", line)
        self.assertIn("a=1", redact(f"/x?{name}={token}&a=1"))

    def test_access_log_line(self) -> None:
        """The combined log line of a request with ?%74oken= has no token in it."""
        request = DummyRequest([b"api"])
        request.uri = b"/api/sessions?%74oken=SECRETVALUE&x=1"
        request.path = b"/api/sessions"
        request.code = 200
        request.sentLength = 0
        request.clientproto = b"HTTP/1.1"
        line = redacted_log_formatter("01/Jan/2026:00:00:00 +0000", request)
        self.assertNotIn("SECRETVALUE", line)
        self.assertIn("x=1", line)


class VouchedTests(AuthTestCase):
    """A grant vouched for by the request's channel (a cluster tunnel) stands in for a token."""

    def setUp(self) -> None:
        super().setUp()
        self.vouched: Grant | None = None
        self.treq = StubTreq(
            HostOriginCheck(
                LoginGate(
                    self.api.resource(),
                    self.authority,
                    lambda request: self.peer,
                    vouched=lambda r: self.vouched,
                )
            )
        )

    def test_full_grant_without_token(self) -> None:
        """With login on, a vouched full grant lists and creates sessions without a token."""
        session_id = self.create()
        self.assertEqual(self.call("GET", "/api/sessions")[0], 401)
        self.vouched = Grant("alice", method="cluster")
        code, listed = self.call("GET", "/api/sessions")
        self.assertEqual((code, [s["id"] for s in listed]), (200, [session_id]))
        self.assertEqual(self.call("POST", f"/api/sessions/{session_id}/input", {"text": "x"})[0], 200)

    def test_read_grant_reads_only_its_session(self) -> None:
        """A vouched read grant may do what a share token may, and nothing else."""
        session_id = self.create()
        self.vouched = Grant(None, session_id=session_id)
        self.assertEqual(self.call("GET", f"/api/sessions/{session_id}/text")[0], 200)
        for method, path, body in [
            ("POST", f"/api/sessions/{session_id}/input", {"text": "x"}),
            ("GET", "/api/sessions", None),
            ("POST", "/api/sessions", {"command": ["sh"]}),
        ]:
            self.assertEqual(self.call(method, path, body), (403, READ_ONLY), path)
        self.assertEqual(self.launcher.last.written, [])
