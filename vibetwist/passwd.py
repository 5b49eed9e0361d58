# -*- test-case-name: tests.test_auth_passwords -*-
"""``python -m vibetwist.passwd FILE [USER]``: add or change a user's password in a password file.

Asks for the password twice and writes the file with 0600 permissions; the
daemon reads it with ``--password-file FILE`` (see :mod:`vibetwist.login.passwords`).
It refuses a file that is not the user's own or that others may read or write,
and folders above it that others may change; it writes a temporary file of a
name nobody can guess (never through a planted link) and renames it over FILE.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from argon2 import PasswordHasher

from vibetwist.login.passwords import (
    PasswordFileError,
    format_password_file,
    read_password_file,
    valid_user_name,
)
from vibetwist.model.privatefiles import UnsafePath, check_private_file, write_private


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
        users = read_password_file(path) if check_private_file(path) else {}
    except (PasswordFileError, UnsafePath) as e:
        print(f"passwd: {e}", file=sys.stderr)
        return 1
    password = getpass.getpass(f"New password for {user}: ")
    if not password or password != getpass.getpass("Again: "):
        print("passwd: the passwords were empty or did not match; nothing changed", file=sys.stderr)
        return 1
    users[user] = PasswordHasher().hash(password)
    try:
        write_private(path, format_password_file(users).encode("utf-8"))
    except OSError as e:
        print(f"passwd: cannot write {path}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"passwd: {user} can now log in with the password file {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
