# -*- test-case-name: tests.test_external_session -*-
"""What /proc tells about a session's processes: is its program still alive, and is it really its own."""

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
