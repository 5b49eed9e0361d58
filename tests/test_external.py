"""Sessions run by another process, as VibeTunnel's forwarder lays them out: the real daemon
lists them, shows their output as it is appended, and drives them through ipc.sock."""

from __future__ import annotations

import json
import os
import struct
import tempfile
import uuid
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from tests.support.daemon import Client, Daemon, poll, sleep


class RecordingIPC(Protocol):
    """A test ipc.sock server: it reads the framing by hand (type, u32 big-endian length)."""

    def __init__(self, received: list[tuple[int, bytes]]) -> None:
        self.received = received
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            kind, length = struct.unpack(">BI", self.buffer[:5])
            if len(self.buffer) < 5 + length:
                return
            self.received.append((kind, self.buffer[5 : 5 + length]))
            self.buffer = self.buffer[5 + length :]


def write_session(root: Path, session_id: str, **fields: Any) -> Path:
    """A session folder exactly as docs/protocol.md describes it (session.json and stdout)."""
    folder = root / session_id
    folder.mkdir(mode=0o700)
    info = {
        "id": session_id,
        "name": "claude (~/src)",
        "command": ["claude"],
        "workingDir": "/tmp",
        "status": "running",
        "startedAt": "2026-01-01T00:00:00.000Z",
        "pid": os.getpid(),
        "initialCols": 80,
        "initialRows": 24,
        "lastClearOffset": 0,
        "version": "1.0.0-beta.15",
        "lastModified": "2026-01-01T00:00:00.000Z",
        "attachedViaVT": True,
        **fields,
    }
    (folder / "session.json").write_text(json.dumps(info))
    header = {"version": 2, "width": 80, "height": 24, "timestamp": 1767225600, "command": "claude",
              "title": "claude", "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"}}  # fmt: skip
    (folder / "stdout").write_text(
        json.dumps(header) + "\n" + json.dumps([0.1, "o", "hello from outside\r\n"]) + "\n"
    )
    return folder


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class ExternalLayoutTests(unittest.TestCase):
    """The control directory layout, field for field and byte for byte."""

    timeout = 60

    async def start(self, root: Path) -> tuple[Daemon, Client]:
        daemon = Daemon(reactor, root.parent, root)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return daemon, client

    async def serve_ipc(self, folder: Path) -> tuple[list[tuple[int, bytes]], Any]:
        received: list[tuple[int, bytes]] = []
        endpoint = UNIXServerEndpoint(reactor, str(folder / "ipc.sock"))
        port = await endpoint.listen(Factory.forProtocol(lambda: RecordingIPC(received)))
        self.addCleanup(lambda: port.stopListening() if port.connected else None)
        return received, port

    async def test_listed_and_driven(self) -> None:
        """A hand-written running session is listed with its fields and output; input, resize
        and kill reach its ipc.sock framed as docs/protocol.md says; whole appended lines show,
        a torn last line waits for its end; its exit line ends it; its folder's removal
        drops it."""
        base = Path(tempfile.mkdtemp(prefix="ext-", dir=os.getcwd()))
        root = base / "control"
        root.mkdir(mode=0o700)
        sid = str(uuid.uuid4())
        folder = write_session(root, sid)
        received, port = await self.serve_ipc(folder)
        daemon, client = await self.start(root)

        info = await client.get(f"/api/sessions/{sid}")
        self.assertEqual(
            (info["status"], info["name"], info["command"]), ("running", "claude (~/src)", ["claude"])
        )
        self.assertEqual(info["pid"], os.getpid())
        await client.wait_text(sid, "hello from outside")

        code, _, _ = await client.request("POST", f"/api/sessions/{sid}/input", {"text": "héllo"})
        self.assertEqual(code, 200)
        await poll(reactor, lambda: received, what="input on ipc.sock")
        self.assertEqual(received[0], (0x01, "héllo".encode()))
        code, _, _ = await client.request("POST", f"/api/sessions/{sid}/input", {"key": "enter"})
        code, _, _ = await client.request("POST", f"/api/sessions/{sid}/resize", {"cols": 100, "rows": 30})
        self.assertEqual(code, 200)
        await poll(reactor, lambda: len(received) >= 3, what="resize on ipc.sock")
        self.assertEqual(received[1], (0x01, b"\r"))
        self.assertEqual(received[2][0], 0x02)
        self.assertEqual(json.loads(received[2][1]), {"cmd": "resize", "cols": 100, "rows": 30})

        line = json.dumps([0.5, "o", "appended later\r\n"]).encode() + b"\n"
        append(folder / "stdout", line[:10])
        await sleep(reactor, 0.3)
        self.assertNotIn("appended", await client.text(sid))
        append(folder / "stdout", line[10:])
        await client.wait_text(sid, "appended later")

        code, body, _ = await client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual((code, body["message"]), (200, "Session killed"))
        await poll(reactor, lambda: len(received) >= 4, what="kill on ipc.sock")
        self.assertEqual(received[3][0], 0x02)
        self.assertEqual(json.loads(received[3][1]), {"cmd": "kill", "signal": 15})

        append(folder / "stdout", json.dumps(["exit", 0, sid]).encode() + b"\n")
        exited = await poll(reactor, lambda: _status(client, sid, "exited"), what="exited")
        self.assertEqual(exited["exitCode"], 0)
        stream = await client.stream_to_end(sid)
        self.assertIn("appended later", stream.output())
        self.assertEqual(stream.messages[-1], ["exit", 0, sid])

        await port.stopListening()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        await poll(reactor, lambda: _absent(client, sid), what="the vanished session dropped")

    async def test_appears_and_garbage_ignored(self) -> None:
        """A session folder that appears while the daemon runs is listed; folders with names
        outside the id pattern, symlinked folders or files, and unreadable or lying session.json
        are ignored
        without harm; a running session whose pid is gone shows as exited."""
        base = Path(tempfile.mkdtemp(prefix="ext-", dir=os.getcwd()))
        root = base / "control"
        root.mkdir(mode=0o700)
        outside = base / "outside"
        outside.mkdir()
        daemon, client = await self.start(root)

        write_session(outside, "elsewhere")
        (root / "linked").symlink_to(outside / "elsewhere")
        write_session(root, "bad.name", id="bad.name")
        garbage = root / "garbage"
        garbage.mkdir()
        (garbage / "session.json").write_bytes(b"{not json")
        write_session(root, "liar", id="someone-else")
        write_session(root, "escape", id="../escape")
        sneaky = write_session(outside, "sneaky")
        (sneaky / "stdout").unlink()
        (sneaky / "stdout").symlink_to(outside / "elsewhere" / "stdout")
        sneaky.rename(root / "sneaky")
        blank = root / "blank"
        blank.mkdir()
        (blank / "session.json").write_bytes(b"[]")

        sid = str(uuid.uuid4())
        await self.serve_ipc(write_session(root, sid))
        dead = str(uuid.uuid4())
        write_session(root, dead, pid=2**22 + 12345)
        await poll(reactor, lambda: _status(client, sid, "running"), what="the new session listed")
        info = await poll(reactor, lambda: _status(client, dead, "exited"), what="the dead one exited")
        self.assertEqual(info["command"], ["claude"])
        listed = {s["id"] for s in await client.get("/api/sessions")}
        self.assertEqual(listed, {sid, dead})
        self.assertTrue(daemon.running)
        self.assertNotIn("Traceback", daemon.log())


async def _status(client: Client, sid: str, status: str) -> dict[str, Any] | None:
    code, info, _ = await client.request("GET", f"/api/sessions/{sid}")
    return info if code == 200 and info["status"] == status else None  # type: ignore[no-any-return]


async def _absent(client: Client, sid: str) -> bool:
    code, _, _ = await client.request("GET", f"/api/sessions/{sid}")
    return code == 404
