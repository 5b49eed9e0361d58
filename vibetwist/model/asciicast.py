# -*- test-case-name: tests.test_asciicast -*-
"""
Read and write asciicast v2 recordings, the format ``asciinema play`` reads.

A recording is one header line (a JSON object), then one event per line
(``[seconds, kind, text]``) and, in VibeTunnel's dialect, a closing
``["exit", code, sessionId]`` line.  Everything here takes bytes or text and
returns bytes, text or values: nothing touches the reactor, so callers decide
when to read, write and flush.
"""

import codecs
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TypeGuard

import attrs
import orjson

from vibetwist.errors import FormatError

__all__ = [
    "CLEAR_SCROLLBACK",
    "ClearDetector",
    "Event",
    "Exit",
    "Header",
    "LineSplitter",
    "OutputDecoder",
    "encode_event",
    "encode_exit",
    "encode_header",
    "encode_size",
    "is_exit_line",
    "iter_playable",
    "parse_line",
    "parse_dimensions",
    "zero_time",
]

CLEAR_SCROLLBACK = "\x1b[3J"
"""The escape sequence that clears a terminal's scrollback (xterm's ED 3)."""

# One encoder each, built once: json.dumps with non-default arguments would
# build a new JSONEncoder on every call.  ensure_ascii=False writes non-ASCII
# text as itself, which keeps recordings of non-English output small.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# Every byte of output is encoded into one event line and, for the screen and
# for replays, parsed back.  With the json module alone that took 3.3 and 1.4
# ns a character of base64 here, 3.9 and 13.7 of LF-only ``y`` lines; orjson
# writes a string the way _JSON does (UTF-8 as itself, the same escapes) and
# reads an event line in 0.24 and 0.5 ns, 3.0 and 2.2.  What it refuses (a
# lone surrogate, an integer past 64 bits, a number out of range) goes the json
# module's way, so the lines written and the values and errors read are the
# same as with the json module alone.

_JSON_WHITESPACE = b" \t\r\n"
_NUMBER_START = b"-0123456789"
_EXIT_TAG = b'"exit"'
_SIZE = re.compile(r"([0-9]{1,9})x([0-9]{1,9})")


def _freeze_env(env: Mapping[str, str]) -> Mapping[str, str]:
    """
    Copy ``env`` into a read-only mapping, so a :obj:`Header` cannot change.

    :param env: the environment variables to record.
    :return: a read-only copy of ``env``, in the same order.
    """
    return MappingProxyType(dict(env))


@attrs.frozen
class Header:
    """
    The first line of a recording: the terminal's size and where it came from.

    :ivar width: the terminal's width in columns when recording started.
    :ivar height: the terminal's height in rows when recording started.
    :ivar timestamp: when recording started, in seconds since the Unix epoch.
    :ivar command: the command that was recorded.
    :ivar title: the session's title.
    :ivar env: environment variables worth replaying (``TERM``, ``SHELL``),
        held in a read-only mapping.  It takes no part in the hash (a mapping
        is not hashable) but does in equality.
    """

    width: int
    height: int
    timestamp: int
    command: str = ""
    title: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_env, hash=False)


@attrs.frozen
class Event:
    """
    One timed event of a recording.

    :ivar time: seconds since the recording started.
    :ivar kind: ``"o"`` output, ``"i"`` input, ``"r"`` resize (``data`` is
        ``"COLSxROWS"``), ``"m"`` marker; other kinds are kept as they are.
    :ivar data: the event's text.
    """

    time: float
    kind: str
    data: str


@attrs.frozen
class Exit:
    """
    VibeTunnel's closing line of a recording: the session ended.

    :ivar code: the process's exit status (128 + N for signal N), or :obj:`None`
        when it is not known.
    :ivar session_id: the id of the session that ended.
    """

    code: int | None
    session_id: str


def _utf8(line: str) -> bytes:
    """
    Encode one JSON line as UTF-8.

    Text can hold a lone surrogate only by mistake (output comes from a
    decoder with ``errors="replace"``), but that must not crash the recorder.
    UTF-8 can encode every other code point, and JSON's structure is ASCII,
    so a lone surrogate can only sit inside a string literal, where Python's
    ``backslashreplace`` spelling ``\\udXXX`` is also JSON's escape for it.

    :param line: the JSON text of one line.
    :return: ``line`` as UTF-8 bytes.
    """
    return line.encode("utf-8", "backslashreplace")


def _format_time(time: float) -> str:
    """
    Write ``time`` as a JSON number rounded to microseconds, without exponent.

    :param time: seconds since the recording started.
    :return: ``time`` with at most six decimals and no trailing zeros,
        e.g. ``"0.123456"``, ``"12.5"`` or ``"0"``.
    :raises ValueError: if ``time`` is negative, infinite or not a number.
    """
    if not math.isfinite(time) or time < 0:
        raise ValueError(f"Event time must be a finite number >= 0, not {time!r}")
    return f"{time:.6f}".rstrip("0").rstrip(".")


def encode_header(header: Header) -> bytes:
    """
    Encode the header line of a recording.

    :param header: the header to write.
    :return: one compact JSON object with the keys ``version`` (always 2),
        ``width``, ``height``, ``timestamp``, ``command``, ``title`` and ``env`` in
        that order, in UTF-8, ending in ``b"\\n"``.
    """
    fields = {
        "version": 2,
        "width": header.width,
        "height": header.height,
        "timestamp": header.timestamp,
        "command": header.command,
        "title": header.title,
        "env": dict(header.env),
    }
    return _utf8(_JSON.encode(fields) + "\n")


def encode_event(time: float, kind: str, data: str) -> bytes:
    """
    Encode one event line, e.g. ``b'[0.5,"o","hello"]\\n'``.

    :param time: seconds since the recording started, rounded to
        microseconds and never written with an exponent.
    :param kind: the event's kind (``"o"``, ``"i"``, ``"r"`` or ``"m"``).
    :param data: the event's text.
    :return: one compact JSON array in UTF-8, ending in ``b"\\n"``.
    :raises ValueError: if ``time`` is negative, infinite or not a number.
    """
    stamp = _format_time(time).encode("ascii")
    try:
        return b"[" + stamp + b"," + orjson.dumps(kind) + b"," + orjson.dumps(data) + b"]\n"
    except TypeError:  # a lone surrogate, which orjson does not write
        return _utf8(f"[{stamp.decode()},{_JSON.encode(kind)},{_JSON.encode(data)}]\n")


def encode_exit(code: int | None, session_id: str) -> bytes:
    """
    Encode VibeTunnel's closing line, e.g. ``b'["exit",0,"abc"]\\n'``.

    :param code: the process's exit status, or :obj:`None` when it is not known.
    :param session_id: the id of the session that ended.
    :return: one compact JSON array in UTF-8, ending in ``b"\\n"``.
    """
    return _utf8(_JSON.encode(["exit", code, session_id]) + "\n")


def _reject_constant(name: str) -> object:
    """
    Refuse the non-standard JSON constants that Python's parser accepts.

    :param name: ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
    :raises FormatError: always.
    """
    raise FormatError(f"{name} is not a JSON number")


def _is_int(value: object) -> TypeGuard[int]:
    """
    Tell whether a parsed JSON value is an integer.

    :param value: a value from :obj:`json.loads`.
    :return: whether ``value`` is an :obj:`int` (:obj:`bool` is not one here).
    """
    return isinstance(value, int) and not isinstance(value, bool)


def parse_line(line: bytes) -> Header | Event | Exit:
    """
    Parse one line of a recording.

    A header may leave out ``timestamp`` (read as 0), ``command``, ``title`` and
    ``env`` (read as empty), or give them as ``null``; other header keys (such as
    ``duration`` or ``theme``) are ignored.  Events of unknown kinds are kept.

    :param line: one line, with or without its trailing ``b"\\n"``.
    :return: the header, event or exit the line holds.
    :raises FormatError: if the line is not UTF-8, not JSON, or not shaped
        like a header, an event or an exit line.
    """
    body = line[:-1] if line.endswith(b"\n") else line
    if b"\n" in body:
        raise FormatError("A recording line cannot hold a newline")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _parse_slowly(body)
    # The fast way only for a well-formed event, the line written for all output;
    # anything else (a header, an exit, a mistake) is read again the json module's
    # way, whose integers have no limit, and whose errors are the ones reported.
    if type(value) is list and len(value) == 3:
        first, kind, data = value
        if type(first) in (float, int) and type(kind) is str and type(data) is str and 0 <= first < math.inf:
            return Event(time=float(first), kind=kind, data=data)
    return _parse_slowly(body)


def _parse_slowly(body: bytes) -> Header | Event | Exit:
    """
    Parse a line with the json module: every line but a well-formed event, so
    that what json reads and orjson does not (a lone surrogate, an integer
    past 64 bits) is read, and a line that is not JSON gets json's error.

    :param body: the line without its trailing ``b"\\n"``.
    :return: the header, event or exit the line holds.
    :raises FormatError: as :func:`parse_line`.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"A recording line must be UTF-8: {e}") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        # JSONDecodeError is a ValueError, and so is the error for an integer
        # too long to convert; nesting deep enough exhausts the stack.
        raise FormatError(f"A recording line must be JSON: {e}") from None
    return _parse_value(value)


def _parse_value(value: object) -> Header | Event | Exit:
    """
    Read the parsed JSON value of a recording line.

    :param value: the line's value.
    :return: the header, event or exit it holds.
    :raises FormatError: if it is not shaped like one.
    """
    if isinstance(value, dict):
        return _parse_header(value)
    if isinstance(value, list):
        return _parse_array(value)
    raise FormatError("A recording line must be a JSON object or array")


def _optional_str(fields: dict[str, object], key: str) -> str:
    """
    Read an optional string field of a header.

    :param fields: the header's JSON object.
    :param key: the field's name.
    :return: the field's value, or ``""`` if it is missing or ``null``.
    :raises FormatError: if the field is something other than a string.
    """
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FormatError(f"Header field {key!r} must be a string")
    return value


def _parse_header(fields: dict[str, object]) -> Header:
    """
    Read a header line's JSON object.

    :param fields: the parsed JSON object.
    :return: the header it describes.
    :raises FormatError: if it is not an asciicast v2 header.
    """
    version = fields.get("version")
    if not _is_int(version) or version != 2:
        raise FormatError(f"Unsupported asciicast version: {version!r}")
    width = fields.get("width")
    height = fields.get("height")
    if not _is_int(width) or not _is_int(height):
        raise FormatError("Header width and height must be integers")
    if width < 1 or height < 1:
        raise FormatError("Header width and height must be at least 1")
    timestamp = fields.get("timestamp", 0)
    if timestamp is None:
        timestamp = 0
    if not _is_int(timestamp):
        raise FormatError("Header timestamp must be an integer")
    env = fields.get("env")
    if env is None:
        env = {}
    elif not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        raise FormatError("Header env must map names to strings")
    return Header(
        width=width,
        height=height,
        timestamp=timestamp,
        command=_optional_str(fields, "command"),
        title=_optional_str(fields, "title"),
        env=env,
    )


def _parse_array(items: list[object]) -> Event | Exit:
    """
    Read an event or exit line's JSON array.

    :param items: the parsed JSON array.
    :return: the event or exit it describes.
    :raises FormatError: if it is neither ``[time, kind, text]`` nor
        ``["exit", code, sessionId]``.
    """
    if len(items) != 3:
        raise FormatError("An event or exit line must have three items")
    first, second, third = items
    if first == "exit":
        if not isinstance(third, str):
            raise FormatError("An exit line's session id must be a string")
        if second is None:
            return Exit(code=None, session_id=third)
        if not _is_int(second):
            raise FormatError("An exit code must be an integer or null")
        return Exit(code=second, session_id=third)
    if not isinstance(first, (int, float)) or isinstance(first, bool):
        raise FormatError("An event's time must be a number")
    try:
        time = float(first)
    except OverflowError:
        raise FormatError("An event's time must be finite") from None
    if not math.isfinite(time) or time < 0:
        raise FormatError("An event's time must be a finite number >= 0")
    if not (isinstance(second, str) and isinstance(third, str)):
        raise FormatError("An event's kind and text must be strings")
    return Event(time=time, kind=second, data=third)


def _first_item(line: bytes) -> int:
    """
    Find where the first item of a line's JSON array starts.

    :param line: one recording line.
    :return: the index of the first byte of the array's first item, or -1 if
        the line does not start with an array.
    """
    # Index rather than slice: lines can be long, and only the start matters.
    index = _skip_whitespace(line, 0)
    if line[index : index + 1] != b"[":
        return -1
    return _skip_whitespace(line, index + 1)


def _skip_whitespace(line: bytes, index: int) -> int:
    """
    Find the first byte of ``line`` at or after ``index`` that is not JSON
    whitespace.

    :param line: one recording line.
    :param index: where to start looking.
    :return: the index of that byte, or ``len(line)`` if there is none.
    """
    while index < len(line) and line[index] in _JSON_WHITESPACE:
        index += 1
    return index


def zero_time(line: bytes) -> bytes:
    """
    Give an event line the time 0, for a late joiner's replay of history.

    This works on bytes and trusts the line to be well formed: it rewrites the
    first item of an array line when that item is a number and leaves any
    other line (a header, an exit line) as it is.

    :param line: one recording line, as written by :obj:`encode_event`.
    :return: the same line with its time replaced by ``0``.
    """
    start = _first_item(line)
    if not 0 <= start < len(line) or line[start] not in _NUMBER_START:
        return line
    end = line.find(b",", start)
    if end < 0:
        return line
    return line[:start] + b"0" + line[end:]


def is_exit_line(line: bytes) -> bool:
    """
    Tell, from its first bytes, whether a line is an ``["exit", ...]`` line.

    :param line: one recording line.
    :return: whether the line's first item is the string ``"exit"``.
    """
    start = _first_item(line)
    return start >= 0 and line.startswith(_EXIT_TAG, start)


def iter_playable(lines: Iterable[bytes]) -> Iterator[bytes]:
    """
    Leave out the exit lines of a recording, so ``asciinema play`` can play it.

    asciinema 2.x reads every line after the header as ``[time, kind, text]``
    and fails on VibeTunnel's ``["exit", code, sessionId]``.

    :param lines: the lines of a recording.
    :return: the same lines, in order, except the exit lines.
    """
    for line in lines:
        if not is_exit_line(line):
            yield line


def parse_dimensions(data: str) -> tuple[int, int]:
    """
    Read the text of a resize event.

    :param data: ``"COLSxROWS"``, e.g. ``"80x24"``.
    :return: ``(cols, rows)``.
    :raises FormatError: if ``data`` is not two positive decimal integers
        joined by ``"x"``.
    """
    match = _SIZE.fullmatch(data)
    if match is None:
        raise FormatError(f"A size must look like COLSxROWS, not {data!r}")
    cols, rows = int(match.group(1)), int(match.group(2))
    if cols < 1 or rows < 1:
        raise FormatError(f"A size must be at least 1x1, not {data!r}")
    return cols, rows


def encode_size(cols: int, rows: int) -> str:
    """
    Write the text of a resize event.

    :param cols: the terminal's width in columns.
    :param rows: the terminal's height in rows.
    :return: ``"COLSxROWS"``, e.g. ``"80x24"``.
    :raises ValueError: if either is less than 1.
    """
    if cols < 1 or rows < 1:
        raise ValueError(f"A size must be at least 1x1, not {cols}x{rows}")
    return f"{cols}x{rows}"


class LineSplitter:
    """
    Cut a byte stream, read in chunks of any size, into lines.

    Bytes after the last newline are held until a later chunk ends their line.
    """

    def __init__(self) -> None:
        self._held: list[bytes] = []

    @property
    def pending(self) -> bytes:
        """
        The bytes held after the last complete line.
        """
        if len(self._held) > 1:
            self._held = [b"".join(self._held)]
        return self._held[0] if self._held else b""

    def feed(self, data: bytes) -> list[bytes]:
        """
        Take the next chunk of the stream.

        :param data: the next bytes of the stream.
        :return: the lines this chunk completes, each ending in ``b"\\n"``.
        """
        last = data.rfind(b"\n")
        if last < 0:
            if data:
                self._held.append(data)
            return []
        block = data[: last + 1]
        if self._held:
            self._held.append(block)
            block = b"".join(self._held)
        rest = data[last + 1 :]
        self._held = [rest] if rest else []
        lines = []
        start = 0
        end = block.find(b"\n")
        while end >= 0:
            lines.append(block[start : end + 1])
            start = end + 1
            end = block.find(b"\n", start)
        return lines


class OutputDecoder:
    """
    Decode a stream of UTF-8 read in chunks, for one stream of one session.

    A character split across two chunks comes out whole, with the chunk that
    completes it; bytes that are not UTF-8 become U+FFFD.
    """

    def __init__(self, held: bytes = b"") -> None:
        """
        :param held: the bytes of an unfinished character another decoder of the
            same stream held (its :attr:`held`): this one goes on from there.
        """
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._decoder.setstate((bytes(held), 0))

    @property
    def held(self) -> bytes:
        """The bytes of a character begun but not finished (at most three)."""
        return bytes(self._decoder.getstate()[0])

    def decode(self, data: bytes) -> str:
        """
        Decode the next chunk of the stream.

        :param data: the next bytes of the stream.
        :return: the text of every character this chunk completes.
        """
        return self._decoder.decode(data)

    def flush(self) -> str:
        """
        End the stream.

        :return: U+FFFD for a character left incomplete at the end, or ``""``.
        """
        return self._decoder.decode(b"", final=True)


class ClearDetector:
    """
    Spot :obj:`CLEAR_SCROLLBACK` in a session's output text, read in pieces.

    Only the last few characters are kept between pieces, enough to complete a
    sequence split across them.
    """

    _KEEP = len(CLEAR_SCROLLBACK) - 1

    def __init__(self, tail: str = "") -> None:
        """
        :param tail: the :attr:`tail` of another detector of the same output:
            this one goes on from there.
        """
        self._tail = tail[-self._KEEP :] if tail else ""

    @property
    def tail(self) -> str:
        """The last characters seen, which a clear split across pieces may start in."""
        return self._tail

    def feed(self, text: str) -> int:
        """
        Take the next piece of output.

        The sequence cannot overlap itself, so the counts of all pieces add up
        to ``str.count`` of the whole output.

        :param text: the next piece of the output.
        :return: how many clears this piece completes; true if any.
        """
        keep = self._KEEP
        # Only a clear that starts in the held tail and ends in this text can
        # be in the seam: the tail and text[:keep] are each too short for one.
        count = (self._tail + text[:keep]).count(CLEAR_SCROLLBACK)
        count += text.count(CLEAR_SCROLLBACK)
        if len(text) >= keep:
            self._tail = text[-keep:]
        else:
            self._tail = (self._tail + text)[-keep:]
        return count
