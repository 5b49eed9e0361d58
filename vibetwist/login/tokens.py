# -*- test-case-name: tests.test_auth_tokens -*-
"""Signed tokens: who a request speaks for, and how much it may do.

A token is a JWT signed with HS256 by the daemon's secret (PyJWT does the
encoding, the signature and the expiry check). A login token (``scope`` "full")
may do everything; a share token (``scope`` "read") may only watch the one
session named in its ``sid`` claim.

The secret lives in a file of its own, made on first start with 0600
permissions and reused afterwards, so tokens survive a restart.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import jwt

from vibetwist.errors import VibetwistError
from vibetwist.model.controldir import is_session_id

#: The ``aud`` claim of every token this daemon issues.
AUDIENCE = "vibetwist"
ALGORITHM = "HS256"
#: Bytes of randomness in a new secret.
SECRET_BYTES = 32


class SecretError(VibetwistError):
    """The secret file is unsafe or unreadable."""


@attrs.frozen
class Grant:
    """What a request may do: everything, or (with session_id) watch one session."""

    user_id: str | None
    session_id: str | None = None

    @property
    def read_only(self) -> bool:
        return self.session_id is not None

    def may_watch(self, session_id: str) -> bool:
        """True if this grant may read that session."""
        return self.session_id is None or self.session_id == session_id


#: The grant of a request when login is off and it carries no token.
ANONYMOUS = Grant(None)


class Tokens:
    """Issues and checks the daemon's tokens with one secret."""

    def __init__(self, secret: bytes, now: Callable[[], float] = time.time) -> None:
        if len(secret) < SECRET_BYTES:
            raise SecretError(f"the secret must be at least {SECRET_BYTES} bytes")
        self._secret = secret
        self._now = now

    def _encode(self, claims: dict[str, object], lifetime: float) -> tuple[str, float]:
        issued = int(self._now())
        expires = issued + int(lifetime)
        token = jwt.encode(
            dict(claims, aud=AUDIENCE, iat=issued, exp=expires), self._secret, algorithm=ALGORITHM
        )
        return token, float(expires)

    def login(self, user_id: str, method: str, lifetime: float) -> str:
        """A full-access token for a user who logged in by method."""
        return self._encode({"sub": user_id, "scope": "full", "amr": method}, lifetime)[0]

    def share(self, session_id: str, lifetime: float) -> tuple[str, float]:
        """A read-only token for one session, and when it expires (Unix time)."""
        return self._encode({"sub": "share", "scope": "read", "sid": session_id}, lifetime)

    def verify(self, token: str) -> Grant | None:
        """The grant a token carries, or None if it is forged, expired or malformed."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "aud", "sub", "scope"]},
            )
        except jwt.PyJWTError:
            return None
        subject, scope = claims.get("sub"), claims.get("scope")
        if not isinstance(subject, str):
            return None
        if scope == "full":
            return Grant(subject)
        session_id = claims.get("sid")
        if scope == "read" and is_session_id(session_id):
            return Grant(None, session_id)
        return None


def check_secret_file(path: Path) -> None:
    """Raise SecretError if an existing secret file may be read by others."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise SecretError(f"cannot read the secret file {path}: {e.strerror}") from e
    if not stat.S_ISREG(mode):
        raise SecretError(f"the secret file {path} is not a regular file")
    if mode & 0o077:
        raise SecretError(
            f"the secret file {path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def load_secret(path: Path) -> bytes:
    """The secret in path, made (random, 0600) if the file does not exist yet."""
    check_secret_file(path)
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = secrets.token_hex(SECRET_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_secret(path)  # another daemon made it first
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    except (OSError, UnicodeDecodeError) as e:
        raise SecretError(f"cannot read the secret file {path}: {e}") from e
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"the secret file {path} does not hold a hex secret") from None
    if len(secret) < SECRET_BYTES:
        raise SecretError(f"the secret in {path} is shorter than {SECRET_BYTES} bytes")
    return secret
