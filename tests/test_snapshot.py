"""Tests for L{vibetwist.model.snapshot}: the binary screen snapshot and /buffers frame."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.snapshots import bytesValues, header, snapshots
from vibetwist.errors import FormatError
from vibetwist.model.snapshot import (
    BLANK,
    BOLD,
    DIM,
    INVERSE,
    INVISIBLE,
    ITALIC,
    MAX_ROWS,
    RGB,
    STRIKETHROUGH,
    UNDERLINE,
    Cell,
    Snapshot,
    decode,
    decode_buffers_frame,
    encode,
    encode_buffers_frame,
    trimmed,
)


def one_row(*cells: Cell) -> Snapshot:
    """An 80-column snapshot of one row holding C{cells}."""
    return Snapshot(cols=80, rows=(cells,))


def encoded_cells(*cells: Cell) -> bytes:
    """The bytes that encode C{cells}, without the header and row marker."""
    data = encode(one_row(*cells))
    prefix = header(1) + b"\xfd" + len(cells).to_bytes(2, "little")
    if not data.startswith(prefix):
        raise AssertionError(f"{data!r} does not start with {prefix!r}")
    return data[len(prefix) :]


class HeaderTests(SynchronousTestCase):
    """The 28-byte little-endian snapshot header."""

    def test_layout(self) -> None:
        """
        The header is magic 0x5654, version 1, flags 0, cols, row count,
        viewportY, cursorX, cursorY and a reserved 0, all little-endian.
        """
        snapshot = Snapshot(
            cols=0x01020304,
            rows=((Cell("a"),),),
            viewport_y=-2,
            cursor_x=3,
            cursor_y=258,
        )
        self.assertEqual(
            encode(snapshot),
            bytes.fromhex("5456 01 000403020101000000feffffff030000000201000000000000fd 0100 01 61"),
        )

    def test_decodeHeader(self) -> None:
        """decode() reads cols, viewportY, cursorX and cursorY from the header."""
        data = bytes.fromhex("5456 01 00 50000000 01000000 0a000000 ffffffff 05000000 00000000 fe01")
        self.assertEqual(
            decode(data),
            Snapshot(cols=80, rows=((),), viewport_y=10, cursor_x=-1, cursor_y=5),
        )

    def test_flagsAndReservedIgnored(self) -> None:
        """decode() ignores the flags byte and the reserved field."""
        data = bytearray(header(1) + b"\xfe\x01")
        data[3] = 0x80
        data[24:28] = b"\xff\xff\xff\xff"
        self.assertEqual(decode(bytes(data)), Snapshot(cols=80, rows=((),)))


class CellEncodingTests(SynchronousTestCase):
    """The bytes of single cells."""

    def test_blank(self) -> None:
        """A blank cell between two others is the single byte 0x00."""
        self.assertEqual(
            encoded_cells(Cell("a"), BLANK, Cell("b")),
            b"\x01a\x00\x01b",
        )

    def test_blankByValue(self) -> None:
        """Any cell equal to BLANK, not only the BLANK object, is 0x00."""
        self.assertEqual(
            encoded_cells(Cell("a"), Cell(" ", None, None, 0), Cell("b")),
            b"\x01a\x00\x01b",
        )

    def test_ascii(self) -> None:
        """A plain ASCII character is type 0x01 followed by its byte."""
        self.assertEqual(encoded_cells(Cell("~")), b"\x01~")

    def test_controlCharacterIsAscii(self) -> None:
        """An ASCII control character is still one ASCII byte."""
        self.assertEqual(encoded_cells(Cell("\x00")), b"\x01\x00")

    def test_colouredSpace(self) -> None:
        """A space with a background is kind 0 with the extended and has-background bits,
        then an attribute byte of 0 and the background."""
        self.assertEqual(encoded_cells(Cell(" ", bg=4)), b"\x90\x00\x04")

    def test_spaceWithEverything(self) -> None:
        """
        A space with attributes and colours is kind 0 with the extended,
        foreground, foreground-RGB and background bits, then attributes,
        foreground and background.
        """
        cell = Cell(" ", fg=RGB(1, 2, 3), bg=7, attrs=BOLD | UNDERLINE)
        self.assertEqual(encoded_cells(cell), bytes.fromhex("b8 05 010203 07"))

    def test_wideCharacter(self) -> None:
        """A wide CJK character is one unicode cell: 0x42, length, UTF-8."""
        self.assertEqual(encoded_cells(Cell("中")), bytes.fromhex("42 03 e4b8ad"))

    def test_accentedCharacter(self) -> None:
        """A precomposed non-ASCII letter is a unicode cell."""
        self.assertEqual(encoded_cells(Cell("é")), bytes.fromhex("42 02 c3a9"))

    def test_combiningSequence(self) -> None:
        """A base letter with a combining mark is one unicode cell."""
        self.assertEqual(encoded_cells(Cell("e\u0301")), bytes.fromhex("42 03 65cc81"))

    def test_emoji(self) -> None:
        """An emoji outside the BMP is a unicode cell of four UTF-8 bytes."""
        self.assertEqual(encoded_cells(Cell("🙂")), bytes.fromhex("42 04 f09f9982"))

    def test_emojiSequence(self) -> None:
        """A zero-width-joiner emoji sequence is one cell with all its bytes."""
        family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
        raw = family.encode("utf-8")
        self.assertEqual(encoded_cells(Cell(family)), b"\x42" + bytes((len(raw),)) + raw)

    def test_paletteForeground(self) -> None:
        """A palette foreground is one byte after the character and an attribute byte of 0."""
        self.assertEqual(encoded_cells(Cell("x", fg=5)), bytes.fromhex("a1 78 00 05"))

    def test_paletteIndexZero(self) -> None:
        """Palette index 0 is a colour, distinct from the default."""
        self.assertEqual(encoded_cells(Cell("x", fg=0)), bytes.fromhex("a1 78 00 00"))

    def test_smallRGBIsRGB(self) -> None:
        """RGB(0, 0, 5) is flagged and sent as RGB, not as palette index 5."""
        self.assertEqual(encoded_cells(Cell("x", fg=RGB(0, 0, 5))), bytes.fromhex("a9 78 00 000005"))

    def test_rgbBackground(self) -> None:
        """An RGB background sets bits 4 and 2 and is three bytes."""
        self.assertEqual(encoded_cells(Cell("x", bg=RGB(255, 0, 128))), bytes.fromhex("95 78 00 ff0080"))

    def test_colourAlwaysAfterBit7(self) -> None:
        """Whenever a cell has a colour, bit 7 is set and the attribute byte is written,
        so a decoder that reads colours only after bit 7 (VibeTunnel's) reads the rest of
        the row right: here a coloured "x" without attributes, then a plain "y"."""
        self.assertEqual(
            encoded_cells(Cell("x", fg=2, bg=RGB(1, 2, 3)), Cell("y")),
            bytes.fromhex("b5 78 00 02 010203 01 79"),
        )

    def test_attributes(self) -> None:
        """Attributes set bit 7 and follow the character as one byte."""
        self.assertEqual(
            encoded_cells(Cell("A", attrs=BOLD | ITALIC | STRIKETHROUGH)),
            bytes.fromhex("81 41 43"),
        )

    def test_attributeBits(self) -> None:
        """The attribute bits have the values the protocol gives them."""
        self.assertEqual(
            [BOLD, ITALIC, UNDERLINE, DIM, INVERSE, INVISIBLE, STRIKETHROUGH],
            [1, 2, 4, 8, 0x10, 0x20, 0x40],
        )

    def test_fieldOrder(self) -> None:
        """A cell is type, character, attributes, foreground, background."""
        cell = Cell("中", fg=1, bg=RGB(9, 8, 7), attrs=INVERSE)
        self.assertEqual(encoded_cells(cell), bytes.fromhex("f6 03 e4b8ad 10 01 090807"))

    def test_longCharacterTruncated(self) -> None:
        """
        A character longer than 255 UTF-8 bytes is cut on a code point
        boundary: 200 two-byte letters become 127 (254 bytes).
        """
        data = encoded_cells(Cell("é" * 200))
        self.assertEqual(data[:2], b"\x42\xfe")
        self.assertEqual(data[2:], ("é" * 127).encode("utf-8"))

    def test_multipleAsciiCharacters(self) -> None:
        """A cell holding more than one ASCII character is a unicode cell."""
        self.assertEqual(encoded_cells(Cell("ab")), b"\x42\x02ab")


class TrimmingTests(SynchronousTestCase):
    """Blank cells and rows at the ends are left out of the encoding."""

    def test_trailingBlankCells(self) -> None:
        """Trailing blank cells of a row are not encoded."""
        snapshot = one_row(Cell("a"), BLANK, Cell(), BLANK)
        self.assertEqual(encode(snapshot), header(1) + b"\xfd\x01\x00\x01a")

    def test_trailingColouredSpaceKept(self) -> None:
        """A trailing space with a colour is content and is encoded."""
        snapshot = one_row(Cell("a"), Cell(" ", bg=1), BLANK)
        self.assertEqual(encode(snapshot), header(1) + b"\xfd\x02\x00\x01a\x90\x00\x01")

    def test_emptyRow(self) -> None:
        """A row with no content between others is 0xFE 0x01."""
        snapshot = Snapshot(cols=80, rows=((Cell("a"),), (BLANK, BLANK), (Cell("b"),)))
        self.assertEqual(
            encode(snapshot),
            header(3) + b"\xfd\x01\x00\x01a" + b"\xfe\x01" + b"\xfd\x01\x00\x01b",
        )

    def test_bottomRowsTrimmed(self) -> None:
        """Rows with no content at the bottom are not encoded or counted."""
        snapshot = Snapshot(cols=80, rows=((Cell("a"),), (BLANK,), ()))
        self.assertEqual(encode(snapshot), header(1) + b"\xfd\x01\x00\x01a")

    def test_atLeastOneRow(self) -> None:
        """A screen with no content still encodes one empty row."""
        snapshot = Snapshot(cols=80, rows=((BLANK,) * 80,) * 24)
        self.assertEqual(encode(snapshot), header(1) + b"\xfe\x01")

    def test_noRowsAtAll(self) -> None:
        """A snapshot with no rows encodes one empty row."""
        self.assertEqual(encode(Snapshot(cols=80, rows=())), header(1) + b"\xfe\x01")

    def test_trimmedRows(self) -> None:
        """trimmed() drops trailing blank cells and bottom empty rows."""
        snapshot = Snapshot(
            cols=80,
            rows=((BLANK, Cell("a"), BLANK), (BLANK,), (Cell("b"), BLANK), (BLANK,)),
            cursor_x=4,
        )
        self.assertEqual(
            trimmed(snapshot),
            Snapshot(cols=80, rows=((BLANK, Cell("a")), (), (Cell("b"),)), cursor_x=4),
        )

    def test_trimmedKeepsOneRow(self) -> None:
        """trimmed() of a screen with no content is one empty row."""
        self.assertEqual(
            trimmed(Snapshot(cols=3, rows=((BLANK,), ()))),
            Snapshot(cols=3, rows=((),)),
        )
        self.assertEqual(trimmed(Snapshot(cols=3, rows=())), Snapshot(cols=3, rows=((),)))

    def test_trimmedCutsLongCharacters(self) -> None:
        """trimmed() cuts characters to the 255 UTF-8 bytes that are sent."""
        self.assertEqual(
            trimmed(one_row(Cell("a" * 300, fg=3))),
            one_row(Cell("a" * 255, fg=3)),
        )


class DecodeTests(SynchronousTestCase):
    """decode() reads what encode() and VibeTunnel write."""

    def test_emptyRowRun(self) -> None:
        """0xFE N decodes to N empty rows."""
        data = header(4) + b"\xfe\x03" + b"\xfd\x01\x00\x01a"
        self.assertEqual(decode(data), Snapshot(cols=80, rows=((), (), (), (Cell("a"),))))

    def test_cells(self) -> None:
        """Every kind of cell decodes to the value it encodes."""
        cells = (
            BLANK,
            Cell("a"),
            Cell(" ", bg=4),
            Cell("中", fg=1, bg=RGB(9, 8, 7), attrs=INVERSE),
            Cell("x", fg=RGB(0, 0, 5)),
            Cell("e\u0301", attrs=0x7F),
            Cell("Z"),
        )
        self.assertEqual(decode(encode(one_row(*cells))), one_row(*cells))

    def test_paletteStaysPalette(self) -> None:
        """A palette colour decodes to an int and an RGB colour to an RGB."""
        [[cell]] = decode(encode(one_row(Cell("x", fg=5, bg=RGB(0, 0, 5))))).rows
        self.assertEqual((cell.fg, cell.bg), (5, RGB(0, 0, 5)))
        self.assertIsInstance(cell.fg, int)

    def test_asciiKindWithAttributes(self) -> None:
        """An ASCII cell may carry attributes and colours."""
        data = header(1) + b"\xfd\x01\x00" + bytes.fromhex("b9 41 07 010203 09")
        self.assertEqual(decode(data), one_row(Cell("A", fg=RGB(1, 2, 3), bg=9, attrs=7)))

    def test_bytesLike(self) -> None:
        """decode() accepts a bytearray or memoryview as well as bytes."""
        data = encode(one_row(Cell("a")))
        self.assertEqual(decode(bytearray(data)), one_row(Cell("a")))
        self.assertEqual(decode(memoryview(data)), one_row(Cell("a")))


class DecodeErrorTests(SynchronousTestCase):
    """decode() raises FormatError, with a message, on malformed snapshots."""

    def assertMalformed(self, data: bytes, message: str) -> None:
        """decode(data) raises FormatError whose message contains C{message}."""
        error = self.assertRaises(FormatError, decode, data)
        self.assertIn(message, str(error))

    def test_short(self) -> None:
        """Data shorter than the header is refused."""
        self.assertMalformed(header(1)[:27], "shorter than its 28-byte header")

    def test_empty(self) -> None:
        """No data at all is refused."""
        self.assertMalformed(b"", "shorter than its 28-byte header")

    def test_badMagic(self) -> None:
        """A header that does not start with 0x5654 is refused."""
        self.assertMalformed(b"VT" + header(1)[2:] + b"\xfe\x01", "bad snapshot magic")

    def test_badVersion(self) -> None:
        """A version other than 1 is refused."""
        data = bytearray(header(1) + b"\xfe\x01")
        data[2] = 2
        self.assertMalformed(bytes(data), "unsupported snapshot version 2")

    def test_unknownRowMarker(self) -> None:
        """A row that starts with neither 0xFD nor 0xFE is refused."""
        self.assertMalformed(header(1) + b"\xfc\x01", "unknown row marker 0xfc")

    def test_missingRows(self) -> None:
        """Fewer rows than the header counts are refused."""
        self.assertMalformed(header(2) + b"\xfe\x01", "ends after 1 of its 2 rows")

    def test_truncatedEmptyRow(self) -> None:
        """An empty-row entry without its count is refused."""
        self.assertMalformed(header(1) + b"\xfe", "truncated")

    def test_truncatedRowEntry(self) -> None:
        """A row entry without its whole cell count is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01", "truncated")

    def test_truncatedCell(self) -> None:
        """A cell cut short is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x01", "truncated")

    def test_truncatedColour(self) -> None:
        """A cell whose RGB colour is cut short is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\xa9x\x00\x00\x00", "truncated")

    def test_colourWithoutBit7(self) -> None:
        """A type byte announcing a colour without bit 7 is refused: colours only ever
        follow bit 7 and the attribute byte."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x21x\x05", "colours without bit 7")
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x10\x04", "colours without bit 7")

    def test_attributeByteOfZero(self) -> None:
        """Bit 7 with an attribute byte of 0 and no colours is a plain cell."""
        self.assertEqual(decode(header(1) + b"\xfd\x01\x00\x81A\x00"), one_row(Cell("A")))

    def test_truncatedCharacter(self) -> None:
        """A unicode character shorter than its length byte is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x42\x03\xe4\xb8", "truncated")

    def test_missingCells(self) -> None:
        """A row with fewer cells than its count is refused."""
        self.assertMalformed(header(1) + b"\xfd\x02\x00\x01a", "truncated")

    def test_invalidUTF8(self) -> None:
        """A unicode character that is not valid UTF-8 is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x42\x02\xc3\x28", "UTF-8")

    def test_surrogateUTF8(self) -> None:
        """A UTF-8-encoded surrogate is refused as invalid UTF-8."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x42\x03\xed\xa0\x80", "UTF-8")

    def test_nonAsciiAsciiCell(self) -> None:
        """An ASCII cell holding a byte of 0x80 or more is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x01\xe9", "claims ASCII")

    def test_badCharacterKind(self) -> None:
        """Character kind 3 is refused."""
        self.assertMalformed(header(1) + b"\xfd\x01\x00\x03", "character kind 3")

    def test_trailingGarbage(self) -> None:
        """Bytes after the last row are refused."""
        self.assertMalformed(header(1) + b"\xfe\x01\x00", "1 bytes of trailing garbage")

    def test_emptyRunOverrunsCount(self) -> None:
        """An empty-row run longer than the rows left in the header is refused."""
        self.assertMalformed(header(2) + b"\xfe\x03", "overruns the 2 rows")

    def test_emptyRunOfZero(self) -> None:
        """An empty-row run of zero rows is refused."""
        self.assertMalformed(header(1) + b"\xfe\x00\xfe\x01", "counts zero rows")

    def test_tooManyRows(self) -> None:
        """A header claiming more than MAX_ROWS rows is refused at once."""
        self.assertMalformed(header(MAX_ROWS + 1) + b"\xfe\xff", "more than")


class EncodeErrorTests(SynchronousTestCase):
    """encode() refuses values that do not fit the wire format."""

    def test_paletteOutOfRange(self) -> None:
        """A palette index above 255 is a ValueError."""
        self.assertRaises(ValueError, encode, one_row(Cell("a", fg=256)))
        self.assertRaises(ValueError, encode, one_row(Cell("a", bg=-1)))

    def test_colourOfWrongType(self) -> None:
        """A colour that is neither None, an int nor an RGB is a ValueError."""
        self.assertRaises(ValueError, encode, one_row(Cell("a", fg="red")))  # type: ignore[arg-type]

    def test_attributesOutOfRange(self) -> None:
        """Attributes that do not fit in a byte are a ValueError."""
        self.assertRaises(ValueError, encode, one_row(Cell("a", attrs=0x100)))

    def test_headerOutOfRange(self) -> None:
        """Header fields outside their integer types are a ValueError."""
        self.assertRaises(ValueError, encode, Snapshot(cols=-1, rows=()))
        self.assertRaises(ValueError, encode, Snapshot(cols=1, rows=(), cursor_x=2**31))

    def test_loneSurrogate(self) -> None:
        """A character that UTF-8 cannot encode (a lone surrogate) is a ValueError."""
        self.assertRaises(ValueError, encode, one_row(Cell("\ud800")))

    def test_rowTooLong(self) -> None:
        """A row of more than 65535 cells is a ValueError."""
        self.assertRaises(ValueError, encode, one_row(*(Cell("a"),) * 0x10000))

    def test_rgbOutOfRange(self) -> None:
        """An RGB component outside 0..255 is refused when the RGB is made."""
        self.assertRaises(ValueError, RGB, 256, 0, 0)
        self.assertRaises(ValueError, RGB, 0, -1, 0)


class BuffersFrameTests(SynchronousTestCase):
    """The /buffers binary frame: 0xBF, u32 id length, id, snapshot."""

    def test_encode(self) -> None:
        """A frame is 0xBF, the LE u32 UTF-8 id length, the id, the snapshot."""
        self.assertEqual(
            encode_buffers_frame("sé", b"SNAP"),
            b"\xbf\x03\x00\x00\x00s\xc3\xa9SNAP",
        )

    def test_decode(self) -> None:
        """decode_buffers_frame() gives back the id and the snapshot bytes."""
        self.assertEqual(decode_buffers_frame(b"\xbf\x02\x00\x00\x00abXYZ"), ("ab", b"XYZ"))

    def test_short(self) -> None:
        """A frame shorter than five bytes is refused."""
        self.assertRaises(FormatError, decode_buffers_frame, b"\xbf\x00\x00\x00")

    def test_badMarker(self) -> None:
        """A frame that does not start with 0xBF is refused."""
        error = self.assertRaises(FormatError, decode_buffers_frame, b"\xbe\x00\x00\x00\x00")
        self.assertIn("0xbe", str(error))

    def test_idPastEnd(self) -> None:
        """An id length longer than the frame is refused."""
        self.assertRaises(FormatError, decode_buffers_frame, b"\xbf\x05\x00\x00\x00abc")

    def test_idNotUTF8(self) -> None:
        """A session id that is not UTF-8 is refused."""
        self.assertRaises(FormatError, decode_buffers_frame, b"\xbf\x01\x00\x00\x00\xff")


def decodeOrFormatError(data: bytes) -> Snapshot | None:
    """decode(data), or None if it raised FormatError."""
    try:
        return decode(data)
    except FormatError:
        return None


class PropertyTests(SynchronousTestCase):
    """Round-trip and robustness properties, over generated inputs."""

    @given(snapshots)
    def test_roundTrip(self, snapshot: Snapshot) -> None:
        """decode(encode(s)) is trimmed(s)."""
        self.assertEqual(decode(encode(snapshot)), trimmed(snapshot))

    @given(snapshots)
    def test_reencodeIsStable(self, snapshot: Snapshot) -> None:
        """Encoding a decoded snapshot gives back the same bytes."""
        data = encode(snapshot)
        self.assertEqual(encode(decode(data)), data)

    @given(snapshots)
    def test_trimmedIsIdempotent(self, snapshot: Snapshot) -> None:
        """Trimming a trimmed snapshot changes nothing."""
        once = trimmed(snapshot)
        self.assertEqual(trimmed(once), once)

    @given(snapshots)
    def test_everyTruncationRefused(self, snapshot: Snapshot) -> None:
        """Every proper prefix of a valid encoding raises FormatError."""
        data = encode(snapshot)
        for end in range(len(data)):
            self.assertRaises(FormatError, decode, data[:end])

    @given(snapshots, st.binary(min_size=1, max_size=8))
    def test_trailingBytesRefused(self, snapshot: Snapshot, extra: bytes) -> None:
        """A valid encoding followed by more bytes raises FormatError."""
        self.assertRaises(FormatError, decode, encode(snapshot) + extra)

    @given(st.binary(max_size=300))
    def test_arbitraryBytes(self, data: bytes) -> None:
        """decode() of arbitrary bytes raises nothing but FormatError."""
        decodeOrFormatError(data)

    @given(st.integers(min_value=0, max_value=6), st.binary(max_size=300))
    def test_arbitraryRows(self, count: int, body: bytes) -> None:
        """decode() of a valid header and arbitrary rows raises only FormatError."""
        decodeOrFormatError(header(count) + body)

    @given(snapshots, st.data())
    def test_corruptedEncoding(self, snapshot: Snapshot, data: st.DataObject) -> None:
        """
        decode() of a valid encoding with one byte changed either decodes to
        something that encodes canonically or raises FormatError.
        """
        encoded = bytearray(encode(snapshot))
        index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
        encoded[index] = data.draw(bytesValues)
        decoded = decodeOrFormatError(bytes(encoded))
        if decoded is not None:
            self.assertEqual(decode(encode(decoded)), trimmed(decoded))

    @given(st.text(), st.binary())
    def test_frameRoundTrip(self, session_id: str, payload: bytes) -> None:
        """decode_buffers_frame() inverts encode_buffers_frame()."""
        self.assertEqual(
            decode_buffers_frame(encode_buffers_frame(session_id, payload)),
            (session_id, payload),
        )

    @given(st.binary(max_size=40))
    def test_frameArbitraryBytes(self, data: bytes) -> None:
        """decode_buffers_frame() of arbitrary bytes raises only FormatError."""
        for frame in (data, b"\xbf" + data):
            try:
                decode_buffers_frame(frame)
            except FormatError:
                pass

    @given(snapshots, st.text(max_size=20))
    def test_frameCarriesSnapshot(self, snapshot: Snapshot, session_id: str) -> None:
        """A snapshot sent in a /buffers frame decodes on the other side."""
        frame = encode_buffers_frame(session_id, encode(snapshot))
        received_id, received = decode_buffers_frame(frame)
        self.assertEqual((received_id, decode(received)), (session_id, trimmed(snapshot)))
