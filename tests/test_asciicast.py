"""Tests for L{vibetwist.model.asciicast}."""

import json
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.errors import FormatError
from vibetwist.model import asciicast
from vibetwist.model.asciicast import (
    CLEAR_SCROLLBACK,
    ClearDetector,
    Event,
    Exit,
    Header,
    LineSplitter,
    OutputDecoder,
    encode_event,
    encode_exit,
    encode_header,
    encode_size,
    iter_playable,
    parse_dimensions,
    parse_line,
    zero_time,
)


def parse_with_json(line: bytes) -> object:
    """
    A recording line read with the json module alone: what L{parse_line} must
    return (or raise) for it.
    """
    body = line[:-1] if line.endswith(b"\n") else line
    if b"\n" in body:
        raise FormatError("newline")
    return asciicast._parse_slowly(body)


# Text that exercises JSON escaping: control characters, quotes, backslashes,
# characters beyond the BMP and the separators JavaScript treats as newlines.
tricky_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from('"\\/\x00\x1b\x7f\n\r\t\b\f\u2028\u2029\ufeff\U0001f600'),
    )
)
times = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
kinds = st.one_of(st.sampled_from(["o", "i", "r", "m"]), tricky_text)
headers = st.builds(
    Header,
    width=st.integers(min_value=1, max_value=10_000),
    height=st.integers(min_value=1, max_value=10_000),
    timestamp=st.integers(min_value=0, max_value=2**40),
    command=tricky_text,
    title=tricky_text,
    env=st.dictionaries(tricky_text, tricky_text, max_size=5),
)
cuts = st.lists(st.integers(min_value=0), max_size=20)


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    """
    Cut C{data} into chunks at the given points (taken modulo its length + 1).
    """
    edges = sorted(point % (len(data) + 1) for point in points)
    starts = [0, *edges]
    ends = [*edges, len(data)]
    return [data[start:end] for start, end in zip(starts, ends)]


def split_text_at(text: str, points: Iterable[int]) -> list[str]:
    """
    Cut C{text} into pieces at the given points (taken modulo its length + 1).
    """
    edges = sorted(point % (len(text) + 1) for point in points)
    starts = [0, *edges]
    ends = [*edges, len(text)]
    return [text[start:end] for start, end in zip(starts, ends)]


class EncodeHeaderTests(SynchronousTestCase):
    """
    L{encode_header} writes the first line of a recording.
    """

    def test_bytes(self) -> None:
        """
        The header is one compact JSON object with its keys in the order
        version, width, height, timestamp, command, title, env, ending in a
        newline.
        """
        header = Header(
            width=80,
            height=24,
            timestamp=1700000000,
            command="bash -l",
            title="bash ~/src",
            env={"TERM": "xterm-256color", "SHELL": "/bin/bash"},
        )
        self.assertEqual(
            encode_header(header),
            b'{"version":2,"width":80,"height":24,"timestamp":1700000000,'
            b'"command":"bash -l","title":"bash ~/src",'
            b'"env":{"TERM":"xterm-256color","SHELL":"/bin/bash"}}\n',
        )

    def test_defaults(self) -> None:
        """
        A header made with only its size and timestamp has an empty command,
        title and env.
        """
        self.assertEqual(
            encode_header(Header(width=1, height=2, timestamp=3)),
            b'{"version":2,"width":1,"height":2,"timestamp":3,"command":"","title":"","env":{}}\n',
        )

    def test_utf8(self) -> None:
        """
        Non-ASCII text is written as UTF-8, not as C{\\u} escapes.
        """
        line = encode_header(Header(80, 24, 0, title="café ✓"))
        self.assertIn(b'"title":"caf\xc3\xa9 \xe2\x9c\x93"', line)

    @given(headers)
    def test_round_trip(self, header: Header) -> None:
        """
        L{parse_line} reads back the header L{encode_header} wrote, for any
        text in its command, title and env.
        """
        line = encode_header(header)
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(parse_line(line), header)


class HeaderTests(SynchronousTestCase):
    """
    L{Header} is an immutable value.
    """

    def test_env_read_only(self) -> None:
        """
        A header's env cannot be changed, even through the dict it was made
        from.
        """
        env = {"TERM": "xterm"}
        header = Header(80, 24, 0, env=env)
        env["TERM"] = "dumb"
        self.assertEqual(header.env, {"TERM": "xterm"})
        with self.assertRaises(TypeError):
            header.env["TERM"] = "dumb"  # type: ignore[index]

    def test_hash(self) -> None:
        """
        Equal headers hash alike, env and all.
        """
        one = Header(80, 24, 0, env={"TERM": "xterm"})
        other = Header(80, 24, 0, env={"TERM": "xterm"})
        self.assertEqual(one, other)
        self.assertEqual(hash(one), hash(other))
        self.assertNotEqual(one, Header(80, 24, 0, env={"TERM": "dumb"}))


class EncodeEventTests(SynchronousTestCase):
    """
    L{encode_event} writes one timed event.
    """

    def test_bytes(self) -> None:
        """
        An event is a compact JSON array of time, kind and text, ending in a
        newline; control characters are escaped and the time is rounded to
        microseconds.
        """
        self.assertEqual(
            encode_event(0.1234564, "o", 'hi\x1b[0m\r\n"\\'),
            b'[0.123456,"o","hi\\u001b[0m\\r\\n\\"\\\\"]\n',
        )

    def test_utf8(self) -> None:
        """
        Non-ASCII text, including characters beyond the BMP, is written as
        UTF-8.
        """
        self.assertEqual(
            encode_event(1, "o", "é\U0001f600"),
            b'[1,"o","\xc3\xa9\xf0\x9f\x98\x80"]\n',
        )

    def test_time_format(self) -> None:
        """
        Times are written with at most six decimals, without trailing zeros
        and never with an exponent.
        """
        for time, written in [
            (0, b"0"),
            (0.0, b"0"),
            (3.0, b"3"),
            (12.5, b"12.5"),
            (1e-6, b"0.000001"),
            (1e-7, b"0"),
            (0.9999996, b"1"),
            (1e20, b"100000000000000000000"),
            (123456.654321, b"123456.654321"),
        ]:
            with self.subTest(time=time):
                self.assertEqual(encode_event(time, "o", ""), b"[" + written + b',"o",""]\n')

    def test_bad_time(self) -> None:
        """
        A negative, infinite or NaN time is a C{ValueError}.
        """
        for time in [-1.0, -1e-9, float("inf"), float("nan")]:
            with self.subTest(time=time):
                self.assertRaises(ValueError, encode_event, time, "o", "x")

    def test_lone_surrogate(self) -> None:
        """
        A lone surrogate does not crash the encoder: it is written as a JSON
        escape and read back as the same text.
        """
        line = encode_event(2, "o", "a\ud800b\\\udfff")
        self.assertEqual(line, b'[2,"o","a\\ud800b\\\\\\udfff"]\n')
        self.assertEqual(parse_line(line), Event(2.0, "o", "a\ud800b\\\udfff"))

    @given(times, kinds, tricky_text)
    def test_round_trip(self, time: float, kind: str, data: str) -> None:
        """
        L{parse_line} reads back any event L{encode_event} wrote, with its time
        rounded to microseconds, on one line of UTF-8 without an exponent.
        """
        line = encode_event(time, kind, data)
        self.assertEqual(line.count(b"\n"), 1)
        self.assertTrue(line.endswith(b"\n"))
        self.assertNotIn(b"e", line[: line.index(b",")].lower())
        self.assertEqual(parse_line(line), Event(round(time, 6), kind, data))


class EncodeExitTests(SynchronousTestCase):
    """
    L{encode_exit} writes VibeTunnel's closing line.
    """

    def test_bytes(self) -> None:
        """
        The exit line is C{["exit",code,"id"]} and a newline.
        """
        self.assertEqual(encode_exit(0, "abc-1"), b'["exit",0,"abc-1"]\n')
        self.assertEqual(encode_exit(137, "x"), b'["exit",137,"x"]\n')

    def test_unknown_code(self) -> None:
        """
        An unknown exit code is written as C{null}.
        """
        self.assertEqual(encode_exit(None, "abc"), b'["exit",null,"abc"]\n')

    @given(st.one_of(st.none(), st.integers()), tricky_text)
    def test_round_trip(self, code: int | None, session_id: str) -> None:
        """
        L{parse_line} reads back any exit line L{encode_exit} wrote.
        """
        self.assertEqual(parse_line(encode_exit(code, session_id)), Exit(code, session_id))


class ParseLineTests(SynchronousTestCase):
    """
    L{parse_line} reads one line of a recording.
    """

    def test_header(self) -> None:
        """
        A header line becomes a L{Header}.
        """
        self.assertEqual(
            parse_line(
                b'{"version":2,"width":80,"height":24,"timestamp":1700000000,'
                b'"command":"bash","title":"t","env":{"TERM":"xterm"}}\n'
            ),
            Header(80, 24, 1700000000, "bash", "t", {"TERM": "xterm"}),
        )

    def test_header_minimal(self) -> None:
        """
        A header needs only version, width and height: the timestamp defaults
        to 0 and command, title and env to empty, whether missing or null.
        """
        expected = Header(80, 24, 0)
        self.assertEqual(parse_line(b'{"version":2,"width":80,"height":24}'), expected)
        self.assertEqual(
            parse_line(
                b'{"version":2,"width":80,"height":24,"timestamp":null,'
                b'"command":null,"title":null,"env":null}'
            ),
            expected,
        )

    def test_header_other_fields(self) -> None:
        """
        Header fields this reader does not know, such as C{duration} or
        C{theme}, are ignored.
        """
        self.assertEqual(
            parse_line(
                b'{"version":2,"width":80,"height":24,"timestamp":5,'
                b'"duration":1.5,"idle_time_limit":2,"theme":{"fg":"#fff"}}\n'
            ),
            Header(80, 24, 5),
        )

    def test_event(self) -> None:
        """
        An event line becomes an L{Event}, with or without its newline and
        with an integer or fractional time.
        """
        self.assertEqual(parse_line(b'[1.5,"o","hi"]\n'), Event(1.5, "o", "hi"))
        self.assertEqual(parse_line(b'[1.5,"o","hi"]'), Event(1.5, "o", "hi"))
        self.assertEqual(parse_line(b'[2,"i","x"]\n'), Event(2.0, "i", "x"))
        self.assertEqual(parse_line(b'[ 0 , "r" , "80x24" ]'), Event(0.0, "r", "80x24"))

    def test_event_time_is_float(self) -> None:
        """
        An event's time is a float even when the line holds an integer.
        """
        # The reprs differ if the time is 2 rather than 2.0.
        self.assertEqual(repr(parse_line(b'[2,"o","x"]')), repr(Event(2.0, "o", "x")))

    def test_event_unknown_kind(self) -> None:
        """
        Events of kinds other than output, input, resize and marker are kept.
        """
        self.assertEqual(parse_line(b'[3,"x-custom",""]'), Event(3.0, "x-custom", ""))

    def test_exit(self) -> None:
        """
        An exit line becomes an L{Exit}, its code an integer or L{None}.
        """
        self.assertEqual(parse_line(b'["exit",0,"abc"]\n'), Exit(0, "abc"))
        self.assertEqual(parse_line(b'["exit",null,"abc"]'), Exit(None, "abc"))
        self.assertEqual(parse_line(b'["exit",-1,"abc"]'), Exit(-1, "abc"))

    def test_bad_lines(self) -> None:
        """
        Anything but a header, event or exit line is a L{FormatError}: bad
        UTF-8, bad JSON, non-standard numbers, and wrong shapes or types.
        """
        bad = [
            b"",
            b"\n",
            b"not json\n",
            b'[1,"o","x"',
            b'[1,"o","x"]\n[2,"o","y"]\n',
            b'[1,"o","\xc3"]\n',
            b"\xff\xfe[]",
            b'\xef\xbb\xbf[1,"o","x"]',
            b"42",
            b'"text"',
            b"null",
            b"true",
            b"[]",
            b'[1,"o"]',
            b'[1,"o","x","y"]',
            b'["1","o","x"]',
            b'[true,"o","x"]',
            b'[null,"o","x"]',
            b'[-1,"o","x"]',
            b'[NaN,"o","x"]',
            b'[Infinity,"o","x"]',
            b'[-Infinity,"o","x"]',
            b'[1e400,"o","x"]',
            b"[" + b"9" * 400 + b',"o","x"]',
            b"[" + b"9" * 5000 + b',"o","x"]',
            b'[1,2,"x"]',
            b'[1,"o",3]',
            b'[1,"o",null]',
            b'[1,"o",["x"]]',
            b'["exit","0","id"]',
            b'["exit",true,"id"]',
            b'["exit",1.5,"id"]',
            b'["exit",0,5]',
            b'["exit",0]',
            b'["exit",0,"id",1]',
            b"{}",
            b'{"version":1,"width":80,"height":24}',
            b'{"version":"2","width":80,"height":24}',
            b'{"version":2.0,"width":80,"height":24}',
            b'{"version":true,"width":80,"height":24}',
            b'{"version":2,"height":24}',
            b'{"version":2,"width":80}',
            b'{"version":2,"width":"80","height":24}',
            b'{"version":2,"width":80.0,"height":24}',
            b'{"version":2,"width":true,"height":24}',
            b'{"version":2,"width":0,"height":24}',
            b'{"version":2,"width":80,"height":-1}',
            b'{"version":2,"width":80,"height":24,"timestamp":"now"}',
            b'{"version":2,"width":80,"height":24,"timestamp":1.5}',
            b'{"version":2,"width":80,"height":24,"command":["bash"]}',
            b'{"version":2,"width":80,"height":24,"title":1}',
            b'{"version":2,"width":80,"height":24,"env":[]}',
            b'{"version":2,"width":80,"height":24,"env":{"TERM":null}}',
            b"[" * 100_000 + b"]" * 100_000,
        ]
        for line in bad:
            with self.subTest(line=line[:60]):
                self.assertRaises(FormatError, parse_line, line)

    @given(st.binary())
    def test_any_bytes(self, line: bytes) -> None:
        """
        For any bytes, L{parse_line} returns a value or raises L{FormatError},
        never another exception.
        """
        try:
            parse_line(line)
        except FormatError:
            pass

    @given(
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), tricky_text),
            lambda children: st.one_of(
                st.lists(children, max_size=4),
                st.dictionaries(tricky_text, children, max_size=4),
            ),
        )
    )
    def test_any_json(self, value: object) -> None:
        """
        For any JSON value, L{parse_line} returns a value or raises
        L{FormatError}, never another exception.
        """
        line = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        try:
            parse_line(line)
        except FormatError:
            pass

    @given(
        st.fixed_dictionaries(
            {
                "version": st.just(2),
                "width": st.one_of(st.integers(), st.floats(), st.booleans()),
                "height": st.one_of(st.integers(), st.text()),
            },
            optional={
                "timestamp": st.one_of(st.none(), st.integers(), st.floats()),
                "command": st.one_of(st.none(), st.text(), st.integers()),
                "title": st.one_of(st.none(), st.text()),
                "env": st.one_of(
                    st.none(),
                    st.lists(st.text()),
                    st.dictionaries(st.text(), st.one_of(st.text(), st.integers())),
                ),
            },
        )
    )
    def test_any_header(self, fields: dict[str, object]) -> None:
        """
        For any header-like object, L{parse_line} returns a L{Header} or raises
        L{FormatError}, never another exception.
        """
        line = json.dumps(fields).encode("utf-8")
        try:
            header = parse_line(line)
        except FormatError:
            pass
        else:
            self.assertIsInstance(header, Header)


class LineSplitterTests(SynchronousTestCase):
    """
    L{LineSplitter} cuts a stream read in chunks into lines.
    """

    def test_lines(self) -> None:
        """
        Complete lines come out with their newlines; the rest is held as
        C{pending} until a later chunk completes it.
        """
        splitter = LineSplitter()
        self.assertEqual(splitter.feed(b"one\ntw"), [b"one\n"])
        self.assertEqual(splitter.pending, b"tw")
        self.assertEqual(splitter.feed(b"o"), [])
        self.assertEqual(splitter.pending, b"two")
        self.assertEqual(splitter.feed(b"\n\nthree\n"), [b"two\n", b"\n", b"three\n"])
        self.assertEqual(splitter.pending, b"")

    def test_empty(self) -> None:
        """
        An empty chunk completes nothing and changes nothing.
        """
        splitter = LineSplitter()
        self.assertEqual(splitter.feed(b""), [])
        self.assertEqual(splitter.pending, b"")
        splitter.feed(b"x")
        self.assertEqual(splitter.feed(b""), [])
        self.assertEqual(splitter.pending, b"x")

    def test_only_newline(self) -> None:
        """
        Only C{b"\\n"} ends a line; a carriage return is part of the line.
        """
        self.assertEqual(LineSplitter().feed(b"a\rb\r\nc\n"), [b"a\rb\r\n", b"c\n"])

    @given(st.binary(), cuts)
    def test_any_chunking(self, data: bytes, points: list[int]) -> None:
        """
        However a stream is cut into chunks, the same lines come out and the
        same bytes are left pending.
        """
        whole = data + b"\n" + data
        splitter = LineSplitter()
        lines = []
        for chunk in split_at(whole, points):
            lines.extend(splitter.feed(chunk))
        expected = whole.split(b"\n")
        self.assertEqual(lines, [line + b"\n" for line in expected[:-1]])
        self.assertEqual(splitter.pending, expected[-1])


class OutputDecoderTests(SynchronousTestCase):
    """
    L{OutputDecoder} decodes a stream of UTF-8 read in chunks.
    """

    def test_split_character(self) -> None:
        """
        A character split across chunks comes out whole with the chunk that
        completes it.
        """
        decoder = OutputDecoder()
        data = "é€\U0001f600".encode()
        self.assertEqual(decoder.decode(data[:1]), "")
        self.assertEqual(decoder.decode(data[1:4]), "é")
        self.assertEqual(decoder.decode(data[4:7]), "€")
        self.assertEqual(decoder.decode(data[7:]), "\U0001f600")
        self.assertEqual(decoder.flush(), "")

    def test_invalid(self) -> None:
        """
        Bytes that are not UTF-8 become U+FFFD, as does a character left
        incomplete when the stream ends.
        """
        decoder = OutputDecoder()
        self.assertEqual(decoder.decode(b"a\xffb\xe2\x82"), "a\ufffdb")
        self.assertEqual(decoder.flush(), "\ufffd")

    @given(st.binary(), cuts)
    def test_any_chunking(self, data: bytes, points: list[int]) -> None:
        """
        However bytes are cut into chunks, the decoder gives the same text as
        decoding them at once with C{errors="replace"}.
        """
        decoder = OutputDecoder()
        text = "".join(decoder.decode(chunk) for chunk in split_at(data, points))
        text += decoder.flush()
        self.assertEqual(text, data.decode("utf-8", "replace"))

    @given(tricky_text, cuts)
    def test_any_chunking_utf8(self, original: str, points: list[int]) -> None:
        """
        However valid UTF-8 is cut into chunks, the decoder gives back the
        original text.
        """
        decoder = OutputDecoder()
        data = original.encode("utf-8")
        text = "".join(decoder.decode(chunk) for chunk in split_at(data, points))
        self.assertEqual(text + decoder.flush(), original)

    @given(st.binary(), cuts)
    def test_handed_over_between_chunks(self, data: bytes, points: list[int]) -> None:
        """
        A new decoder made from another's C{held} bytes after any chunk goes on
        as the first would have: the text is the same as decoding at once.
        """
        decoder = OutputDecoder()
        text = ""
        for chunk in split_at(data, points):
            text += decoder.decode(chunk)
            self.assertLessEqual(len(decoder.held), 3)
            decoder = OutputDecoder(decoder.held)
        self.assertEqual(text + decoder.flush(), data.decode("utf-8", "replace"))


class ClearDetectorTests(SynchronousTestCase):
    """
    L{ClearDetector} spots the clear-scrollback sequence in output pieces.
    """

    def test_whole(self) -> None:
        """
        A clear within one piece is found.
        """
        detector = ClearDetector()
        self.assertEqual(detector.feed("ab"), 0)
        self.assertEqual(detector.feed("x\x1b[H\x1b[2J\x1b[3Jy"), 1)
        self.assertEqual(detector.feed("z"), 0)

    def test_split(self) -> None:
        """
        A clear split across pieces counts in the piece that completes it.
        """
        detector = ClearDetector()
        self.assertEqual(
            [detector.feed(piece) for piece in ["a\x1b", "[", "3", "J", "b"]],
            [0, 0, 0, 1, 0],
        )

    def test_no_false_clear(self) -> None:
        """
        Pieces that each hold part of the sequence, but not in order, hold no
        clear.
        """
        detector = ClearDetector()
        self.assertEqual(
            [detector.feed(piece) for piece in ["\x1b[3", "x", "J", "\x1b[", "J"]],
            [0, 0, 0, 0, 0],
        )

    def test_several(self) -> None:
        """
        Each clear a piece completes counts once.
        """
        detector = ClearDetector()
        self.assertEqual(detector.feed("\x1b[3"), 0)
        self.assertEqual(detector.feed("J\x1b[3J\x1b[3Jx\x1b"), 3)

    @given(
        st.lists(
            st.sampled_from(
                [
                    CLEAR_SCROLLBACK,
                    "\x1b",
                    "[",
                    "3",
                    "J",
                    "\x1b[",
                    "[3J",
                    "3J",
                    "a",
                    "é",
                ]
            )
        ).map("".join),
        cuts,
    )
    def test_any_split(self, text: str, points: list[int]) -> None:
        """
        However text is cut into pieces, the counts add up to
        C{text.count(CLEAR_SCROLLBACK)}.
        """
        detector = ClearDetector()
        counts = [detector.feed(piece) for piece in split_text_at(text, points)]
        self.assertEqual(sum(counts), text.count(CLEAR_SCROLLBACK))

    @given(
        st.lists(
            st.sampled_from(
                [
                    CLEAR_SCROLLBACK,
                    "\x1b",
                    "[",
                    "3",
                    "J",
                    "\x1b[",
                    "[3J",
                    "3J",
                    "a",
                    "é",
                ]
            )
        ).map("".join),
        cuts,
    )
    def test_handed_over_between_pieces(self, text: str, points: list[int]) -> None:
        """
        A new detector made from another's C{tail} after any piece counts as the
        first would have: the counts add up to C{text.count(CLEAR_SCROLLBACK)}.
        """
        detector = ClearDetector()
        total = 0
        for piece in split_text_at(text, points):
            total += detector.feed(piece)
            detector = ClearDetector(detector.tail)
        self.assertEqual(total, text.count(CLEAR_SCROLLBACK))

    def test_handed_over_mid_sequence(self) -> None:
        """
        A detector made from another's C{tail} completes a clear the other began.
        """
        detector = ClearDetector()
        self.assertEqual(detector.feed("a\x1b[3"), 0)
        self.assertEqual(ClearDetector(detector.tail).feed("Jb"), 1)


class ZeroTimeTests(SynchronousTestCase):
    """
    L{zero_time} gives an event line the time 0.
    """

    def test_event(self) -> None:
        """
        An event line's time becomes C{0} and nothing else changes.
        """
        self.assertEqual(zero_time(b'[12.345678,"o","a,b"]\n'), b'[0,"o","a,b"]\n')
        self.assertEqual(zero_time(b'[ 7 ,"o","x"]'), b'[ 0,"o","x"]')

    def test_other_lines(self) -> None:
        """
        Header and exit lines, and lines that are not events, are left as they
        are.
        """
        for line in [
            encode_header(Header(80, 24, 1700000000)),
            encode_exit(0, "abc"),
            b'["exit",0,"abc"]',
            b"",
            b"[",
            b"[1",
            b"[]",
            b"\n",
        ]:
            with self.subTest(line=line):
                self.assertEqual(zero_time(line), line)

    @given(times, kinds, tricky_text)
    def test_round_trip(self, time: float, kind: str, data: str) -> None:
        """
        An event line with its time zeroed parses to the same event at time 0.
        """
        line = zero_time(encode_event(time, kind, data))
        self.assertEqual(parse_line(line), Event(0.0, kind, data))


class IterPlayableTests(SynchronousTestCase):
    """
    L{iter_playable} makes a recording that C{asciinema play} accepts.
    """

    def test_drops_exit(self) -> None:
        """
        Exit lines are left out; the header and every event stay, in order.
        """
        lines = [
            encode_header(Header(80, 24, 0)),
            encode_event(0.5, "o", "exit"),
            encode_event(1, "r", "100x30"),
            encode_event(1.5, "i", '["exit"'),
            encode_exit(0, "abc"),
            b' [ "exit" , 1 , "abc" ]',
        ]
        self.assertEqual(list(iter_playable(lines)), lines[:4])

    def test_lazy(self) -> None:
        """
        L{iter_playable} reads lines only as they are asked for.
        """
        lines = iter([b'[1,"o","x"]\n', b'[2,"o","y"]\n'])
        playable = iter_playable(lines)
        self.assertEqual(next(playable), b'[1,"o","x"]\n')
        self.assertEqual(next(lines), b'[2,"o","y"]\n')

    @given(
        st.lists(
            st.one_of(
                headers.map(encode_header),
                st.builds(encode_event, times, kinds, tricky_text),
                st.builds(encode_exit, st.one_of(st.none(), st.integers()), tricky_text),
            )
        )
    )
    def test_only_exit_dropped(self, lines: list[bytes]) -> None:
        """
        Of any recording's lines, exactly those that parse to an L{Exit} are
        left out.
        """
        self.assertEqual(
            list(iter_playable(lines)),
            [line for line in lines if not isinstance(parse_line(line), Exit)],
        )


class SizeTests(SynchronousTestCase):
    """
    L{parse_dimensions} and L{encode_size} read and write resize events' text.
    """

    def test_parse(self) -> None:
        """
        C{"COLSxROWS"} is read as C{(cols, rows)}.
        """
        self.assertEqual(parse_dimensions("80x24"), (80, 24))
        self.assertEqual(parse_dimensions("1x1"), (1, 1))

    def test_encode(self) -> None:
        """
        C{(cols, rows)} is written as C{"COLSxROWS"}.
        """
        self.assertEqual(encode_size(132, 43), "132x43")

    def test_encode_bad(self) -> None:
        """
        A size below 1x1 is a C{ValueError}.
        """
        self.assertRaises(ValueError, encode_size, 0, 24)
        self.assertRaises(ValueError, encode_size, 80, -1)

    def test_parse_bad(self) -> None:
        """
        Anything but two positive decimal integers joined by C{"x"} is a
        L{FormatError}.
        """
        for data in [
            "",
            "80",
            "80x",
            "x24",
            "80X24",
            "80*24",
            " 80x24",
            "80x24\n",
            "80x24x1",
            "-80x24",
            "+80x24",
            "0x24",
            "80x0",
            "8.0x24",
            "\u0668\u0660x24",
            "1" * 5000 + "x24",
        ]:
            with self.subTest(data=data[:20]):
                self.assertRaises(FormatError, parse_dimensions, data)

    @given(
        st.integers(min_value=1, max_value=10**9 - 1),
        st.integers(min_value=1, max_value=10**9 - 1),
    )
    def test_round_trip(self, cols: int, rows: int) -> None:
        """
        L{parse_dimensions} reads back any size L{encode_size} wrote.
        """
        self.assertEqual(parse_dimensions(encode_size(cols, rows)), (cols, rows))


def encode_event_with_json(time: float, kind: str, data: str) -> bytes:
    """
    An event line written with the json module alone: what L{encode_event}
    must write byte for byte.
    """
    stamp = f"{time:.6f}".rstrip("0").rstrip(".")
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    return f"[{stamp},{encoder.encode(kind)},{encoder.encode(data)}]\n".encode("utf-8", "backslashreplace")


def parsed_or_error(line: bytes, parse: object) -> object:
    """
    What C{parse(line)} returns, or the L{FormatError} class if it raises one.
    """
    try:
        return parse(line)  # type: ignore[operator]
    except FormatError:
        return FormatError


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63 - 2, max_value=2**66),
        st.floats(),
        tricky_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(tricky_text, children, max_size=4),
    ),
)


class JSONModuleEquivalenceTests(SynchronousTestCase):
    """
    Lines are written and read with orjson where it can, with the json
    module where it cannot; either way they are the json module's lines and
    values.
    """

    @given(times, kinds, tricky_text)
    def test_encode_same_bytes(self, time: float, kind: str, data: str) -> None:
        """
        L{encode_event} writes the bytes the json module writes, for any text
        (lone surrogates included).
        """
        self.assertEqual(encode_event(time, kind, data), encode_event_with_json(time, kind, data))

    def test_encode_escapes(self) -> None:
        """
        Control characters, quotes and backslashes are escaped as the json
        module does; DEL, U+2028 and non-ASCII text are written as themselves.
        """
        data = '\x00\x1b\x1f"\\\b\f\n\r\t\x7f\u2028é\U0001f600/'
        self.assertEqual(
            encode_event(1, "o", data),
            b'[1,"o","\\u0000\\u001b\\u001f\\"\\\\\\b\\f\\n\\r\\t\x7f\xe2\x80\xa8\xc3\xa9\xf0\x9f\x98\x80/"]\n',
        )

    @given(st.one_of(times, st.integers(min_value=0, max_value=2**70)), kinds, tricky_text)
    def test_parse_events_as_json_does(self, time: float, kind: str, data: str) -> None:
        """
        Any event line, however its time is written (a float, an integer past
        64 bits), is read as the json module reads it.
        """
        line = json.dumps([time, kind, data], ensure_ascii=False).encode("utf-8", "surrogatepass")
        self.assertEqual(parsed_or_error(line, parse_line), parsed_or_error(line, parse_with_json))

    @given(json_values)
    def test_parse_any_json_as_json_does(self, value: object) -> None:
        """
        Any JSON value gives what the json module gives: the same header, event
        or exit, or a L{FormatError} for both.
        """
        line = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        self.assertEqual(parsed_or_error(line, parse_line), parsed_or_error(line, parse_with_json))

    @given(st.binary())
    def test_parse_any_bytes_as_json_does(self, line: bytes) -> None:
        """
        Any bytes give what the json module gives.
        """
        self.assertEqual(parsed_or_error(line, parse_line), parsed_or_error(line, parse_with_json))

    def test_parse_edges(self) -> None:
        """
        Lines where orjson and the json module differ on their own are read as
        the json module reads them.
        """
        for line in [
            b'[1e400,"o","x"]',
            b'[NaN,"o","x"]',
            b'[Infinity,"o","x"]',
            b'[1,"o","\\ud800"]',
            b'["exit",123456789012345678901234567890,"x"]',
            b'{"version":2,"width":80,"height":18446744073709551617}',
            b"[" + b"9" * 400 + b',"o","x"]',
            b'[-0.0,"o","x"]',
            b'\xef\xbb\xbf[1,"o","x"]',
            b' [1 , "o" , "x"] ',
            b'[1,"o","\xff"]',
        ]:
            with self.subTest(line=line[:60]):
                self.assertEqual(parsed_or_error(line, parse_line), parsed_or_error(line, parse_with_json))
