"""Tests for vibetwist.model.privatefiles and the control directory's writes: files other users
could plant are refused, and replacing a file never follows a planted name."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.controldir import ControlDir, write_json_atomically
from vibetwist.model.privatefiles import (
    UnsafePath,
    check_folders_above,
    check_private_dir,
    check_private_file,
    create_private,
    make_private_dir,
    read_private,
    temporary_name,
    write_private,
)

#: A uid that is not this process's: the files made here look like another user's to it.
STRANGER = os.getuid() + 4242


def folder() -> Path:
    return Path(tempfile.mkdtemp())


class FolderTests(SynchronousTestCase):
    """Every folder above a private path must be the user's or root's, and closed to others'
    writes unless sticky."""

    def test_safe(self) -> None:
        """A fresh temporary folder (under the sticky /tmp) is safe."""
        check_folders_above(folder() / "x")

    def test_writable_by_others(self) -> None:
        """A folder others may write, anywhere above, is refused; made sticky it is fine."""
        top = folder()
        shared = top / "shared"
        (shared / "deep").mkdir(parents=True)
        for mode in (0o777, 0o775, 0o757):
            os.chmod(shared, mode)
            self.assertRaises(UnsafePath, check_folders_above, shared / "deep" / "file")
        os.chmod(shared, 0o1777)
        check_folders_above(shared / "deep" / "file")

    def test_owned_by_another(self) -> None:
        """A folder above that belongs to another user (not root) is refused."""
        top = folder()
        (top / "theirs").mkdir()
        if os.getuid() == 0:
            os.chown(top / "theirs", STRANGER + 1, STRANGER + 1)  # neither root nor STRANGER
        error = self.assertRaises(UnsafePath, check_folders_above, top / "theirs" / "x", STRANGER)
        self.assertIn("belongs to", str(error))

    def test_symlinked_folder(self) -> None:
        """A folder above reached through a symbolic link is checked where the link leads."""
        top = folder()
        (top / "real").mkdir()
        (top / "link").symlink_to(top / "real")
        check_folders_above(top / "link" / "x")
        os.chmod(top / "real", 0o777)
        self.assertRaises(UnsafePath, check_folders_above, top / "link" / "x")


class FileTests(SynchronousTestCase):
    """A private file is a regular file of the user, closed to others."""

    def test_missing(self) -> None:
        """A file that does not exist is False (its folders are checked)."""
        self.assertFalse(check_private_file(folder() / "nothing"))

    def test_modes(self) -> None:
        """A secret file must be closed to group and others; a plain one only to their writes."""
        path = folder() / "f"
        path.write_text("x")
        for mode, secret_ok, plain_ok in [(0o600, True, True), (0o640, False, True), (0o620, False, False)]:
            os.chmod(path, mode)
            self.assertEqual(_ok(lambda: check_private_file(path)), secret_ok, oct(mode))
            self.assertEqual(_ok(lambda: check_private_file(path, secret=False)), plain_ok, oct(mode))

    def test_owner(self) -> None:
        """A file of another user is refused (root's only where root may own it)."""
        path = folder() / "f"
        path.write_text("x")
        os.chmod(path, 0o600)
        self.assertRaises(UnsafePath, check_private_file, path, uid=STRANGER)
        if os.getuid() == 0:
            self.assertTrue(check_private_file(path, uid=STRANGER, root_may_own=True, secret=False))

    def test_links_and_others(self) -> None:
        """A symbolic link (dangling or not), a folder or a FIFO is not a private file."""
        top = folder()
        (top / "dangling").symlink_to(top / "nowhere")
        (top / "target").write_text("x")
        os.chmod(top / "target", 0o600)
        (top / "link").symlink_to(top / "target")
        (top / "dir").mkdir()
        os.mkfifo(top / "fifo", 0o600)
        for name in ["dangling", "link", "dir", "fifo"]:
            self.assertRaises(UnsafePath, check_private_file, top / name)
        self.assertRaises(OSError, read_private, top / "link", 10)
        self.assertRaises(UnsafePath, read_private, top / "fifo", 10)

    @given(st.binary(max_size=5000), st.integers(0, 6000))
    def test_read_bounded(self, data: bytes, limit: int) -> None:
        """read_private gives at most limit + 1 bytes, the file's first."""
        path = folder() / "f"
        path.write_bytes(data)
        self.assertEqual(read_private(path, limit), data[: limit + 1])


class WriteTests(SynchronousTestCase):
    """Replacing a file goes through a new file of an unguessable name, never through a link."""

    def test_write_and_replace(self) -> None:
        """write_private makes a 0600 file and replaces it whole; nothing else is left."""
        top = folder()
        path = top / "f"
        write_private(path, b"one")
        write_private(path, b"two")
        self.assertEqual(path.read_bytes(), b"two")
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.assertEqual(os.listdir(top), ["f"])

    def test_unguessable(self) -> None:
        """Temporary names differ every time."""
        path = folder() / "session.json"
        names = {temporary_name(path) for _ in range(100)}
        self.assertEqual(len(names), 100)
        self.assertTrue(all(n.parent == path.parent and n.name.startswith(".session.json.") for n in names))

    def test_planted_link_at_the_old_name(self) -> None:
        """A symbolic link at the temporary name the old code used (.session.json.PID.tmp), or at
        session.json itself, does not make the write go where it leads."""
        top = folder()
        files = ControlDir(top / "control")
        files.create()
        session = files.make_session_dir("s1")
        victim = top / "victim"
        victim.write_text("precious")
        (session / f".session.json.{os.getpid()}.tmp").symlink_to(victim)
        files.save_info("s1", {"id": "s1"})
        self.assertEqual(victim.read_text(), "precious")
        (session / "session.json").unlink()
        (session / "session.json").symlink_to(victim)
        write_json_atomically(session / "session.json", {"id": "s1"})
        self.assertEqual(victim.read_text(), "precious")
        self.assertFalse((session / "session.json").is_symlink())

    def test_create_once(self) -> None:
        """create_private writes only where nothing is, not even a dangling link."""
        top = folder()
        self.assertTrue(create_private(top / "a", b"x"))
        self.assertFalse(create_private(top / "a", b"y"))
        (top / "link").symlink_to(top / "nowhere")
        self.assertFalse(create_private(top / "link", b"y"))
        self.assertFalse((top / "nowhere").exists())
        self.assertEqual((top / "a").read_bytes(), b"x")


class ControlDirTests(SynchronousTestCase):
    """The control directory must be the user's own, in safe folders."""

    def test_made_private(self) -> None:
        """A missing control directory is made 0700; a loose one of ours is tightened."""
        root = folder() / "a" / "control"
        make_private_dir(root)
        self.assertEqual(stat.S_IMODE(root.stat().st_mode), 0o700)
        os.chmod(root, 0o755)
        ControlDir(root).create()
        self.assertEqual(stat.S_IMODE(root.stat().st_mode), 0o700)

    def test_planted_refused(self) -> None:
        """A control directory of another user, a symbolic link, or one in a folder others may
        write is refused."""
        top = folder()
        (top / "theirs").mkdir()
        self.assertRaises(UnsafePath, check_private_dir, top / "theirs", STRANGER)
        (top / "link").symlink_to(top / "theirs")
        self.assertRaises(UnsafePath, ControlDir(top / "link").create)
        shared = top / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        self.assertRaises(UnsafePath, ControlDir(shared / "control").create)
        self.assertFalse((shared / "control").exists())


def _ok(check: object) -> bool:
    try:
        check()  # type: ignore[operator]
    except UnsafePath:
        return False
    return True
