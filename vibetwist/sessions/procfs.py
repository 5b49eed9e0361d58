# -*- test-case-name: tests.test_external_session -*-
"""What /proc tells about a session's processes: is its program still alive, and is it really
its own; what runs in its foreground, and whether that waits reading the terminal."""

from __future__ import annotations

import os


def pid_alive(pid: int, session_id: str, proc: str = "/proc") -> bool:
    """Whether pid is a live process that may be the session's (not one reusing its number)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    if stat[stat.rfind(b")") + 2 :].startswith(b"Z"):
        return False
    try:
        with open(f"{proc}/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return True  # another user's process: its number is all there is to go by
    mine = f"VIBETUNNEL_SESSION_ID={session_id}".encode()
    others = [e for e in environ if e.startswith(b"VIBETUNNEL_SESSION_ID=")]
    return not others or mine in others


def pid_runs_session(pid: int, session_id: str, proc: str = "/proc") -> bool:
    """True if pid is alive and carries ``VIBETUNNEL_SESSION_ID=session_id`` in its environment."""
    try:
        with open(f"{proc}/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    return f"VIBETUNNEL_SESSION_ID={session_id}".encode() in environ.split(b"\0")


#: Most characters of a command line kept.
MAX_COMMAND = 1000
#: The system calls a process waits for its terminal in, by machine: reads (whose first
#: argument is the fd) and epoll waits (whose first argument is the epoll fd).
_READS = {"x86_64": frozenset({"0"}), "aarch64": frozenset({"63"})}
_EPOLL_WAITS = {"x86_64": frozenset({"232", "281", "441"}), "aarch64": frozenset({"22", "441"})}
#: Most fds of an epoll set looked at.
MAX_WATCHED = 256
_MACHINE = os.uname().machine


def command_line(pid: int, proc: str = "/proc") -> str | None:
    """pid's command line, its arguments joined with spaces (None if it is gone)."""
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            raw = f.read(MAX_COMMAND * 4)
    except OSError:
        return None
    words = raw.rstrip(b"\0").split(b"\0")
    return " ".join(w.decode("utf-8", "replace") for w in words)[:MAX_COMMAND]


def _link(pid: int, fd: int, proc: str) -> str:
    try:
        return os.readlink(f"{proc}/{pid}/fd/{fd}")
    except OSError:
        return ""


def _is_terminal(pid: int, fd: int, proc: str) -> bool:
    return _link(pid, fd, proc).startswith(("/dev/pts/", "/dev/tty"))


def _epoll_holds_terminal(pid: int, epfd: int, proc: str) -> bool:
    """Whether the epoll set epfd of pid watches a terminal (its ``tfd:`` lines)."""
    try:
        with open(f"{proc}/{pid}/fdinfo/{epfd}", "rb") as f:
            lines = f.read(64 * MAX_WATCHED).split(b"\n")
    except OSError:
        return False
    watched = [line.split()[1] for line in lines if line.startswith(b"tfd:") and len(line.split()) > 1]
    return any(fd.isdigit() and _is_terminal(pid, int(fd), proc) for fd in watched[:MAX_WATCHED])


def waits_on_terminal(pid: int, proc: str = "/proc", machine: str = _MACHINE) -> bool:
    """Whether pid sleeps waiting for its terminal: in a read of it, or in an epoll wait whose
    set holds it (``/proc/PID/syscall``; where that cannot be read, ``wchan`` in the tty's
    read). A wait in poll or select, whose fds /proc does not show, is not seen."""
    try:
        with open(f"{proc}/{pid}/syscall", "rb") as f:
            fields = f.read().decode("ascii", "replace").split()
    except OSError:
        try:
            with open(f"{proc}/{pid}/wchan", "rb") as f:
                return f.read() == b"n_tty_read"
        except OSError:
            return False
    if len(fields) < 2:
        return False  # "running", or gone
    try:
        fd = int(fields[1], 16)
    except ValueError:
        return False
    if fields[0] in _READS.get(machine, ()):
        return _is_terminal(pid, fd, proc)
    if fields[0] in _EPOLL_WAITS.get(machine, ()):
        return _epoll_holds_terminal(pid, fd, proc)
    return False
