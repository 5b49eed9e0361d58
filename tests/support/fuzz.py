"""Hostile input for a running daemon: generators, a blocking wire client, and the checks.

Shared by L{tests.test_fuzz} (bounded runs) and ``bench/fuzz_daemon.py`` (large runs).
Everything here is synchronous and talks to the daemon, a separate process, over
blocking loopback sockets with short timeouts; nothing here imports a reactor.

The generators never ask the daemon to run anything but harmless programs
(``true``, ``echo``, ``printf``, a missing program): fuzzing must not itself
touch files.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import stat
import struct
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
HOST = b"Host: 127.0.0.1\r\n"
JSON = b"Content-Type: application/json\r\n"

#: Session ids and path segments that try to leave the control directory or confuse routing.
PATH_TRICKS = [
    "..", "../..", "%2e%2e", "%2e%2e%2f", "..%2f..%2fetc%2fpasswd", "%2e%2e%5c", "a%2fb",
    "%00", "a%00b", "%ff%fe", "%", "%zz", ".", "./", "~", "~root", "/etc/passwd",
    "%2fetc%2fpasswd", "..;", "....//", "con", "nul", "*", "?", "a?b=c", "#", " ",
    "%20", "\u00e9", "%C3%A9", "\u202e", "\U0001f600", "x" * 129, "y" * 5000,
    "%252e%252e%252f", "session.json", "..%2fcanary", "%u002e%u002e",
]  # fmt: skip

#: Names for folders and links planted in the control directory.
DIR_TRICKS = [
    "..", "...", ".hidden", "-rf", "a b", "x" * 128, "z" * 200, "\u00e9t\u00e9",
    "new\nline", "tab\tname", "star*", "q?", "back\\slash", "\U0001f600",
]  # fmt: skip


class Tally:
    """Counts per category and per status; remembers anything that looks like a server fault."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.faults: list[str] = []

    def record(self, category: str, answer: bytes, what: object = "") -> None:
        """Count one exchange: every status it carries, or "none" when the server only closed."""
        self.cases[category] += 1
        codes = [int(c) for c in STATUS.findall(answer[:65536])]
        for code in codes or [0]:
            self.statuses["none" if code == 0 else str(code)] += 1
            if code >= 500 and code not in (503,):
                self.faults.append(f"{category}: {code} for {str(what)[:300]!r}: {answer[:300]!r}")
        if b"Traceback" in answer:
            self.faults.append(f"{category}: a traceback for {str(what)[:300]!r}")

    def record_code(self, category: str, code: int | str, what: object = "") -> None:
        """Count one exchange whose outcome is already known (a close code, a status)."""
        self.cases[category] += 1
        self.statuses[str(code)] += 1
        if isinstance(code, int) and 500 <= code < 600 and code != 503:
            self.faults.append(f"{category}: {code} for {str(what)[:300]!r}")
        if code == 1011:  # a WebSocket's internal error
            self.faults.append(f"{category}: close 1011 for {str(what)[:300]!r}")

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def report(self) -> str:
        lines = [f"{self.total} cases"]
        lines += [f"  {name}: {count}" for name, count in sorted(self.cases.items())]
        lines.append("statuses / close codes:")
        lines += [f"  {name}: {count}" for name, count in sorted(self.statuses.items())]
        lines.append(f"faults: {len(self.faults)}")
        lines += [f"  {fault}" for fault in self.faults[:20]]
        return "\n".join(lines)


# -- the wire -----------------------------------------------------------------------------


def exchange(port: int, data: bytes, timeout: float = 2.0, idle: float = 0.05) -> bytes:
    """Send data, then read until the server closes, nothing comes for timeout seconds, or
    (once something came) nothing more comes for idle seconds: a kept-alive answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    chunks = []
    try:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may close first (a refused body): read what it said
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            sock.settimeout(idle)
    finally:
        sock.close()
    return b"".join(chunks)


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """(status, body) of one well-formed request with a JSON body; (0, b"") if no answer."""
    head = f"{method} {path} HTTP/1.1\r\n".encode() + HOST + b"Connection: close\r\n"
    if body is not None:
        head += JSON + b"Content-Length: %d\r\n" % len(body)
    answer = exchange(port, head + b"\r\n" + (body or b""), timeout, idle=timeout)
    match = STATUS.match(answer)
    if match is None:
        return 0, answer
    _, _, rest = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in answer.split(b"\r\n\r\n", 1)[0].lower():
        rest = _dechunk(rest)
    return int(match.group(1)), rest


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def ws_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bool = True, length: int | None = None
) -> bytes:
    """One WebSocket frame as a client sends it; length overrides the declared length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0xF])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n & ((1 << 64) - 1))
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WebSocket:
    """A blocking client for one of the daemon's sockets, raw enough to misbehave."""

    def __init__(self, port: int, path: str, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\n".encode() + HOST + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, self._buffer = data.partition(b"\r\n\r\n")
        match = STATUS.match(head)
        self.status = int(match.group(1)) if match else 0
        self.close_code: int | None = None
        self.closed = self.status != 101

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def send_json(self, value: Any) -> None:
        self.send(ws_frame(1, json.dumps(value).encode()))

    def frames(
        self, timeout: float = 0.5, until: Callable[[int, bytes], bool] | None = None
    ) -> list[tuple[int, bytes]]:
        """Frames received until the server closes, until(opcode, payload) is true, or
        nothing arrives for timeout seconds. A close frame sets close_code."""
        got: list[tuple[int, bytes]] = []
        self.sock.settimeout(timeout)
        while not self.closed:
            frame = self._parse()
            if frame is None:
                try:
                    chunk = self.sock.recv(65536)
                except (TimeoutError, OSError):
                    break
                if not chunk:
                    self.closed = True
                    break
                self._buffer += chunk
                continue
            got.append(frame)
            opcode, payload = frame
            if opcode == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.closed = True
            if until is not None and until(opcode, payload):
                break
        return got

    def _parse(self) -> tuple[int, bytes] | None:
        data = self._buffer
        if len(data) < 2:
            return None
        n, at = data[1] & 0x7F, 2
        if n == 126:
            if len(data) < 4:
                return None
            n, at = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            if len(data) < 10:
                return None
            n, at = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < at + n:
            return None
        self._buffer = data[at + n :]
        return data[0] & 0x0F, data[at : at + n]

    def texts(self, frames: list[tuple[int, bytes]]) -> list[Any]:
        return [json.loads(p) for op, p in frames if op == 1]

    def close(self) -> None:
        self.sock.close()


# -- generators ---------------------------------------------------------------------------


def _junk(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(rng.randint(0, n))


def _token(rng: random.Random) -> bytes:
    """Random bytes that stay inside one request line."""
    return bytes(b for b in rng.randbytes(20) if b not in b" \r\n")


def raw_http_case(rng: random.Random, paths: list[str]) -> tuple[str, bytes]:
    """One malformed (or nearly well-formed) HTTP exchange: (category, bytes to send)."""
    path = rng.choice(paths).encode("utf-8", "surrogateescape")
    kind = rng.randrange(12)
    if kind == 0:
        return "random bytes", _junk(rng, 400)
    if kind == 1:
        line = rng.choice([b"GET", b"", b"GET /", b"GET / HTTP/9.9", b"GET  / HTTP/1.1",
                           b"\x00\x01 / HTTP/1.1",
                           b"GET / HTTP/1.1 extra", b"GET " + b"/" * 20000 + b" HTTP/1.1", b"/ HTTP/1.1",
                           b"GET / FTP/1.0", b"GET\t/\tHTTP/1.1", b"get / http/1.1"])  # fmt: skip
        return "request line", line + b"\r\n" + HOST + b"\r\n"
    if kind == 2:
        method = rng.choice([b"BREW", b"PROPFIND", b"TRACE", b"CONNECT", b"OPTIONS", b"HEAD", b"PUT",
                             b"G\xffT", b"X" * 300, b"DELETE", b"PATCH", b"POST"])  # fmt: skip
        return "method", method + b" " + path + b" HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n"
    if kind == 3:
        size = rng.choice([100, 8000, 17000, 70000, 1 << 20])
        return "huge header", b"GET /api/health HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * size + b"\r\n\r\n"
    if kind == 4:
        count = rng.choice([50, 499, 501, 2000, 10000])
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
        return "many headers", b"GET /api/health HTTP/1.1\r\n" + HOST + headers + b"\r\n"
    if kind == 5:
        garbage = rng.choice([b": novalue", b"NoColon", b"X:\x00\x01", b" Folded: x", b"Host: a\r\nHost: b",
                              b"Content-Length: -1", b"Content-Length: 1e9", b"Content-Length: 5, 6",
                              b"Transfer-Encoding: gzip", b"X\xff: \xfe", b"Content-Type: \xff"])  # fmt: skip
        return "garbage header", b"POST " + path + b" HTTP/1.1\r\n" + HOST + garbage + b"\r\n\r\n"
    if kind == 6:
        body = rng.choice([b"zz\r\nab\r\n0\r\n\r\n", b"5\r\nab\r\n", b"-1\r\n", b"ffffffffffffffff\r\nx",
                           b"3;ext=\xff\r\nabc\r\n0\r\n\r\n", b"2\r\nab", b"0\r\nTrailer: x\r\n\r\n",
                           b"1\r\n{\r\n0\r\n\r\n", b"\r\n\r\n"])  # fmt: skip
        head = b"POST " + path + b" HTTP/1.1\r\n" + HOST + JSON + b"Transfer-Encoding: chunked\r\n\r\n"
        return "bad chunked", head + body
    if kind == 7:
        body = b'{"command": ["true"], "name": "' + b"n" * rng.randint(0, 200)
        declared = len(body) + rng.randint(1, 10000)
        return (
            "truncated body",
            b"POST "
            + path
            + b" HTTP/1.1\r\n"
            + HOST
            + JSON
            + b"Content-Length: %d\r\n\r\n" % declared
            + body,
        )
    if kind == 8:
        raw = rng.choice([b"/api/sessions/\xff\xfe", b"/%ff%fe", b"/api/%c0%af", b"/api/sessions/%", b"/\x00",
                          b"/api/sessions/%e2%82", b"/ws/sessions/%ff", b"/buffers?%ff=%fe",
                          b"/?" + b"%" * 300, b"/api/sessions/" + _token(rng)])  # fmt: skip
        method = rng.choice([b"GET", b"DELETE", b"POST", b"PATCH"])
        return (
            "bad path encoding",
            method + b" " + raw + b" HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n",
        )
    if kind == 9:
        host = rng.choice([b"", b"Host: evil.example\r\n", b"Host: \xff\r\n", b"Host: [::1\r\n",
                           b"Host: 127.0.0.1:x\r\n",
                           HOST + b"Origin: http://evil.example\r\n", HOST + b"Origin: \xff://\r\n",
                           HOST + b"Origin: http://127.0.0.1:99999\r\n"])  # fmt: skip
        return "host and origin", b"GET " + path + b" HTTP/1.1\r\n" + host + b"\r\n"
    if kind == 10:
        body = _junk(rng, 2000)
        ctype = rng.choice(
            [JSON, b"Content-Type: text/plain\r\n", b"", b"Content-Type: application/json; charset=\xff\r\n"]
        )
        return (
            "junk body",
            b"POST "
            + path
            + b" HTTP/1.1\r\n"
            + HOST
            + ctype
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body,
        )
    pipelined = b"".join(
        rng.choice(
            [
                b"GET /api/health HTTP/1.1\r\n" + HOST + b"\r\n",
                b"GET " + path + b" HTTP/1.1\r\n" + HOST + b"\r\n",
                b"POST /api/sessions HTTP/1.1\r\n" + HOST + JSON + b"Content-Length: 2\r\n\r\n[]",
            ]
        )  # fmt: skip
        for _ in range(rng.randint(2, 6))
    )
    return "pipelined", pipelined + b"GARBAGE\r\n\r\n"


def ws_attack(rng: random.Random) -> tuple[str, bytes]:
    """One hostile frame sequence for an open WebSocket: (category, bytes to send)."""
    kind = rng.randrange(10)
    if kind == 0:
        return "ws random bytes", _junk(rng, 300)
    if kind == 1:
        return "ws bad opcode", ws_frame(rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), b"x")
    if kind == 2:
        return "ws reserved bits", ws_frame(1, b'{"type":"ping"}', rsv=rng.randint(1, 7))
    if kind == 3:
        return "ws unmasked", ws_frame(1, b'{"type":"ping"}', mask=False)
    if kind == 4:
        return "ws oversized length", ws_frame(
            2, b"abc", length=rng.choice([(1 << 20) + 1, 1 << 40, (1 << 63) - 1])
        )
    if kind == 5:
        return "ws truncated", ws_frame(1, b'{"type":"ping"}' * 10)[: rng.randint(1, 30)]
    if kind == 6:
        return "ws invalid utf-8", ws_frame(
            1, rng.choice([b"\xff\xfe", b"\xc3", b"a\xed\xa0\x80b", b"\xf8\x88\x80\x80\x80"])
        )
    if kind == 7:
        opcode = rng.choice([8, 9, 10])
        return "ws fragmented control", ws_frame(opcode, b"ab", fin=False) + ws_frame(0, b"cd")
    if kind == 8:
        big = rng.choice([126, 200, 126 * 126 * 126])
        return "ws control too long", ws_frame(rng.choice([9, 10]), b"p" * big)
    parts = [
        ws_frame(1, b'{"type":', fin=False),
        ws_frame(rng.choice([0, 1, 2]), b'"ping"}', fin=rng.random() < 0.5),
    ]
    return "ws bad continuation", b"".join(parts)


def run_raw(port: int, cases: list[tuple[str, bytes]], tally: Tally, workers: int = 8) -> None:
    """Send every case on its own connection, a few at a time, and count the answers."""

    def one(case: tuple[str, bytes]) -> tuple[str, bytes, bytes]:
        category, data = case
        return category, data, exchange(port, data, timeout=0.3)

    with ThreadPoolExecutor(workers) as pool:
        for category, data, answer in pool.map(one, cases):
            tally.record(category, answer, data[:200])


def run_paths(port: int, tricks: list[str], tally: Tally) -> None:
    """Every trick on every route that takes a session id."""
    for trick in tricks:
        quoted = trick.replace(" ", "%20").replace("#", "%23").replace("?", "%3F").replace("\n", "%0A")
        for method, path, body in [
            ("GET", f"/api/sessions/{quoted}", None),
            ("PATCH", f"/api/sessions/{quoted}", b'{"name":"x"}'),
            ("DELETE", f"/api/sessions/{quoted}", None),
            ("DELETE", f"/api/sessions/{quoted}/cleanup", None),
            ("GET", f"/api/sessions/{quoted}/text", None),
            ("GET", f"/api/sessions/{quoted}/buffer", None),
            ("GET", f"/api/sessions/{quoted}/stream", None),
            ("GET", f"/api/sessions/{quoted}/recording", None),
            ("POST", f"/api/sessions/{quoted}/input", b'{"text":"x"}'),
            ("POST", f"/api/sessions/{quoted}/resize", b'{"cols":80,"rows":24}'),
        ]:
            code, answer = request(port, method, path, body)
            tally.record_code("path trick", code or "none", f"{method} {path}")
            if not 400 <= code < 500:
                tally.faults.append(f"path trick: {method} {path} answered {code}: {answer[:200]!r}")
        for path in (f"/ws/sessions/{quoted}", f"/ws/input?sessionId={quoted}"):
            ws = WebSocket(port, path)
            if ws.status == 101:
                ws.frames(timeout=2.0)
                code = ws.close_code or 0
                if code != 4404:
                    tally.faults.append(f"path trick: {path} stayed open (close {code})")
            else:
                code = ws.status
            tally.record_code("path trick ws", code, path)
            ws.close()


def run_frames(port: int, cases: list[tuple[str, tuple[str, bytes]]], tally: Tally, workers: int = 8) -> None:
    def one(case: tuple[str, tuple[str, bytes]]) -> tuple[str, str, int | str]:
        path, (category, data) = case
        ws = WebSocket(port, path)
        try:
            if ws.status != 101:
                return path, category, ws.status
            ws.send(data)
            ws.frames(timeout=0.5)
            return path, category, ws.close_code or ("dropped" if ws.closed else "open")
        finally:
            ws.close()

    with ThreadPoolExecutor(workers) as pool:
        for path, category, outcome in pool.map(one, cases):
            tally.record_code(category, outcome, path)


def run_json_bodies(port: int, sink: str, rng: random.Random, tally: Tally, count: int) -> None:
    """count bodies from L{json_body_case} on the POST/PATCH routes, one at a time; a refusal
    that is not a JSON error is a fault, and a created session is cleaned up when it ends."""
    for _ in range(count):
        category, method, path, body = json_body_case(rng, sink)
        code, answer = request(port, method, path, body)
        tally.record_code(category, code or "none", body[:200])
        if code >= 400 and not answer.startswith(b"{"):
            tally.faults.append(f"{category}: a {code} without a JSON error for {body[:200]!r}")
        if category == "json create" and code == 200:
            request(port, "POST", "/api/cleanup-exited", b"")


def run_ws_json(port: int, sink: str, rng: random.Random, tally: Tally, count: int) -> None:
    """count messages from L{random_json} on the three sockets (input, control keys aside,
    only to the sink), each followed by a sentinel: a socket that then closes or stays
    silent is a fault."""
    urls = {
        "buffers": "/buffers",
        "input": f"/ws/input?sessionId={sink}",
        "stream": f"/ws/sessions/{sink}",
    }
    sockets: dict[str, WebSocket] = {}
    try:
        for _ in range(count):
            path = rng.choice(list(urls))
            ws = sockets.get(path)
            if ws is None or ws.closed:
                ws = sockets[path] = WebSocket(port, urls[path])
            message = random_json(rng)
            if path == "input":
                ws.send(ws_frame(1, json.dumps(message, allow_nan=True).encode()))
                ws.send(ws_frame(1, b"\x00no-such-key\x00"))
            else:
                if isinstance(message, dict) and message.get("type") in ("input", "key"):
                    message["type"] = "resize"
                ws.send(ws_frame(1, json.dumps(message, allow_nan=True).encode()))
                ws.send_json({"type": "sentinel"})
            frames = ws.frames(
                timeout=5.0, until=lambda op, p: op == 1 and (b"sentinel" in p or b"no-such-key" in p)
            )
            tally.record_code(f"ws json {path}", ws.close_code or ("open" if frames else "silent"), message)
            if ws.closed or not frames:
                tally.faults.append(f"ws json {path}: {str(message)[:200]} ended the socket or got no answer")
    finally:
        for ws in sockets.values():
            ws.close()


def open_flood(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    for index, sock in enumerate(socks):
        try:
            if index % 4 == 1:
                sock.send(b"GET /api/health HTTP/1.1\r\nHo")
            elif index % 4 == 2:
                sock.send(b"GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        except OSError:
            pass
    return socks


def close_flood(socks: list[socket.socket]) -> None:
    for index, sock in enumerate(socks):
        if index % 4 == 3:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def tree_snapshot(root: Path, skip: Path) -> dict[str, tuple[int, float]]:
    """Every file and folder under root except those under skip: path -> (size, mtime),
    (-1, 0) for a folder."""
    found = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == skip or skip in here.parents:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = here / name
            try:
                info = path.lstat()
            except OSError:
                continue
            # A folder's own times change with its entries, which are listed themselves.
            found[str(path)] = (-1, 0.0) if stat.S_ISDIR(info.st_mode) else (info.st_size, info.st_mtime)
    return found


def make_outside(base: Path) -> Path:
    """A session-like folder beside the control directory, for a link to point at."""
    outside = base / "outside"
    outside.mkdir()
    (outside / "session.json").write_text(json.dumps({"id": "linked", "command": ["x"], "status": "exited"}))
    (outside / "stdout").write_text("keep me\n")
    return outside


def poison_control_dir(root: Path, outside: Path, canary: Path) -> list[str]:
    """Fill a control directory with hostile folders, links and session files: oddly named
    folders, a link to the folder outside, garbage and FIFO session.json files, recordings
    that link to the canary or to devices. The ids of the session-like ones."""
    rng = random.Random(5)
    for name in DIR_TRICKS:
        if name not in ("..", "..."):
            (root / name).mkdir(exist_ok=True)
            (root / name / "session.json").write_bytes(rng.randbytes(50))
    (root / "linked").symlink_to(outside)
    (root / "plainfile").write_text("{}")
    garbage = [
        b"", b"[]", b"null", b"\xff\xfe", b"{" * 50000, b'{"id": 5}',
        json.dumps({"id": "wrong-id", "command": ["x"]}).encode(),
        json.dumps({"command": "x", "status": "exited"}).encode(),
        json.dumps({"command": ["x"], "status": ["running"]}).encode(),
        json.dumps({"command": ["x"], "status": "running", "pid": 1}).encode(),
        json.dumps({"command": ["x"], "status": "running", "pid": -1}).encode(),
        json.dumps({"command": ["x"], "status": "exited", "initialCols": 10**9}).encode(),
        json.dumps({"command": ["x"], "status": "exited", "initialCols": -5, "exitCode": 2**80}).encode(),
        json.dumps({"command": ["x"] * 10000, "name": "n" * 100000, "status": "exited"}).encode(),
        json.dumps({"command": [], "startedAt": 5, "lastClearOffset": -10, "status": "exited"}).encode(),
    ]  # fmt: skip
    made = []
    for index, data in enumerate(garbage):
        sid = f"garbage-{index}"
        (root / sid).mkdir()
        if data.startswith(b'{"command"'):
            data = data.replace(b'{"command"', b'{"id": "%s", "command"' % sid.encode(), 1)
        (root / sid / "session.json").write_bytes(data)
        made.append(sid)
    (root / "garbage-stdout-link").mkdir()
    (root / "garbage-stdout-link" / "session.json").write_text(
        json.dumps({"id": "garbage-stdout-link", "command": ["x"], "status": "exited"})
    )
    (root / "garbage-stdout-link" / "stdout").symlink_to(canary)
    for name, target in [("garbage-zero", "/dev/zero"), ("garbage-urandom", "/dev/urandom")]:
        (root / name).mkdir()
        (root / name / "session.json").write_text(json.dumps({"id": name, "command": ["x"]}))
        (root / name / "stdout").symlink_to(target)
        made.append(name)
    (root / "garbage-deep").mkdir()
    (root / "garbage-deep" / "session.json").write_bytes(b"[" * 100000 + b"]" * 100000)
    (root / "garbage-fifo").mkdir()
    os.mkfifo(root / "garbage-fifo" / "session.json")
    (root / "garbage-fifo-stdout").mkdir()
    (root / "garbage-fifo-stdout" / "session.json").write_text(
        json.dumps({"id": "garbage-fifo-stdout", "command": ["x"]})
    )
    os.mkfifo(root / "garbage-fifo-stdout" / "stdout")
    made += ["garbage-stdout-link", "garbage-fifo", "garbage-fifo-stdout", "garbage-deep"]
    return made


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-ish value: wrong types, huge numbers, NaN, odd text, nesting."""
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 80, 24, 1001, 2**31, 2**63, -(2**64), 10**30])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf")])
    if kind in (4, 5, 6):
        return rng.choice(["", "x", "\u00e9", "\U0001f600", "\x00", "\x1b[2J", "a" * 5000, "Enter", "ctrl_c",
                           "none", "..", "/", "/etc/passwd", "\u202e", str(rng.random())])  # fmt: skip
    if kind in (7, 8):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["command", "workingDir", "name", "cols", "rows", "titleMode", "text", "key", "type", "data", "x"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def json_body_case(rng: random.Random, sink: str) -> tuple[str, str, str, bytes]:
    """(category, method, path, body) for a random JSON body on a POST/PATCH route; a create
    only ever names harmless programs."""
    route, method, path = rng.choice([
        ("create", "POST", "/api/sessions"),
        ("rename", "PATCH", f"/api/sessions/{sink}"),
        ("input", "POST", f"/api/sessions/{sink}/input"),
        ("resize", "POST", f"/api/sessions/{sink}/resize"),
        ("cleanup", "POST", "/api/cleanup-exited"),
    ])  # fmt: skip
    value = random_json(rng)
    if route == "create" and isinstance(value, dict) and "command" in value:
        value["command"] = [rng.choice(["true", "echo", "no-such-program-vibetwist"])]
    body = json.dumps(value, allow_nan=True).encode()
    if rng.random() < 0.1:
        body = body[: rng.randint(0, len(body))]
    elif rng.random() < 0.05:
        body = b'{"cols": 80, "cols": "x", "name": "\\ud800"}'
    return f"json {route}", method, path, body
