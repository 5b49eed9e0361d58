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

The file is read as sshd reads it: each line is ``[options] keytype base64
[comment]``, the options being there only when the line does not start with a
key type; a line with an option sshd does not know is ignored, and so is
everything in a comment. A key listed with an option that limits what it may
do (``command=``, ``from=``, ``restrict``, ``expiry-time=``, ``principals=``,
``cert-authority``, ``no-pty``) is not allowed to log in here at all: a key
meant for a forced backup command must not become a terminal. Options that
only limit forwarding are fine. Like sshd's StrictModes, the file must belong
to the user (or root) and be writable by nobody else, in folders nobody else
may change; otherwise no key is read from it.

Parsing and signature checks are the cryptography package's.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_public_key
from twisted.logger import Logger

from vibetwist.model.privatefiles import UnsafePath, check_private_file, read_private

#: How long a challenge may be answered, in seconds.
CHALLENGE_LIFETIME = 300.0
CHALLENGE_BYTES = 32
#: Most challenges outstanding at once; the oldest are dropped past it.
MAX_CHALLENGES = 1000
#: Most challenges one client may hold; its own oldest is dropped past it.
MAX_CHALLENGES_PER_CLIENT = 8
#: Longest authorized_keys file read, in bytes.
MAX_FILE = 1 << 20
KEY_TYPE = "ssh-ed25519"
_log = Logger()
#: The key types OpenSSH reads at the start of a line; a line that starts otherwise starts with options.
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ssh-ed25519@openssh.com",
        "ssh-xmss@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
        "ssh-dss-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "sk-ssh-ed25519-cert-v01@openssh.com",
        "ssh-xmss-cert-v01@openssh.com",
    }
)
#: Options that leave a key free to open a terminal (they limit forwarding, or concern other
#: key kinds), as sshd names them; case does not matter.
FREE_OPTIONS = frozenset(
    {
        "agent-forwarding",
        "no-agent-forwarding",
        "port-forwarding",
        "no-port-forwarding",
        "x11-forwarding",
        "no-x11-forwarding",
        "user-rc",
        "no-user-rc",
        "pty",
        "permitopen",
        "permitlisten",
        "environment",
        "tunnel",
        "touch-required",
        "no-touch-required",
        "verify-required",
    }
)
#: Options that limit what a key may do: a key listed with one does not log in here.
LIMITING_OPTIONS = frozenset(
    {"command", "from", "restrict", "expiry-time", "principals", "cert-authority", "no-pty"}
)


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


def split_options(text: str) -> tuple[list[str], str] | None:
    """The options at the start of an authorized_keys line and the rest of it, as sshd splits
    them: they end at the first space or tab outside double quotes, commas between them, and
    ``\\"`` is a quote inside quotes. None if a quote is never closed."""
    options: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1 : index + 2] == '"':
            current.append('\\"')
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char in " \t":
            break
        elif not quoted and char == ",":
            options.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    if quoted:
        return None
    options.append("".join(current))
    return options, text[index:]


@attrs.frozen
class AuthorizedKey:
    """One usable line of an authorized_keys file."""

    key_type: str
    blob: str
    #: The option names of the line, lower case.
    options: tuple[str, ...] = ()

    @property
    def limited(self) -> bool:
        """True if an option limits what the key may do."""
        return any(name in LIMITING_OPTIONS for name in self.options)


def parse_authorized_line(line: str) -> AuthorizedKey | None:
    """One line of an authorized_keys file read as sshd reads it; None for a comment, a blank
    line, or a line sshd would not use (an unknown option, an unclosed quote, no key)."""
    text = line.strip(" \t\r\n")
    if not text or text.startswith("#"):
        return None
    names: tuple[str, ...] = ()
    words = text.split(None, 1)
    if not words:
        return None
    if words[0] not in KEY_TYPES:
        split = split_options(text)
        if split is None:
            return None
        options, text = split
        names = tuple(option.split("=", 1)[0].lower() for option in options)
        if any(name not in FREE_OPTIONS and name not in LIMITING_OPTIONS for name in names):
            return None
    fields = text.split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        return None
    return AuthorizedKey(fields[0], fields[1], names)


def authorized_ed25519_keys(text: str) -> set[bytes]:
    """The raw Ed25519 keys of an authorized_keys file's text that may log in here.

    Other key types are skipped; a key listed on any line with an option that
    limits it (``command=``, ``from=``, ``restrict``, ...) is left out.
    """
    free: set[bytes] = set()
    limited: set[bytes] = set()
    for line in text.splitlines():
        entry = parse_authorized_line(line)
        if entry is None or entry.key_type != KEY_TYPE:
            continue
        key = parse_public_key(f"{entry.key_type} {entry.blob}")
        if key is not None:
            (limited if entry.limited else free).add(key)
    return free - limited


def read_authorized_keys(path: Path) -> set[bytes]:
    """The Ed25519 keys that may log in from an authorized_keys file; none if it is missing,
    unreadable, or not safe from other users (sshd's StrictModes)."""
    try:
        if not check_private_file(path, secret=False, root_may_own=True):
            return set()
        raw = read_private(path, MAX_FILE)
    except UnsafePath as e:
        _log.warn("no SSH key may log in: {error}", error=str(e))
        return set()
    except OSError:
        return set()
    return authorized_ed25519_keys(raw[:MAX_FILE].decode("utf-8", "replace"))


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
    client: str = ""


class SSHKeyLogin:
    """Challenges handed out, and the check of their answers."""

    def __init__(self, authorized_keys: Path, user_id: str, clock: Any) -> None:
        self.authorized_keys = authorized_keys
        self.user_id = user_id
        self._clock = clock
        self._challenges: OrderedDict[str, _Challenge] = OrderedDict()
        self._per_client: Counter[str] = Counter()

    def challenge(self, user_id: object, client: str = "") -> dict[str, str]:
        """A new challenge for user_id (any name gets one: answers tell nothing about users).

        A client holding MAX_CHALLENGES_PER_CLIENT already loses its own oldest, so
        one client asking again and again cannot push out another's challenge.
        """
        now = self._clock.seconds()
        self._forget_expired(now)
        if self._per_client[client] >= MAX_CHALLENGES_PER_CLIENT:
            oldest = next(key for key, c in self._challenges.items() if c.client == client)
            self._drop(oldest)
        while len(self._challenges) >= MAX_CHALLENGES:
            self._drop(next(iter(self._challenges)))
        challenge_id = secrets.token_urlsafe(16)
        data = secrets.token_bytes(CHALLENGE_BYTES)
        name = user_id if isinstance(user_id, str) else ""
        self._challenges[challenge_id] = _Challenge(name, data, now + CHALLENGE_LIFETIME, client)
        self._per_client[client] += 1
        return {"challengeId": challenge_id, "challenge": base64.b64encode(data).decode("ascii")}

    def _drop(self, challenge_id: str) -> _Challenge | None:
        challenge = self._challenges.pop(challenge_id, None)
        if challenge is not None:
            self._per_client[challenge.client] -= 1
            if self._per_client[challenge.client] <= 0:
                del self._per_client[challenge.client]
        return challenge

    def _forget_expired(self, now: float) -> None:
        while self._challenges:
            oldest_id, oldest = next(iter(self._challenges.items()))
            if oldest.expires > now:
                break
            self._drop(oldest_id)

    def answer(self, challenge_id: object, public_key: object, signature: object) -> str | None:
        """The user id if this answers a live challenge with a listed key; None otherwise.

        A challenge is spent by any answer, right or wrong.
        """
        if not isinstance(challenge_id, str):
            return None
        challenge = self._drop(challenge_id)
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
