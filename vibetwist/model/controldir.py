# -*- test-case-name: tests.test_external_session -*-
"""The control directory: one folder per session, private to the user.

Layout (shared with VibeTunnel's tools)::

    <control dir>/            0700
        <session id>/         0700
            session.json      0600, replaced atomically
            stdout            0600, the asciicast v2 recording
            ipc.sock          0600, for sessions run by ``vt``

The control directory and every session folder must belong to the user, and
the folders above the control directory must be safe from other users
(:mod:`vibetwist.model.privatefiles`); session.json is replaced through a
temporary file of a name nobody can guess, made with ``O_EXCL | O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vibetwist.errors import FormatError
from vibetwist.model.privatefiles import make_private_dir, write_private

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

#: Largest session.json read.
MAX_INFO = 1 << 20

DIR_MODE = 0o700
FILE_MODE = 0o600


def default_control_dir(environ: dict[str, str] | None = None) -> Path:
    """The control directory a user expects: $VIBETUNNEL_CONTROL_DIR or ~/.vibetunnel/control."""
    env = os.environ if environ is None else environ
    configured = env.get("VIBETUNNEL_CONTROL_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path("~/.vibetunnel/control").expanduser()


def is_session_id(value: object) -> bool:
    """True when value may name a session folder (no separators, dots or other tricks)."""
    return isinstance(value, str) and SESSION_ID.match(value) is not None


def write_json_atomically(path: Path, value: Any) -> None:
    """Replace path with value as JSON: write a private temporary file of a name nobody can
    guess (never through a planted link), then rename it over path."""
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    write_private(path, data, FILE_MODE)


class ControlDir:
    """The folder that holds every session's files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(self) -> None:
        """Make the folder (0700) if it is missing and tighten its mode if it is loose.

        :raises UnsafePath: if it, or a folder above it, is not safe from other users.
        """
        make_private_dir(self.root)

    def session_dir(self, session_id: str) -> Path:
        """The folder of one session; refuses an id that is not a plain name."""
        if not is_session_id(session_id):
            raise FormatError(f"not a session id: {session_id!r}")
        return self.root / session_id

    def make_session_dir(self, session_id: str) -> Path:
        """Create a new session's private folder."""
        path = self.session_dir(session_id)
        path.mkdir(mode=DIR_MODE)
        os.chmod(path, DIR_MODE)
        return path

    def info_path(self, session_id: str) -> Path:
        return self.session_dir(session_id) / "session.json"

    def recording_path(self, session_id: str) -> Path:
        return self.session_dir(session_id) / "stdout"

    def save_info(self, session_id: str, info: dict[str, Any]) -> None:
        """Write a session's session.json atomically."""
        write_json_atomically(self.info_path(session_id), info)

    def update_info(self, session_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        """
        Read, change and replace a session's session.json under an exclusive lock.

        Two processes updating the same session (``vt``, which runs it, and the
        daemon, which renames it) each hold ``flock`` on the session's folder
        from read to rename, so neither loses what the other wrote. Held for
        one small read and write; a missing or unreadable session.json is
        read as ``{}``.

        :param change: called with the current object, which it changes in place.
        :raises OSError: if the folder cannot be opened or the file written.
        """
        fd = os.open(
            self.session_dir(session_id), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = self.load_info(session_id)
            except FormatError:
                current = {}
            change(current)
            self.save_info(session_id, current)
        finally:
            os.close(fd)  # and with it the lock

    def load_info(self, session_id: str) -> dict[str, Any]:
        """Read a session's session.json; FormatError if it is missing or not an object."""
        # Read nothing that could block or never end: a FIFO, a device, a huge file.
        try:
            recording = self.recording_path(session_id).stat()
        except OSError:
            pass  # no recording yet
        else:
            if not stat.S_ISREG(recording.st_mode):
                raise FormatError(f"the recording of {session_id} is not a regular file")
        try:
            fd = os.open(
                self.info_path(session_id),
                os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC,
            )
        except OSError as e:
            raise FormatError(f"cannot read session.json of {session_id}: {e.strerror}") from e
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FormatError(f"session.json of {session_id} is not a regular file")
            raw = os.read(fd, MAX_INFO + 1)
        except OSError as e:
            raise FormatError(f"cannot read session.json of {session_id}: {e.strerror}") from e
        finally:
            os.close(fd)
        if len(raw) > MAX_INFO:
            raise FormatError(f"session.json of {session_id} is larger than {MAX_INFO} bytes")
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise FormatError(f"session.json of {session_id} is not JSON") from e
        if not isinstance(value, dict):
            raise FormatError(f"session.json of {session_id} is not an object")
        return value

    def session_ids(self) -> Iterator[str]:
        """The ids of the session folders present, in no particular order."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in entries:
            if is_session_id(entry.name) and entry.is_dir(follow_symlinks=False):
                yield entry.name

    def remove(self, session_id: str) -> None:
        """Delete a session's folder and everything in it; a missing folder is fine."""
        path = self.session_dir(session_id)
        try:
            shutil.rmtree(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise


def unsafe_folder(folder: Path, uid: int | None = None) -> str | None:
    """Why a session folder must not be read or written, or None if it may.

    It must be a folder of this user (another user's could hold anything), and
    none of its names may be a symbolic link (which could lead outside it).
    """
    me = os.getuid() if uid is None else uid
    try:
        info = os.lstat(folder)
        entries = list(os.scandir(folder)) if stat.S_ISDIR(info.st_mode) else []
    except OSError as e:
        return f"it cannot be read ({e.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if info.st_uid != me:
        return f"it belongs to uid {info.st_uid}, not to the user running vibetwist"
    for entry in entries:
        if entry.is_symlink():
            return f"{entry.name} is a symbolic link"
    return None


#: The longest path a Unix socket address may have (108 bytes on Linux, with its NUL).
SOCKET_PATH_MAX = 107


class SocketAddress:
    """A Unix socket path short enough to bind or connect to, however deep its folder.

    A longer path is reached through ``/proc/self/fd/N/``, N being a descriptor
    of the folder held open until ``close()``. Use as a context manager around
    the bind or the whole connect.
    """

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        self.address = str(path)
        if len(os.fsencode(self.address)) > SOCKET_PATH_MAX:
            self._fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.address = f"/proc/self/fd/{self._fd}/{path.name}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> str:
        return self.address

    def __exit__(self, *exc: object) -> None:
        self.close()
