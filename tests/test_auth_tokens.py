"""Tests for vibetwist.login.tokens: signed tokens, their scopes, and the secret file."""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
import time
from pathlib import Path

import jwt
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.login.tokens import (
    AUDIENCE,
    ISSUER,
    Grant,
    SecretError,
    Tokens,
    check_secret_file,
    issuer_for,
    load_secret,
)

SECRET = b"s" * 32
session_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenTests(SynchronousTestCase):
    """Login and share tokens round-trip; anything forged, expired or foreign is refused."""

    def setUp(self) -> None:
        self.tokens = Tokens(SECRET)

    @given(st.text(min_size=1, max_size=100), st.sampled_from(["password", "ssh-key"]))
    def test_login_round_trip(self, user: str, method: str) -> None:
        """A login token verifies as a full grant for its user."""
        grant = self.tokens.verify(self.tokens.login(user, method, 60))
        self.assertEqual(grant, Grant(user, method=method))
        self.assertFalse(grant.read_only)  # type: ignore[union-attr]

    @given(session_ids)
    def test_share_round_trip(self, session_id: str) -> None:
        """A share token verifies as a read-only grant for its one session."""
        token, expires = self.tokens.share(session_id, 3600)
        grant = self.tokens.verify(token)
        self.assertEqual(grant, Grant(None, session_id))
        assert grant is not None
        self.assertTrue(grant.read_only)
        self.assertTrue(grant.may_watch(session_id))
        self.assertFalse(grant.may_watch(session_id + "x"))
        self.assertLess(abs(expires - (time.time() + 3600)), 5)

    def test_expired(self) -> None:
        """A token past its expiry is refused, login or share."""
        past = Tokens(SECRET, now=lambda: time.time() - 7200)
        self.assertIsNone(self.tokens.verify(past.login("me", "password", 3600)))
        self.assertIsNone(self.tokens.verify(past.share("abc", 3600)[0]))
        self.assertIsNotNone(self.tokens.verify(past.login("me", "password", 3 * 3600)))

    def test_other_secret(self) -> None:
        """A token signed with another secret is refused."""
        other = Tokens(b"o" * 32)
        self.assertIsNone(self.tokens.verify(other.login("me", "password", 60)))

    @given(session_ids, session_ids)
    def test_tampered_payload(self, session_id: str, other: str) -> None:
        """Changing the claims of a signed share token (another session, full scope) breaks it."""
        token, _ = self.tokens.share(session_id, 60)
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        for changed in [dict(claims, sid=other + "-"), dict(claims, scope="full"), dict(claims, exp=2**40)]:
            forged = ".".join([header, _b64(json.dumps(changed).encode()), signature])
            self.assertIsNone(self.tokens.verify(forged))

    @given(st.integers(min_value=0, max_value=30), st.sampled_from("AQgw"))
    def test_tampered_signature(self, position: int, replacement: str) -> None:
        """Changing a character in the signature breaks the token."""
        token = self.tokens.login("me", "password", 60)
        head, signature = token.rsplit(".", 1)
        if signature[position] == replacement:
            replacement = "Z"
        forged = head + "." + signature[:position] + replacement + signature[position + 1 :]
        self.assertIsNone(self.tokens.verify(forged))

    def test_unsigned_and_foreign_tokens(self) -> None:
        """alg=none, a foreign audience or issuer, no issuer, an unknown scope and garbage are refused."""
        now = int(time.time())
        claims = {"sub": "me", "scope": "full", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 60}
        unsigned = jwt.encode(claims, None, algorithm="none")
        foreign = jwt.encode(dict(claims, aud="other"), SECRET, algorithm="HS256")
        unknown = jwt.encode(dict(claims, scope="admin"), SECRET, algorithm="HS256")
        bad_sid = jwt.encode(dict(claims, scope="read", sid="../x"), SECRET, algorithm="HS256")
        no_exp = jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET, algorithm="HS256")
        no_iss = jwt.encode({k: v for k, v in claims.items() if k != "iss"}, SECRET, algorithm="HS256")
        other_iss = jwt.encode(dict(claims, iss="vibetwist:0123456789abcdef"), SECRET, algorithm="HS256")
        for token in [
            unsigned,
            foreign,
            unknown,
            bad_sid,
            no_exp,
            no_iss,
            other_iss,
            "",
            "a.b.c",
            "x" * 5000,
        ]:
            self.assertIsNone(self.tokens.verify(token), token)
        self.assertEqual(self.tokens.verify(jwt.encode(claims, SECRET, algorithm="HS256")), Grant("me"))

    def test_sibling_daemon_refuses(self) -> None:
        """A daemon of another control directory that uses the same secret refuses this one's
        tokens, login and share alike; the same control directory (a restart) accepts them."""
        base = Path(tempfile.mkdtemp())
        mine = Tokens(SECRET, issuer=issuer_for(base / "control"))
        sibling = Tokens(SECRET, issuer=issuer_for(base / "control2"))
        restarted = Tokens(SECRET, issuer=issuer_for(base / "." / "control"))
        for token in [mine.login("me", "password", 60), mine.share("abc", 60)[0]]:
            self.assertIsNone(sibling.verify(token))
            self.assertIsNotNone(restarted.verify(token))
        claims = jwt.decode(mine.login("me", "password", 60), options={"verify_signature": False})
        self.assertNotIn(str(base), claims["iss"])

    @given(st.text(max_size=300))
    def test_any_text_is_refused_quietly(self, text: str) -> None:
        """Arbitrary text is never a valid token and never raises."""
        self.assertIsNone(self.tokens.verify(text))

    def test_short_secret(self) -> None:
        """A secret shorter than 32 bytes is refused."""
        self.assertRaises(SecretError, Tokens, b"short")


class SecretFileTests(SynchronousTestCase):
    """The secret is made once, 0600, and reused; an unsafe file is refused."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: [p.unlink() for p in self.dir.rglob("*") if p.is_file()])
        self.path = self.dir / "sub" / "vibetwist.secret"

    def test_made_then_reused(self) -> None:
        """The first load makes a random 0600 secret; later loads return the same one."""
        first = load_secret(self.path)
        self.assertEqual(len(first), 32)
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(load_secret(self.path), first)
        other = self.dir / "other.secret"
        self.assertNotEqual(load_secret(other), first)

    def test_readable_by_others_refused(self) -> None:
        """A secret file that group or others may read is refused."""
        load_secret(self.path)
        for mode in (0o640, 0o604, 0o644):
            os.chmod(self.path, mode)
            self.assertRaises(SecretError, check_secret_file, self.path)
            self.assertRaises(SecretError, load_secret, self.path)

    def test_dangling_symlink_refused(self) -> None:
        """A symbolic link at the secret's path, leading nowhere or to a file, is a SecretError
        that says so (not a RecursionError), and nothing is written where it leads."""
        self.path.parent.mkdir(parents=True)
        target = self.dir / "planted"
        self.path.symlink_to(target)
        error = self.assertRaises(SecretError, load_secret, self.path)
        self.assertIn("symbolic link", str(error))
        self.assertFalse(target.exists())
        target.write_text("ab" * 32)
        os.chmod(target, 0o600)
        self.assertIn("symbolic link", str(self.assertRaises(SecretError, load_secret, self.path)))

    def test_folder_others_may_change_refused(self) -> None:
        """A secret in a folder others may write (not sticky) is refused, made or not; one in a
        sticky folder (like /tmp) is fine."""
        shared = self.dir / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        self.assertRaises(SecretError, load_secret, shared / "vibetwist.secret")
        self.assertFalse((shared / "vibetwist.secret").exists())
        os.chmod(shared, 0o1777)
        self.assertEqual(len(load_secret(shared / "vibetwist.secret")), 32)

    def test_garbage_refused(self) -> None:
        """A secret file that is not a long enough hex secret is refused."""
        self.path.parent.mkdir(parents=True)
        for text in ["not hex at all", "abcd"]:
            self.path.write_text(text)
            os.chmod(self.path, 0o600)
            self.assertRaises(SecretError, load_secret, self.path)
