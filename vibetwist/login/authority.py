# -*- test-case-name: tests.test_auth -*-
"""Logging in: the daemon's login methods, the throttle on failed attempts, and the tokens it issues.

:class:`Authority` knows who may log in (a password file, the
``VIBETUNNEL_USERNAME``/``VIBETUNNEL_PASSWORD`` pair, SSH keys), checks
passwords off the reactor, slows down guessing (:class:`Throttle`), and says
what a request's token grants. :mod:`vibetwist.login.gate` asks it for every request.
"""

from __future__ import annotations

import datetime
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

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

BAD_LOGIN = "Invalid username or password"


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
        #: Failed logins since the daemon started (for GET /metrics).
        self.failures = 0
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
        self.failures += 1
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


def open_authority(clock: Any) -> Authority:
    """Login off, share links signed by a secret of this process only."""
    return Authority(Tokens(secrets.token_bytes(SECRET_BYTES)), clock)
