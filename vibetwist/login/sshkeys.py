# -*- test-case-name: tests.test_auth_sshkeys -*-
"""Logging in with an Ed25519 SSH key listed in an authorized_keys file.

1. ``POST /api/auth/challenge {userId}`` answers ``{challengeId, challenge}``:
   32 random bytes, base64, valid for 5 minutes and for one attempt.
2. The client signs exactly those 32 bytes (the base64-decoded ``challenge``)
   with its Ed25519 private key, and sends ``POST /api/auth/ssh-key
   {challengeId, publicKey, signature}``: ``publicKey`` as in an authorized_keys
   line (``ssh-ed25519 AAAA... [comment]``), ``signature`` the 64-byte raw
   Ed25519 signature in base64.
3. The login succeeds when the key is an ``ssh-ed25519`` key listed in the
   authorized_keys file, the signature verifies, and ``userId`` is the account
   the daemon runs as.

Parsing and signature checks are the cryptography package's.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_public_key

#: How long a challenge may be answered, in seconds.
CHALLENGE_LIFETIME = 300.0
CHALLENGE_BYTES = 32
#: Most challenges outstanding at once; the oldest are dropped past it.
MAX_CHALLENGES = 1000
#: Longest authorized_keys file read, in bytes.
MAX_FILE = 1 << 20
KEY_TYPE = "ssh-ed25519"


def parse_public_key(text: object) -> bytes | None:
    """The raw 32-byte key of an ``ssh-ed25519 BASE64 [comment]`` string, or None."""
    if not isinstance(text, str):
        return None
    fields = text.strip().split()
    if len(fields) < 2 or fields[0] != KEY_TYPE:
        return None
    try:
        key = load_ssh_public_key(f"{fields[0]} {fields[1]}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def authorized_ed25519_keys(text: str) -> set[bytes]:
    """The raw Ed25519 keys of an authorized_keys file's text (other key types are skipped).

    A line may start with options (``from="...",no-pty ssh-ed25519 AAAA...``); the
    key is the field after ``ssh-ed25519``.
    """
    keys = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        for index, field in enumerate(fields[:-1]):
            if field == KEY_TYPE:
                key = parse_public_key(f"{KEY_TYPE} {fields[index + 1]}")
                if key is not None:
                    keys.add(key)
                break
    return keys


def read_authorized_keys(path: Path) -> set[bytes]:
    """The Ed25519 keys listed in an authorized_keys file; none if it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE)
    except OSError:
        return set()
    return authorized_ed25519_keys(raw.decode("utf-8", "replace"))


def _b64decode(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if signature is public_key's Ed25519 signature of message."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@attrs.frozen
class _Challenge:
    user_id: str
    data: bytes
    expires: float


class SSHKeyLogin:
    """Challenges handed out, and the check of their answers."""

    def __init__(self, authorized_keys: Path, user_id: str, clock: Any) -> None:
        self.authorized_keys = authorized_keys
        self.user_id = user_id
        self._clock = clock
        self._challenges: OrderedDict[str, _Challenge] = OrderedDict()

    def challenge(self, user_id: object) -> dict[str, str]:
        """A new challenge for user_id (any name gets one: answers tell nothing about users)."""
        now = self._clock.seconds()
        self._forget_expired(now)
        while len(self._challenges) >= MAX_CHALLENGES:
            self._challenges.popitem(last=False)
        challenge_id = secrets.token_urlsafe(16)
        data = secrets.token_bytes(CHALLENGE_BYTES)
        name = user_id if isinstance(user_id, str) else ""
        self._challenges[challenge_id] = _Challenge(name, data, now + CHALLENGE_LIFETIME)
        return {"challengeId": challenge_id, "challenge": base64.b64encode(data).decode("ascii")}

    def _forget_expired(self, now: float) -> None:
        while self._challenges:
            oldest = next(iter(self._challenges.values()))
            if oldest.expires > now:
                break
            self._challenges.popitem(last=False)

    def answer(self, challenge_id: object, public_key: object, signature: object) -> str | None:
        """The user id if this answers a live challenge with a listed key; None otherwise.

        A challenge is spent by any answer, right or wrong.
        """
        if not isinstance(challenge_id, str):
            return None
        challenge = self._challenges.pop(challenge_id, None)
        if challenge is None or challenge.expires <= self._clock.seconds():
            return None
        key = parse_public_key(public_key)
        raw_signature = _b64decode(signature)
        if key is None or raw_signature is None or challenge.user_id != self.user_id:
            return None
        if key not in read_authorized_keys(self.authorized_keys):
            return None
        if not signature_valid(key, raw_signature, challenge.data):
            return None
        return challenge.user_id
