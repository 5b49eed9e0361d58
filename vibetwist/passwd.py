# -*- test-case-name: tests.test_auth_passwords -*-
"""``python -m vibetwist.passwd FILE [USER]``: add or change a user's password in a password file.

Asks for the password twice and writes the file with 0600 permissions; the
daemon reads it with ``--password-file FILE`` (see :mod:`vibetwist.login.passwords`).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from argon2 import PasswordHasher

from vibetwist.login.passwords import (
    PasswordFileError,
    format_password_file,
    read_password_file,
    valid_user_name,
)


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
