// The binary screen snapshot of /api/sessions/:id/buffer and the /buffers
// frame around it (docs/protocol.md, section 6). Pure: bytes in, values out;
// vibetwist/model/snapshot.py is the reference, and tests/test_web_logic.py checks
// this decoder against it.

const MAGIC = 0x5654;
const VERSION = 1;
const HEADER_SIZE = 28;
export const MAX_ROWS = 1000000;
const ROW_EMPTY = 0xfe;
const ROW_CELLS = 0xfd;
const FRAME_MARKER = 0xbf;

const EXTENDED = 0x80;
const HAS_FG = 0x20;
const HAS_BG = 0x10;
const FG_RGB = 0x08;
const BG_RGB = 0x04;
const KIND_MASK = 0x03;

export const BOLD = 0x01;
export const ITALIC = 0x02;
export const UNDERLINE = 0x04;
export const DIM = 0x08;
export const INVERSE = 0x10;
export const INVISIBLE = 0x20;
export const STRIKETHROUGH = 0x40;

export class FormatError extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function bytesOf(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

function decodeUtf8(bytes, what) {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new FormatError(`${what} holds invalid UTF-8`);
  }
}

// A colour is null (default), a palette index 0..255, or {r, g, b}.
function readCells(data, pos, count) {
  const cells = [];
  let start = pos;
  const need = (n) => {
    if (pos + n > data.length) throw new FormatError(`snapshot truncated in the cell at offset ${start}`);
  };
  for (let i = 0; i < count; i++) {
    start = pos;
    need(1);
    const type = data[pos++];
    if (type === 0) {
      cells.push({ char: " ", fg: null, bg: null, attrs: 0 });
      continue;
    }
    let char;
    const kind = type & KIND_MASK;
    if (kind === 1) {
      need(1);
      const code = data[pos++];
      if (code >= 0x80) throw new FormatError(`cell at offset ${start} claims ASCII but holds a non-ASCII byte`);
      char = String.fromCharCode(code);
    } else if (kind === 0) {
      char = " ";
    } else if (kind === 2) {
      need(1);
      const end = pos + 1 + data[pos];
      if (end > data.length) throw new FormatError(`snapshot truncated in the cell at offset ${start}`);
      char = decodeUtf8(data.subarray(pos + 1, end), `cell at offset ${start}`);
      pos = end;
    } else {
      throw new FormatError(`cell at offset ${start} has unknown character kind 3`);
    }
    if (!(type & EXTENDED)) {
      // Colours come only after bit 7 and the attribute byte.
      if (type & (HAS_FG | HAS_BG)) {
        throw new FormatError(`cell at offset ${start} announces colours without bit 7`);
      }
      cells.push({ char, fg: null, bg: null, attrs: 0 });
      continue;
    }
    need(1);
    const attrs = data[pos++];
    const color = (present, rgb) => {
      if (!(type & present)) return null;
      if (type & rgb) {
        need(3);
        pos += 3;
        return { r: data[pos - 3], g: data[pos - 2], b: data[pos - 1] };
      }
      need(1);
      return data[pos++];
    };
    const fg = color(HAS_FG, FG_RGB);
    const bg = color(HAS_BG, BG_RGB);
    cells.push({ char, fg, bg, attrs });
  }
  return [cells, pos];
}

// {cols, rows: [[cell, ...], ...], viewportY, cursorX, cursorY}; FormatError if malformed.
export function decodeSnapshot(input) {
  const data = bytesOf(input);
  if (data.length < HEADER_SIZE) {
    throw new FormatError(`snapshot is ${data.length} bytes, shorter than its ${HEADER_SIZE}-byte header`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const magic = view.getUint16(0, true);
  if (magic !== MAGIC) throw new FormatError(`bad snapshot magic 0x${magic.toString(16)}`);
  const version = view.getUint8(2);
  if (version !== VERSION) throw new FormatError(`unsupported snapshot version ${version}`);
  const cols = view.getUint32(4, true);
  const count = view.getUint32(8, true);
  const viewportY = view.getInt32(12, true);
  const cursorX = view.getInt32(16, true);
  const cursorY = view.getInt32(20, true);
  if (count > MAX_ROWS) throw new FormatError(`snapshot claims ${count} rows, more than ${MAX_ROWS}`);
  const rows = [];
  let pos = HEADER_SIZE;
  while (rows.length < count) {
    if (pos >= data.length) throw new FormatError(`snapshot ends after ${rows.length} of its ${count} rows`);
    const marker = data[pos];
    if (marker === ROW_EMPTY) {
      if (pos + 2 > data.length) throw new FormatError(`snapshot truncated in the empty-row entry at offset ${pos}`);
      const run = data[pos + 1];
      if (!run) throw new FormatError(`empty-row entry at offset ${pos} counts zero rows`);
      if (rows.length + run > count) throw new FormatError(`empty-row entry at offset ${pos} overruns the rows`);
      for (let i = 0; i < run; i++) rows.push([]);
      pos += 2;
    } else if (marker === ROW_CELLS) {
      if (pos + 3 > data.length) throw new FormatError(`snapshot truncated in the row entry at offset ${pos}`);
      const cellCount = view.getUint16(pos + 1, true);
      const [cells, next] = readCells(data, pos + 3, cellCount);
      rows.push(cells);
      pos = next;
    } else {
      throw new FormatError(`unknown row marker 0x${marker.toString(16)} at offset ${pos}`);
    }
  }
  if (pos !== data.length) throw new FormatError(`${data.length - pos} bytes of trailing garbage after the last row`);
  return { cols, rows, viewportY, cursorX, cursorY };
}

// A /buffers binary frame: {sessionId, snapshot: Uint8Array}; FormatError if malformed.
export function decodeBuffersFrame(input) {
  const data = bytesOf(input);
  if (data.length < 5) throw new FormatError(`buffers frame is ${data.length} bytes, shorter than its header`);
  if (data[0] !== FRAME_MARKER) throw new FormatError(`buffers frame starts with 0x${data[0].toString(16)}`);
  const idLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1, true);
  const end = 5 + idLength;
  if (end > data.length) throw new FormatError("buffers frame session id runs past the frame's end");
  const sessionId = decodeUtf8(data.subarray(5, end), "buffers frame session id");
  return { sessionId, snapshot: data.subarray(end) };
}
