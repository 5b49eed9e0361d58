# -*- test-case-name: tests.test_cluster_permissions -*-
"""The NATS users and permissions docs/cluster.md gives, as the tests run them.

The tests take the ``authorization { ... }`` block out of the NATS configuration in
docs/cluster.md, so that what the page tells an operator and what the tests check
cannot drift apart. Only the hosts' NKeys are replaced (:func:`with_nkeys`): the
page shows public keys whose seeds nobody has, and a test makes seeds of its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nkeys

from tests.support.daemon import CHECKOUT

#: The page whose configuration the tests run.
CLUSTER_DOC = Path(CHECKOUT) / "docs" / "cluster.md"

#: A host's entry: its public NKey and, in a comment after it, the host id.
_NKEY = re.compile(r"nkey: (U[A-Z2-7]{55})(\s+#\s*)([A-Za-z0-9_-]+)")
#: A user with a password, and the gateway id in a comment after it if it is a gateway.
_USER = re.compile(r'user: ([A-Za-z0-9_-]+), password: "([^"]*)"(?:[ \t]*#[ \t]*([A-Za-z0-9_-]+))?')


@dataclass(frozen=True)
class PasswordUser:
    """A user of the block who logs in with a password; gateway is its gateway id, if any."""

    user: str
    password: str
    gateway: str | None


def documented_authorization(text: str | None = None) -> str:
    """The ``authorization { ... }`` block of the NATS configuration in docs/cluster.md
    (or in text)."""
    if text is None:
        text = CLUSTER_DOC.read_text()
    start = text.index("\nauthorization {") + 1
    end = text.index("\n}\n", start) + 3
    return text[start:end]


def with_nkeys(block: str, public_keys: dict[str, str]) -> str:
    """block with the NKey of each host named in public_keys replaced by the given one;
    AssertionError if the block has no entry of such a host."""
    found: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        host = match.group(3)
        if host not in public_keys:
            return match.group(0)
        found.add(host)
        return f"nkey: {public_keys[host]}{match.group(2)}{host}"

    replaced = _NKEY.sub(replace, block)
    missing = set(public_keys) - found
    if missing:
        raise AssertionError(f"the documented permissions have no NKey of {sorted(missing)}")
    return replaced


def password_users(block: str) -> dict[str, PasswordUser]:
    """The users of block who log in with a password, by name."""
    return {m.group(1): PasswordUser(m.group(1), m.group(2), m.group(3)) for m in _USER.finditer(block)}


def make_nkey(folder: Path, name: str) -> tuple[Path, str]:
    """A new user NKey: its seed in folder/NAME.nk (this user's alone) and its public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path = folder / f"{name}.nk"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(seed + b"\n")
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    return path, public
