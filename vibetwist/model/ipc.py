# -*- test-case-name: tests.test_ipc -*-
"""The framing of a session's ``ipc.sock``: how ``vt`` and the daemon talk.

Each message is a type byte, the payload's length as an unsigned 32-bit
big-endian number, then the payload. Payloads over 1 MiB are refused.
Nothing here touches a socket: the encoder returns bytes and the decoder
takes bytes in chunks of any size.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

from vibetwist.errors import FormatError

__all__ = [
    "MAX_PAYLOAD",
    "Decoder",
    "MessageType",
    "OversizedMessage",
    "control",
    "encode",
    "parse_json",
]

#: The largest payload either side accepts.
MAX_PAYLOAD = 1 << 20

_HEAD = struct.Struct(">BI")


class MessageType(IntEnum):
    """What a message's payload is."""

    STDIN = 0x01  # UTF-8 text typed into the terminal
    CONTROL = 0x02  # a JSON command: resize, kill, reset-size, update-title
    STATUS = 0x03  # a JSON status update
    HEARTBEAT = 0x04  # empty
    ERROR = 0x05  # a JSON error


def encode(kind: int, payload: bytes) -> bytes:
    """
    Frame one message.

    :param kind: the type byte (a :obj:`MessageType` or any value 0-255).
    :param payload: the message's body.
    :return: the type byte, the big-endian length and the payload.
    :raises FormatError: if the payload is over :obj:`MAX_PAYLOAD` bytes or kind
        is not a byte.
    """
    if not 0 <= kind <= 0xFF:
        raise FormatError(f"A message type must be a byte, not {kind}")
    if len(payload) > MAX_PAYLOAD:
        raise FormatError(f"A payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD}")
    return _HEAD.pack(kind, len(payload)) + payload


def control(command: dict[str, Any]) -> bytes:
    """
    Frame a control command, e.g. ``{"cmd": "resize", "cols": 80, "rows": 24}``.

    :param command: the JSON object to send.
    :return: one :obj:`MessageType.CONTROL` message.
    """
    body = json.dumps(command, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return encode(MessageType.CONTROL, body)


def parse_json(payload: bytes) -> dict[str, Any]:
    """
    Read the JSON object of a control, status or error message.

    :param payload: the message's body.
    :return: the object.
    :raises FormatError: if the payload is not UTF-8 JSON holding an object.
    """
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"A control message must be JSON: {e}") from None
    if not isinstance(value, dict):
        raise FormatError("A control message must be a JSON object")
    return value


class OversizedMessage(FormatError):
    """
    A message announced a payload over the limit.

    :ivar messages: the messages the same chunk completed before it, in order.
    """

    def __init__(self, length: int, limit: int, messages: list[tuple[int, bytes]]) -> None:
        super().__init__(f"A payload of {length} bytes is over the limit of {limit}")
        self.messages = messages


class Decoder:
    """
    Cut a byte stream, read in chunks of any size, into messages.

    After a :obj:`FormatError` (an oversized payload) the stream cannot be read
    on: the connection should be closed.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self._max = max_payload
        self._broken = False

    @property
    def pending(self) -> int:
        """How many bytes are held waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """
        Take the next chunk of the stream.

        :param data: the next bytes.
        :return: the (type, payload) of every message this chunk completes.
        :raises OversizedMessage: if a message announces a payload over the
            limit (carrying the messages completed before it).
        """
        if self._broken:
            raise FormatError("The stream is broken by an earlier oversized message")
        self._buffer += data
        out: list[tuple[int, bytes]] = []
        start = 0
        buf = self._buffer
        while len(buf) - start >= _HEAD.size:
            kind, length = _HEAD.unpack_from(buf, start)
            if length > self._max:
                self._broken = True
                del self._buffer[:]
                raise OversizedMessage(length, self._max, out)
            end = start + _HEAD.size + length
            if len(buf) < end:
                break
            out.append((kind, bytes(buf[start + _HEAD.size : end])))
            start = end
        if start:
            del self._buffer[:start]
        return out
