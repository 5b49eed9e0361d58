# -*- test-case-name: tests.test_auth_passwords -*-
"""Password checks: the VIBETUNNEL_USERNAME/VIBETUNNEL_PASSWORD pair and password files.

A password file has one ``user:hash`` line per user, the hash an Argon2id hash
made by argon2-cffi. Make or extend one with::

    python -m vibetwist.passwd FILE [USER]

which asks for the password twice and writes the file with 0600 permissions.
The daemon reads only a file of its own user that nobody else may read or
write, in folders nobody else may change, and reads it again when it changes:
a user removed from it can no longer log in, nor use a token got before.

Checking an Argon2 hash takes tens of milliseconds on purpose: callers run
``PasswordCheck.check`` in a thread, never on the reactor.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.logger import Logger

from vibetwist.errors import VibetwistError
from vibetwist.model.privatefiles import UnsafePath, check_private_file, read_private

#: Longest password file read, in bytes.
MAX_FILE = 1 << 20
#: Seconds between two looks at whether a password file changed.
RECHECK = 1.0


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
    """{user: hash} from a password file, which must be this user's alone."""
    try:
        if not check_private_file(path):
            raise PasswordFileError(f"cannot read {path}: it does not exist")
        raw = read_private(path, MAX_FILE)
    except UnsafePath as e:
        raise PasswordFileError(f"the password file {e}") from None
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


class PasswordFile:
    """A password file as it is now: read again when it changed (looked at once a second at most).

    A file that cannot be used any more (removed, unsafe, malformed) lets nobody in
    until it is mended.
    """

    log = Logger()

    def __init__(
        self, path: Path, users: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._clock = clock
        self._stamp = self._stat()
        self._users = dict(users) if users is not None else read_password_file(path)
        self._looked = clock()

    def _stat(self) -> tuple[int, ...] | None:
        try:
            info = os.lstat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_uid, info.st_mode)

    def users(self) -> Mapping[str, str]:
        """{user: hash} of the file as it is now. Called on the reactor: it may read the file."""
        now = self._clock()
        if now - self._looked >= RECHECK:
            self._looked = now
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._users = read_password_file(self.path)
                except PasswordFileError as e:
                    self.log.error("password logins are refused until it is mended: {error}", error=str(e))
                    self._users = {}
                else:
                    self.log.info("read {path} again: {n} users", path=str(self.path), n=len(self._users))
        return self._users

    def last(self) -> Mapping[str, str]:
        """{user: hash} as last read (for a thread, which must not read the file itself)."""
        return self._users


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
        hashes: Mapping[str, str] | PasswordFile | None = None,
        env_user: str | None = None,
        env_password: str | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._file: PasswordFile | None = None
        self._hashes: Mapping[str, str] = {}
        if isinstance(hashes, PasswordFile):
            self._file = hashes
            self._hashes = hashes.last()
        elif hashes:
            self._hashes = dict(hashes)
        self._env = (env_user, env_password) if env_user and env_password else None
        self._decoy: str | None = None

    @property
    def enabled(self) -> bool:
        """True when any user may log in with a password."""
        return self._file is not None or bool(self._hashes) or self._env is not None

    def refresh(self) -> None:
        """Take in a change of the password file. On the reactor, before :meth:`check` runs."""
        if self._file is not None:
            self._hashes = self._file.users()

    def knows(self, user: str) -> bool:
        """True if user may still log in with a password (checked for every login token)."""
        self.refresh()
        return user in self._hashes or (self._env is not None and self._env[0] == user)

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
