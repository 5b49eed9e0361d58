"""The browser client's parsers, run in Node and checked against Python's.

The snapshot decoder of vibetwist/web/src/snapshot.js must read what
vibetwist.model.snapshot encodes exactly as vibetwist.model.snapshot.decode does, and
refuse what it refuses; the URL fragment parser must read what Python's URL
encoding writes; the command splitter must split as shlex.split does.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.node import NodeScript
from tests.support.snapshots import header, snapshots
from vibetwist.errors import FormatError
from vibetwist.model.snapshot import RGB, Color, Snapshot, decode, encode, encode_buffers_frame
from vibetwist.model.webpush import DEFAULT_KINDS, PICKABLE, TEST, notification

RUNNER = Path(__file__).with_name("web_logic.mjs")


class Node:
    """One Node process running tests/web_logic.mjs, called a line at a time."""

    def __init__(self) -> None:
        self._node = NodeScript(RUNNER)

    def call(self, fn: str, arg: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self._node.call({"fn": fn, "arg": arg})
        return answer

    def close(self) -> None:
        self._node.close()


def color_json(color: Color) -> Any:
    if isinstance(color, RGB):
        return {"r": color.r, "g": color.g, "b": color.b}
    return color


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot as snapshot.js gives it."""
    return {
        "cols": snapshot.cols,
        "rows": [
            [{"char": c.char, "fg": color_json(c.fg), "bg": color_json(c.bg), "attrs": c.attrs} for c in row]
            for row in snapshot.rows
        ],
        "viewportY": snapshot.viewport_y,
        "cursorX": snapshot.cursor_x,
        "cursorY": snapshot.cursor_y,
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# Text that survives UTF-8, JSON and URL encoding: no lone surrogates.
texts = st.text(st.characters(blacklist_categories=("Cs",)))


class NodeTestCase(SynchronousTestCase):
    """Each test gets a Node process of its own."""

    def setUp(self) -> None:
        self.node = Node()
        self.addCleanup(self.node.close)


class SnapshotDecoderTests(NodeTestCase):
    """snapshot.js against vibetwist.snapshot."""

    @given(snapshots)
    def test_decodes_what_python_encodes(self, snapshot: Snapshot) -> None:
        """decodeSnapshot(encode(s)) in JavaScript is Python's decode(encode(s))."""
        data = encode(snapshot)
        answer = self.node.call("snapshot", b64(data))
        self.assertEqual(answer, {"value": snapshot_json(decode(data))})

    @given(snapshots, st.data())
    def test_damaged_snapshots(self, snapshot: Snapshot, data: st.DataObject) -> None:
        """A snapshot cut short, grown or with a byte changed is refused by both decoders
        or read the same by both."""
        raw = bytearray(encode(snapshot))
        how = data.draw(st.sampled_from(["cut", "grow", "change"]))
        if how == "cut":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif how == "grow":
            raw += data.draw(st.binary(min_size=1, max_size=8))
        else:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(
                st.one_of(st.sampled_from([0, 1, 3, 0x7F, 0x80, 0xBF, 0xFD, 0xFE, 0xFF]), st.integers(0, 255))
            )
        self.assertSameDecoding(bytes(raw))

    def assertSameDecoding(self, raw: bytes) -> None:
        """Both decoders refuse raw, or both read the same snapshot from it."""
        answer = self.node.call("snapshot", b64(raw))
        try:
            expected = decode(raw)
        except FormatError:
            self.assertEqual(answer.get("error"), "FormatError", (raw, answer))
        else:
            self.assertEqual(answer, {"value": snapshot_json(expected)}, raw)

    def test_edge_cases(self) -> None:
        """Hand-made snapshots at each of the format's limits read the same in both decoders."""
        row = b"\xfd\x01\x00"
        for raw in [
            header(1) + b"\xfe\x00\xfe\x01",  # an empty-row run of zero rows
            header(1) + b"\xfe\x02",  # a run past the row count
            header(1) + row + b"\x42\x41",  # kind 2 with a BOM below, kind 3 here
            header(1) + row + b"\x42\x03\xef\xbb\xbf",  # U+FEFF (a BOM) as a cell
            header(1) + row + b"\x42\x00",  # an empty unicode character
            header(1) + row + b"\x42\x02\xc3\x28",  # invalid UTF-8
            header(1) + row + b"\x42\x03\xed\xa0\x80",  # an encoded surrogate
            header(1) + row + b"\x01\x80",  # ASCII kind holding a non-ASCII byte
            header(1) + row + b"\x29\x41\x01\x02",  # RGB foreground cut short
            header(1) + row + b"\x00\x00",  # trailing garbage
            header(1) + b"\xfc",  # unknown row marker
            header(1_000_001) + b"\xfe\x01",  # more rows than allowed
            header(2) + b"\xfe\x01",  # too few rows
            b"TV\x02" + header(1)[3:] + b"\xfe\x01",  # another version
            b"VT" + header(1)[2:] + b"\xfe\x01",  # bad magic
            header(0),  # no rows at all
        ]:
            self.assertSameDecoding(raw)

    @given(st.binary(max_size=64))
    def test_any_bytes(self, raw: bytes) -> None:
        """Arbitrary bytes are a FormatError in JavaScript exactly when they are in Python."""
        self.assertSameDecoding(raw)

    @given(texts, st.binary(max_size=40))
    def test_buffers_frame(self, session_id: str, payload: bytes) -> None:
        """decodeBuffersFrame gives back the session id and the bytes encode_buffers_frame wrapped."""
        answer = self.node.call("frame", b64(encode_buffers_frame(session_id, payload)))
        self.assertEqual(answer, {"value": {"sessionId": session_id, "snapshot": b64(payload)}})

    @given(st.binary(max_size=12))
    def test_damaged_frames(self, raw: bytes) -> None:
        """A frame without its marker, or with an id longer than the frame, is a FormatError."""
        answer = self.node.call("frame", b64(b"\xbf\xff\x00\x00\x00" + raw))
        self.assertEqual(answer.get("error"), "FormatError")
        answer = self.node.call("frame", b64(b"\xbe\x00\x00\x00\x00" + raw))
        self.assertEqual(answer.get("error"), "FormatError")


class RouteTests(NodeTestCase):
    """route.js: the URL fragment."""

    @given(texts.filter(bool), st.one_of(st.none(), texts.filter(bool)), st.booleans())
    def test_reads_python_fragments(self, session: str, share: str | None, read_only: bool) -> None:
        """parseRoute reads a fragment Python wrote: a share token always means read-only."""
        fields = {"session": session}
        if share is not None:
            fields["share"] = share
        if read_only:
            fields["readonly"] = "1"
        answer = self.node.call("route", "#" + urlencode(fields, quote_via=quote))
        read_only = read_only or share is not None
        expected = {"view": "session", "session": session, "share": share, "readOnly": read_only}
        self.assertEqual(answer, {"value": expected})

    @given(texts.filter(bool), st.one_of(st.none(), texts.filter(bool)), st.booleans())
    def test_writes_what_python_reads(self, session: str, share: str | None, read_only: bool) -> None:
        """sessionHash writes a fragment Python's parse_qs reads back, and parseRoute too."""
        route = {"session": session, "share": share, "readOnly": read_only}
        fragment = self.node.call("hash", route)["value"]
        self.assertTrue(fragment.startswith("#"))
        parsed = parse_qs(fragment[1:], keep_blank_values=True)
        self.assertEqual(parsed["session"], [session])
        self.assertEqual(parsed.get("share"), None if share is None else [share])
        again = self.node.call("route", fragment)["value"]
        self.assertEqual(again, {"view": "session", "session": session, "share": share,
                                 "readOnly": read_only or share is not None})  # fmt: skip

    def test_list(self) -> None:
        """No fragment, or one without a session, is the session list."""
        for fragment in ["", "#", "#session=", "#share=abc", "#readonly=1"]:
            self.assertEqual(self.node.call("route", fragment), {"value": {"view": "list"}}, fragment)


# Command lines: loose characters, and quoted runs that may hold escapes.
_shell_chars = st.text(st.sampled_from(list("ab é\t\n'\"\\$#*;|")), max_size=6)
command_lines = st.lists(
    st.one_of(
        _shell_chars,
        _shell_chars.map(lambda inner: f'"{inner}"'),
        _shell_chars.map(lambda inner: f"'{inner}'"),
    ),
    max_size=5,
).map("".join)


class CommandTests(NodeTestCase):
    """command.js: splitting the command line typed in the form."""

    @given(command_lines)
    def test_splits_as_shlex(self, text: str) -> None:
        """splitCommand splits as shlex.split does, and refuses what it refuses."""
        answer = self.node.call("split", text)
        try:
            expected = shlex.split(text)
        except ValueError:
            self.assertEqual(answer.get("error"), "CommandError", answer)
        else:
            self.assertEqual(answer, {"value": expected})

    def test_examples(self) -> None:
        """Quotes keep spaces, a backslash escapes, an empty quoted word stays."""
        for text, argv in [
            ("bash", ["bash"]),
            ("  ls   -la /tmp ", ["ls", "-la", "/tmp"]),
            ("echo 'a b' \"c d\" e\\ f", ["echo", "a b", "c d", "e f"]),
            ("printf ''", ["printf", ""]),
        ]:
            self.assertEqual(self.node.call("split", text), {"value": argv}, text)


class FontFitTests(NodeTestCase):
    """fontfit.js: the font a read-only view shrinks to on a narrow window."""

    @given(
        st.sampled_from([12, 14, 13.5]),
        st.floats(1, 5000, allow_nan=False),
        st.floats(1, 5000, allow_nan=False),
    )
    def test_largest_font_that_fits(self, font: float, width: float, room: float) -> None:
        """The font is the given one when the terminal fits; otherwise the largest
        half-pixel step (down to the smallest font) at which its width, growing in
        proportion to the font, fits the room."""
        smallest = self.node.call("smallestFont", None)["value"]
        fitted = self.node.call("font", {"font": font, "width": width, "room": room})["value"]
        if width <= room:
            self.assertEqual(fitted, font)
            return
        self.assertGreaterEqual(fitted, smallest)
        self.assertLessEqual(fitted, font)
        self.assertEqual(fitted * 2, int(fitted * 2))
        if fitted > smallest:
            self.assertLessEqual(width * fitted / font, room * (1 + 1e-9))
        if fitted < font:
            self.assertGreater(width * (fitted + 0.5) / font, room)

    def test_examples(self) -> None:
        """120 columns 870 px wide at 12 px fit 371 px at 5 px; a huge terminal stops at
        the smallest font."""
        self.assertEqual(self.node.call("font", {"font": 12, "width": 870, "room": 371}), {"value": 5})
        self.assertEqual(self.node.call("font", {"font": 12, "width": 100000, "room": 300}), {"value": 4})
        self.assertEqual(self.node.call("font", {"font": 12, "width": 300, "room": 371}), {"value": 12})


#: Events as /api/events sends them: every kind, and fields that are there or not.
EVENTS = st.fixed_dictionaries(
    {"type": st.sampled_from([*PICKABLE, TEST, "title", "something-new"])},
    optional={
        "sessionId": st.text(max_size=20),
        "sessionName": st.text(max_size=120),
        "command": st.text(max_size=200),
        "exitCode": st.none() | st.integers(-1, 255),
        "duration": st.integers(0, 10**8) | st.floats(0, 10**7),
        "title": st.text(max_size=100),
        "body": st.text(max_size=400),
        "message": st.text(max_size=400),
    },
)


class NoticeTests(NodeTestCase):
    """notice.js: what the page's toasts say, the same as the daemon's push notifications."""

    @given(EVENTS)
    def test_toast_says_what_the_push_says(self, event: dict[str, Any]) -> None:
        """For any event, the toast's title, text and link are those of the daemon's push
        notification (vibetwist.model.webpush.notification)."""
        note = notification(event)
        self.assertEqual(
            self.node.call("describe", event),
            {"value": {"title": note["title"], "body": note["body"], "url": note["url"]}},
        )

    def test_same_kinds(self) -> None:
        """The page offers the kinds the daemon takes, with the same defaults."""
        self.assertEqual(
            self.node.call("kinds", None),
            {"value": {"kinds": list(PICKABLE), "defaults": list(DEFAULT_KINDS)}},
        )

    def test_picked(self) -> None:
        """What was stored is read back in the daemon's order, unknown kinds left out; nothing
        (or nonsense) stored gives the default kinds."""
        self.assertEqual(
            self.node.call("picked", '["bell","x","session-start"]'), {"value": ["session-start", "bell"]}
        )
        for stored in [None, "", "{", '{"a":1}']:
            self.assertEqual(self.node.call("picked", stored), {"value": list(DEFAULT_KINDS)}, stored)

    @given(st.binary(min_size=1, max_size=80))
    def test_key_bytes(self, raw: bytes) -> None:
        """The applicationServerKey is the bytes of the daemon's base64url key."""
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.assertEqual(self.node.call("keyBytes", text), {"value": base64.b64encode(raw).decode()})


def host_view(name: str, status: str = "up", running: int = 0, exited: int = 0) -> dict[str, Any]:
    """One item of a gateway's GET /api/hosts."""
    stamp = "2026-01-01T00:00:00Z"
    return {
        "host": name,
        "status": status,
        "sessions": {"running": running, "exited": exited},
        "lastHeartbeat": stamp,
        "version": "0.1.0",
        "startedAt": stamp,
    }


#: Sessions as a gateway lists them: each with the host it runs on.
host_names = st.sampled_from(["alpha", "bravo", "charlie", "delta"])
gateway_sessions = st.lists(
    st.fixed_dictionaries(
        {"id": st.uuids().map(str), "host": host_names, "status": st.sampled_from(["running", "exited"])}
    ),
    max_size=12,
    unique_by=lambda s: s["id"],
)
host_lists = st.lists(
    st.builds(
        host_view,
        host_names,
        st.sampled_from(["up", "down", "stopped"]),
        st.integers(0, 9),
        st.integers(0, 9),
    ),
    max_size=4,
    unique_by=lambda v: v["host"],
)


class HostsTests(NodeTestCase):
    """hosts.js: the session list grouped and filtered by host when a gateway serves it."""

    def test_gateway_or_plain_host(self) -> None:
        """Only a config saying "gateway": true is a gateway's; a plain daemon's is not."""
        for config, expected in [
            ({"gateway": True, "hosts": ["a"]}, True),
            ({"repositoryBasePath": "~"}, False),
            ({"gateway": "yes"}, False),
            (None, False),
        ]:
            self.assertEqual(self.node.call("isGateway", config), {"value": expected}, config)

    @given(gateway_sessions, host_lists, st.one_of(st.just(""), host_names))
    def test_groups(self, sessions: list[dict[str, Any]], hosts: list[dict[str, Any]], picked: str) -> None:
        """One group per host known to /api/hosts or the sessions, in name order, holding
        exactly that host's sessions in the order listed, with the host's status and counts;
        a filter naming a known host keeps its group alone, one naming no known host none."""
        groups = self.node.call("groups", {"sessions": sessions, "hosts": hosts, "picked": picked})["value"]
        views = {v["host"]: v for v in hosts}
        names = sorted(set(views) | {s["host"] for s in sessions})
        self.assertEqual(
            self.node.call("hostNames", {"sessions": sessions, "hosts": hosts}), {"value": names}
        )
        expected_names = [picked] if picked in names else names
        self.assertEqual([g["host"] for g in groups], expected_names)
        for group in groups:
            view = views.get(group["host"])
            self.assertEqual(group["sessions"], [s for s in sessions if s["host"] == group["host"]])
            self.assertEqual(group["status"], view["status"] if view else "unknown")
            counts = view["sessions"] if view else {"running": 0, "exited": 0}
            self.assertEqual((group["running"], group["exited"]), (counts["running"], counts["exited"]))
            if group["status"] == "down":
                self.assertIn("not answering", group["note"])
            elif group["status"] == "up" and group["sessions"]:
                self.assertIsNone(group["note"])

    def test_example(self) -> None:
        """A down host with no sessions listed still has its group, which says it is down;
        the summary gives status and counts."""
        sessions = [{"id": "1", "host": "bravo"}, {"id": "2", "host": "alpha"}, {"id": "3", "host": "bravo"}]
        hosts = [host_view("bravo", "up", 2), host_view("alpha", "up", 1, 3), host_view("charlie", "down", 4)]
        groups = self.node.call("groups", {"sessions": sessions, "hosts": hosts, "picked": ""})["value"]
        self.assertEqual([(g["host"], [s["id"] for s in g["sessions"]]) for g in groups],
                         [("alpha", ["2"]), ("bravo", ["1", "3"]), ("charlie", [])])  # fmt: skip
        self.assertEqual(groups[2]["note"], "This host is not answering: its sessions are not listed.")
        self.assertEqual(self.node.call("summary", groups[0]), {"value": "up · 1 running, 3 exited"})
        self.assertEqual(self.node.call("summary", groups[2]), {"value": "down · 4 running, 0 exited"})
        self.assertEqual(self.node.call("filter", {"picked": "gone", "names": ["alpha"]}), {"value": ""})
        self.assertEqual(
            self.node.call("filter", {"picked": "alpha", "names": ["alpha"]}), {"value": "alpha"}
        )

    @given(host_lists)
    def test_picker(self, hosts: list[dict[str, Any]]) -> None:
        """The host picker offers "any" first, then the up hosts by name, and no other."""
        up = sorted(v["host"] for v in hosts if v["status"] == "up")
        self.assertEqual(
            self.node.call("picker", hosts),
            {"value": [["", "any (least busy)"], *[[name, name] for name in up]]},
        )


class BackoffTests(NodeTestCase):
    """backoff.js: when the page connects again."""

    def test_at_once_then_a_few_seconds(self) -> None:
        """The first attempt is at once, the next ones wait longer each time, never more than 4 s."""
        delays = self.node.call("backoff", list(range(1, 12)))["value"]
        self.assertEqual(delays[:6], [0, 500, 1000, 2000, 4000, 4000])
        self.assertEqual(max(delays), 4000)

    def test_unreachable_host_is_asked_more_slowly(self) -> None:
        """After a gateway says the host is unreachable, the waits are longer, up to 15 s."""
        delays = self.node.call("unreachableBackoff", list(range(1, 8)))["value"]
        self.assertEqual(delays, [2000, 4000, 8000, 15000, 15000, 15000, 15000])
        quick = self.node.call("backoff", list(range(1, 8)))["value"]
        self.assertTrue(all(slow > fast for slow, fast in zip(delays, quick, strict=True)))

    def test_unreachable_message(self) -> None:
        """Only a gateway's "host NAME is unreachable" counts as an unreachable host."""
        for message, expected in [
            ("host alpha is unreachable", True),
            ("host my-box.lan is unreachable", True),
            ("session not found", False),
            ("the host alpha is unreachable now", False),
            (None, False),
        ]:
            self.assertEqual(self.node.call("isUnreachable", message), {"value": expected}, message)
