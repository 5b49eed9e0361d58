# -*- test-case-name: tests.test_auth_passwords -*-
"""Password checks: the VIBETUNNEL_USERNAME/VIBETUNNEL_PASSWORD pair and password files.

A password file has one ``user:hash`` line per user, the hash an Argon2id hash
made by argon2-cffi. Make or extend one with::

    python -m vibetwist.passwd FILE [USER]

which asks for the password twice and writes the file with 0600 permissions.

Checking an Argon2 hash takes tens of milliseconds on purpose: callers run
``PasswordCheck.check`` in a thread, never on the reactor.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vibetwist.errors import VibetwistError

#: Longest password file read, in bytes.
MAX_FILE = 1 << 20


class PasswordFileError(VibetwistError):
    """A password file that cannot be used."""


def parse_password_file(text: str) -> dict[str, str]:
    """{user: hash} from the text of a password file; PasswordFileError on a bad line."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed.startswith("$argon2"):
            raise PasswordFileError(f"line {number}: expected user:$argon2id$... ")
        users[user] = hashed
    return users


def format_password_file(users: Mapping[str, str]) -> str:
    """The text of a password file holding users."""
    return "".join(f"{user}:{hashed}\n" for user, hashed in users.items())


def read_password_file(path: Path) -> dict[str, str]:
    """{user: hash} from a password file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE + 1)
    except OSError as e:
        raise PasswordFileError(f"cannot read {path}: {e.strerror}") from e
    if len(raw) > MAX_FILE:
        raise PasswordFileError(f"{path} is larger than {MAX_FILE} bytes")
    try:
        return parse_password_file(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise PasswordFileError(f"{path} is not UTF-8") from e
    except PasswordFileError as e:
        raise PasswordFileError(f"{path}: {e}") from e


def valid_user_name(user: str) -> bool:
    """True for a user name a password file can hold."""
    return bool(user) and ":" not in user and user.strip() == user and user.isprintable()


class PasswordCheck:
    """Checks a user name and password against the configured credentials.

    Unknown users cost as much as known ones (a hash is checked either way), and
    both fail the same way, so answers tell nothing about which users exist.
    """

    def __init__(
        self,
        hashes: Mapping[str, str] | None = None,
        env_user: str | None = None,
        env_password: str | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._hashes = dict(hashes or {})
        self._env = (env_user, env_password) if env_user and env_password else None
        self._decoy: str | None = None

    @property
    def enabled(self) -> bool:
        """True when any user may log in with a password."""
        return bool(self._hashes) or self._env is not None

    def check(self, user: str, password: str) -> bool:
        """True if password is user's. Slow (Argon2): run it off the reactor."""
        env_ok = False
        if self._env is not None:
            env_user, env_password = self._env
            same_user = hmac.compare_digest(user.encode(), env_user.encode())
            same_password = hmac.compare_digest(password.encode(), env_password.encode())
            env_ok = same_user and same_password
        hashed = self._hashes.get(user)
        if hashed is None:
            if self._decoy is None:
                self._decoy = self._hasher.hash("decoy password never accepted")
            hashed = self._decoy
        try:
            matched: bool = self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            matched = False
        return (matched and user in self._hashes) or env_ok
