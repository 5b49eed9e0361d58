# -*- test-case-name: tests.test_vt_parts -*-
"""A terminal's window size, read and set with the kernel's ioctls (no reactor involved)."""

from __future__ import annotations

import fcntl
import struct
import termios


def set_size(fd: int, cols: int, rows: int) -> None:
    """Set a terminal's window size (TIOCSWINSZ); the program on it gets SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(cols, rows) of the terminal on fd, or None if fd is not a sized terminal."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (cols, rows) if cols and rows else None
