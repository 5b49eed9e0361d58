"""Real full-screen programs in real sessions of the real daemon, compared with xterm.js.

Each test starts a shell in a session, prints a line, runs a program (vim, less,
a curses program drawing boxes in line drawing, ``reset``), types into it and
leaves it.  After each step the daemon's screen (``/api/sessions/ID/text``, and
the cells and cursor of ``/buffer``) must be what xterm.js's headless build
shows when fed the session's recording; once the program has left, the shell's
screen, with the line printed before, must be back.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor

from tests.support.daemon import poll
from tests.support.e2e import DaemonTestCase, read_cast
from tests.support.xterm import Step, Xterm, XtermError, trimmed, visible_state
from vibetwist.model.snapshot import decode

BOXES = Path(__file__).parent / "support" / "boxes.py"
COLS, ROWS = 80, 24
#: The line the shell prints before each program, and looks for once it has left.
BEFORE = "shell-before-42"


def _steps(events: list[list[Any]]) -> list[Step]:
    """A recording's output and changes of size, as steps for xterm.js."""
    steps: list[Step] = []
    for _, kind, data in events:
        if kind == "o":
            steps.append(data.encode("utf-8"))
        elif kind == "r":
            cols, rows = data.split("x")
            steps.append((int(cols), int(rows)))
    return steps


def _text(rows: list[tuple[Any, ...]]) -> str:
    return "".join("".join(cell[0] for cell in row).rstrip() + "\n" for row in rows)


class RealProgramTests(DaemonTestCase):
    """vim, less, a curses program and reset show in the daemon's screen as in xterm.js."""

    timeout = 60
    maxDiff = None

    def setUp(self) -> Any:
        self.xterm = Xterm()
        self.addCleanup(self.xterm.close)
        self.work = Path(self.mktemp()).resolve()
        self.work.mkdir(parents=True)
        return super().setUp()

    async def shell(self) -> str:
        """A session running an interactive shell that has printed :data:`BEFORE`."""
        sid = await self.create(
            ["bash", "--norc", "--noprofile", "-i"], cols=COLS, rows=ROWS, workingDir=str(self.work)
        )
        await self.type(sid, "echo shell-before-$((6*7))\r")
        await self.client.wait_text(sid, f"\n{BEFORE}\n", timeout=10)
        await self.assertSameAsXterm(sid)
        return sid

    async def type(self, sid: str, text: str) -> None:
        code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": text})
        self.assertEqual(code, 200, body)

    async def lacks(self, sid: str, text: str) -> bool:
        return text not in await self.client.text(sid)

    def recording(self, sid: str) -> str:
        """All the output recorded so far."""
        _, events = read_cast(self.daemon.control_dir / sid / "stdout")
        return "".join(data for _, kind, data in events if kind == "o")

    async def assertSameAsXterm(self, sid: str) -> str:
        """The daemon's /text, and the cells and cursor of its /buffer, become what xterm.js
        shows for the session's recording; the text."""
        last: list[Any] = []

        async def same() -> str | None:
            text = (await self.client.get(f"/api/sessions/{sid}/text")).decode("utf-8")
            buffer = visible_state(decode(await self.client.get(f"/api/sessions/{sid}/buffer")))
            _, events = read_cast(self.daemon.control_dir / sid / "stdout")
            [reference] = self.xterm.screens([(COLS, ROWS, _steps(events))])
            if isinstance(reference, XtermError):
                raise AssertionError(f"xterm.js failed on the recording: {reference}")
            expected = {"cursor": reference["cursor"], "screen": trimmed(reference["screen"])}
            last[:] = [text, _text(reference["screen"]), buffer, expected]
            return text if text == last[1] and buffer == expected else None

        try:
            text: str = await poll(reactor, same, timeout=10, interval=0.1, what="the screen of xterm.js")
        except AssertionError:
            self.assertEqual(last[0], last[1], "/text differs from xterm.js")
            self.assertEqual(last[2]["cursor"], last[3]["cursor"], "/buffer's cursor differs from xterm.js")
            self.assertEqual(last[2], last[3], "/buffer's cells differ from xterm.js")
            raise
        return text

    async def assertShellBack(self, sid: str, gone: str) -> None:
        """The program has left: the shell's screen, with :data:`BEFORE`, shows again, without ``gone``."""
        await self.client.wait_text(sid, f"\n{BEFORE}\n", timeout=10)
        text = await self.assertSameAsXterm(sid)
        self.assertNotIn(gone, text)

    async def test_vim(self) -> None:
        """vim draws its screen on the alternate screen, shows an edit, and leaving it shows
        the shell again, as in xterm.js."""
        vim = shutil.which("vim") or shutil.which("vim.tiny")
        if vim is None:
            raise self.skipTest("vim is not installed (Debian package vim or vim-tiny)")
        (self.work / "notes.txt").write_text("first line of the notes\nsecond line\n")
        sid = await self.shell()
        await self.type(sid, f"{vim} -u NONE -i NONE -N notes.txt\r")
        await self.client.wait_text(sid, "second line", timeout=10)
        await self.assertSameAsXterm(sid)
        await self.type(sid, "Otyped by the test")
        await self.client.wait_text(sid, "typed by the test", timeout=10)
        await self.type(sid, "\x1b")
        await poll(reactor, lambda: self.lacks(sid, "-- INSERT --"), timeout=10, what="normal mode")
        text = await self.assertSameAsXterm(sid)
        self.assertIn("typed by the test\nfirst line of the notes\nsecond line\n~", text)
        await self.type(sid, ":q!\r")
        await self.assertShellBack(sid, "second line")
        self.assertIn("\x1b[?1049h", self.recording(sid))

    async def test_less(self) -> None:
        """less pages through a file on the alternate screen and leaving it shows the shell again,
        as in xterm.js."""
        if shutil.which("less") is None:
            raise self.skipTest("less is not installed (Debian package less)")
        (self.work / "rows.txt").write_text("".join(f"row {n:03d}\n" for n in range(1, 100)))
        sid = await self.shell()
        await self.type(sid, "LESSHISTFILE=- less rows.txt\r")
        await self.client.wait_text(sid, "row 023", timeout=10)
        await self.assertSameAsXterm(sid)
        await self.type(sid, " ")
        await self.client.wait_text(sid, "row 046", timeout=10)
        text = await self.assertSameAsXterm(sid)
        self.assertNotIn("row 001", text)
        await self.type(sid, "G")
        await self.client.wait_text(sid, "(END)", timeout=10)
        await self.assertSameAsXterm(sid)
        await self.type(sid, "q")
        await self.assertShellBack(sid, "row 099")

    async def test_curses_boxes(self) -> None:
        """A curses program's boxes (line drawing through the terminal's character set) show as
        box-drawing characters on the alternate screen, and leaving it shows the shell again,
        as in xterm.js."""
        sid = await self.shell()
        await self.type(sid, f"{sys.executable} {BOXES}\r")
        await self.client.wait_text(sid, "boxes ready", timeout=10)
        text = await self.assertSameAsXterm(sid)
        self.assertIn("┌─ boxes ready ─", text)
        self.assertIn("├─", text)
        self.assertIn("┼", text)
        self.assertIn("\x1b(0", self.recording(sid))  # drawn with DEC special graphics
        await self.type(sid, "n")
        await self.client.wait_text(sid, "drawn 1", timeout=10)
        await self.type(sid, "n")
        await self.client.wait_text(sid, "drawn 2", timeout=10)
        self.assertIn("│ box 1        │ │ box 2", await self.assertSameAsXterm(sid))
        await self.type(sid, "q")
        await self.assertShellBack(sid, "boxes ready")

    async def test_reset(self) -> None:
        """reset after output left on the alternate screen in line drawing and red brings back a
        clear main screen and plain text, as in xterm.js."""
        if shutil.which("reset") is None:
            raise self.skipTest("reset is not installed (Debian package ncurses-bin)")
        sid = await self.shell()
        await self.type(sid, r"printf '\e[?1049h\e(0lqqk\e[31m'; echo" + "\r")
        await self.client.wait_text(sid, "┌──┐", timeout=10)
        await self.assertSameAsXterm(sid)
        await self.type(sid, "reset; echo after-$((1+1))\r")
        await self.client.wait_text(sid, "after-2\n", timeout=10)
        text = await self.assertSameAsXterm(sid)
        self.assertTrue(text.startswith("after-2\n"), text)  # RIS cleared the screen, homed the cursor
        self.assertNotIn(BEFORE, text)
        self.assertNotIn("┌", text)
