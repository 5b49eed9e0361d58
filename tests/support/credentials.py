"""Credentials for the login tests: a cheap password hasher and Ed25519 keys as clients use them."""

from __future__ import annotations

import base64

from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

#: Cheap hashes: the tests check the logic, not Argon2's cost.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def openssh_line(key: Ed25519PrivateKey, comment: str = "me@host") -> str:
    """The authorized_keys line of a key."""
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return f"{public} {comment}"


def sign(key: Ed25519PrivateKey, challenge: dict[str, str]) -> str:
    """The base64 signature a client sends: over the decoded challenge bytes."""
    return base64.b64encode(key.sign(base64.b64decode(challenge["challenge"]))).decode()
