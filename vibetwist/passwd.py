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

import getpass
import hmac
import os
import sys
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


def main(argv: list[str] | None = None) -> int:
    """python -m vibetwist.passwd FILE [USER]: add or change a user's password in FILE."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m vibetwist.passwd FILE [USER]", file=sys.stderr)
        return 2
    path = Path(args[0])
    user = args[1] if len(args) == 2 else getpass.getuser()
    if not valid_user_name(user):
        print(f"passwd: {user!r} cannot be a user name (no colons, no spaces at the ends)", file=sys.stderr)
        return 2
    try:
        users = read_password_file(path) if path.exists() else {}
    except PasswordFileError as e:
        print(f"passwd: {e}", file=sys.stderr)
        return 1
    password = getpass.getpass(f"New password for {user}: ")
    if not password or password != getpass.getpass("Again: "):
        print("passwd: the passwords were empty or did not match; nothing changed", file=sys.stderr)
        return 1
    users[user] = PasswordHasher().hash(password)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(format_password_file(users))
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    print(f"passwd: {user} can now log in with the password file {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
