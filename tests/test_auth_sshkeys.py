"""Tests for vibetwist.login.sshkeys: authorized_keys parsing and the Ed25519 challenge."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.credentials import openssh_line, sign
from vibetwist.login.sshkeys import (
    CHALLENGE_BYTES,
    CHALLENGE_LIFETIME,
    MAX_CHALLENGES,
    SSHKeyLogin,
    authorized_ed25519_keys,
    parse_public_key,
)


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class AuthorizedKeysTests(SynchronousTestCase):
    """ssh-ed25519 keys are read from authorized_keys lines, with or without options."""

    def test_lines(self) -> None:
        """Plain lines, lines with options and comments are read; other types and junk skipped."""
        a, b, c = (Ed25519PrivateKey.generate() for _ in range(3))
        rsa = generate_private_key(public_exponent=65537, key_size=2048).public_key()
        rsa_line = rsa.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
        text = "\n".join(
            [
                "# my keys",
                openssh_line(a),
                'from="10.0.0.0/8",no-pty ' + openssh_line(b, "with options"),
                rsa_line,
                "ssh-ed25519 not-base64!!",
                "ssh-ed25519",
                "",
                "  " + openssh_line(c).split()[0] + " " + openssh_line(c).split()[1],
            ]
        )
        self.assertEqual(authorized_ed25519_keys(text), {raw(a), raw(b), raw(c)})

    def test_public_key(self) -> None:
        """Only a well-formed ssh-ed25519 key string gives a key."""
        key = Ed25519PrivateKey.generate()
        self.assertEqual(parse_public_key(openssh_line(key)), raw(key))
        rsa = generate_private_key(public_exponent=65537, key_size=2048).public_key()
        rsa_line = rsa.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
        for bad in [rsa_line, "ssh-rsa " + openssh_line(key).split()[1], "", None, 42, "ssh-ed25519 AAAA"]:
            self.assertIsNone(parse_public_key(bad), bad)

    @given(st.text(max_size=400))
    def test_any_text(self, text: str) -> None:
        """Arbitrary text never raises, as a key or as a file."""
        parse_public_key(text)
        parse_public_key("ssh-ed25519 " + text)
        authorized_ed25519_keys(text)


class ChallengeTests(SynchronousTestCase):
    """A challenge is answered once, within 5 minutes, by a listed key of the daemon's user."""

    def setUp(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.path = Path(tempfile.mkdtemp()) / "authorized_keys"
        self.path.write_text(openssh_line(self.key) + "\n")
        self.clock = Clock()
        self.login = SSHKeyLogin(self.path, "me", self.clock)

    def answer(self, challenge: dict[str, str], key: Ed25519PrivateKey | None = None) -> str | None:
        key = key or self.key
        return self.login.answer(challenge["challengeId"], openssh_line(key), sign(key, challenge))

    def test_listed_key_logs_in(self) -> None:
        """A signature by a listed key over the 32 challenge bytes logs the user in."""
        challenge = self.login.challenge("me")
        self.assertEqual(len(base64.b64decode(challenge["challenge"])), CHALLENGE_BYTES)
        self.assertEqual(self.answer(challenge), "me")

    def test_single_use(self) -> None:
        """A challenge answered once cannot be answered again, even after a wrong answer."""
        challenge = self.login.challenge("me")
        self.assertEqual(self.answer(challenge), "me")
        self.assertIsNone(self.answer(challenge))
        other = self.login.challenge("me")
        self.assertIsNone(self.answer(other, Ed25519PrivateKey.generate()))
        self.assertIsNone(self.answer(other))

    def test_expires(self) -> None:
        """A challenge older than 5 minutes is refused."""
        challenge = self.login.challenge("me")
        self.clock.advance(CHALLENGE_LIFETIME + 1)
        self.assertIsNone(self.answer(challenge))

    def test_unlisted_key(self) -> None:
        """A key not in authorized_keys is refused even with a valid signature."""
        self.assertIsNone(self.answer(self.login.challenge("me"), Ed25519PrivateKey.generate()))

    def test_key_removed_from_file(self) -> None:
        """The file is read at each login: a removed key stops working."""
        self.path.write_text("")
        self.assertIsNone(self.answer(self.login.challenge("me")))

    def test_other_user(self) -> None:
        """A challenge for another user is refused (it is still handed out)."""
        self.assertIsNone(self.answer(self.login.challenge("root-or-anyone")))

    def test_wrong_signature(self) -> None:
        """A signature over other bytes, a listed key with another's signature, or junk, is refused."""
        challenge = self.login.challenge("me")
        bad = base64.b64encode(self.key.sign(b"something else")).decode()
        self.assertIsNone(self.login.answer(challenge["challengeId"], openssh_line(self.key), bad))
        for signature in ["", "!!", None, base64.b64encode(b"x" * 64).decode()]:
            challenge = self.login.challenge("me")
            self.assertIsNone(self.login.answer(challenge["challengeId"], openssh_line(self.key), signature))
        self.assertIsNone(self.login.answer(None, openssh_line(self.key), "x"))

    def test_bounded(self) -> None:
        """At most MAX_CHALLENGES are kept; the oldest go first."""
        first = self.login.challenge("me")
        for _ in range(MAX_CHALLENGES):
            self.login.challenge("me")
        self.assertIsNone(self.answer(first))
        self.assertEqual(self.answer(self.login.challenge("me")), "me")
