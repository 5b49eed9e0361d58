"""Tests for vibetwist.login.sshkeys: authorized_keys parsing and the Ed25519 challenge."""

from __future__ import annotations

import base64
import os
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
    MAX_CHALLENGES_PER_CLIENT,
    SSHKeyLogin,
    authorized_ed25519_keys,
    parse_authorized_line,
    parse_public_key,
    read_authorized_keys,
    split_options,
)


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def rsa_line(comment: str = "") -> str:
    rsa = generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return (rsa.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " " + comment).strip()


class AuthorizedKeysTests(SynchronousTestCase):
    """authorized_keys is read as sshd reads it; keys that options limit do not log in."""

    def test_lines(self) -> None:
        """Plain lines, lines with options that only limit forwarding and comments are read;
        other types and junk are skipped."""
        a, b, c = (Ed25519PrivateKey.generate() for _ in range(3))
        text = "\n".join(
            [
                "# my keys",
                openssh_line(a),
                'no-port-forwarding,permitopen="h:1,h:2",environment="A=b c" ' + openssh_line(b, "opts"),
                rsa_line(),
                "ssh-ed25519 not-base64!!",
                "ssh-ed25519",
                "",
                "  " + openssh_line(c).split()[0] + " " + openssh_line(c).split()[1],
            ]
        )
        self.assertEqual(authorized_ed25519_keys(text), {raw(a), raw(b), raw(c)})

    def test_limiting_options_refuse_the_key(self) -> None:
        """A key listed with command=, from=, restrict, expiry-time=, principals=,
        cert-authority or no-pty (in any case, quoted values with spaces and commas) is not
        allowed, also when another line lists it plainly."""
        for options in [
            'command="/usr/bin/backup --quiet"',
            'from="10.0.0.0/8,!10.0.0.1"',
            "restrict",
            "RESTRICT,pty",
            'expiry-time="29991231"',
            'principals="a,b"',
            "cert-authority",
            "no-pty",
            'no-agent-forwarding,COMMAND="echo \\"hi there\\", ok"',
        ]:
            key = Ed25519PrivateKey.generate()
            self.assertEqual(authorized_ed25519_keys(f"{options} {openssh_line(key)}"), set(), options)
            both = f"{openssh_line(key)}\n{options} {openssh_line(key)}"
            self.assertEqual(authorized_ed25519_keys(both), set(), options)

    def test_keys_in_comments_are_not_keys(self) -> None:
        """A key written in the comment of another line (an RSA key's, an Ed25519 key's, a
        limited key's) is not picked up."""
        hidden = Ed25519PrivateKey.generate()
        visible = Ed25519PrivateKey.generate()
        hidden_text = openssh_line(hidden, "")
        for line in [
            rsa_line(hidden_text),
            openssh_line(visible, hidden_text),
            f'command="backup" {openssh_line(visible, hidden_text)}',
            f"# {hidden_text}",
        ]:
            self.assertNotIn(raw(hidden), authorized_ed25519_keys(line), line)
        self.assertEqual(authorized_ed25519_keys(openssh_line(visible, hidden_text)), {raw(visible)})

    def test_lines_sshd_would_not_use(self) -> None:
        """An unknown option, an unclosed quote, or options with no key make the line useless."""
        key = Ed25519PrivateKey.generate()
        for options in ["no-such-option", 'from="10.0.0.1', "no-pty,", ",", 'command="x"x,y']:
            entry = parse_authorized_line(f"{options} {openssh_line(key)}")
            self.assertTrue(entry is None or entry.limited, options)
        self.assertIsNone(parse_authorized_line("no-port-forwarding"))
        self.assertEqual(split_options('a="x, y",b c d'), (['a="x, y"', "b"], " c d"))
        self.assertIsNone(split_options('a="x'))

    def test_file_others_may_change_is_not_read(self) -> None:
        """An authorized_keys file others may write, or in a folder others may change, gives no
        key (sshd's StrictModes)."""
        key = Ed25519PrivateKey.generate()
        folder = Path(tempfile.mkdtemp())
        path = folder / "authorized_keys"
        path.write_text(openssh_line(key) + "\n")
        self.assertEqual(read_authorized_keys(path), {raw(key)})
        os.chmod(path, 0o666)
        self.assertEqual(read_authorized_keys(path), set())
        os.chmod(path, 0o644)
        os.chmod(folder, 0o777)
        self.assertEqual(read_authorized_keys(path), set())

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
        """Arbitrary text never raises, as a key, a line or a file."""
        parse_public_key(text)
        parse_public_key("ssh-ed25519 " + text)
        authorized_ed25519_keys(text)
        parse_authorized_line(text)

    @given(
        st.lists(
            st.sampled_from(
                ["no-pty", "restrict", 'command="a b"', "no-port-forwarding", "pty", 'from="x,y"']
            ),
            max_size=4,
        )
    )
    def test_any_options(self, options: list[str]) -> None:
        """A key is allowed exactly when none of its options limits it."""
        key = Ed25519PrivateKey.generate()
        line = (",".join(options) + " " if options else "") + openssh_line(key)
        limited = any(o.split("=")[0] in ("no-pty", "restrict", "command", "from") for o in options)
        self.assertEqual(authorized_ed25519_keys(line), set() if limited else {raw(key)})


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

    def test_one_client_cannot_push_out_another(self) -> None:
        """A client asking for challenges again and again loses only its own oldest ones: a
        challenge another client holds stays answerable."""
        mine = self.login.challenge("me", "uid 1000")
        for _ in range(MAX_CHALLENGES * 2):
            self.login.challenge("me", "10.0.0.9")
        self.assertEqual(self.answer(mine), "me")
        recent = [self.login.challenge("me", "10.0.0.9") for _ in range(MAX_CHALLENGES_PER_CLIENT)]
        self.assertEqual(self.answer(recent[0]), "me")

    def test_bounded(self) -> None:
        """At most MAX_CHALLENGES are kept; the oldest go first."""
        first = self.login.challenge("me")
        for _ in range(MAX_CHALLENGES):
            self.login.challenge("me")
        self.assertIsNone(self.answer(first))
        self.assertEqual(self.answer(self.login.challenge("me")), "me")
