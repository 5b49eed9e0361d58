"""Tests for L{vibetwist.model.handover}: the state a restarting daemon hands to its new copy."""

from __future__ import annotations

import json
import socket

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.errors import FormatError
from vibetwist.model.handover import (
    HandedListener,
    HandedOutput,
    HandedSession,
    HandedTerminal,
    Handover,
    decode_handover,
    encode_handover,
)

ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,40}\Z")
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**40)
sizes = st.tuples(st.integers(1, 1000), st.integers(1, 1000))
listeners = st.builds(
    HandedListener,
    description=st.text(max_size=60),
    fd=counts,
    family=st.sampled_from([socket.AF_INET, socket.AF_INET6, socket.AF_UNIX]),
)
sessions = st.builds(
    HandedSession,
    id=ids,
    terminal=st.builds(
        HandedTerminal,
        fd=counts,
        pid=st.integers(1, 2**22),
        reaped=st.none() | st.integers(0, 65535),
        unwritten=st.binary(max_size=50),
    ),
    output=st.builds(
        HandedOutput,
        end=counts,
        recording=st.sampled_from(["open", "full", "failed", "none"]),
        held=st.binary(max_size=3),
        clear_tail=st.text(max_size=3),
    ),
    started=times,
    size=sizes,
    kill_in=st.none() | times,
)


def distinct(handover: Handover) -> bool:
    fds = handover.descriptors()
    return len(set(fds)) == len(fds) and len({s.id for s in handover.sessions}) == len(handover.sessions)


handovers = st.builds(
    Handover,
    pid=st.integers(1, 2**22),
    stopped_at=times,
    listeners=st.lists(listeners, max_size=3).map(tuple),
    sessions=st.lists(sessions, max_size=4).map(tuple),
).filter(distinct)


def sample() -> dict:
    """A valid hand-over as JSON, to spoil one field at a time."""
    handover = Handover(
        4321,
        1700000000.5,
        (HandedListener("tcp:4020:interface=127.0.0.1", 5, socket.AF_INET),),
        (
            HandedSession(
                "abc",
                HandedTerminal(7, 999, None, b"ls\r"),
                HandedOutput(1234, "open", b"\xe2\x82", "\x1b["),
                1699999999.25,
                (80, 24),
                2.5,
            ),
        ),
    )
    return json.loads(encode_handover(handover))


class HandoverFormatTests(SynchronousTestCase):
    @given(handovers)
    def test_round_trip(self, handover: Handover) -> None:
        """Any hand-over decodes to itself."""
        self.assertEqual(decode_handover(encode_handover(handover)), handover)

    def test_sample(self) -> None:
        """The sample decodes, with its bytes and times as written."""
        handover = decode_handover(json.dumps(sample()).encode())
        session = handover.sessions[0]
        self.assertEqual(session.terminal.unwritten, b"ls\r")
        self.assertEqual(session.output.held, b"\xe2\x82")
        self.assertEqual(session.kill_in, 2.5)
        self.assertEqual(handover.descriptors(), [5, 7])

    def test_spoilt_fields(self) -> None:
        """A field of the wrong type or range, an unknown version, recording state or
        address family, a descriptor or session named twice: each is a FormatError."""

        def session(**fields: object) -> dict:
            value = sample()
            value["sessions"][0].update(fields)
            return value

        def top(**fields: object) -> dict:
            value = sample()
            value.update(fields)
            return value

        spoilt = [
            top(version=2),
            top(version=True),
            top(pid="1"),
            top(stoppedAt=float("inf")),
            top(listeners={}),
            top(listeners=[{"description": "x", "fd": 3, "family": 99}]),
            top(listeners=[{"description": "x", "fd": 7, "family": socket.AF_INET}]),
            top(sessions=[sample()["sessions"][0], session(fd=8)["sessions"][0]]),
            session(id="../x"),
            session(fd=-1),
            session(pid=0),
            session(cols=0),
            session(rows=1001),
            session(recording="gone"),
            session(held="not base64!"),
            session(unwritten=3),
            session(started=-1),
            session(killIn="soon"),
            session(clearTail=None),
        ]
        for value in spoilt:
            with self.assertRaises(FormatError, msg=repr(value)):
                decode_handover(json.dumps(value).encode())

    @given(st.binary(max_size=200))
    def test_garbage(self, data: bytes) -> None:
        """Bytes that are not a hand-over are a FormatError, never another error."""
        try:
            decode_handover(data)
        except FormatError:
            pass

    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=10))
    def test_any_json(self, value: object) -> None:
        """Any JSON value in place of a session is a FormatError, never another error."""
        document = sample()
        document["sessions"] = [value]
        with self.assertRaises(FormatError):
            decode_handover(json.dumps(document).encode())
