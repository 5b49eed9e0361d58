# -*- test-case-name: tests.test_auth_tokens -*-
"""Signed tokens: who a request speaks for, and how much it may do.

A token is a JWT signed with HS256 by the daemon's secret (PyJWT does the
encoding, the signature and the expiry check). A login token (``scope`` "full")
may do everything; a share token (``scope`` "read") may only watch the one
session named in its ``sid`` claim. Every token names the daemon that issued it
(``iss``, made from its control directory), so another daemon that happens to
use the same secret file does not take it.

The secret lives in a file of its own, made on first start with 0600
permissions and reused afterwards, so tokens survive a restart. The file, and
the folders above it, must be this user's alone
(:mod:`vibetwist.model.privatefiles`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import jwt
from zope.interface import Interface

from vibetwist.errors import VibetwistError
from vibetwist.model.controldir import is_session_id
from vibetwist.model.privatefiles import (
    UnsafePath,
    check_private_file,
    create_private,
    make_private_dir,
    read_private,
)

#: The ``aud`` claim of every token this daemon issues.
AUDIENCE = "vibetwist"
#: The ``iss`` claim of a daemon that was not told who it is.
ISSUER = "vibetwist"
ALGORITHM = "HS256"
#: Bytes of randomness in a new secret.
SECRET_BYTES = 32


class SecretError(VibetwistError):
    """The secret file is unsafe or unreadable."""


@attrs.frozen
class Grant:
    """What a request may do: everything, or (with session_id) watch one session.

    A login token's grant names its user and how they logged in (``method``).
    """

    user_id: str | None
    session_id: str | None = None
    method: str | None = None

    @property
    def read_only(self) -> bool:
        return self.session_id is not None

    def may_watch(self, session_id: str) -> bool:
        """True if this grant may read that session."""
        return self.session_id is None or self.session_id == session_id


#: The grant of a request when login is off and it carries no token.
ANONYMOUS = Grant(None)


class IGrant(Interface):
    """What a request may do (a :class:`Grant`), as the site's gate decided it: the key
    under which the gate leaves it on the request."""


class Tokens:
    """Issues and checks the daemon's tokens with one secret."""

    def __init__(self, secret: bytes, now: Callable[[], float] = time.time, issuer: str = ISSUER) -> None:
        if len(secret) < SECRET_BYTES:
            raise SecretError(f"the secret must be at least {SECRET_BYTES} bytes")
        self._secret = secret
        self._now = now
        self.issuer = issuer

    def _encode(self, claims: dict[str, object], lifetime: float) -> tuple[str, float]:
        issued = int(self._now())
        expires = issued + int(lifetime)
        token = jwt.encode(
            dict(claims, iss=self.issuer, aud=AUDIENCE, iat=issued, exp=expires),
            self._secret,
            algorithm=ALGORITHM,
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
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "scope"]},
            )
        except jwt.PyJWTError:
            return None
        subject, scope = claims.get("sub"), claims.get("scope")
        if not isinstance(subject, str):
            return None
        if scope == "full":
            method = claims.get("amr")
            return Grant(subject, method=method if isinstance(method, str) else None)
        session_id = claims.get("sid")
        if scope == "read" and is_session_id(session_id):
            return Grant(None, session_id)
        return None


def issuer_for(control_dir: Path) -> str:
    """The ``iss`` claim of the daemon of a control directory (hashed: a token's claims are
    readable by whoever holds it)."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(control_dir))).hexdigest()[:16]
    return f"vibetwist:{digest}"


def check_secret_file(path: Path) -> None:
    """Raise SecretError if a secret file (or a folder above it) is not this user's alone.

    Another user who could plant the file, or read it, could forge tokens.
    """
    try:
        check_private_file(path)
    except UnsafePath as e:
        raise SecretError(f"the secret file {e}") from None


def load_secret(path: Path) -> bytes:
    """The secret in path, made (random, 0600) if nothing is there yet."""
    check_secret_file(path)
    try:
        raw = read_private(path, 4096)
    except FileNotFoundError:
        try:
            make_private_dir(path.parent)
        except UnsafePath as e:
            raise SecretError(f"the folder of the secret file: {e}") from None
        if not create_private(path, (secrets.token_hex(SECRET_BYTES) + "\n").encode("ascii")):
            # Another daemon made it first, or something else is there now: check it again.
            check_secret_file(path)
        try:
            raw = read_private(path, 4096)
        except OSError as e:
            raise SecretError(f"cannot read the secret file {path}: {e.strerror}") from e
    except UnsafePath as e:
        raise SecretError(f"the secret file {e}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SecretError(f"the secret file {path} is a symbolic link; it must be a file") from e
        raise SecretError(f"cannot read the secret file {path}: {e.strerror}") from e
    try:
        secret = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise SecretError(f"the secret file {path} does not hold a hex secret") from None
    if len(secret) < SECRET_BYTES:
        raise SecretError(f"the secret in {path} is shorter than {SECRET_BYTES} bytes")
    return secret
