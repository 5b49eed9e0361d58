# -*- test-case-name: tests.test_auth -*-
"""Logging in: the daemon's login methods, the throttle on failed attempts, and the tokens it issues.

:class:`Authority` knows who may log in (a password file, the
``VIBETUNNEL_USERNAME``/``VIBETUNNEL_PASSWORD`` pair, SSH keys), checks
passwords off the reactor, slows down guessing (:class:`Throttle`, per client
and per user name, counting each attempt as it arrives), and says what a
request from a given peer (:mod:`vibetwist.model.peercred`) with a given token
may do. :mod:`vibetwist.login.gate` asks it for every request.
"""

from __future__ import annotations

import datetime
import os
import pwd
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from vibetwist.errors import BadRequest
from vibetwist.login.passwords import PasswordCheck, PasswordFile
from vibetwist.login.sshkeys import SSHKeyLogin
from vibetwist.login.tokens import ANONYMOUS, SECRET_BYTES, Grant, Tokens
from vibetwist.model.peercred import Peer

#: Default lifetime of a login token, in seconds.
LOGIN_LIFETIME = 24 * 3600
#: Default and longest lifetime of a share token, in seconds.
SHARE_LIFETIME = 24 * 3600
MAX_SHARE_LIFETIME = 30 * 24 * 3600
#: Failed logins a client may make within FAILURE_WINDOW seconds before it must wait.
MAX_FAILURES = 5
#: Failed password logins for one user name within FAILURE_WINDOW, from every client together.
MAX_USER_FAILURES = 20
FAILURE_WINDOW = 300.0
#: Seconds every failed login waits before it is answered.
FAILURE_DELAY = 1.0
#: Password hashes checked at once (Argon2 takes 64 MiB and tens of ms each); others wait.
HASHING_AT_ONCE = 2
#: Password logins that may wait for a hashing thread; more are refused at once.
MAX_WAITING = 16
#: Longest password checked; longer ones fail without hashing.
MAX_PASSWORD = 4096
#: Most clients (or user names) whose failures are remembered.
MAX_ADDRESSES = 10_000

BAD_LOGIN = "Invalid username or password"
TOO_MANY = "Too many failed logins; try again later"


class Throttle:
    """Counts login attempts per key (a client, a user name), so guessing passwords is slow.

    An attempt counts from the moment it arrives (:meth:`begin`), so guesses sent
    all at once are counted as they come, not when their hashes are done; one
    that succeeds is given back (:meth:`end`).
    """

    def __init__(self, clock: Any, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._pending: Counter[str] = Counter()

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key, deque())
        cutoff = self._clock.seconds() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def blocked(self, key: str) -> bool:
        """True if key failed too often lately, counting the attempts still being checked."""
        return len(self._recent(key)) + self._pending[key] >= self._limit

    def failed_too_often(self, key: str) -> bool:
        """True if key's finished attempts alone reach the limit (checked again when a hash starts)."""
        return len(self._recent(key)) >= self._limit

    def begin(self, key: str) -> None:
        """An attempt arrived."""
        self._pending[key] += 1

    def end(self, key: str, failed: bool) -> None:
        """An attempt that began was answered; a failure is remembered for the window."""
        self._pending[key] -= 1
        if self._pending[key] <= 0:
            del self._pending[key]
        if failed:
            self.failed(key)

    def failed(self, key: str) -> None:
        times = self._recent(key)
        times.append(self._clock.seconds())
        while len(times) > self._limit:
            times.popleft()
        self._failures[key] = times
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)


class LoginRefused(BadRequest):
    """Credentials that were wrong, or a login method that is off (HTTP 401)."""

    status = 401


class TooManyAttempts(BadRequest):
    """A client (or a user name) failed to log in too often, or too many wait at once (HTTP 429)."""

    status = 429


def _run_in_thread(reactor: Any) -> Callable[..., Deferred[Any]]:
    def run(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    return run


class _Attempt:
    """One login attempt, counted by every throttle it falls under until it is answered."""

    def __init__(self, counts: list[tuple[Throttle, str]]) -> None:
        self._counts = counts
        self.failed = True
        for throttle, key in counts:
            if throttle.blocked(key):
                raise TooManyAttempts(TOO_MANY)
        for throttle, key in counts:
            throttle.begin(key)

    def check_again(self) -> None:
        """TooManyAttempts if other attempts failed enough meanwhile (as the hash is about to start)."""
        for throttle, key in self._counts:
            if throttle.failed_too_often(key):
                self.failed = False  # not checked: nothing learnt, nothing counted
                raise TooManyAttempts(TOO_MANY)

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        failed = self.failed and (kind is None or issubclass(kind, LoginRefused))
        for throttle, key in self._counts:
            throttle.end(key, failed)


class Authority:
    """The daemon's login methods, its tokens, and what each request may do.

    ``uid`` is the user the daemon runs as: with login off, only processes of that
    user (and machines reaching a listener the user exposed on purpose) may use
    the daemon; with login on, that user's own processes are not throttled.
    """

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
        uid: int | None = None,
    ) -> None:
        self.tokens = tokens
        self.required = required
        self.passwords = passwords if passwords is not None and passwords.enabled else None
        self.ssh = ssh
        self.login_lifetime = login_lifetime
        self.uid = os.getuid() if uid is None else uid
        self._clock = clock
        self._run_blocking = run_blocking if run_blocking is not None else _run_in_thread(clock)
        self._failure_delay = failure_delay
        self.throttle = Throttle(clock)
        self.user_throttle = Throttle(clock, MAX_USER_FAILURES)
        #: Failed logins since the daemon started (for GET /metrics).
        self.failures = 0
        self._hashing = DeferredSemaphore(HASHING_AT_ONCE)

    # -- grants ---------------------------------------------------------------------

    def serves_without_login(self, peer: Peer) -> bool:
        """Whether a client may act without logging in while login is off: a process of the
        daemon's user, or another machine (which reaches only a listener exposed on purpose)."""
        return not peer.local or peer.uid == self.uid

    def trusts(self, peer: Peer) -> bool:
        """True for a process of the daemon's own user (its logins are not throttled)."""
        return peer.is_user(self.uid)

    def grant_for(self, token: str | None, peer: Peer) -> Grant | None:
        """What a request carrying token (or none) from peer may do; None: nothing.

        A share token restricts whoever presents it, login on or off. With login
        on, anything else needs a login token of a user who may still log in.
        With login off, a request of the daemon's own user may do everything, and
        a token it presents that the daemon does not know (empty, stale, made up)
        is ignored; other users of the machine get nothing.
        """
        grant = self.tokens.verify(token) if token else None
        if grant is not None and grant.read_only:
            return grant
        if not self.required:
            return ANONYMOUS if self.serves_without_login(peer) else None
        if grant is not None and self._may_still_log_in(grant):
            return grant
        return None

    def login_grant(self, token: str | None) -> Grant | None:
        """The grant of a token if it is a valid login or share token (GET /api/auth/verify)."""
        grant = self.tokens.verify(token) if token else None
        if grant is None or grant.read_only or self._may_still_log_in(grant):
            return grant
        return None

    def _may_still_log_in(self, grant: Grant) -> bool:
        """Whether a login token's user is still one that may log in, the way they did."""
        user = grant.user_id
        if user is None:
            return False
        if grant.method == "password":
            return self.passwords is not None and self.passwords.knows(user)
        if grant.method == "ssh-key":
            return self.ssh is not None and user == self.ssh.user_id
        return False

    def config(self) -> dict[str, bool]:
        """The body of GET /api/auth/config."""
        return {
            "enableSSHKeys": self.ssh is not None,
            # VibeTunnel's default (false) while login is off: clients skip their form anyway.
            "disallowUserPassword": self.required and self.passwords is None,
            "noAuth": not self.required,
        }

    # -- logging in -------------------------------------------------------------------

    def _attempt(self, client: str | None, user: str | None = None) -> _Attempt:
        """An attempt by client (None: the daemon's own user, never throttled), or TooManyAttempts."""
        if client is None:
            return _Attempt([])
        counts = [(self.throttle, client)]
        if user is not None:
            counts.append((self.user_throttle, user))
        return _Attempt(counts)

    async def _failed(self, client: str | None, message: str) -> LoginRefused:
        """The error to raise for a failed login, after the delay every failure waits."""
        self.failures += 1
        self.log.info("failed login from {client}", client=client or "the daemon's own user")
        await deferLater(self._clock, self._failure_delay, lambda: None)
        return LoginRefused(message)

    def _logged_in(self, user_id: str, method: str) -> dict[str, Any]:
        self.log.info("{user} logged in ({method})", user=user_id, method=method)
        token = self.tokens.login(user_id, method, self.login_lifetime)
        return {"success": True, "token": token, "userId": user_id, "authMethod": method}

    async def password_login(self, client: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to POST /api/auth/password, or LoginRefused/TooManyAttempts.

        client names who is trying (see :func:`vibetwist.model.peercred.client_key`), or is
        None for a process of the daemon's own user.
        """
        user, password = body.get("userId"), body.get("password")
        if self.passwords is None:
            raise LoginRefused("Password login is not enabled")
        if not isinstance(user, str) or not isinstance(password, str):
            raise BadRequest("userId and password must be strings")
        with self._attempt(client, user) as attempt:
            if len(password) <= MAX_PASSWORD and await self._hash(attempt, user, password):
                attempt.failed = False
                return self._logged_in(user, "password")
            raise await self._failed(client, BAD_LOGIN)

    async def _hash(self, attempt: _Attempt, user: str, password: str) -> bool:
        """Whether password is user's, checked in a hashing thread once one is free."""
        passwords = self.passwords
        assert passwords is not None
        if len(self._hashing.waiting) >= MAX_WAITING:
            attempt.failed = False
            raise TooManyAttempts("Too many logins at once; try again in a moment")
        await self._hashing.acquire()
        try:
            attempt.check_again()
            passwords.refresh()
            return bool(await self._run_blocking(passwords.check, user, password))
        finally:
            self._hashing.release()

    def challenge(self, client: str | None, body: dict[str, Any]) -> dict[str, str]:
        """The answer to POST /api/auth/challenge."""
        if client is not None and self.throttle.blocked(client):
            raise TooManyAttempts(TOO_MANY)
        if self.ssh is None:
            raise LoginRefused("SSH key login is not enabled")
        return self.ssh.challenge(body.get("userId"), client or "")

    async def ssh_key_login(self, client: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """The answer to POST /api/auth/ssh-key, or LoginRefused/TooManyAttempts."""
        if self.ssh is None:
            raise LoginRefused("SSH key login is not enabled")
        with self._attempt(client) as attempt:
            user = self.ssh.answer(body.get("challengeId"), body.get("publicKey"), body.get("signature"))
            if user is not None:
                attempt.failed = False
                return self._logged_in(user, "ssh-key")
            raise await self._failed(client, "SSH key not accepted")

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


def authority_from_options(options: Any, reactor: Any, tokens: Tokens) -> Authority:
    """The login methods the daemon's options (``twistd vibetunnel``'s) describe, signing with tokens."""
    env = options["env-credentials"] or (None, None)
    ssh = None
    if options["ssh-keys"]:
        # The account the daemon runs as, whatever $USER says.
        ssh = SSHKeyLogin(options["authorized-keys"], pwd.getpwuid(os.getuid()).pw_name, reactor)
    users: dict[str, str] | PasswordFile = options["passwords"]
    if options["password-file"]:
        # Read again when it changes: a user taken out of it loses access, tokens included.
        users = PasswordFile(options["password-file"], options["passwords"])
    return Authority(
        tokens,
        reactor,
        required=options["login"],
        passwords=PasswordCheck(users, env[0], env[1]),
        ssh=ssh,
        login_lifetime=options["token-lifetime"],
    )
