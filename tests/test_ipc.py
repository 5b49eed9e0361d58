"""The ipc.sock framing: type byte, u32 big-endian length, payload; at most 1 MiB."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.errors import FormatError
from vibetwist.model.ipc import (
    MAX_PAYLOAD,
    Decoder,
    MessageType,
    OversizedMessage,
    control,
    encode,
    parse_json,
)

messages = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=12)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """data cut at the given offsets (taken modulo its length, sorted)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


class EncodeTests(SynchronousTestCase):
    def test_layout(self) -> None:
        """A message is the type byte, the big-endian payload length, then the payload."""
        self.assertEqual(encode(MessageType.STDIN, b"hi"), b"\x01\x00\x00\x00\x02hi")
        self.assertEqual(encode(MessageType.HEARTBEAT, b""), b"\x04\x00\x00\x00\x00")

    def test_control(self) -> None:
        """A control command is compact JSON in a type 2 message."""
        frame = control({"cmd": "resize", "cols": 100, "rows": 30})
        self.assertEqual(frame[:1], b"\x02")
        body = b'{"cmd":"resize","cols":100,"rows":30}'
        self.assertEqual(frame[1:5], struct.pack(">I", len(body)))
        self.assertEqual(frame[5:], body)

    def test_oversized_refused(self) -> None:
        """The encoder refuses a payload over 1 MiB and accepts one of exactly 1 MiB."""
        self.assertEqual(len(encode(1, b"x" * MAX_PAYLOAD)), MAX_PAYLOAD + 5)
        self.assertRaises(FormatError, encode, 1, b"x" * (MAX_PAYLOAD + 1))

    def test_type_must_be_byte(self) -> None:
        """A type outside 0-255 is refused."""
        self.assertRaises(FormatError, encode, 256, b"")

    def test_parse_json(self) -> None:
        """parse_json reads an object and refuses anything else."""
        self.assertEqual(parse_json(b'{"cmd":"kill","signal":15}'), {"cmd": "kill", "signal": 15})
        for bad in (b"[1]", b"{", b"\xff", b"3"):
            self.assertRaises(FormatError, parse_json, bad)


class DecoderTests(SynchronousTestCase):
    @given(messages, st.lists(st.integers(0, 10_000), max_size=20))
    def test_round_trip_any_chunking(self, sent: list[tuple[int, bytes]], cuts: list[int]) -> None:
        """Whatever the chunks, the decoder gives back the messages encoded, in order."""
        stream = b"".join(encode(k, p) for k, p in sent)
        decoder = Decoder()
        got: list[tuple[int, bytes]] = []
        for chunk in chunked(stream, cuts):
            got.extend(decoder.feed(chunk))
        self.assertEqual(got, sent)
        self.assertEqual(decoder.pending, 0)

    @given(messages, st.integers(MAX_PAYLOAD + 1, 2**32 - 1), st.integers(0, 4))
    def test_oversized_refused(self, before: list[tuple[int, bytes]], length: int, cut: int) -> None:
        """A header announcing more than 1 MiB is refused without waiting for the payload;
        the messages before it are handed over with the error, and the stream stays refused."""
        stream = b"".join(encode(k, p) for k, p in before) + struct.pack(">BI", 1, length)
        decoder = Decoder()
        got: list[tuple[int, bytes]] = []
        head, tail = stream[: len(stream) - cut], stream[len(stream) - cut :]
        got.extend(decoder.feed(head) if cut else [])
        with self.assertRaises(OversizedMessage) as caught:
            got.extend(decoder.feed(tail if cut else stream))
        got.extend(caught.exception.messages)
        self.assertEqual(got, before)
        self.assertRaises(FormatError, decoder.feed, b"")

    def test_partial_header_waits(self) -> None:
        """Fewer than five bytes are held until the header is whole."""
        decoder = Decoder()
        self.assertEqual(decoder.feed(b"\x01\x00\x00"), [])
        self.assertEqual(decoder.pending, 3)
        self.assertEqual(decoder.feed(b"\x00\x01a"), [(1, b"a")])
