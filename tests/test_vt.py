"""End-to-end tests of ``vt``: a program run in a terminal the test drives, shared through
the real daemon, which sees it, types into it, resizes and kills it, and restarts meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread

from tests.support.asciinema import play
from tests.support.daemon import CHECKOUT, kill_quietly, open_ws, pid_alive, poll, within
from tests.support.e2e import DaemonTestCase, read_cast
from tests.support.vt import SHELL, VT, LocalTerminal, start_terminal
from vibetwist.model.asciicast import Event, Exit, parse_line
from vibetwist.model.snapshot import decode, decode_buffers_frame


class VtTestCase(DaemonTestCase):
    """Tests that run ``vt`` against a daemon."""

    def run_vt(self, command: list[str], **options: Any) -> LocalTerminal:
        """vt COMMAND in a terminal of its own, ended with the test."""
        return self.run_in_terminal([*VT, *command], **options)

    def run_in_terminal(self, argv: list[str], **options: Any) -> LocalTerminal:
        terminal = start_terminal(self.daemon, argv, **options)

        def end() -> defer.Deferred[None]:
            if terminal.code is None and terminal.transport is not None:
                kill_quietly(terminal.transport.pid, signal.SIGKILL)  # type: ignore[attr-defined]
                return terminal.ended
            return defer.succeed(None)

        self.addCleanup(end)
        return terminal

    async def session_of(self, terminal: LocalTerminal, known: set[str] | None = None) -> dict[str, Any]:
        """The daemon's record of the session vt runs (the first new vt session listed)."""
        known = known if known is not None else set()

        async def find() -> dict[str, Any] | None:
            for info in await self.client.get("/api/sessions"):
                if info["attachedViaVT"] and info["status"] == "running" and info["id"] not in known:
                    return info  # type: ignore[no-any-return]
            return None

        return await poll(reactor, find, 10.0, what="the vt session listed by the daemon")  # type: ignore[no-any-return]

    async def known(self) -> set[str]:
        return {s["id"] for s in await self.client.get("/api/sessions")}

    async def post(self, sid: str, what: str, body: dict[str, Any]) -> Any:
        code, answer, _ = await self.client.request("POST", f"/api/sessions/{sid}/{what}", body)
        self.assertEqual(code, 200, answer)
        return answer


class VtSessionTests(VtTestCase):
    """A ``vt`` session as the daemon's clients see and drive it."""

    async def test_see_type_and_resize(self) -> None:
        """Output typed locally shows through the API, SSE, the byte stream and /buffers; text
        typed through the API, /ws/input and the byte stream reaches the program and the
        local terminal;
        a resize from the API changes the PTY's size until the local terminal acts again."""
        known = await self.known()
        local = self.run_vt(SHELL)
        info = await self.session_of(local, known)
        sid = info["id"]
        self.assertEqual(info["command"], SHELL)
        self.assertEqual((info["initialCols"], info["initialRows"]), (80, 24))
        await local.see(b"$ ")
        local.type(b"echo local-$((6*7))\r")
        await local.see(b"local-42")
        await self.client.wait_text(sid, "local-42")

        await self.post(sid, "input", {"text": "echo api-$((7*7))\r"})
        await local.see(b"api-49")
        await self.client.wait_text(sid, "api-49")

        stream = await self.client.stream(sid)
        await poll(reactor, lambda: "api-49" in stream.output(), 5.0, what="history on SSE")
        ws = await open_ws(reactor, self.daemon, f"/ws/sessions/{sid}")
        await ws.wait_for(lambda: any(t.get("type") == "replay" for t in ws.texts()))
        ws.sendMessage(b"echo ws-$((8*8))\r", isBinary=True)
        await ws.wait_for(lambda: b"ws-64" in b"".join(ws.binaries()))
        await local.see(b"ws-64")
        await poll(reactor, lambda: "ws-64" in stream.output(), 5.0, what="live output on SSE")

        buffers = await open_ws(reactor, self.daemon, "/buffers")
        buffers.send_json({"type": "subscribe", "sessionId": sid})
        typing = await open_ws(reactor, self.daemon, f"/ws/input?sessionId={sid}")
        typing.sendMessage(b"echo input-$((9*9))")
        typing.sendMessage(b"\x00enter\x00")
        await local.see(b"input-81")

        def snapshot_shows(text: str) -> bool:
            for payload in buffers.binaries():
                frame_sid, snapshot = decode_buffers_frame(payload)
                rows = ["".join(c.char for c in row) for row in decode(snapshot).rows]
                if frame_sid == sid and any(text in row for row in rows):
                    return True
            return False

        await buffers.wait_for(lambda: snapshot_shows("input-81"))
        typing.sendClose()
        buffers.sendClose()

        await self.post(sid, "resize", {"cols": 120, "rows": 40})
        await self.post(sid, "input", {"text": "stty size\r"})
        await local.see(b"40 120")
        await ws.wait_for(lambda: any(t.get("type") == "resize" and t["cols"] == 120 for t in ws.texts()))
        local.type(b"stty size\r")
        await poll(reactor, lambda: local.output.count(b"24 80") >= 1, 5.0, what="local size back")
        local.resize(100, 30)
        local.type(b"stty size\r")
        await local.see(b"30 100")
        ws.sendClose()
        local.type(b"exit 5\r")
        self.assertEqual(await local.exit(), 5)
        finished = await poll(
            reactor,
            lambda: _exited(self.client.get(f"/api/sessions/{sid}")),
            what="exited in the API",
        )
        self.assertEqual(finished["exitCode"], 5)
        header, events = read_cast(self.daemon.control_dir / sid / "stdout")
        self.assertEqual((header["width"], header["height"]), (80, 24))
        self.assertEqual(events[-1], ["exit", 5, sid])
        sizes = [e[2] for e in events if e[1] == "r"]
        self.assertEqual(sizes, ["120x40", "80x24", "100x30"])
        self.assertFalse((self.daemon.control_dir / sid / "ipc.sock").exists())

    async def test_kill_from_api(self) -> None:
        """DELETE of a running vt session ends its program (SIGTERM through ipc.sock);
        vt exits with the program's code and the session shows exited with it."""
        known = await self.known()
        local = self.run_vt(["sleep", "300"])
        sid = (await self.session_of(local, known))["id"]
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual((code, body["message"]), (200, "Session killed"))
        self.assertEqual(await local.exit(), 128 + signal.SIGTERM)
        info = await poll(reactor, lambda: _exited(self.client.get(f"/api/sessions/{sid}")), what="exited")
        self.assertEqual(info["exitCode"], 128 + signal.SIGTERM)
        _, events = read_cast(self.daemon.control_dir / sid / "stdout")
        self.assertEqual(events[-1], ["exit", 128 + signal.SIGTERM, sid])
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual((code, body["message"]), (200, "Session cleaned up"))
        self.assertFalse((self.daemon.control_dir / sid).exists())

    async def test_exit_code_and_recording(self) -> None:
        """vt exits with its program's exit code, and its recording is a valid asciicast
        with the program's output and the exit line, whose download asciinema plays; a
        program that cannot start is 127."""
        local = self.run_vt(["sh", "-c", "printf 'out: %s\\n' \"$VIBETUNNEL_SESSION_ID\"; exit 7"])
        self.assertEqual(await local.exit(), 7)
        sid = local.output.split(b"out: ")[1].split(b"\r")[0].decode()
        lines = (self.daemon.control_dir / sid / "stdout").read_bytes().splitlines(keepends=True)
        records = [parse_line(line) for line in lines]
        self.assertEqual(records[-1], Exit(7, sid))
        text = "".join(r.data for r in records if isinstance(r, Event) and r.kind == "o")
        self.assertIn(f"out: {sid}", text)
        saved = json.loads((self.daemon.control_dir / sid / "session.json").read_bytes())
        self.assertEqual((saved["status"], saved["exitCode"], saved["attachedViaVT"]), ("exited", 7, True))
        info = await poll(reactor, lambda: _exited(self.client.get(f"/api/sessions/{sid}")), what="exited")
        self.assertEqual(info["exitCode"], 7)
        code, cast, _ = await self.client.request("GET", f"/api/sessions/{sid}/recording")
        self.assertEqual(code, 200)
        self.assertNotIn(b'"exit"', cast)
        played = Path(self.mktemp())
        played.write_bytes(cast)
        status, shown = await deferToThread(play, str(played))
        self.assertEqual(status, 0, shown)
        self.assertIn(f"out: {sid}".encode(), shown)
        missing = self.run_vt(["/nonexistent/program"])
        self.assertEqual(await missing.exit(), 127)

    async def test_bell_and_title_events(self) -> None:
        """A vt session's bell and title, read from the recording vt writes, are events of
        /api/events; its activity is told from its output alone."""
        stream = await self.client.events()
        await poll(reactor, lambda: stream.named, what="the connected event")
        known = await self.known()
        local = self.run_vt(["sh", "-c", "read go; printf '\\033]2;from vt\\007\\a'; read end"])
        sid = (await self.session_of(local, known))["id"]
        await self.post(sid, "input", {"text": "go\r"})

        def kinds() -> list[str] | None:
            found = [m["event"] for m in stream.named if m["data"].get("sessionId") == sid]
            return found if "bell" in found and "title" in found else None

        found = await poll(reactor, kinds, timeout=10, what="the bell and title of the vt session")
        self.assertEqual([k for k in found if k in ("title", "bell")], ["title", "bell"])
        title = next(
            m["data"] for m in stream.named if m["event"] == "title" and m["data"]["sessionId"] == sid
        )
        self.assertEqual(title["title"], "from vt")
        activity = (await self.client.get(f"/api/sessions/{sid}"))["activity"]
        self.assertEqual(activity["state"], "active")
        self.assertIn("read go", activity["foreground"])
        local.type(b"\r")
        await local.exit()

    async def test_wait_on_a_vt_session(self) -> None:
        """A wait on a session vt runs answers for what is typed in the local terminal, and
        with the exit code once vt's program ends."""
        known = await self.known()
        local = self.run_vt(["sh", "-c", "read line; echo got-$line; read more; exit 4"])
        sid = (await self.session_of(local, known))["id"]
        path = f"/api/sessions/{sid}/wait"
        waiting = defer.ensureDeferred(
            self.client.request("POST", path, {"pattern": r"got-\w+", "on": "output", "after": 0}, timeout=30)
        )
        local.type(b"typedhere\r")
        code, answer, _ = await within(reactor, waiting, 20, "the wait on the vt session")
        self.assertEqual((code, answer["matched"], answer["text"]), (200, True, "got-typedhere"))
        ending = defer.ensureDeferred(self.client.request("POST", path, {"pattern": "never"}, timeout=30))
        local.type(b"bye\r")
        self.assertEqual(await local.exit(), 4)
        code, answer, _ = await within(reactor, ending, 20, "the wait's answer at the end")
        self.assertEqual((code, answer), (200, {"matched": False, "exited": True, "exitCode": 4}))

    async def test_title_of_a_daemon_session(self) -> None:
        """In a session the daemon started, vt title asks the daemon to rename it."""
        sid = await self.create(["bash", "--norc", "--noprofile"])
        await self.client.wait_status(sid, "running")
        command = f"{' '.join(VT)} title --server {self.daemon.origin} 'from inside'; echo title=$?\r"
        await self.post(sid, "input", {"text": f"export PYTHONPATH={CHECKOUT}\r{command}"})
        await self.client.wait_text(sid, "title=0")
        info = await self.client.get(f"/api/sessions/{sid}")
        self.assertEqual(info["name"], "from inside")

    async def test_plain_vt_runs_the_shell(self) -> None:
        """Plain vt runs the user's shell ($SHELL) as a session."""
        known = await self.known()
        local = self.run_vt([])
        info = await self.session_of(local, known)
        self.assertEqual(info["command"], ["/bin/bash"])
        local.type(b"echo shell-$((3*3)) $0; exit 4\r")
        await local.see(b"shell-9")
        self.assertEqual(await local.exit(), 4)
        await self.client.wait_text(info["id"], "shell-9")

    async def test_nested_refused_and_title(self) -> None:
        """Inside a session, ``vt title NAME`` renames it and any other nested vt is refused."""
        known = await self.known()
        local = self.run_vt(SHELL)
        sid = (await self.session_of(local, known))["id"]
        await local.see(b"$ ")
        vt = " ".join(VT)
        local.type(f"{vt} title 'my build'; echo title=$?\r".encode())
        await local.see(b"title=0")
        await poll(
            reactor,
            lambda: _named(self.client.get(f"/api/sessions/{sid}"), "my build"),
            what="the new name",
        )
        local.type(f"{vt} true; echo nested=$?\r".encode())
        await local.see(b"nested=1")
        self.assertIn(b"nested vt is refused", local.output)
        local.type(b"exit\r")
        self.assertEqual(await local.exit(), 0)

    async def test_terminal_restored_after_sigterm(self) -> None:
        """SIGTERM to vt ends its program even when the program ignores SIGTERM, and the
        terminal is back in its normal (cooked, echoing) mode afterwards."""
        known = await self.known()
        script = f"stty sane; {' '.join(VT)} {' '.join(SHELL)}; echo EXIT=$?; stty -a"
        local = self.run_in_terminal(["/bin/sh", "-c", script])
        sid = (await self.session_of(local, known))["id"]
        pid = (await self.client.get(f"/api/sessions/{sid}"))["pid"]
        await local.see(b"$ ")
        vt_pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(vt_pid, signal.SIGTERM)
        await local.see(b"EXIT=129")
        await local.see(b"min = 1")
        await local.exit()
        settings = local.output.split(b"EXIT=129")[1]
        self.assertRegex(settings, rb"(?<!-)icanon")
        self.assertRegex(settings, rb"(?<![-\w])echo ")

    async def test_ls_and_attach(self) -> None:
        """vt ls lists the daemon's sessions; vt attach shows a session's screen in another
        terminal, types into it, gives it its size (also after a window change), and
        detaches on Ctrl-] leaving the session running."""
        known = await self.known()
        local = self.run_vt(SHELL)
        sid = (await self.session_of(local, known))["id"]
        await local.see(b"$ ")
        local.type(b"echo before-$((1+1))\r")
        await local.see(b"before-2")
        listing = self.run_in_terminal([*VT, "--server", self.daemon.origin, "ls"])
        self.assertEqual(await listing.exit(), 0)
        self.assertRegex(listing.output, rb"ID\s+STATUS\s+NAME\s+COMMAND")
        self.assertIn(f"{sid}  running".encode(), listing.output)

        other = self.run_in_terminal([*VT, "attach", sid, "--server", self.daemon.origin], cols=100, rows=30)
        await other.see(b"before-2")
        other.type(b"echo attached-$((5*5)); stty size\r")
        await other.see(b"attached-25")
        await local.see(b"attached-25")
        await other.see(b"30 100")
        other.resize(90, 20)
        # vt attach sends the new size when its reactor next turns: wait until the session
        # has it (a resize event in its recording) before asking the program.
        recording = self.daemon.control_dir / sid / "stdout"
        await poll(
            reactor,
            lambda: re.search(rb'"r",\s*"90x20"', recording.read_bytes()),
            10.0,
            what="the window change in the recording",
        )
        other.type(b"stty size\r")
        await other.see(b"20 90")
        other.type(b"\x1d")
        self.assertEqual(await other.exit(), 0)
        self.assertIn(b"[detached]", other.output)
        info = await self.client.get(f"/api/sessions/{sid}")
        self.assertEqual(info["status"], "running")
        gone = self.run_in_terminal([*VT, "attach", "no-such-session", "--server", self.daemon.origin])
        self.assertEqual(await gone.exit(), 1)
        self.assertIn(b"[session not found]", gone.output)
        local.type(b"exit\r")
        self.assertEqual(await local.exit(), 0)


async def _exited(answer: Any) -> dict[str, Any] | None:
    info = await answer
    return info if info["status"] == "exited" else None  # type: ignore[no-any-return]


async def _named(answer: Any, name: str) -> dict[str, Any] | None:
    info = await answer
    return info if info["name"] == name else None  # type: ignore[no-any-return]


class VtRestartTests(VtTestCase):
    """vt sessions outlive the daemon, and vt's recording outlives vt."""

    shared = False

    async def test_daemon_restart(self) -> None:
        """A vt session keeps running while the daemon stops; the restarted daemon lists it
        with the output written meanwhile and drives it again."""
        self.daemon = await self.start_daemon()
        self.client = self.client_for(self.daemon)
        local = self.run_vt(SHELL)
        sid = (await self.session_of(local))["id"]
        await local.see(b"$ ")
        await self.daemon.stop()
        local.type(b"echo down-$((2+3))\r")
        await local.see(b"down-5")
        await self.daemon.start()
        info = await self.session_of(local)
        self.assertEqual(info["id"], sid)
        await self.client.wait_text(sid, "down-5")
        stream = await self.client.stream(sid)
        await poll(reactor, lambda: "down-5" in stream.output(), 5.0, what="history after restart")
        await self.post(sid, "input", {"text": "echo up-$((3+4))\r"})
        await local.see(b"up-7")
        await self.daemon.crash()
        local.type(b"echo crashed-$((4+4))\r")
        await local.see(b"crashed-8")
        await self.daemon.start()
        await self.client.wait_text(sid, "crashed-8")
        local.type(b"exit 3\r")
        self.assertEqual(await local.exit(), 3)
        info = await poll(reactor, lambda: _exited(self.client.get(f"/api/sessions/{sid}")), what="exited")
        self.assertEqual(info["exitCode"], 3)

    async def test_deep_control_dir(self) -> None:
        """A control dir deeper than a Unix socket path may be still works: vt makes its
        ipc.sock there and the daemon drives the session through it."""
        base = Path(tempfile.mkdtemp(prefix="deep-", dir=os.getcwd()))
        control = base / ("d" * 60) / ("e" * 60) / "control"
        control.mkdir(parents=True)
        self.daemon = await self.start_daemon(base, control)
        self.client = self.client_for(self.daemon)
        local = self.run_vt(SHELL)
        sid = (await self.session_of(local))["id"]
        self.assertGreater(len(str(control / sid / "ipc.sock")), 108)
        await local.see(b"$ ")
        await self.post(sid, "input", {"text": "echo deep-$((4*4))\r"})
        await local.see(b"deep-16")
        local.type(b"exit\r")
        self.assertEqual(await local.exit(), 0)

    async def test_kill9_of_vt(self) -> None:
        """kill -9 of vt leaves a recording whose every line parses; the program loses its
        terminal and the daemon shows the session exited."""
        self.daemon = await self.start_daemon()
        self.client = self.client_for(self.daemon)
        local = self.run_vt(["sh", "-c", "i=0; while :; do i=$((i+1)); echo line $i; done"])
        sid = (await self.session_of(local))["id"]
        pid = (await self.client.get(f"/api/sessions/{sid}"))["pid"]
        await local.see(b"line 2000", timeout=20)
        kill_quietly(local.transport.pid, signal.SIGKILL)  # type: ignore[union-attr]
        await local.exit()
        await poll(reactor, lambda: not pid_alive(pid), 10.0, what="the program's end")
        raw = (self.daemon.control_dir / sid / "stdout").read_bytes()
        self.assertTrue(raw.endswith(b"\n"))
        records = [parse_line(line) for line in raw.splitlines()]
        self.assertGreater(len(records), 2)
        self.assertNotIsInstance(records[-1], Exit)
        info = await poll(reactor, lambda: _exited(self.client.get(f"/api/sessions/{sid}")), what="exited")
        self.assertIsNone(info.get("exitCode"))
        stream = await self.client.stream_to_end(sid)
        self.assertIn("line 2000", stream.output())
