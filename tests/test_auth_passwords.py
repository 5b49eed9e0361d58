"""Tests for vibetwist.login.passwords: password files and password checks."""

from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.credentials import FAST
from vibetwist import passwd
from vibetwist.login.passwords import (
    RECHECK,
    PasswordCheck,
    PasswordFile,
    PasswordFileError,
    format_password_file,
    parse_password_file,
    read_password_file,
    valid_user_name,
)

user_names = st.text(
    st.characters(blacklist_categories=["Cc", "Cs", "Zs", "Zl", "Zp"], blacklist_characters=":#"),
    min_size=1,
    max_size=30,
)


class PasswordFileTests(SynchronousTestCase):
    """user:hash lines are read and written back unchanged; bad lines are errors."""

    @given(st.dictionaries(user_names, st.sampled_from(["$argon2id$v=19$m=8,t=1,p=1$abc$def", "$argon2i$x"])))
    def test_round_trip(self, users: dict[str, str]) -> None:
        """Formatting then parsing gives the same users and hashes."""
        self.assertEqual(parse_password_file(format_password_file(users)), users)

    def test_comments_and_blank_lines(self) -> None:
        """Comments and blank lines are skipped."""
        text = "# users\n\nalice:$argon2id$h1\n  bob:$argon2id$h2  \n"
        self.assertEqual(parse_password_file(text), {"alice": "$argon2id$h1", "bob": "$argon2id$h2"})

    def test_bad_lines(self) -> None:
        """A line without a user, a colon or an Argon2 hash is refused with its number."""
        for text in ["alice", ":$argon2id$x", "alice:plaintext", "ok:$argon2id$x\nbad"]:
            with self.assertRaises(PasswordFileError) as caught:
                parse_password_file(text)
            self.assertIn("line", str(caught.exception))

    def test_unreadable(self) -> None:
        """A missing file is a PasswordFileError naming it."""
        self.assertRaises(PasswordFileError, read_password_file, Path("/nonexistent/passwords"))

    def test_user_names(self) -> None:
        """Names with colons, outer spaces or control characters cannot be stored."""
        self.assertTrue(valid_user_name("alice"))
        for name in ["", "a:b", " alice", "alice\n"]:
            self.assertFalse(valid_user_name(name), name)


class PasswordCheckTests(SynchronousTestCase):
    """The environment pair and the file's hashes; unknown users fail like wrong passwords."""

    def test_file(self) -> None:
        """A user of the file logs in with the right password only."""
        check = PasswordCheck({"alice": FAST.hash("secret")}, hasher=FAST)
        self.assertTrue(check.enabled)
        self.assertTrue(check.check("alice", "secret"))
        self.assertFalse(check.check("alice", "Secret"))
        self.assertFalse(check.check("bob", "secret"))
        self.assertFalse(check.check("", ""))

    def test_environment(self) -> None:
        """VIBETUNNEL_USERNAME/PASSWORD log in; other pairs do not."""
        check = PasswordCheck(env_user="me", env_password="pw", hasher=FAST)
        self.assertTrue(check.check("me", "pw"))
        for user, password in [("me", "pw "), ("me2", "pw"), ("", "pw"), ("me", "")]:
            self.assertFalse(check.check(user, password), (user, password))

    def test_both(self) -> None:
        """With both configured, either set of credentials works, and never crosses over."""
        check = PasswordCheck({"alice": FAST.hash("a")}, "me", "pw", hasher=FAST)
        self.assertTrue(check.check("alice", "a"))
        self.assertTrue(check.check("me", "pw"))
        self.assertFalse(check.check("alice", "pw"))
        self.assertFalse(check.check("me", "a"))

    def test_file_read_again(self) -> None:
        """A password file is read again once it changed (looked at once a second at most): a
        removed user is no longer known; a file that became unusable lets nobody in."""
        folder = Path(tempfile.mkdtemp())
        path = folder / "passwords"
        path.write_text(format_password_file({"alice": FAST.hash("a"), "bob": FAST.hash("b")}))
        os.chmod(path, 0o600)
        now = [0.0]
        check = PasswordCheck(PasswordFile(path, clock=lambda: now[0]), hasher=FAST)
        self.assertTrue(check.knows("bob"))
        path.write_text(format_password_file({"alice": FAST.hash("a")}))
        self.assertTrue(check.knows("bob"))  # not looked at yet
        now[0] += RECHECK
        self.assertFalse(check.knows("bob"))
        self.assertTrue(check.knows("alice"))
        self.assertFalse(check.check("bob", "b"))
        os.chmod(path, 0o644)
        now[0] += RECHECK
        self.assertFalse(check.knows("alice"))
        self.assertTrue(check.enabled)

    def test_nothing_configured(self) -> None:
        """Without credentials password login is off and nothing matches."""
        check = PasswordCheck(env_user="me", env_password="", hasher=FAST)
        self.assertFalse(check.enabled)
        self.assertFalse(check.check("me", ""))


class MakePasswordFileTests(SynchronousTestCase):
    """python -m vibetwist.passwd FILE USER writes a 0600 file of Argon2 hashes."""

    def run_main(self, args: list[str], answers: list[str]) -> tuple[int, str]:
        replies = iter(answers)
        self.patch(passwd.getpass, "getpass", lambda prompt="": next(replies))
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        return passwd.main(args), out.getvalue() + err.getvalue()

    def test_adds_users(self) -> None:
        """Each run adds or replaces one user; the file stays 0600 and checks the passwords."""
        path = Path(tempfile.mkdtemp()) / "passwords"
        code, _ = self.run_main([str(path), "alice"], ["one", "one"])
        self.assertEqual(code, 0)
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.run_main([str(path), "bob"], ["two", "two"])
        self.run_main([str(path), "alice"], ["three", "three"])
        users = read_password_file(path)
        self.assertEqual(set(users), {"alice", "bob"})
        check = PasswordCheck(users)
        self.assertTrue(check.check("alice", "three"))
        self.assertFalse(check.check("alice", "one"))
        self.assertTrue(check.check("bob", "two"))

    def test_mismatch_changes_nothing(self) -> None:
        """Two different answers, or an empty one, leave the file alone."""
        path = Path(tempfile.mkdtemp()) / "passwords"
        for answers in (["a", "b"], ["", ""]):
            code, said = self.run_main([str(path), "alice"], answers)
            self.assertEqual(code, 1)
            self.assertIn("nothing changed", said)
        self.assertFalse(path.exists())

    def test_planted_link_followed_nowhere(self) -> None:
        """A symbolic link planted where the old command wrote its temporary file (FILE.tmp)
        is not followed: the file it leads to is untouched and FILE is written."""
        folder = Path(tempfile.mkdtemp())
        victim = folder / "victim"
        victim.write_text("precious\n")
        path = folder / "passwords"
        (folder / "passwords.tmp").symlink_to(victim)
        code, said = self.run_main([str(path), "alice"], ["one", "one"])
        self.assertEqual(code, 0, said)
        self.assertEqual(victim.read_text(), "precious\n")
        self.assertEqual(set(read_password_file(path)), {"alice"})
        self.assertEqual(sorted(p.name for p in folder.iterdir()), ["passwords", "passwords.tmp", "victim"])

    def test_unsafe_file_refused(self) -> None:
        """An existing file others may read, a symbolic link, or a folder others may change
        is refused with a message, and nothing is written."""
        folder = Path(tempfile.mkdtemp())
        readable = folder / "readable"
        readable.write_text("")
        os.chmod(readable, 0o644)
        link = folder / "link"
        link.symlink_to(folder / "elsewhere")
        shared = folder / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        for path in [readable, link, shared / "passwords"]:
            code, said = self.run_main([str(path), "alice"], ["one", "one"])
            self.assertEqual(code, 1, path)
            self.assertIn("passwd: ", said)
        self.assertEqual(readable.read_text(), "")
        self.assertFalse((folder / "elsewhere").exists())
        self.assertEqual(list(shared.iterdir()), [])

    def test_usage(self) -> None:
        """Bad arguments are a usage message, not a traceback."""
        results: list[Any] = [self.run_main([], []), self.run_main(["/tmp/x", "a:b"], [])]
        self.assertEqual([code for code, _ in results], [2, 2])
