# -*- test-case-name: tests.test_snapshot -*-
"""
The binary screen snapshot VibeTunnel clients read, and the ``/buffers`` frame.

A :obj:`Snapshot` is an immutable picture of a terminal screen: rows of :obj:`Cell`s
plus the cursor position.  :obj:`encode` turns it into the little-endian wire
format of ``docs/protocol.md`` (section 6, "Screen snapshots"), :obj:`decode` reads that
format back, and :obj:`encode_buffers_frame` / :obj:`decode_buffers_frame` wrap a
snapshot with its session id for the ``/buffers`` WebSocket.

This module is sans-IO: it takes values and bytes and returns values and bytes.

Wire format in brief: a 28-byte header (magic ``0x5654``, version 1, flags,
cols, row count, viewportY, cursorX, cursorY, reserved), then one entry per
row: ``0xFE N`` for N empty rows, or ``0xFD``, a u16 cell count and the cells.
A cell is ``0x00`` when blank, otherwise a type byte::

    bit 7    extended data follows the character: an attribute byte, then
             the colours (set whenever the cell has attributes or a colour)
    bit 6    the character is not ASCII
    bit 5    a foreground colour follows
    bit 4    a background colour follows
    bit 3    the foreground is RGB (three bytes), not a palette index (one)
    bit 2    the background is RGB, not a palette index
    bits 1-0 character kind: 0 space, 1 one ASCII byte, 2 length + UTF-8

then the character bytes, the attribute byte (0 when there is none), the
foreground, the background.  Colour bytes never follow a type byte whose bit 7
is clear: VibeTunnel's decoder reads them only after bit 7 and the attribute byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from typing import Final, TypeAlias

import attrs

from vibetwist.errors import FormatError

__all__ = [
    "BLANK",
    "BOLD",
    "DIM",
    "INVERSE",
    "INVISIBLE",
    "ITALIC",
    "MAX_ROWS",
    "RGB",
    "STRIKETHROUGH",
    "UNDERLINE",
    "Cell",
    "Color",
    "Snapshot",
    "decode",
    "decode_buffers_frame",
    "encode",
    "encode_buffers_frame",
    "trimmed",
]

# Cell attribute bits, as carried in the attribute byte.
BOLD: Final = 0x01
ITALIC: Final = 0x02
UNDERLINE: Final = 0x04
DIM: Final = 0x08
INVERSE: Final = 0x10
INVISIBLE: Final = 0x20
STRIKETHROUGH: Final = 0x40

MAGIC: Final = 0x5654
VERSION: Final = 1

# The most rows decode() accepts (and encode() writes).  A ``0xFE N`` entry
# turns two bytes into N rows, so without a bound a small hostile snapshot
# could claim billions of rows.
MAX_ROWS: Final = 1_000_000

# The most UTF-8 bytes a unicode character may carry (its length is one byte).
_MAX_CHAR_BYTES: Final = 255

_HEADER = struct.Struct("<HBBIIiiiI")
_ROW_CELLS = struct.Struct("<BH")
_FRAME_ID_LENGTH = struct.Struct("<I")

_ROW_EMPTY: Final = 0xFE
_ROW_CELLS_MARKER: Final = 0xFD
_FRAME_MARKER: Final = 0xBF

# Type byte bits.
_EXTENDED: Final = 0x80
_UNICODE: Final = 0x40
_HAS_FG: Final = 0x20
_HAS_BG: Final = 0x10
_FG_RGB: Final = 0x08
_BG_RGB: Final = 0x04
_KIND_MASK: Final = 0x03
_KIND_SPACE: Final = 0
_KIND_ASCII: Final = 1
_KIND_UNICODE: Final = 2


def _byte_range(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    """Refuse a colour component that does not fit in one byte."""
    if not 0 <= value <= 255:
        raise ValueError(f"RGB.{attribute.name} must be 0..255, not {value!r}")


@attrs.frozen
class RGB:
    """A 24-bit colour; each component is 0..255."""

    r: int = attrs.field(validator=_byte_range)
    g: int = attrs.field(validator=_byte_range)
    b: int = attrs.field(validator=_byte_range)


Color: TypeAlias = int | RGB | None
"""A cell colour: ``None`` for the default, a palette index 0..255, or an :obj:`RGB`."""


@attrs.frozen
class Cell:
    """
    One character cell of the screen.

    ``char`` is one grapheme (a base character and any combining marks); a wide
    character is a single cell, its continuation column is not represented.
    ``attrs`` is a combination of :obj:`BOLD`, :obj:`ITALIC`, :obj:`UNDERLINE`, :obj:`DIM`,
    :obj:`INVERSE`, :obj:`INVISIBLE` and :obj:`STRIKETHROUGH`.
    """

    char: str = " "
    fg: Color = None
    bg: Color = None
    attrs: int = 0


BLANK: Final = Cell()
"""A space with default colours and no attributes; trimmed from row ends."""


@attrs.frozen
class Snapshot:
    """
    A picture of a terminal screen.

    ``rows`` start at line ``viewport_y`` of the whole buffer; the cursor
    position is relative to the first row.  Rows may be shorter than ``cols``:
    missing cells are blank.
    """

    cols: int
    rows: tuple[tuple[Cell, ...], ...]
    viewport_y: int = 0
    cursor_x: int = 0
    cursor_y: int = 0


# encode() fast path: the bytes of each cell that is a blank or a plain ASCII
# character (default colours, no attributes), keyed by its character.
_PLAIN_CELL_BYTES: Final = {chr(code): bytes((_KIND_ASCII, code)) for code in range(128)}
_PLAIN_CELL_BYTES[" "] = b"\x00"

# decode() fast path: the cell for each plain ASCII byte.
_PLAIN_CELLS: Final = tuple(Cell(chr(code)) for code in range(128))


def _is_blank(cell: Cell) -> bool:
    """Whether ``cell`` equals :obj:`BLANK`, without the cost of ``==``."""
    return cell is BLANK or (cell.char == " " and cell.fg is None and cell.bg is None and not cell.attrs)


def _content_length(cells: Sequence[Cell]) -> int:
    """The number of cells in ``cells`` once trailing blanks are left out."""
    length = len(cells)
    while length and _is_blank(cells[length - 1]):
        length -= 1
    return length


def _content_lengths(rows: Sequence[Sequence[Cell]]) -> list[int]:
    """
    The trimmed length of each row that encode() writes: bottom rows with no
    content are dropped, but one row always stays.
    """
    lengths = [_content_length(row) for row in rows]
    while len(lengths) > 1 and not lengths[-1]:
        lengths.pop()
    if not lengths:
        lengths.append(0)
    return lengths


def _truncate_utf8(raw: bytes) -> bytes:
    """Cut UTF-8 ``raw`` to at most 255 bytes without splitting a code point."""
    if len(raw) <= _MAX_CHAR_BYTES:
        return raw
    cut = _MAX_CHAR_BYTES
    # Back off over continuation bytes (0b10xxxxxx) to a code point start.
    while raw[cut] & 0xC0 == 0x80:
        cut -= 1
    return raw[:cut]


def _wire_char(char: str) -> str:
    """``char`` as it survives the wire: at most 255 bytes of UTF-8."""
    # Four bytes per code point at most: 63 code points always fit.
    if len(char) <= _MAX_CHAR_BYTES // 4:
        return char
    return _truncate_utf8(char.encode("utf-8")).decode("utf-8")


def _bad_color(color: object, which: str) -> ValueError:
    """The error for a colour that is not None, 0..255 or an RGB."""
    return ValueError(f"{which} colour must be None, 0..255 or an RGB, not {color!r}")


def _encode_cell(out: bytearray, cell: Cell) -> None:
    """Write any cell: the general path, for what the fast path does not take."""
    # The type byte is written first as a placeholder and patched at the end,
    # once the character and colours have set their bits.
    type_at = len(out)
    out.append(0)
    char = cell.char
    if char == " ":
        type_byte = _KIND_SPACE
    elif len(char) == 1 and char.isascii():
        type_byte = _KIND_ASCII
        out.append(ord(char))
    else:
        raw = _truncate_utf8(char.encode("utf-8"))
        type_byte = _UNICODE | _KIND_UNICODE
        out.append(len(raw))
        out += raw
    cell_attrs = cell.attrs
    if cell_attrs or cell.fg is not None or cell.bg is not None:
        # Bit 7 announces the extended data: always the attribute byte (0 for none),
        # then the colours the next bits announce.
        if not isinstance(cell_attrs, int) or not 0 <= cell_attrs <= 255:
            raise ValueError(f"cell attributes must be 0..255, not {cell_attrs!r}")
        type_byte |= _EXTENDED
        out.append(cell_attrs)
    if cell.fg is not None:
        type_byte |= _append_color(out, cell.fg, _HAS_FG | _FG_RGB, _HAS_FG, "foreground")
    if cell.bg is not None:
        type_byte |= _append_color(out, cell.bg, _HAS_BG | _BG_RGB, _HAS_BG, "background")
    out[type_at] = type_byte


def _append_color(out: bytearray, color: object, rgb_flags: int, palette_flags: int, which: str) -> int:
    """Append a colour's bytes to out and return the type-byte flags that announce them."""
    if isinstance(color, RGB):
        out += bytes((color.r, color.g, color.b))
        return rgb_flags
    if isinstance(color, int) and 0 <= color <= 255:
        out.append(color)
        return palette_flags
    raise _bad_color(color, which)


def encode(snapshot: Snapshot) -> bytes:
    """
    Encode ``snapshot`` in the binary snapshot format.

    Trailing blank cells of each row and blank rows at the bottom are left
    out (one row always stays), and unicode characters are cut to 255 bytes
    of UTF-8: :obj:`decode` gives back :obj:`trimmed```(snapshot)``.

    :raises ValueError: if a header field, colour or attribute value does not
        fit its wire field, a character cannot be encoded in UTF-8 (a lone
        surrogate), a row has more than 65535 cells, or there are more than
        :obj:`MAX_ROWS` rows.
    """
    rows = snapshot.rows
    lengths = _content_lengths(rows)
    if len(lengths) > MAX_ROWS:
        raise ValueError(f"a snapshot holds at most {MAX_ROWS} rows, not {len(lengths)}")
    try:
        header = _HEADER.pack(
            MAGIC,
            VERSION,
            0,
            snapshot.cols,
            len(lengths),
            snapshot.viewport_y,
            snapshot.cursor_x,
            snapshot.cursor_y,
            0,
        )
    except struct.error as e:
        raise ValueError(f"snapshot header field out of range: {e}") from None
    out = bytearray(header)
    plain = _PLAIN_CELL_BYTES
    for row, length in zip(rows, lengths):
        if not length:
            out += b"\xfe\x01"
            continue
        if length > 0xFFFF:
            raise ValueError(f"a row holds at most 65535 cells, not {length}")
        out += _ROW_CELLS.pack(_ROW_CELLS_MARKER, length)
        for cell in row[:length] if length < len(row) else row:
            if cell.fg is None and cell.bg is None and not cell.attrs:
                cell_bytes = plain.get(cell.char)
                if cell_bytes is not None:
                    out += cell_bytes
                    continue
            _encode_cell(out, cell)
    if not rows:
        # The one row that always stays.
        out += b"\xfe\x01"
    return bytes(out)


def trimmed(snapshot: Snapshot) -> Snapshot:
    """
    The snapshot :obj:`decode` gives back after :obj:`encode`: rows without their
    trailing blank cells, no empty rows at the bottom but at least one row,
    unicode characters cut to 255 bytes of UTF-8.
    """
    rows = snapshot.rows
    lengths = _content_lengths(rows)
    new_rows = []
    for index, length in enumerate(lengths):
        cells = rows[index][:length] if index < len(rows) else ()
        new_rows.append(
            tuple(
                cell
                if len(cell.char) <= _MAX_CHAR_BYTES // 4
                else attrs.evolve(cell, char=_wire_char(cell.char))
                for cell in cells
            )
        )
    return attrs.evolve(snapshot, rows=tuple(new_rows))


def _decode_cells(data: bytes, pos: int, count: int) -> tuple[tuple[Cell, ...], int]:
    """
    Read ``count`` cells starting at offset ``pos``.

    :return: the cells and the offset just after them.
    :raises FormatError: if the cells are truncated or malformed.
    """
    size = len(data)
    cells: list[Cell] = []
    append = cells.append
    plain = _PLAIN_CELLS
    start = pos
    try:
        for _ in range(count):
            start = pos
            type_byte = data[pos]
            pos += 1
            if type_byte == 0:
                append(BLANK)
                continue
            kind = type_byte & _KIND_MASK
            if kind == _KIND_ASCII:
                code = data[pos]
                pos += 1
                if code >= 0x80:
                    raise FormatError(f"cell at offset {start} claims ASCII but holds 0x{code:02x}")
                if type_byte == _KIND_ASCII:
                    append(plain[code])
                    continue
                char = chr(code)
            elif kind == _KIND_SPACE:
                char = " "
            elif kind == _KIND_UNICODE:
                end = pos + 1 + data[pos]
                if end > size:
                    raise FormatError(f"snapshot truncated in the cell at offset {start}")
                try:
                    char = data[pos + 1 : end].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise FormatError(f"cell at offset {start} holds invalid UTF-8: {e.reason}") from None
                pos = end
            else:
                raise FormatError(f"cell at offset {start} has unknown character kind 3")
            if not type_byte & _EXTENDED:
                if type_byte & (_HAS_FG | _HAS_BG):
                    raise FormatError(f"cell at offset {start} announces colours without bit 7")
                append(Cell(char))
                continue
            cell_attrs = data[pos]
            pos += 1
            fg: Color = None
            if type_byte & _HAS_FG:
                if type_byte & _FG_RGB:
                    fg = RGB(data[pos], data[pos + 1], data[pos + 2])
                    pos += 3
                else:
                    fg = data[pos]
                    pos += 1
            bg: Color = None
            if type_byte & _HAS_BG:
                if type_byte & _BG_RGB:
                    bg = RGB(data[pos], data[pos + 1], data[pos + 2])
                    pos += 3
                else:
                    bg = data[pos]
                    pos += 1
            append(Cell(char, fg, bg, cell_attrs))
    except IndexError:
        # Reading one byte past the end of data lands here.
        raise FormatError(f"snapshot truncated in the cell at offset {start}") from None
    return tuple(cells), pos


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` as immutable bytes (a copy only if it is not bytes already)."""
    if isinstance(data, bytes):
        return data
    return memoryview(data).tobytes()


def decode(data: bytes | bytearray | memoryview) -> Snapshot:
    """
    Decode a binary snapshot.

    Each row comes back as its encoded cells (trailing blanks stay trimmed);
    a ``0xFE N`` entry gives N empty rows.  The flags and reserved header
    fields are ignored, and so are bit 6 (unicode) of a cell's type byte and
    the RGB bit of an absent colour.  A colour bit without bit 7 is refused:
    colours come only after the attribute byte.

    :raises FormatError: if ``data`` is not a well-formed snapshot.
    """
    data = _as_bytes(data)
    size = len(data)
    if size < _HEADER.size:
        raise FormatError(f"snapshot is {size} bytes, shorter than its {_HEADER.size}-byte header")
    magic, version, _flags, cols, count, viewport_y, cursor_x, cursor_y, _reserved = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"bad snapshot magic 0x{magic:04x}, expected 0x{MAGIC:04x}")
    if version != VERSION:
        raise FormatError(f"unsupported snapshot version {version}, expected {VERSION}")
    if count > MAX_ROWS:
        raise FormatError(f"snapshot claims {count} rows, more than {MAX_ROWS}")
    rows: list[tuple[Cell, ...]] = []
    pos = _HEADER.size
    while len(rows) < count:
        if pos >= size:
            raise FormatError(f"snapshot ends after {len(rows)} of its {count} rows")
        marker = data[pos]
        if marker == _ROW_EMPTY:
            if pos + 2 > size:
                raise FormatError(f"snapshot truncated in the empty-row entry at offset {pos}")
            run = data[pos + 1]
            if not run:
                raise FormatError(f"empty-row entry at offset {pos} counts zero rows")
            if len(rows) + run > count:
                raise FormatError(f"empty-row entry at offset {pos} overruns the {count} rows")
            rows.extend(repeat((), run))
            pos += 2
        elif marker == _ROW_CELLS_MARKER:
            if pos + _ROW_CELLS.size > size:
                raise FormatError(f"snapshot truncated in the row entry at offset {pos}")
            _, cell_count = _ROW_CELLS.unpack_from(data, pos)
            cells, pos = _decode_cells(data, pos + _ROW_CELLS.size, cell_count)
            rows.append(cells)
        else:
            raise FormatError(f"unknown row marker 0x{marker:02x} at offset {pos}")
    if pos != size:
        raise FormatError(f"{size - pos} bytes of trailing garbage after the last row")
    return Snapshot(
        cols=cols,
        rows=tuple(rows),
        viewport_y=viewport_y,
        cursor_x=cursor_x,
        cursor_y=cursor_y,
    )


def encode_buffers_frame(session_id: str, snapshot_bytes: bytes) -> bytes:
    """
    Wrap an encoded snapshot for the ``/buffers`` WebSocket: byte ``0xBF``, the
    u32 little-endian length of the UTF-8 session id, the id, the snapshot.
    """
    raw_id = session_id.encode("utf-8")
    return bytes((_FRAME_MARKER,)) + _FRAME_ID_LENGTH.pack(len(raw_id)) + raw_id + bytes(snapshot_bytes)


def decode_buffers_frame(data: bytes | bytearray | memoryview) -> tuple[str, bytes]:
    """
    Split a ``/buffers`` binary frame into its session id and snapshot bytes.

    The snapshot bytes are returned as they are; pass them to :obj:`decode`.

    :raises FormatError: if ``data`` is not a well-formed frame.
    """
    data = _as_bytes(data)
    header_size = 1 + _FRAME_ID_LENGTH.size
    if len(data) < header_size:
        raise FormatError(f"buffers frame is {len(data)} bytes, shorter than its {header_size}-byte header")
    if data[0] != _FRAME_MARKER:
        raise FormatError(f"buffers frame starts with 0x{data[0]:02x}, expected 0x{_FRAME_MARKER:02x}")
    (id_length,) = _FRAME_ID_LENGTH.unpack_from(data, 1)
    end = header_size + id_length
    if end > len(data):
        raise FormatError(f"buffers frame session id of {id_length} bytes runs past the frame's end")
    try:
        session_id = data[header_size:end].decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"buffers frame session id is not UTF-8: {e.reason}") from None
    return session_id, data[end:]
