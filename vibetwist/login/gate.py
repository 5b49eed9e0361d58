# -*- test-case-name: tests.test_auth -*-
"""Who may use the daemon: login, tokens, and the gate in front of every route.

:obj:`LoginGate` wraps the whole site, so no route can be added without it: a request
reaches a route only if its path is on the short open list (health, the login
routes, the browser client's page) or it carries a valid token. With login off,
a request without a token acts for the local user. A share token (read-only,
one session) may only read that session; anything else it tries is a 403.

Tokens come as ``Authorization: Bearer T`` or, for SSE and WebSockets, ``?token=T``.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.http import combinedLogFormatter
from twisted.web.resource import Resource

from vibetwist.errors import BadRequest
from vibetwist.login.passwords import PasswordCheck
from vibetwist.login.sshkeys import SSHKeyLogin
from vibetwist.login.tokens import ANONYMOUS, SECRET_BYTES, Grant, Tokens

#: Default lifetime of a login token, in seconds.
LOGIN_LIFETIME = 24 * 3600
#: Default and longest lifetime of a share token, in seconds.
SHARE_LIFETIME = 24 * 3600
MAX_SHARE_LIFETIME = 30 * 24 * 3600
#: Failed logins an address may make within FAILURE_WINDOW seconds before it must wait.
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0
#: Seconds every failed login waits before it is answered.
FAILURE_DELAY = 1.0
#: Password hashes checked at once (Argon2 takes 64 MiB and tens of ms each); others wait.
HASHING_AT_ONCE = 2
#: Longest password checked; longer ones fail without hashing.
MAX_PASSWORD = 4096
#: Most addresses whose failures are remembered.
MAX_ADDRESSES = 10_000

#: Paths anyone may request: health, login, and the browser client's page.
OPEN_PATHS = frozenset(
    {
        "/",
        "/api/health",
        "/api/auth/config",
        "/api/auth/verify",
        "/api/auth/password",
        "/api/auth/challenge",
        "/api/auth/ssh-key",
    }
)
#: Folders of the browser client's static files.
OPEN_PREFIXES = ("/static/",)

#: What a share token may GET, the session's id in the "id" group.
_SHARE_READABLE = re.compile(
    r"^/api/sessions/(?P<id>[^/]+)(?:/(?:text|buffer|stream|recording))?$|^/ws/sessions/(?P<ws>[^/]+)$"
)
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)\S+", re.IGNORECASE)

AUTH_REQUIRED = "Authentication required"
READ_ONLY = "This link is read-only"
BAD_LOGIN = "Invalid username or password"


def redact(text: str) -> str:
    """text with every token value (``token=...``, ``Bearer ...``) replaced."""
    return _BEARER.sub(r"\1[redacted]", _TOKEN_IN_TEXT.sub(r"\1[redacted]", text))


def redacted_log_formatter(timestamp: str, request: Any) -> str:
    """The combined access-log line of a request, without tokens."""
    return redact(combinedLogFormatter(timestamp, request))


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token of a request: its ``Authorization: Bearer`` value, else its ``token`` parameter."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None


def request_token(request: Any) -> str | None:
    """The token a twisted.web request carries, if any."""
    header = request.getHeader(b"authorization")
    query = (request.args or {}).get(b"token")
    return bearer_token(
        header.decode("latin-1") if header else None,
        query[0].decode("utf-8", "replace") if query else None,
    )


def request_path(request: Any) -> str | None:
    """The request's path, percent-decoded; None if it holds ``.``/``..`` segments or NUL."""
    path = unquote(request.path.decode("latin-1"), errors="surrogateescape")
    segments = path.split("/")
    if "\0" in path or "." in segments or ".." in segments:
        return None
    return path


def is_open(path: str) -> bool:
    """True for the paths anyone may request."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def share_allows(method: bytes, path: str, grant: Grant) -> bool:
    """True if a read-only grant may make this request."""
    if method != b"GET":
        return False
    if path == "/buffers":
        return True  # each subscription is checked by the socket
    match = _SHARE_READABLE.match(path)
    if match is None:
        return False
    session_id = match.group("id") or match.group("ws")
    return grant.session_id == session_id


class Throttle:
    """Remembers failed logins per address, so guessing passwords is slow."""

    def __init__(self, clock: Any, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.get(address, deque())
        cutoff = self._clock.seconds() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def blocked(self, address: str) -> bool:
        """True if address failed too often lately."""
        return len(self._recent(address)) >= self._limit

    def failed(self, address: str) -> None:
        times = self._recent(address)
        times.append(self._clock.seconds())
        while len(times) > self._limit:
            times.popleft()
        self._failures[address] = times
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)


class LoginRefused(BadRequest):
    """Credentials that were wrong, or a login method that is off (HTTP 401)."""

    status = 401


class TooManyAttempts(BadRequest):
    """An address failed to log in too often (HTTP 429)."""

    status = 429


def _run_in_thread(reactor: Any) -> Callable[..., Deferred[Any]]:
    def run(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    return run


class Authority:
    """The daemon's login methods, its tokens, and what each request may do."""

    log = Logger()

    def __init__(
        self,
        tokens: Tokens,
        clock: Any,
        *,
        required: bool = False,
        passwords: PasswordCheck | None = None,
        ssh: SSHKeyLogin | None = None,
        login_lifetime: float = LOGIN_LIFETIME,
        run_blocking: Callable[..., Deferred[Any]] | None = None,
        failure_delay: float = FAILURE_DELAY,
    ) -> None:
        self.tokens = tokens
        self.required = required
        self.passwords = passwords if passwords is not None and passwords.enabled else None
        self.ssh = ssh
        self.login_lifetime = login_lifetime
        self._clock = clock
        self._run_blocking = run_blocking if run_blocking is not None else _run_in_thread(clock)
        self._failure_delay = failure_delay
        self.throttle = Throttle(clock)
        self._hashing = DeferredSemaphore(HASHING_AT_ONCE)

    # -- grants ---------------------------------------------------------------------

    def grant_for(self, token: str | None) -> Grant | None:
        """What a request carrying token (or none) may do; None: nothing (401).

        A token that is presented must be valid, login or not.
        """
        if token is not None:
            return self.tokens.verify(token)
        return None if self.required else ANONYMOUS

    def config(self) -> dict[str, bool]:
        """The body of GET /api/auth/config."""
        return {
            "enableSSHKeys": self.ssh is not None,
            # VibeTunnel's default (false) while login is off: clients skip their form anyway.
            "disallowUserPassword": self.required and self.passwords is None,
            "noAuth": not self.required,
        }

    # -- logging in -------------------------------------------------------------------

    def _check_not_blocked(self, address: str) -> None:
        if self.throttle.blocked(address):
            raise TooManyAttempts("Too many failed logins; try again later")

    async def _failed(self, address: str, message: str) -> LoginRefused:
        """The error to raise for a failed login, after the delay every failure waits."""
        self.throttle.failed(address)
        self.log.info("failed login from {address}", address=address)
        await deferLater(self._clock, self._failure_delay, lambda: None)
        return LoginRefused(message)

    def _logged_in(self, user_id: str, method: str) -> dict[str, Any]:
        self.log.info("{user} logged in ({method})", user=user_id, method=method)
        token = self.tokens.login(user_id, method, self.login_lifetime)
        return {"success": True, "token": token, "userId": user_id, "authMethod": method}

    async def password_login(self, address: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to POST /api/auth/password, or LoginRefused/TooManyAttempts."""
        self._check_not_blocked(address)
        user, password = body.get("userId"), body.get("password")
        if self.passwords is None:
            raise LoginRefused("Password login is not enabled")
        if not isinstance(user, str) or not isinstance(password, str):
            raise BadRequest("userId and password must be strings")
        if len(password) <= MAX_PASSWORD and await self._hashing.run(
            self._run_blocking, self.passwords.check, user, password
        ):
            return self._logged_in(user, "password")
        raise await self._failed(address, BAD_LOGIN)

    def challenge(self, address: str, body: dict[str, Any]) -> dict[str, str]:
        """The answer to POST /api/auth/challenge."""
        self._check_not_blocked(address)
        if self.ssh is None:
            raise LoginRefused("SSH key login is not enabled")
        return self.ssh.challenge(body.get("userId"))

    async def ssh_key_login(self, address: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to POST /api/auth/ssh-key, or LoginRefused/TooManyAttempts."""
        self._check_not_blocked(address)
        if self.ssh is None:
            raise LoginRefused("SSH key login is not enabled")
        user = self.ssh.answer(body.get("challengeId"), body.get("publicKey"), body.get("signature"))
        if user is None:
            raise await self._failed(address, "SSH key not accepted")
        return self._logged_in(user, "ssh-key")

    def share(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to POST /api/sessions/<id>/share: a read-only link to one session."""
        lifetime = body.get("expiresIn", SHARE_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int):
            raise BadRequest("expiresIn must be a whole number of seconds")
        if not 1 <= lifetime <= MAX_SHARE_LIFETIME:
            raise BadRequest(f"expiresIn must be from 1 to {MAX_SHARE_LIFETIME} seconds")
        token, expires = self.tokens.share(session_id, lifetime)
        return {
            "token": token,
            "sessionId": session_id,
            "expiresAt": _iso(expires),
            "url": f"/#session={session_id}&share={token}",
        }


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _answer(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    if code == 401:
        request.setHeader(b"www-authenticate", b'Bearer realm="VibeTunnel"')
    return json.dumps({"error": message}).encode()


class LoginGate(Resource):
    """Lets a request through to the site only if it may make it (see the module's text)."""

    isLeaf = True

    def __init__(self, inner: Resource, authority: Authority) -> None:
        super().__init__()
        self._inner = inner
        self._authority = authority

    def render(self, request: Any) -> Any:
        path = request_path(request)
        if path is None:
            return _answer(request, 404, "Not found")  # no route has such a path
        if not is_open(path):
            grant = self._authority.grant_for(request_token(request))
            if grant is None:
                return _answer(request, 401, AUTH_REQUIRED)
            if grant.read_only and not share_allows(request.method, path, grant):
                return _answer(request, 403, READ_ONLY)
        return self._inner.render(request)


def open_authority(clock: Any) -> Authority:
    """Login off, share links signed by a secret of this process only."""
    return Authority(Tokens(secrets.token_bytes(SECRET_BYTES)), clock)
