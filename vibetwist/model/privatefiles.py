# -*- test-case-name: tests.test_privatefiles -*-
"""Files that only the user running vibetwist may change.

Another user of the machine must not be able to plant a file the daemon trusts
(a token secret, a password file, a control directory) or a name that turns a
write of the daemon's into a write elsewhere (a symbolic link where a temporary
file will be made). So:

- a private file or folder must belong to this user, and a secret one must be
  closed to everyone else (no group or other permission bits);
- every folder above it must belong to this user or root and be writable by
  nobody else, unless it is sticky (like ``/tmp``, where others may add names
  but not rename or remove ours);
- a file is replaced by writing a temporary file of a name nobody can guess,
  made with ``O_EXCL | O_NOFOLLOW``, then renaming it over the old one.
"""

from __future__ import annotations

import os
import pwd
import secrets
import stat
from pathlib import Path

from vibetwist.errors import VibetwistError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class UnsafePath(VibetwistError):
    """A path another user could have planted or could change."""


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _check_folder(path: Path, info: os.stat_result, uid: int) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{path} is not a folder")
    if info.st_uid not in (uid, 0):
        raise UnsafePath(f"{path} belongs to {_owner(info.st_uid)}, who could replace what is in it")
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise UnsafePath(
            f"{path} may be changed by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod go-w {path}"
        )


def check_folders_above(path: Path, uid: int | None = None) -> None:
    """Raise UnsafePath unless every existing folder above path is safe from other users.

    A folder above may be a symbolic link: the link sits in a folder already
    checked, and the folders it leads to are checked in turn.
    """
    me = os.getuid() if uid is None else uid
    absolute = Path(os.path.abspath(path))
    current = Path(absolute.anchor)
    for part in absolute.parent.parts[1:]:
        _check_one(current, me)
        current = current / part
    _check_one(current, me)


def _check_one(folder: Path, uid: int) -> None:
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return  # made later, by us
    except OSError as e:
        raise UnsafePath(f"cannot check {folder}: {e.strerror}") from e
    if stat.S_ISLNK(info.st_mode):
        target = Path(os.path.realpath(folder))
        check_folders_above(target / "x", uid)
        return
    _check_folder(folder, info, uid)


def _own_entry(path: Path, me: int, kind: str, root_may_own: bool = False) -> os.stat_result | None:
    """The lstat of path once its folders are checked, if it is not a link and belongs to me
    (or root, if root_may_own); None if it does not exist."""
    check_folders_above(path, me)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UnsafePath(f"cannot check {path}: {e.strerror}") from e
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"{path} is a symbolic link; it must be a {kind} of its own")
    wanted = stat.S_ISREG if kind == "file" else stat.S_ISDIR
    if not wanted(info.st_mode):
        raise UnsafePath(f"{path} is not a {'regular file' if kind == 'file' else 'folder'}")
    if info.st_uid != me and not (root_may_own and info.st_uid == 0):
        raise UnsafePath(f"{path} belongs to {_owner(info.st_uid)}, not to {_owner(me)} who runs vibetwist")
    return info


def check_private_file(
    path: Path, *, secret: bool = True, uid: int | None = None, root_may_own: bool = False
) -> bool:
    """Raise UnsafePath unless path is a regular file of this user (or root, if root_may_own),
    writable by nobody else and, if secret, closed to everyone else, in safe folders; False if
    it does not exist (its folders are checked all the same)."""
    info = _own_entry(path, os.getuid() if uid is None else uid, "file", root_may_own)
    if info is None:
        return False
    closed = 0o077 if secret else 0o022
    if info.st_mode & closed:
        what = "readable or writable" if secret else "writable"
        raise UnsafePath(
            f"{path} is {what} by other users (mode {stat.S_IMODE(info.st_mode):o}); run: chmod 600 {path}"
        )
    return True


def check_private_dir(path: Path, uid: int | None = None) -> bool:
    """Raise UnsafePath unless path is a folder of this user in safe folders (its mode is
    tightened to 0700 if loose); False if it does not exist."""
    info = _own_entry(path, os.getuid() if uid is None else uid, "folder")
    if info is None:
        return False
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return True


def make_private_dir(path: Path) -> None:
    """Make path (and missing folders above it) 0700, or check the one there; UnsafePath if unsafe."""
    if not check_private_dir(path):
        try:
            path.mkdir(mode=PRIVATE_DIR, parents=True)
        except FileExistsError:
            pass  # made meanwhile: checked below
        check_private_dir(path)


def temporary_name(path: Path) -> Path:
    """A name beside path that nobody can guess, for a file that will replace it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")


def write_private(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace path with data: a new temporary file (O_EXCL, O_NOFOLLOW) renamed over it."""
    temporary = temporary_name(path)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def create_private(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> bool:
    """Write data to path if nothing is there yet (O_EXCL, O_NOFOLLOW); False if something is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def read_private(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes of a file, opened without following a symbolic link and
    without blocking on a FIFO; OSError as the open or read raises it, UnsafePath for
    something other than a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
