"""Hostile input against the real daemon, over real sockets, in bounded runs.

Malformed HTTP, hypothesis-made JSON bodies and WebSocket messages, path tricks,
broken WebSocket frames, a poisoned control directory and a connection flood.
After each batch: no 5xx (every status is counted), the daemon still runs, a
canary file beside the control directory is untouched and nothing new appeared
outside it, and a session can still be created, typed into and read.
``bench/fuzz_daemon.py`` runs the same generators at a larger size.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from tests.support import fuzz
from tests.support.api import APITestCase
from tests.support.daemon import Client, Daemon, poll, sleep
from tests.support.programs import SINK
from vibetwist.errors import FormatError
from vibetwist.model import jsontext
from vibetwist.model.controldir import MAX_INFO, ControlDir
from vibetwist.model.info import SessionInfo

#: The only programs a fuzzed create may name.
SAFE = ["true", "echo", "printf", "no-such-program-vibetwist"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**30, -(10**30), 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "command",
    "workingDir",
    "name",
    "cols",
    "rows",
    "titleMode",
    "text",
    "key",
    "type",
    "data",
    "sessionId",
]
objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), values, max_size=6)
safe_commands = st.lists(st.sampled_from(SAFE), min_size=1, max_size=1).flatmap(
    lambda first: st.lists(st.text(max_size=20), max_size=3).map(lambda rest: first + rest)
)


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


raw_bodies = st.one_of(
    objects.map(encode),
    values.map(encode),
    objects.map(encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda k: b[:k])),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from(
        [
            b'{"command":["true"],"command":5}',
            b'{"cols":80,"cols":"x","rows":24}',
            b'{"text":"a","text":null}',
            b'{"name":"\xff\xfe"}',
            b'{"name":"\\ud800"}',
            b"\xef\xbb\xbf{}",
            b'{"cols":1e400,"rows":-0}',
            b'{"cols":1' + b"0" * 5000 + b"}",
        ]
    ),
    st.binary(max_size=64),
)


def make_safe(route: str, body: bytes) -> bytes:
    """A create body whose command, if it is a list, names only harmless programs."""
    if route != "create":
        return body
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if isinstance(value, dict) and isinstance(value.get("command"), list):
        value["command"] = ["true"]
        return encode(value)
    return body


# -- what the fuzz found, pinned down without a daemon --------------------------------------


class FoundTests(APITestCase):
    """Faults the fuzz runs found, each fixed; in memory, with the API behind the HostOriginCheck."""

    def test_lone_surrogate_refused(self) -> None:
        """A lone surrogate in a name (or any string) is a 400; it used to be stored and make
        every later listing answer 500."""
        sid = self.create()
        for raw in (b'{"name": "\\ud800"}', b'{"name": "a\\udfffb"}'):
            code, body = self.call("PATCH", f"/api/sessions/{sid}", raw=raw)
            self.assertEqual(code, 400, body)
        code, body = self.call("POST", "/api/sessions", raw=b'{"command": ["cat"], "name": "\\udc80"}')
        self.assertEqual(code, 400, body)
        code, body = self.call("POST", f"/api/sessions/{sid}/input", raw=b'{"text": "\\ud800"}')
        self.assertEqual(code, 400, body)
        self.assertEqual(self.call("GET", "/api/sessions")[0], 200)

    def test_unhashable_title_mode(self) -> None:
        """A titleMode that is a list or an object is a 400, not a 500."""
        for mode in ([], {}, ["none"]):
            code, body = self.call("POST", "/api/sessions", {"command": ["cat"], "titleMode": mode})
            self.assertEqual(code, 400, body)

    def test_dot_segments_in_routes(self) -> None:
        """A path the router would redirect (an encoded "../" or "//") is a 404, not a 500."""
        for path in ("/api/sessions/%2e%2e%2f/text", "/api/sessions/..%2f/cleanup", "/api//sessions"):
            for method in ("GET", "DELETE"):
                code, body = self.call(method, path)
                self.assertIn(code, (404, 405), (method, path, body))
                self.assertIsInstance(body["error"], str)


class JSONTextTests(SynchronousTestCase):
    """jsontext.loads reads standard JSON and refuses what is not valid text."""

    @given(
        value=st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=15,
        )
    )
    def test_round_trip(self, value: Any) -> None:
        """Any JSON value of valid text reads back as itself, escaped or not."""
        for ascii_only in (True, False):
            self.assertEqual(jsontext.loads(json.dumps(value, ensure_ascii=ascii_only).encode()), value)

    @given(prefix=st.text(max_size=5), code=st.integers(0xD800, 0xDFFF), suffix=st.text(max_size=5))
    def test_lone_surrogate(self, prefix: str, code: int, suffix: str) -> None:
        """A string holding a lone surrogate is refused, wherever it sits."""
        raw = json.dumps({"k": [prefix + chr(code) + suffix]}).encode()
        self.assertRaises(ValueError, jsontext.loads, raw)

    def test_constants(self) -> None:
        """NaN, Infinity and -Infinity are not JSON."""
        for raw in (b"NaN", b"[Infinity]", b'{"a": -Infinity}'):
            self.assertRaises(ValueError, jsontext.loads, raw)


class HostileControlDirTests(SynchronousTestCase):
    """A control directory's files cannot block, flood or poison the daemon."""

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.root, True)
        self.files = ControlDir(self.root)
        (self.root / "s").mkdir()

    def test_fifo_session_json(self) -> None:
        """A FIFO named session.json is refused at once; reading it used to block the daemon's
        start-up for ever."""
        os.mkfifo(self.root / "s" / "session.json")
        self.assertRaises(FormatError, self.files.load_info, "s")

    def test_recording_not_a_file(self) -> None:
        """A recording that is a FIFO or a link to a device is refused."""
        (self.root / "s" / "session.json").write_text('{"id": "s", "command": ["x"]}')
        os.mkfifo(self.root / "s" / "stdout")
        self.assertRaises(FormatError, self.files.load_info, "s")
        os.unlink(self.root / "s" / "stdout")
        os.symlink("/dev/zero", self.root / "s" / "stdout")
        self.assertRaises(FormatError, self.files.load_info, "s")

    def test_huge_and_deep(self) -> None:
        """A session.json over 1 MiB, or nested deeper than Python can read, is refused."""
        (self.root / "s" / "session.json").write_bytes(b'{"id": "' + b"x" * (MAX_INFO + 1) + b'"}')
        self.assertRaises(FormatError, self.files.load_info, "s")
        (self.root / "s" / "session.json").write_bytes(b"[" * 200000 + b"]" * 200000)
        self.assertRaises(FormatError, self.files.load_info, "s")

    def test_screen_size_bounded(self) -> None:
        """Sizes outside 1..1000 in a session.json read as the defaults; a billion columns used
        to make the screen unreadable (the daemon spun on /text)."""
        for cols, rows in ((10**9, 10**9), (0, -5), (1001, 24)):
            info = SessionInfo.from_json(
                {"id": "s", "command": ["x"], "initialCols": cols, "initialRows": rows}
            )
            self.assertEqual((info.initial_cols, info.initial_rows), (80, 24))
        info = SessionInfo.from_json({"id": "s", "command": ["x"], "initialCols": 1000, "initialRows": 1})
        self.assertEqual((info.initial_cols, info.initial_rows), (1000, 1))


# -- the daemon under fire -------------------------------------------------------------------


class FuzzTestCase(unittest.TestCase):
    """One daemon for the whole module, started by whichever test needs it first (again after
    L{StopTests} stopped it), with a harmless sink session to aim input at.

    Every test ends with L{check_healthy}: the async ones await it, and the hypothesis ones
    (which cannot await between examples) have it as a cleanup. A test answers only for
    the faults recorded while it ran.
    """

    timeout = 170
    daemon: ClassVar[Daemon | None] = None
    tally: ClassVar[fuzz.Tally] = fuzz.Tally()
    sink: ClassVar[str] = ""
    before: ClassVar[dict[str, tuple[int, float]]] = {}

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]
        return defer.ensureDeferred(self._set_up())

    async def _set_up(self) -> None:
        cls = FuzzTestCase
        if cls.daemon is None or not cls.daemon.running:
            base = Path(tempfile.mkdtemp(prefix="fuzz-", dir=os.getcwd()))
            (base / "canary.txt").write_text("untouched\n")
            decoy = base / "decoy-session"
            decoy.mkdir()
            (decoy / "session.json").write_text(json.dumps({"id": "decoy-session", "command": ["x"]}))
            daemon = Daemon(reactor, base)
            await daemon.start()
            cls.daemon = daemon
            cls.before = fuzz.tree_snapshot(base, daemon.control_dir)
        client = self.client = Client(reactor, cls.daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        if cls.sink:
            # A raw fuzz case may have sent the sink a DELETE.
            code, info, _ = await client.request("GET", f"/api/sessions/{cls.sink}")
            if code != 200 or info["status"] != "running":
                cls.sink = ""
        if not cls.sink:
            cls.sink = await client.create(SINK)
            await client.wait_status(cls.sink, "running")
        self.faults_before = len(self.tally.faults)
        if not inspect.iscoroutinefunction(getattr(self, self._testMethodName)):
            self.addCleanup(lambda: defer.ensureDeferred(self.check_healthy()))

    @property
    def port(self) -> int:
        assert self.daemon is not None
        return self.daemon.port

    async def check_healthy(self) -> None:
        """The daemon runs, nothing outside its control directory changed, and a session
        can be created, typed into and read."""
        daemon = self.daemon
        assert daemon is not None
        self.assertTrue(daemon.running, daemon.log()[-3000:])
        self.assertEqual((daemon.base / "canary.txt").read_text(), "untouched\n")
        self.assertTrue((daemon.base / "decoy-session" / "session.json").exists())
        after = fuzz.tree_snapshot(daemon.base, daemon.control_dir)
        changed = {
            p
            for p in set(after) | set(self.before)
            if after.get(p) != self.before.get(p) and not Path(p).name.startswith("daemon-")
        }
        self.assertEqual(changed, set(), "files appeared or changed outside the control directory")
        self.assertEqual(self.tally.faults[self.faults_before :], [], self.tally.report())
        self.assertNotIn("Traceback", daemon.log(), daemon.log()[-3000:])
        await poll(reactor, lambda: self._round_trip(), timeout=20, what="a round trip")

    async def _round_trip(self) -> bool:
        sid = await self.client.create(["cat"])
        try:
            marker = uuid.uuid4().hex[:12]
            code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": marker})
            self.assertEqual(code, 200, body)
            await self.client.wait_text(sid, marker, timeout=10)
        finally:
            await self.client.request("DELETE", f"/api/sessions/{sid}")
        return True

    def fd_count(self) -> int:
        assert self.daemon is not None
        return len(os.listdir(f"/proc/{self.daemon.pid}/fd"))


class HTTPFuzzTests(FuzzTestCase):
    """Malformed HTTP and JSON get 4xx answers (or a closed connection), never a 5xx."""

    async def test_raw_http(self) -> None:
        """2,000 malformed requests: random bytes, broken request lines and methods, huge and
        garbage headers, bad chunked encoding, truncated bodies, invalid paths, pipelining."""
        rng = random.Random(1234)
        paths = ["/", "/api/health", "/api/sessions", f"/api/sessions/{self.sink}", "/buffers", "/nowhere"]
        cases = [fuzz.raw_http_case(rng, paths) for _ in range(2000)]
        await threads.deferToThread(fuzz.run_raw, self.port, cases, self.tally)
        self.assertGreaterEqual(self.tally.cases["random bytes"], 100)
        await self.check_healthy()

    @settings(max_examples=600)
    @given(
        route=st.sampled_from(["create", "rename", "input", "resize", "cleanup", "subresource"]),
        body=raw_bodies,
    )
    def test_json_bodies(self, route: str, body: bytes) -> None:
        """Any JSON (or not-quite-JSON) body on every POST/PATCH route is answered below 500,
        with a JSON error when refused."""
        method, path = {
            "create": ("POST", "/api/sessions"),
            "rename": ("PATCH", f"/api/sessions/{self.sink}"),
            "input": ("POST", f"/api/sessions/{self.sink}/input"),
            "resize": ("POST", f"/api/sessions/{self.sink}/resize"),
            "cleanup": ("POST", "/api/cleanup-exited"),
            "subresource": ("POST", f"/api/sessions/{self.sink}/text"),
        }[route]
        body = make_safe(route, body)
        code, answer = fuzz.request(self.port, method, path, body)
        self.tally.record_code(f"json {route}", code or "none", body[:200])
        self.assertTrue(0 < code < 500, (route, body[:200], code, answer[:300]))
        if code >= 400:
            self.assertIsInstance(json.loads(answer)["error"], str)
        if route == "create" and code == 200:
            # A created session runs a harmless program; forget it when it ends.
            fuzz.request(self.port, "POST", "/api/cleanup-exited", b"")

    @settings(max_examples=300)
    @given(
        fields=st.fixed_dictionaries(
            {"command": safe_commands | values},
            optional={
                "cols": values | st.integers(-5, 2000),
                "rows": values | st.integers(-5, 2000),
                "name": values,
                "workingDir": values | st.sampled_from(["/", "..", "/nonexistent", "~", "/etc/passwd"]),
                "titleMode": values | st.sampled_from(["none", "filter", "static", "dynamic"]),
            },
        )
    )
    def test_create_fields(self, fields: dict[str, Any]) -> None:
        """Creates with fields of every type and size get 200 or a 4xx JSON error."""
        body = encode(fields)
        code, answer = fuzz.request(self.port, "POST", "/api/sessions", body)
        self.tally.record_code("json create fields", code or "none", body[:200])
        self.assertTrue(0 < code < 500, (body[:200], code, answer[:300]))
        if code != 200:
            self.assertIsInstance(json.loads(answer)["error"], str)

    async def test_generated_json_bodies(self) -> None:
        """300 bodies from the generator C{bench/fuzz_daemon.py} runs at scale
        (L{fuzz.json_body_case}) on the POST/PATCH routes: every refusal is a JSON error,
        nothing is a 5xx."""
        rng = random.Random(4321)
        total = self.tally.total
        await threads.deferToThread(fuzz.run_json_bodies, self.port, self.sink, rng, self.tally, 300)
        self.assertEqual(self.tally.total - total, 300)
        await self.check_healthy()


class PathFuzzTests(FuzzTestCase):
    """Session ids that try to leave the control directory name nothing."""

    async def test_path_tricks(self) -> None:
        """Every trick on every session route is a 4xx (or a WebSocket closed with 4404);
        no DELETE succeeds; the decoy beside the control directory survives."""
        tricks = [*fuzz.PATH_TRICKS, "..%2fdecoy-session", "%2e%2e%2fdecoy-session", "../decoy-session"]
        await threads.deferToThread(fuzz.run_paths, self.port, tricks, self.tally)
        await self.check_healthy()


class WebSocketFuzzTests(FuzzTestCase):
    """Broken frames and random messages on the three sockets never hurt the daemon."""

    async def test_frames(self) -> None:
        """1,500 hostile frame sequences (bad opcodes, reserved bits, unmasked, oversized,
        truncated, invalid UTF-8, fragmented control frames) on /buffers, /ws/input and
        /ws/sessions: each connection ends with a protocol close code, never 1011."""
        rng = random.Random(99)
        paths = ["/buffers", f"/ws/input?sessionId={self.sink}", f"/ws/sessions/{self.sink}"]
        cases = [(rng.choice(paths), fuzz.ws_attack(rng)) for _ in range(1500)]
        await threads.deferToThread(fuzz.run_frames, self.port, cases, self.tally)
        self.assertGreater(
            self.tally.statuses["1002"] + self.tally.statuses["1007"], 100, self.tally.report()
        )
        await self.check_healthy()

    async def _set_up(self) -> None:
        await super()._set_up()
        # The sockets test_json_messages keeps open between its examples; closed before the
        # health check of the test's end (cleanups run last first).
        self.sockets: dict[str, fuzz.WebSocket] = {}
        self.addCleanup(lambda: [ws.close() for ws in self.sockets.values()])

    @settings(max_examples=400)
    @given(path=st.sampled_from(["buffers", "input", "stream"]), message=objects | values)
    def test_json_messages(self, path: str, message: Any) -> None:
        """Any JSON message on any socket gets an answer or an error frame, and the socket
        keeps serving (a sentinel message after it is still answered)."""
        ws = self.sockets.get(path)
        if ws is None or ws.closed:
            url = {
                "buffers": "/buffers",
                "input": f"/ws/input?sessionId={self.sink}",
                "stream": f"/ws/sessions/{self.sink}",
            }[path]
            ws = self.sockets[path] = fuzz.WebSocket(self.port, url)
            self.assertEqual(ws.status, 101)
        if path == "input":
            ws.send(fuzz.ws_frame(1, encode(message)))
            ws.send(fuzz.ws_frame(1, b"\x00no-such-key\x00"))
        else:
            if isinstance(message, dict) and message.get("type") in ("input", "key"):
                message["type"] = "resize"  # keystrokes go to the sink, but not control keys
            ws.send_json(message)
            ws.send_json({"type": "sentinel"})
        frames = ws.frames(
            timeout=5.0, until=lambda op, p: op == 1 and b"sentinel" in p or b"no-such-key" in p
        )
        self.tally.record_code(f"ws json {path}", ws.close_code or "open", message)
        self.assertFalse(ws.closed, (message, frames[-3:]))
        self.assertTrue(frames, message)

    async def test_generated_json_messages(self) -> None:
        """300 messages from the generator C{bench/fuzz_daemon.py} runs at scale
        (L{fuzz.random_json}) on the three sockets: each is answered (its sentinel too) and
        no socket closes."""
        rng = random.Random(8765)
        total = self.tally.total
        await threads.deferToThread(fuzz.run_ws_json, self.port, self.sink, rng, self.tally, 300)
        self.assertEqual(self.tally.total - total, 300)
        await self.check_healthy()


class ControlDirFuzzTests(FuzzTestCase):
    """A control directory full of hostile folders, links and garbage session files."""

    async def test_poisoned_control_dir(self) -> None:
        """Hostile entries in the control directory are skipped or listed as exited after a
        restart; cleaning up never follows a link out of the control directory."""
        daemon = self.daemon
        assert daemon is not None
        root = daemon.control_dir
        outside = fuzz.make_outside(daemon.base)
        FuzzTestCase.before = fuzz.tree_snapshot(daemon.base, root)
        made = fuzz.poison_control_dir(root, outside, daemon.base / "canary.txt")

        await daemon.stop()
        await daemon.start()
        FuzzTestCase.sink = ""
        listed = await self.client.get("/api/sessions")
        self.assertIsInstance(listed, list)
        for sid in made + ["linked"]:
            for method, path in [
                ("GET", f"/api/sessions/{sid}"),
                ("GET", f"/api/sessions/{sid}/text"),
                ("GET", f"/api/sessions/{sid}/buffer"),
                ("GET", f"/api/sessions/{sid}/recording"),
                ("DELETE", f"/api/sessions/{sid}"),
            ]:
                code, body, _ = await self.client.request(method, path)
                self.tally.record_code("control dir", code, path)
                self.assertLess(code, 500, (path, body))
        code, _, _ = await self.client.request("POST", "/api/cleanup-exited")
        self.assertEqual(code, 200)
        self.assertEqual((outside / "stdout").read_text(), "keep me\n")
        self.assertTrue((outside / "session.json").exists())
        await self.check_healthy()


class FloodTests(FuzzTestCase):
    """A flood of connections leaves the daemon serving and its descriptors as they were."""

    async def test_flood(self) -> None:
        """2,000 connections at once (idle, half a request, a whole request never read,
        reset): the daemon keeps answering, then returns to its descriptor count."""
        await self.client.get("/api/health")
        await self.client.close()
        await sleep(reactor, 0.3)
        baseline = self.fd_count()
        socks = await threads.deferToThread(fuzz.open_flood, self.port, 2000)
        try:
            code, _ = await threads.deferToThread(fuzz.request, self.port, "GET", "/api/health")
            self.tally.record_code("flood health", code)
            self.assertIn(code, (200, 503))
        finally:
            fuzz.close_flood(socks)
        await poll(reactor, lambda: self.fd_count() <= baseline, timeout=20, what="descriptors back")
        code, _ = await threads.deferToThread(fuzz.request, self.port, "GET", "/api/health")
        self.assertEqual(code, 200)
        await self.check_healthy()


class StopTests(FuzzTestCase):
    """The module's daemon stops cleanly, whatever ran on it before."""

    async def test_stop(self) -> None:
        """The daemon ends on SIGTERM within the usual time (the next fuzz test starts a new
        one), and prints the tally so far."""
        daemon = self.daemon
        assert daemon is not None
        await self.check_healthy()
        await daemon.stop()
        FuzzTestCase.daemon = None
        print("\n" + self.tally.report())
