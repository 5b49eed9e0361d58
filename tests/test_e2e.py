"""End-to-end tests: the real ``twistd -n vibetunnel`` daemon, spoken to over real sockets.

Each test class shares one daemon between its tests (started by the first of them to
run, stopped when another class's tests start); L{RestartTests} starts its own.
The daemon runs programs in real PTYs, so these tests also look at real processes
through /proc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
import uuid
from pathlib import Path

from twisted.internet import defer, reactor, utils
from twisted.trial import unittest

from tests.support.daemon import (
    kill_sessions,
    parse_raw,
    pid_alive,
    pids_of_session_id,
    poll,
    raw_request,
    session_members,
    sleep,
    within,
)
from tests.support.e2e import DaemonTestCase, output_of, read_cast
from tests.support.keys import EXPECTED
from tests.support.programs import HEX_ECHO
from vibetwist.model.snapshot import decode

#: Every named key of the protocol and the bytes it must type (written out in tests/support/keys.py).
KEYS = EXPECTED

SLOW_LINES = "for i in $(seq 1 400); do echo line$i; sleep 0.005; done"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class APITests(DaemonTestCase):
    """The REST surface: shapes, listing, not-found answers, renaming and bad input."""

    async def test_health_and_auth_config(self) -> None:
        """/api/health tells status ok, mode remote, version, uptime and the daemon's pid;
        /api/auth/config says login is off."""
        health = await self.client.get("/api/health")
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["mode"], "remote")
        self.assertEqual(health["pid"], self.daemon.pid)
        self.assertIsInstance(health["version"], str)
        self.assertIsInstance(health["uptime"], (int, float))
        self.assertRegex(health["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        config = await self.client.get("/api/auth/config")
        self.assertEqual(config, {"enableSSHKeys": False, "disallowUserPassword": False, "noAuth": True})

    async def test_list_newest_first(self) -> None:
        """GET /api/sessions lists every session newest first, each with source "local"
        and the Session fields."""
        made = []
        for _ in range(3):
            made.append(await self.create(["true"]))
            await sleep(reactor, 0.02)
        listed = await self.client.get("/api/sessions")
        ids = [s["id"] for s in listed]
        self.assertEqual([i for i in ids if i in made], made[::-1])
        started = [s["startedAt"] for s in listed]
        self.assertEqual(started, sorted(started, reverse=True))
        for info in listed:
            self.assertEqual(info["source"], "local")
            for field in ("name", "command", "workingDir", "status", "lastModified", "version"):
                self.assertIn(field, info)

    async def test_unknown_session(self) -> None:
        """Every route of an unknown session id answers 404 {"error": "Session not found"}."""
        sid = str(uuid.uuid4())
        for method, path, body in [
            ("GET", "", None),
            ("PATCH", "", {"name": "x"}),
            ("DELETE", "", None),
            ("DELETE", "/cleanup", None),
            ("POST", "/input", {"text": "x"}),
            ("POST", "/resize", {"cols": 80, "rows": 24}),
            ("GET", "/text", None),
            ("GET", "/buffer", None),
            ("GET", "/stream", None),
            ("GET", "/recording", None),
        ]:
            code, answer, _ = await self.client.request(method, f"/api/sessions/{sid}{path}", body)
            self.assertEqual((code, answer), (404, {"error": "Session not found"}), (method, path))

    async def test_traversal_ids(self) -> None:
        """Ids that spell paths out of the control directory answer 404 JSON and touch
        nothing."""
        victim = Path(self.daemon.base) / "victim"
        victim.mkdir()
        for path in [
            "/api/sessions/..%2Fetc",
            "/api/sessions/..%2F..%2F..%2Fetc%2Fpasswd",
            "/api/sessions/%2e%2e",
            "/api/sessions/..%2Fvictim",
            "/api/sessions/..%2Fetc/text",
            "/api/sessions/..%2Fvictim/cleanup",
            "/api/sessions/%00",
        ]:
            for method in ("GET", "DELETE"):
                request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                answer = await raw_request(reactor, self.daemon.port, request.encode())
                code, headers, body = parse_raw(answer)
                self.assertEqual(code, 404, (method, path, answer))
                self.assertEqual(headers[b"content-type"], b"application/json")
                self.assertIn("error", json.loads(body))
        self.assertTrue(victim.is_dir())
        self.assertTrue(self.daemon.control_dir.is_dir())

    async def test_non_utf8_url(self) -> None:
        """A URL whose escapes are not UTF-8 gets a 4xx JSON error like any other bad
        request."""
        for path in ("/api/sessions/%ff", "/api/sessions/%c3%28/text", "/api/%ff"):
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            answer = await raw_request(reactor, self.daemon.port, request.encode())
            code, headers, body = parse_raw(answer)
            self.assertEqual(code // 100, 4, answer)
            self.assertEqual(headers.get(b"content-type"), b"application/json", answer)
            self.assertIn("error", json.loads(body))

    async def test_rename(self) -> None:
        """PATCH renames a session; a name another session has becomes "name (2)", and a
        new session asking for it gets "name (3)"."""
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        a = await self.create(["sleep", "1000"])
        b = await self.create(["sleep", "1000"])
        code, body, _ = await self.client.request("PATCH", f"/api/sessions/{a}", {"name": name})
        self.assertEqual((code, body), (200, {"success": True, "name": name}))
        code, body, _ = await self.client.request("PATCH", f"/api/sessions/{b}", {"name": name})
        self.assertEqual((code, body), (200, {"success": True, "name": f"{name} (2)"}))
        self.assertEqual((await self.client.session(a))["name"], name)
        self.assertEqual((await self.client.session(b))["name"], f"{name} (2)")
        c = await self.create(["true"], name=name)
        self.assertEqual((await self.client.session(c))["name"], f"{name} (3)")
        for bad in ("", "   ", 5, None, "x" * 300):
            code, body, _ = await self.client.request("PATCH", f"/api/sessions/{a}", {"name": bad})
            self.assertJSONError(code, body, 400, repr(bad))

    async def test_bad_requests(self) -> None:
        """Malformed, mistyped, foreign or oversized requests get a 4xx JSON error, never a
        500, and the daemon goes on answering."""
        sid = await self.create(["cat"])
        await self.client.wait_status(sid, "running")
        port = self.daemon.port
        j = {"Content-Type": "application/json"}
        text, form = {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}
        new, inp, size = "/api/sessions", f"/api/sessions/{sid}/input", f"/api/sessions/{sid}/resize"
        deep = b"[" * 100000 + b"]" * 100000

        def true(extra: bytes) -> bytes:
            return b'{"command":["true"],' + extra + b"}"

        cases: list[tuple[str, str, str, bytes | None, dict[str, str], int]] = [
            ("malformed JSON", "POST", new, b'{"command":', j, 400),
            ("invalid UTF-8", "POST", new, b'{"command":["\xff"]}', j, 400),
            ("array body", "POST", new, b'["true"]', j, 400),
            ("string body", "POST", new, b'"true"', j, 400),
            ("no command", "POST", new, b"{}", j, 400),
            ("command string", "POST", new, b'{"command":"true"}', j, 400),
            ("command empty", "POST", new, b'{"command":[]}', j, 400),
            ("command number", "POST", new, b'{"command":[1]}', j, 400),
            ("command NUL", "POST", new, b'{"command":["a\\u0000b"]}', j, 400),
            ("cols string", "POST", new, true(b'"cols":"80"'), j, 400),
            ("cols float", "POST", new, true(b'"cols":80.5'), j, 400),
            ("cols bool", "POST", new, true(b'"cols":true'), j, 400),
            ("cols inf", "POST", new, true(b'"cols":1e400'), j, 400),
            ("rows NaN", "POST", new, true(b'"rows":NaN'), j, 400),
            ("huge int", "POST", new, true(b'"cols":' + b"9" * 5000), j, 400),
            ("rows 0", "POST", new, true(b'"rows":0'), j, 400),
            ("dir number", "POST", new, true(b'"workingDir":5'), j, 400),
            ("name number", "POST", new, true(b'"name":5'), j, 400),
            ("titleMode", "POST", new, true(b'"titleMode":"x"'), j, 400),
            ("deep nesting", "POST", new, deep, j, 400),
            ("deep command", "POST", new, b'{"command":' + deep + b"}", j, 400),
            ("text number", "POST", inp, b'{"text":5}', j, 400),
            ("key number", "POST", inp, b'{"key":5}', j, 400),
            ("key list", "POST", inp, b'{"key":["enter"]}', j, 400),
            ("resize empty", "POST", size, b"{}", j, 400),
            ("resize null", "POST", size, b'{"cols":null,"rows":null}', j, 400),
            ("plain text", "POST", new, true(b""), text, 415),
            ("form", "POST", new, b"command=true", form, 415),
            ("no type", "POST", inp, b'{"text":"x"}', {}, 415),
            ("PATCH text", "PATCH", f"/api/sessions/{sid}", b'{"name":"x"}', text, 415),
            ("oversized", "POST", new, b'{"command":["' + b"x" * (1 << 20) + b'"]}', j, 413),
            ("foreign Host", "GET", new, None, {"Host": "evil.example"}, 403),
            ("Host suffix", "GET", "/api/health", None, {"Host": "127.0.0.1.evil.example"}, 403),
            ("foreign Origin", "POST", new, true(b""), dict(j, Origin="http://evil.example"), 403),
            ("null Origin", "GET", new, None, {"Origin": "null"}, 403),
            ("other port", "GET", new, None, {"Origin": f"http://127.0.0.1:{port + 1}"}, 403),
            ("no route", "GET", "/api/nothing-here", None, {}, 404),
            ("bad method", "PUT", new, b"{}", j, 405),
        ]  # fmt: skip
        before = {s["id"] for s in await self.client.get("/api/sessions")}
        problems = []
        for what, method, path, data, headers, expected in cases:
            code, body, _ = await self.client.request(method, path, data=data, headers=headers)
            ok = code == expected and isinstance(body, dict) and isinstance(body.get("error"), str)
            if not ok:
                problems.append(f"{what}: {method} {path} answered {code} {body!r:.200}")
        after = {s["id"] for s in await self.client.get("/api/sessions")}
        self.assertEqual(after - before, set(), "a bad request created a session")
        self.assertEqual((await self.client.get("/api/health"))["status"], "ok")
        answer = await raw_request(reactor, port, b"GET /api/health HTTP/1.0\r\n\r\n")
        code, _, body = parse_raw(answer)
        if code != 403 or "error" not in json.loads(body):
            problems.append(f"no Host header: answered {code} {body!r}")
        self.assertEqual(problems, [])

    async def test_same_origin_accepted(self) -> None:
        """A request whose Origin is the daemon's own address is served."""
        origin = {"Origin": self.daemon.origin}
        code, body, _ = await self.client.request("GET", "/api/health", headers=origin)
        self.assertEqual(code, 200)
        code, body, _ = await self.client.request(
            "POST", "/api/sessions", {"command": ["true"]}, headers=origin
        )
        self.assertEqual(code, 200, body)
        self.sessions.append(body["sessionId"])
        code, body, _ = await self.client.request(
            "POST",
            "/api/sessions",
            {"command": ["true"]},
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        self.assertEqual(code, 200, body)
        self.sessions.append(body["sessionId"])


class StreamTests(DaemonTestCase):
    """Output: the SSE stream, the recording, the snapshot."""

    async def test_stream_to_exit(self) -> None:
        """The SSE stream sends the asciicast header (the requested size), the output, the
        exit line with the real exit code, and then ends; the session shows exitCode 3."""
        sid = await self.create(["bash", "-c", "echo hello; exit 3"], cols=91, rows=31)
        stream = await self.client.stream_to_end(sid)
        headers = stream.headers
        if headers is None:
            self.fail("the stream has no headers")
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-cache"])
        self.assertEqual(headers.getRawHeaders(b"x-accel-buffering"), [b"no"])
        self.assertTrue(stream.complete, stream.reason)
        header = stream.messages[0]
        self.assertEqual((header["version"], header["width"], header["height"]), (2, 91, 31))
        self.assertIn("hello", stream.output())
        self.assertEqual(stream.messages[-1], ["exit", 3, sid])
        exits = [m for m in stream.messages if isinstance(m, list) and m[0] == "exit"]
        self.assertEqual(exits, [["exit", 3, sid]])
        info = await self.client.wait_status(sid, "exited")
        self.assertEqual(info["exitCode"], 3)

    async def test_signal_exit_code(self) -> None:
        """A program killed by signal N exits with code 128+N (SIGTERM: 143)."""
        sid = await self.create(["bash", "-c", "kill -TERM $$"])
        stream = await self.client.stream_to_end(sid)
        self.assertEqual(stream.messages[-1], ["exit", 143, sid])
        info = await self.client.wait_status(sid, "exited")
        self.assertEqual(info["exitCode"], 143)

    async def test_fast_exit_is_complete(self) -> None:
        """Every byte a program writes just before it exits reaches the SSE stream and the
        recording, ahead of the exit line."""
        program = "import sys; sys.stdout.write('x' * 200000); sys.stdout.flush()"
        sid = await self.create([sys.executable, "-c", program])
        stream = await self.client.stream_to_end(sid)
        self.assertEqual(stream.output().count("x"), 200000)
        self.assertEqual(stream.messages[-1], ["exit", 0, sid])
        _, events = read_cast(self.daemon.control_dir / sid / "stdout")
        self.assertEqual(output_of(events).count("x"), 200000)
        self.assertEqual(events[-1], ["exit", 0, sid])

    async def test_late_joiners_get_every_line_once(self) -> None:
        """A viewer joining while output flows gets the history (time 0) and then the live
        output: every line exactly once and in order."""
        sid = await self.create(["bash", "-c", SLOW_LINES])
        recording = self.daemon.control_dir / sid / "stdout"
        joiners = []
        for line in (30, 150, 300):

            def reached(line: int = line) -> bool:
                # The recording is made on the turn the program starts.
                return recording.exists() and f"line{line}\r\n" in output_of(read_cast(recording)[1])

            await poll(reactor, reached, 10.0, 0.02, f"line{line} recorded")
            joiners.append(await self.client.stream(sid))
        for stream in joiners:
            await within(reactor, stream.ended, 15.0, "a joiner's stream end")
        expected = [str(i) for i in range(1, 401)]
        for stream in joiners:
            self.assertEqual(re.findall(r"line(\d+)\r\n", stream.output()), expected)
            events = stream.events()
            first = next(e for e in events if "line1\r\n" in str(e[2]))
            self.assertEqual(first[0], 0)
            self.assertGreater(max(e[0] for e in events if e[0] != "exit"), 0)
            self.assertEqual(events[-1], ["exit", 0, sid])
            self.assertTrue(stream.complete)

    async def test_slow_viewer_gets_every_line_once(self) -> None:
        """A viewer that stops reading while output floods in still gets every line, once
        and in order, when it reads again."""
        # Control characters take six bytes each in JSON: the stream is about five times
        # the size of the output, more than the kernel's socket buffers hold.
        count = 40000
        program = (
            "import sys\n"
            "sys.stdin.readline()\n"
            f"sys.stdout.write(''.join(f'n{{i}}' + '\\x01' * 40 + '\\n' for i in range(1, {count + 1})))\n"
        )
        sid = await self.create([sys.executable, "-c", program])
        await self.client.wait_status(sid, "running")
        viewer = await self.client.stream(sid)
        await poll(reactor, lambda: viewer.messages, what="the header")
        viewer.pause()
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"key": "enter"})
        recording = self.daemon.control_dir / sid / "stdout"
        await poll(reactor, lambda: b'["exit"' in recording.read_bytes()[-200:], 20.0, 0.1, "exit")
        viewer.resume()
        await within(reactor, viewer.ended, 20.0, "the slow viewer's stream end")
        numbers = re.findall(r"n(\d+)\x01{40}\r\n", viewer.output())
        self.assertEqual(len(numbers), count)
        self.assertEqual(numbers, [str(i) for i in range(1, count + 1)])
        self.assertEqual(viewer.messages[-1], ["exit", 0, sid])

    async def test_utf8_split_across_reads(self) -> None:
        """Characters split between two reads of the terminal arrive whole, in the stream
        and in the recording."""
        text = "\u00e9\u20ac\U0001f600a" * 40000
        program = (
            "import os, sys\n"
            "data = sys.argv[1].encode() * 40000\n"
            "for i in range(0, len(data), 4093):\n"
            "    os.write(1, data[i:i + 4093])\n"
        )
        sid = await self.create([sys.executable, "-c", program, "\u00e9\u20ac\U0001f600a"])
        stream = await self.client.stream_to_end(sid)
        self.assertEqual(stream.output(), text)
        _, events = read_cast(self.daemon.control_dir / sid / "stdout")
        self.assertEqual(output_of(events), text)

    async def test_late_joiner_starts_at_last_clear(self) -> None:
        """A viewer joining after the program cleared the scrollback (ESC [3J) gets the
        output from the clear on, not what came before it."""
        script = "echo old-stuff; sleep 0.3; printf '\\033[3J'; echo new-stuff; sleep 1000"
        sid = await self.create(["bash", "-c", script])
        await self.client.wait_text(sid, "new-stuff")
        stream = await self.client.stream(sid)
        await poll(reactor, lambda: "new-stuff" in stream.output(), what="new-stuff")
        self.assertNotIn("old-stuff", stream.output())
        self.assertGreater((await self.client.session(sid))["lastClearOffset"], 0)

    async def test_buffer_snapshot(self) -> None:
        """/buffer answers a binary snapshot (magic 0x5654, version 1) of the screen."""
        sid = await self.create(["bash", "-c", "echo SNAP-$((4000+242)); sleep 1000"], cols=66)
        await self.client.wait_text(sid, "SNAP-4242")
        code, data, response = await self.client.request("GET", f"/api/sessions/{sid}/buffer")
        self.assertEqual(code, 200)
        ctype = response.headers.getRawHeaders(b"content-type")
        self.assertEqual(ctype, [b"application/octet-stream"])
        self.assertEqual(data[:3], b"\x54\x56\x01")
        snapshot = decode(data)
        self.assertEqual(snapshot.cols, 66)
        lines = ["".join(cell.char for cell in row) for row in snapshot.rows]
        self.assertIn("SNAP-4242", lines[0])
        self.assertEqual((snapshot.cursor_x, snapshot.cursor_y), (0, 1))

    async def test_recording_download(self) -> None:
        """/recording answers the asciicast file without its exit line: a header, then
        one JSON array per line."""
        sid = await self.create(["bash", "-c", "echo rec-one; echo rec-two"])
        await self.client.wait_status(sid, "exited")
        code, data, response = await self.client.request("GET", f"/api/sessions/{sid}/recording")
        self.assertEqual(code, 200)
        ctype = response.headers.getRawHeaders(b"content-type")
        self.assertEqual(ctype, [b"application/x-asciicast"])
        lines = data.splitlines()
        parsed = [json.loads(line) for line in lines]
        self.assertEqual((parsed[0]["version"], parsed[0]["width"], parsed[0]["height"]), (2, 80, 24))
        self.assertFalse([line for line in lines if line.startswith(b'["exit"')])
        self.assertTrue(all(isinstance(e, list) and len(e) == 3 for e in parsed[1:]))
        self.assertIn("rec-one\r\nrec-two\r\n", output_of(parsed[1:]))

    async def test_recording_plays_in_asciinema(self) -> None:
        """asciinema reads the downloaded recording and prints the program's output."""
        beside = os.path.join(os.path.dirname(sys.executable), "asciinema")
        asciinema = beside if os.access(beside, os.X_OK) else shutil.which("asciinema")
        if asciinema is None:
            raise unittest.SkipTest("asciinema is not installed")
        sid = await self.create(["bash", "-c", "echo cast-check"])
        await self.client.wait_status(sid, "exited")
        _, data, _ = await self.client.request("GET", f"/api/sessions/{sid}/recording")
        cast = Path(self.mktemp() + ".cast")
        cast.write_bytes(data)
        out, err, code = await utils.getProcessOutputAndValue(
            asciinema, ["cat", str(cast)], env=dict(os.environ, HOME=str(cast.parent))
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"cast-check", out)


class TerminalTests(DaemonTestCase):
    """Input, keys, sizes, environment and working directory of a session's terminal."""

    async def test_input_text(self) -> None:
        """Text posted to a session is typed into its terminal."""
        sid = await self.create(["bash", "--norc", "-i"])
        code, body, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/input", {"text": "echo hi$((6*7))\r"}
        )
        self.assertEqual((code, body), (200, {"success": True}))
        screen = await self.client.wait_text(sid, "hi42")
        self.assertIn("hi42", [line.strip() for line in screen.splitlines()])

    async def test_named_keys(self) -> None:
        """Every named key is accepted and types its sequence; an unknown key is a 400."""
        sid = await self.create([sys.executable, "-c", HEX_ECHO])
        await self.client.wait_text(sid, "READY")
        for name in KEYS:
            code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"key": name})
            self.assertEqual((code, body), (200, {"success": True}), name)
        for name in ("f13", "ENTER", "", "ctrl_c"):
            code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"key": name})
            self.assertJSONError(code, body, 400, name)
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "!"})
        stream = await self.client.stream_to_end(sid)
        typed = bytes.fromhex("".join(re.findall(r"<([0-9a-f]*)>", stream.output())))
        self.assertEqual(typed, b"".join(KEYS.values()) + b"!")

    async def test_input_needs_exactly_one_of_text_or_key(self) -> None:
        """An input with both text and key, or neither, is a 400."""
        sid = await self.create(["cat"])
        for body in ({"text": "a", "key": "enter"}, {}, {"other": 1}):
            code, answer, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", body)
            self.assertJSONError(code, answer, 400, repr(body))

    async def test_input_to_exited_session(self) -> None:
        """Input and resize for an exited session are 400s."""
        sid = await self.create(["true"])
        await self.client.wait_status(sid, "exited")
        for path, body in (("input", {"text": "x"}), ("input", {"key": "enter"}),
                           ("resize", {"cols": 90, "rows": 30})):  # fmt: skip
            code, answer, _ = await self.client.request("POST", f"/api/sessions/{sid}/{path}", body)
            self.assertJSONError(code, answer, 400, path)

    async def test_resize(self) -> None:
        """A resize reaches the program's terminal (stty size) and is recorded as "r"."""
        sid = await self.create(["bash", "--norc", "-i"])
        await self.client.wait_status(sid, "running")
        code, body, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/resize", {"cols": 100, "rows": 40}
        )
        self.assertEqual((code, body), (200, {"success": True, "cols": 100, "rows": 40}))
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "stty size\r"})
        await self.client.wait_text(sid, "40 100")
        _, events = read_cast(self.daemon.control_dir / sid / "stdout")
        self.assertIn("100x40", [e[2] for e in events if e[1] == "r"])

    async def test_resize_out_of_range(self) -> None:
        """Sizes that are not integers from 1 to 1000 are 400s."""
        sid = await self.create(["cat"])
        for cols, rows in [(0, 24), (1001, 24), ("a", 24), (80, 0), (80, 1001), (80, "a"),
                           (80.5, 24), (True, 24), (-1, 24), (None, 24)]:  # fmt: skip
            code, body, _ = await self.client.request(
                "POST", f"/api/sessions/{sid}/resize", {"cols": cols, "rows": rows}
            )
            self.assertJSONError(code, body, 400, f"{cols!r}x{rows!r}")

    async def test_input_while_starting(self) -> None:
        """Input sent right after the create, before the program runs, is typed once it runs."""
        sid = await self.create(["cat"])
        code, body, _ = await self.client.request(
            "POST", f"/api/sessions/{sid}/input", {"text": "early-bird\r"}
        )
        self.assertEqual(code, 200, body)

        async def echoed_and_copied() -> bool:
            lines = [line.strip() for line in (await self.client.text(sid)).splitlines()]
            return lines.count("early-bird") == 2

        await poll(reactor, echoed_and_copied, what="the tty's echo and cat's copy")

    async def test_unknown_command(self) -> None:
        """A command that is not a program runs through the shell, which says so and exits
        with 127."""
        sid = await self.create(["no-such-program-e2e", "arg"])
        stream = await self.client.stream_to_end(sid)
        self.assertIn("no-such-program-e2e", stream.output())
        self.assertEqual(stream.messages[-1], ["exit", 127, sid])

    async def test_pty_is_presized(self) -> None:
        """The program sees the requested size from its first instruction."""
        sid = await self.create(["stty", "size"], cols=77, rows=22)
        stream = await self.client.stream_to_end(sid)
        self.assertEqual(stream.output().strip(), "22 77")

    async def test_environment(self) -> None:
        """The program runs with TERM=xterm-256color and VIBETUNNEL_SESSION_ID=<its id>."""
        sid = await self.create(["bash", "-c", 'echo "T=$TERM"; echo "I=$VIBETUNNEL_SESSION_ID"'])
        output = (await self.client.stream_to_end(sid)).output()
        self.assertIn("T=xterm-256color\r\n", output)
        self.assertIn(f"I={sid}\r\n", output)

    async def test_working_dir(self) -> None:
        """The program starts in workingDir; one that is not an existing directory is a 400."""
        where = Path(self.mktemp()).resolve() / "a dir"
        where.mkdir(parents=True)
        sid = await self.create(["pwd"], workingDir=str(where))
        output = (await self.client.stream_to_end(sid)).output()
        self.assertEqual(output.strip(), os.path.realpath(where))
        self.assertEqual((await self.client.session(sid))["workingDir"], str(where.resolve()))
        (where / "file").write_text("")
        for bad in (str(where / "missing"), str(where / "file")):
            code, body, _ = await self.client.request(
                "POST", "/api/sessions", {"command": ["pwd"], "workingDir": bad}
            )
            self.assertJSONError(code, body, 400, bad)


class KillTests(DaemonTestCase):
    """Deleting sessions ends every process they started."""

    async def _members_running(self, sid: str, count: int) -> int:
        info = await self.client.wait_status(sid, "running")
        pid = info["pid"]
        await poll(reactor, lambda: len(session_members(pid)) >= count, 5.0, what="processes")
        return pid

    async def test_delete_ends_background_jobs(self) -> None:
        """DELETE ends the program and its background jobs; a second DELETE removes the
        exited session and its folder."""
        sid = await self.create(["bash", "-c", "sleep 1000 & sleep 1000 & wait"])
        pid = await self._members_running(sid, 3)
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual((code, body), (200, {"success": True, "message": "Session killed"}))
        await poll(
            reactor,
            lambda: not session_members(pid) and not pids_of_session_id({sid}),
            4.0,
            what="every process of the session gone",
        )
        await self.client.wait_status(sid, "exited", 4.0)
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual((code, body), (200, {"success": True, "message": "Session cleaned up"}))
        self.assertFalse((self.daemon.control_dir / sid).exists())
        code, body, _ = await self.client.request("GET", f"/api/sessions/{sid}")
        self.assertEqual(code, 404)

    async def test_delete_kills_after_grace(self) -> None:
        """A program that ignores SIGTERM is killed (SIGKILL) about 3 s after DELETE."""
        sid = await self.create(["bash", "-c", "trap '' TERM; sleep 1000; echo"])
        pid = await self._members_running(sid, 2)
        started = reactor.seconds()
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
        self.assertEqual(code, 200, body)
        await sleep(reactor, 1.0)
        self.assertTrue(session_members(pid), "SIGTERM should have been ignored")
        await poll(reactor, lambda: not session_members(pid), 5.0, what="SIGKILL")
        self.assertGreater(reactor.seconds() - started, 2.5)
        await self.client.wait_status(sid, "exited", 2.0)

    async def test_background_job_outliving_program(self) -> None:
        """A program that exits leaving a background job on its terminal is reported exited
        with its own code, and the job is ended as a closing terminal would."""
        sid = await self.create(["bash", "-c", "sleep 1000 & echo bg-started; exit 5"])
        stream = await self.client.stream_to_end(sid, 5.0)
        self.assertIn("bg-started", stream.output())
        self.assertEqual(stream.messages[-1], ["exit", 5, sid])
        self.assertEqual((await self.client.wait_status(sid, "exited"))["exitCode"], 5)
        await poll(reactor, lambda: not pids_of_session_id({sid}), 2.0, what="the job ended")

    async def test_delete_racing_spawn(self) -> None:
        """Sessions deleted right after they are created leave no process behind."""

        async def create_and_delete() -> str:
            sid = await self.client.create(["sleep", "1000"])
            code, body, _ = await self.client.request("DELETE", f"/api/sessions/{sid}")
            self.assertEqual(code, 200, body)
            return sid

        ids = await defer.gatherResults([defer.ensureDeferred(create_and_delete()) for _ in range(10)])
        for _ in range(10):
            ids.append(await create_and_delete())
        self.addCleanup(kill_sessions, set(ids))
        await poll(reactor, lambda: not pids_of_session_id(set(ids)), 5.0, what="no leftovers")
        for sid in ids:
            await self.client.wait_status(sid, "exited", 2.0)


class ControlDirTests(DaemonTestCase):
    """The files the daemon keeps."""

    async def test_permissions(self) -> None:
        """The control and session folders are 0700, session.json and stdout 0600."""
        sid = await self.create(["bash", "-c", "echo secret"])
        await self.client.wait_status(sid, "exited")
        folder = self.daemon.control_dir / sid
        self.assertEqual(mode(self.daemon.control_dir), 0o700)
        self.assertEqual(mode(folder), 0o700)
        self.assertEqual(mode(folder / "session.json"), 0o600)
        self.assertEqual(mode(folder / "stdout"), 0o600)
        loose = [p.name for p in folder.iterdir() if mode(p) & 0o077]
        self.assertEqual(loose, [])
        saved = json.loads((folder / "session.json").read_bytes())
        served = await self.client.session(sid)
        for field in ("id", "command", "status", "exitCode", "pid", "startedAt", "workingDir"):
            self.assertEqual(saved[field], served[field], field)

    async def test_cleanup_exited(self) -> None:
        """cleanup-exited removes every exited session (folders too), keeps running ones, and
        reports how many it removed in localCleaned."""
        done = [await self.create(["true"]) for _ in range(2)]
        running = await self.create(["sleep", "1000"])
        for sid in done:
            await self.client.wait_status(sid, "exited")
        await self.client.wait_status(running, "running")
        # Counted by what left the list: a session an earlier test of the class killed may
        # end between the listing and the cleanup.
        listed = [s["id"] for s in await self.client.get("/api/sessions")]
        code, body, _ = await self.client.request("POST", "/api/cleanup-exited")
        self.assertEqual(code, 200, body)
        self.assertIsInstance(body["message"], str)
        remaining = [s["id"] for s in await self.client.get("/api/sessions")]
        self.assertEqual((body["success"], body["localCleaned"]), (True, len(set(listed) - set(remaining))))
        self.assertEqual(set(remaining) & set(done), set())
        self.assertIn(running, remaining)
        for sid in done:
            self.assertFalse((self.daemon.control_dir / sid).exists())
        self.assertTrue((self.daemon.control_dir / running).is_dir())

    async def test_cleanup_one(self) -> None:
        """DELETE .../cleanup removes an exited session's files; a running one is refused."""
        running = await self.create(["sleep", "1000"])
        done = await self.create(["true"])
        await self.client.wait_status(done, "exited")
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{done}/cleanup")
        self.assertEqual((code, body), (200, {"success": True, "message": "Session cleaned up"}))
        self.assertFalse((self.daemon.control_dir / done).exists())
        code, body, _ = await self.client.request("DELETE", f"/api/sessions/{running}/cleanup")
        self.assertEqual(code // 100, 4, body)
        self.assertTrue((self.daemon.control_dir / running).is_dir())


class RestartTests(DaemonTestCase):
    """A daemon started on the control directory of a previous one."""

    shared = False

    async def test_restart(self) -> None:
        """A daemon that stops ends its sessions and tells live viewers; the next daemon on
        that control directory lists them as exited and still replays them."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        control = base / "control"
        control.mkdir(mode=0o755)
        os.chmod(control, 0o755)
        first = await self.start_daemon(base, control)
        self.assertEqual(mode(control), 0o700)
        client = self.client_for(first)
        sid = await client.create(["bash", "-c", "echo before-restart; sleep 1000"])
        await client.wait_text(sid, "before-restart")
        pid = (await client.session(sid))["pid"]
        self.addCleanup(kill_sessions, {sid})
        await first.stop()
        self.assertFalse(session_members(pid))
        self.assertFalse(pids_of_session_id({sid}))

        second = await self.start_daemon(base, control)
        client = self.client_for(second)
        listed = {s["id"]: s for s in await client.get("/api/sessions")}
        self.assertEqual(listed[sid]["status"], "exited")
        code, data, _ = await client.request("GET", f"/api/sessions/{sid}/recording")
        self.assertEqual(code, 200)
        self.assertIn("before-restart", output_of([json.loads(x) for x in data.splitlines()[1:]]))
        stream = await client.stream_to_end(sid)
        self.assertIn("before-restart", stream.output())
        self.assertEqual(stream.messages[-1], ["exit", 143, sid])
        await client.wait_text(sid, "before-restart")

    async def test_viewer_sees_exit_when_daemon_stops(self) -> None:
        """A viewer watching a session while the daemon stops receives the session's exit
        line, and then the end of the response."""
        daemon = await self.start_daemon()
        client = self.client_for(daemon)
        sid = await client.create(["bash", "-c", "echo watching; sleep 1000"])
        self.addCleanup(kill_sessions, {sid})
        viewer = await client.stream(sid)
        await poll(reactor, lambda: "watching" in viewer.output(), what="live output")
        await daemon.stop()
        await poll(reactor, lambda: viewer.reason, 2.0, what="the viewer's stream to end")
        _, recorded = read_cast(daemon.control_dir / sid / "stdout")
        self.assertEqual(recorded[-1], ["exit", 143, sid])
        self.assertEqual(viewer.messages[-1], ["exit", 143, sid])
        self.assertTrue(viewer.complete, viewer.reason)

    async def test_crash_leftovers_are_ended(self) -> None:
        """Programs left running by a daemon that was killed are ended by the next daemon
        on that control directory, which lists their session as exited."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        first = await self.start_daemon(base)
        client = self.client_for(first)
        sid = await client.create(["bash", "-c", "trap '' HUP TERM; echo up; sleep 1000; echo"])
        await client.wait_text(sid, "up")
        self.addCleanup(kill_sessions, {sid})
        await poll(reactor, lambda: len(pids_of_session_id({sid})) >= 2, what="bash and sleep")
        await first.crash()
        await sleep(reactor, 0.3)
        left = pids_of_session_id({sid})
        self.assertTrue(left, "the program should outlive a crashed daemon (it ignores HUP)")
        second = await self.start_daemon(base, first.control_dir)
        await poll(reactor, lambda: not any(pid_alive(p) for p in left), 3.0, what="leftovers end")
        client = self.client_for(second)
        self.assertEqual((await client.session(sid))["status"], "exited")
        stream = await client.stream_to_end(sid)
        self.assertIn("up", stream.output())


class ExampleTests(DaemonTestCase):
    """The scripts in examples/ work against the real daemon."""

    async def test_follow_example(self) -> None:
        """examples/follow.py starts a session, prints its output and exits with its code."""
        script = Path(__file__).parent.parent / "examples" / "follow.py"
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            [
                str(script),
                "--url",
                self.daemon.url("").rstrip("/"),
                "--",
                "bash",
                "-c",
                "echo followed; exit 6",
            ],
            env=dict(os.environ),
        )
        self.assertEqual(code, 6, err)
        self.assertIn(b"followed", out)
