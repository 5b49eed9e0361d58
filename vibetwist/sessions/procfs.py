# -*- test-case-name: tests.test_external_session -*-
"""What /proc tells about a session's processes: is its program still alive, and is it really
its own; what runs in its foreground, and whether that waits reading the terminal."""

from __future__ import annotations


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
#: Where the kernel shows a process sleeping in a read of a terminal (``/proc/PID/wchan``).
TERMINAL_READ_WAITS = frozenset({"n_tty_read", "wait_woken"})
#: The number of the read system call (x86-64, then arm64 and the other generic ones).
READ_SYSCALLS = frozenset({"0", "63"})


def command_line(pid: int, proc: str = "/proc") -> str | None:
    """pid's command line, its arguments joined with spaces (None if it is gone)."""
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            raw = f.read(MAX_COMMAND * 4)
    except OSError:
        return None
    words = raw.rstrip(b"\0").split(b"\0")
    return " ".join(w.decode("utf-8", "replace") for w in words)[:MAX_COMMAND]


def reads_terminal(pid: int, proc: str = "/proc") -> bool:
    """Whether pid sleeps reading a terminal: in the tty read (``wchan``), or in a read of
    fd 0 (``syscall``) where the kernel hides ``wchan``."""
    try:
        with open(f"{proc}/{pid}/wchan", "rb") as f:
            if f.read().decode("ascii", "replace") in TERMINAL_READ_WAITS:
                return True
    except OSError:
        pass
    try:
        with open(f"{proc}/{pid}/syscall", "rb") as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0].decode() in READ_SYSCALLS and fields[1] == b"0x0"
