"""The interfaces between vibetwist's core and the world it runs programs in."""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class ITerminalProcess(Interface):
    """A program running on the far side of a pseudo-terminal."""

    pid = Attribute("The process id of the program (the leader of its own session).")

    def write(data: bytes) -> None:
        """Type data into the terminal."""

    def resize(cols: int, rows: int) -> None:
        """Change the terminal's size; the program gets SIGWINCH."""

    def signal_all(signal: int) -> None:
        """Send signal to every process in the program's session."""

    def hang_up() -> None:
        """Close the terminal's master side."""


class ITerminalEvents(Interface):
    """What a terminal process reports back to its owner."""

    def output(data: bytes) -> None:
        """The program wrote data to the terminal."""

    def leader_exited(code: int) -> None:
        """The program itself exited with code (128+N for signal N); its terminal may still be open."""

    def ended(code: int) -> None:
        """The program exited and every byte it wrote has been delivered."""


class ILauncher(Interface):
    """Starts programs in new pseudo-terminals."""

    def launch(
        executable: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        cols: int,
        rows: int,
        events: ITerminalEvents,
    ) -> ITerminalProcess:
        """Run executable with argv in a new PTY of cols x rows; OSError if it cannot start."""


class ITerminalChannel(Interface):
    """Where a terminal viewer's messages go (a WebSocket, in the daemon)."""

    def send_json(value: dict[str, Any]) -> None:
        """A control message."""

    def send_bytes(data: bytes) -> None:
        """Terminal bytes."""

    def send_output(event: Any) -> None:
        """A live output event's text, as terminal bytes (framed once for every viewer)."""

    def end() -> None:
        """Nothing more will come: close normally."""
