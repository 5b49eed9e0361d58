"""Tests for vibetwist.server.api: every REST route, in memory, with a fake launcher."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Cooperator

from tests.support.api import BASE, JSON, APITestCase
from vibetwist.model.keys import KEYS
from vibetwist.model.snapshot import decode
from vibetwist.testing import pump


class ServerRoutesTests(APITestCase):
    """health, auth config and unknown routes."""

    def test_health(self) -> None:
        """Health answers status ok, mode remote, version, uptime and pid."""
        code, body = self.call("GET", "/api/health")
        self.assertEqual(code, 200)
        self.assertEqual(set(body), {"status", "timestamp", "mode", "version", "uptime", "pid"})
        self.assertEqual((body["status"], body["mode"]), ("ok", "remote"))

    def test_auth_config(self) -> None:
        """Without login, auth config says noAuth."""
        self.assertEqual(
            self.call("GET", "/api/auth/config"),
            (200, {"enableSSHKeys": False, "disallowUserPassword": False, "noAuth": True}),
        )

    def test_unknown_route(self) -> None:
        """An unknown path is a 404 JSON error, a wrong method a 405."""
        self.assertEqual(self.call("GET", "/api/nothing"), (404, {"error": "Not found"}))
        self.assertEqual(self.call("PUT", "/api/health", {})[0], 405)


class CreateTests(APITestCase):
    """POST /api/sessions."""

    def test_create_and_get(self) -> None:
        """A created session is listed with its fields and its program is started."""
        sid = self.create(command=["cat"], cols=100, rows=30, name="mine")
        code, body = self.call("GET", f"/api/sessions/{sid}")
        self.assertEqual(code, 200)
        self.assertEqual(body["id"], sid)
        self.assertEqual(body["status"], "running")
        self.assertEqual((body["initialCols"], body["initialRows"]), (100, 30))
        self.assertEqual(body["name"], "mine")
        self.assertEqual(body["source"], "local")
        self.assertEqual(body["pid"], self.launcher.last.pid)
        launch = self.launcher.last.launch
        self.assertEqual(launch.env["VIBETUNNEL_SESSION_ID"], sid)
        self.assertEqual(launch.env["TERM"], "xterm-256color")
        self.assertEqual(launch.cwd, str(self.tmp / "home"))

    def test_default_name(self) -> None:
        """The default name is the command's basename and the directory, home as ~."""
        sid = self.create(command=["/bin/cat"], workingDir=str(self.tmp / "home"))
        self.assertEqual(self.call("GET", f"/api/sessions/{sid}")[1]["name"], "cat (~)")

    def test_bare_shell_is_login_shell(self) -> None:
        """["sh"] runs as a login shell (sh -l)."""
        self.create(command=["sh"])
        self.assertEqual(self.launcher.last.launch.argv, ["sh", "-l"])

    def test_unknown_program_runs_through_shell(self) -> None:
        """A command that is not a program runs through the shell, as typed in a terminal."""
        self.create(command=["no-such-program-here", "a b"])
        launch = self.launcher.last.launch
        self.assertEqual(launch.argv[1:], ["-c", "no-such-program-here 'a b'"])

    def test_command_required(self) -> None:
        """A missing, empty or malformed command is a 400."""
        for body in [{}, {"command": []}, {"command": "ls"}, {"command": [1]}, {"command": [""]}]:
            self.assertEqual(
                self.call("POST", "/api/sessions", body), (400, {"error": "Command array is required"})
            )

    def test_bad_fields(self) -> None:
        """Bad sizes, names, title modes and missing directories are 400s."""
        for extra in [
            {"cols": 0},
            {"rows": 1001},
            {"cols": "80"},
            {"name": 5},
            {"titleMode": "bogus"},
            {"workingDir": "/no/such/dir"},
            {"workingDir": 7},
        ]:
            code, body = self.call("POST", "/api/sessions", dict(command=["cat"], **extra))
            self.assertEqual(code, 400, extra)
            self.assertIn("error", body)

    def test_malformed_bodies(self) -> None:
        """Malformed JSON and non-object bodies are 400s; non-JSON types 415."""
        self.assertEqual(self.call("POST", "/api/sessions", raw=b"{nope")[0], 400)
        self.assertEqual(self.call("POST", "/api/sessions", raw=b"[1]")[0], 400)
        self.assertEqual(self.call("POST", "/api/sessions", raw=b"\xff\xfe")[0], 400)
        self.assertEqual(
            self.call("POST", "/api/sessions", raw=b"{}", headers={"Content-Type": "text/plain"})[0], 415
        )

    def test_list_newest_first(self) -> None:
        """The list has the newest session first."""
        first = self.create()
        self.clock.advance(1)
        second = self.create()
        # started_at has millisecond resolution from the wall clock: make them differ.
        self.service.sessions[first].merge(started_at="2000-01-01T00:00:00.000Z")
        ids = [s["id"] for s in self.call("GET", "/api/sessions")[1]]
        self.assertEqual(ids, [second, first])


class SessionRouteTests(APITestCase):
    """Routes on one session."""

    def setUp(self) -> None:
        super().setUp()
        self.sid = self.create(cols=20, rows=5)
        self.process = self.launcher.last

    def test_not_found(self) -> None:
        """Unknown ids are 404 "Session not found"; path-like ids are 404s too."""
        self.assertEqual(self.call("GET", "/api/sessions/nope"), (404, {"error": "Session not found"}))
        for sid in ["nope", "..%2F..%2Fetc", "%2e%2e", "..%2F" + self.sid]:
            code, body = self.call("DELETE", f"/api/sessions/{sid}")
            self.assertEqual(code, 404)
            self.assertIn("error", body)
        self.assertEqual(self.call("GET", f"/api/sessions/{self.sid}")[0], 200)

    def test_rename(self) -> None:
        """PATCH renames; a name another session has gets " (2)"."""
        other = self.create()
        self.assertEqual(
            self.call("PATCH", f"/api/sessions/{other}", {"name": "work"}),
            (200, {"success": True, "name": "work"}),
        )
        self.assertEqual(
            self.call("PATCH", f"/api/sessions/{self.sid}", {"name": "work"}),
            (200, {"success": True, "name": "work (2)"}),
        )
        self.assertEqual(self.call("PATCH", f"/api/sessions/{self.sid}", {"name": 3})[0], 400)

    def test_input_text_and_keys(self) -> None:
        """Text is written as UTF-8 and every named key as its sequence."""
        self.assertEqual(
            self.call("POST", f"/api/sessions/{self.sid}/input", {"text": "héllo"}), (200, {"success": True})
        )
        for key in KEYS:
            self.assertEqual(self.call("POST", f"/api/sessions/{self.sid}/input", {"key": key})[0], 200)
        expected = [b"h\xc3\xa9llo"] + [KEYS[k].encode() for k in KEYS]
        self.assertEqual(self.process.written, expected)

    def test_input_refused(self) -> None:
        """Unknown keys, both or neither of text and key, and non-strings are 400s."""
        for body in [{"key": "hyper"}, {}, {"text": "a", "key": "enter"}, {"text": 5}]:
            self.assertEqual(self.call("POST", f"/api/sessions/{self.sid}/input", body)[0], 400, body)

    def test_input_to_exited(self) -> None:
        """Input to an exited session is a 400."""
        self.process.exit(0)
        self.assertEqual(self.call("POST", f"/api/sessions/{self.sid}/input", {"text": "x"})[0], 400)

    def test_resize(self) -> None:
        """Resize answers the new size and reaches the terminal; bad sizes are 400s."""
        self.assertEqual(
            self.call("POST", f"/api/sessions/{self.sid}/resize", {"cols": 50, "rows": 10}),
            (200, {"success": True, "cols": 50, "rows": 10}),
        )
        self.assertEqual(self.process.sizes, [(50, 10)])
        for body in [{"cols": 0, "rows": 5}, {"cols": 5}, {"cols": 5, "rows": "5"}]:
            self.assertEqual(self.call("POST", f"/api/sessions/{self.sid}/resize", body)[0], 400)

    def test_text_and_buffer(self) -> None:
        """/text is the visible screen; /buffer the same screen as a binary snapshot."""
        self.process.say(b"hello\r\n\x1b[31mred\x1b[0m")
        code, text = self.call("GET", f"/api/sessions/{self.sid}/text")
        self.assertEqual((code, text), (200, b"hello\nred\n\n\n\n"))
        code, data = self.call("GET", f"/api/sessions/{self.sid}/buffer")
        snapshot = decode(data)
        self.assertEqual(snapshot.cols, 20)
        self.assertEqual("".join(c.char for c in snapshot.rows[1]), "red")
        self.assertEqual(snapshot.rows[1][0].fg, 1)
        self.assertEqual((snapshot.cursor_x, snapshot.cursor_y), (3, 1))

    def test_delete_running_then_exited(self) -> None:
        """DELETE kills a running session, then removes it once exited."""
        self.assertEqual(
            self.call("DELETE", f"/api/sessions/{self.sid}"),
            (200, {"success": True, "message": "Session killed"}),
        )
        self.assertEqual(self.process.signals, [15])
        self.process.exit(143)
        self.assertEqual(self.call("GET", f"/api/sessions/{self.sid}")[1]["exitCode"], 143)
        self.assertEqual(
            self.call("DELETE", f"/api/sessions/{self.sid}"),
            (200, {"success": True, "message": "Session cleaned up"}),
        )
        self.assertEqual(self.call("GET", f"/api/sessions/{self.sid}")[0], 404)
        self.assertFalse((self.tmp / "control" / self.sid).exists())

    def test_cleanup(self) -> None:
        """/cleanup refuses a running session and removes an exited one."""
        self.assertEqual(self.call("DELETE", f"/api/sessions/{self.sid}/cleanup")[0], 409)
        self.process.exit(0)
        self.assertEqual(self.call("DELETE", f"/api/sessions/{self.sid}/cleanup")[0], 200)
        self.assertEqual(self.call("GET", f"/api/sessions/{self.sid}")[0], 404)

    def test_cleanup_exited(self) -> None:
        """cleanup-exited removes exited sessions only and counts them."""
        running = self.create()
        self.process.exit(0)
        self.assertEqual(
            self.call("POST", "/api/cleanup-exited"),
            (200, {"success": True, "message": "1 exited sessions cleaned up", "localCleaned": 1}),
        )
        self.assertEqual([s["id"] for s in self.call("GET", "/api/sessions")[1]], [running])

    def test_cleanup_exited_in_slices(self) -> None:
        """cleanup-exited takes the sessions off the list at once and deletes their folders a
        slice per reactor turn, answering once every folder is gone."""
        for _ in range(40):
            self.create()
            self.launcher.last.exit(0)
        self.process.exit(0)
        folders = [self.service.files.session_dir(s.id) for s in self.service.list()]
        self.assertTrue(all(folder.exists() for folder in folders))
        # One folder per turn, each turn run by hand, so each turn's work is visible.
        turns: list[Any] = []
        self.service._background = Cooperator(  # type: ignore[attr-defined]
            terminationPredicateFactory=lambda: lambda: True,
            scheduler=lambda work: turns.append(work),
        )
        d = self.treq.post(BASE + "/api/cleanup-exited", headers=JSON)
        self.clock.advance(0)
        self.assertEqual(self.service.list(), [])
        left = []
        while turns:
            turns.pop(0)()
            left.append(sum(folder.exists() for folder in folders))
            self.service.rescan()  # a rescan meanwhile does not find them again
            self.assertEqual(self.service.list(), [])
        self.treq.flush()
        body = json.loads(self.successResultOf(self.successResultOf(d).content()))
        self.assertEqual(body["localCleaned"], 41)
        self.assertEqual(left[-1], 0)
        self.assertEqual(left[: len(folders)], list(range(len(folders) - 1, -1, -1)), "one per turn")

    def test_stream_of_exited_session(self) -> None:
        """The SSE stream of an exited session is its header, events at time 0, and the exit line."""
        self.process.say(b"one\r\n")
        self.process.exit(7)
        d = self.treq.get(BASE + f"/api/sessions/{self.sid}/stream")
        pump(self.clock)
        self.treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream"])
        body = self.successResultOf(response.content())
        messages = [json.loads(m[len(b"data: ") :]) for m in body.split(b"\n\n") if m]
        self.assertEqual(messages[0]["version"], 2)
        self.assertEqual(messages[1], [0, "o", "one\r\n"])
        self.assertEqual(messages[-1], ["exit", 7, self.sid])

    def test_recording_download(self) -> None:
        """The recording download is the cast file without the exit line."""
        self.process.say(b"one\r\n")
        self.process.exit(0)
        code, data = self.call("GET", f"/api/sessions/{self.sid}/recording")
        lines = data.splitlines()
        self.assertEqual(json.loads(lines[0])["version"], 2)
        self.assertEqual(json.loads(lines[1])[1:], ["o", "one\r\n"])
        self.assertEqual(len(lines), 2)
