// The client's icons, drawn here: a prompt (a blue chevron and a green underscore) on
// a dark square. build.mjs writes them into dist/ as SVG and as PNGs of the sizes the
// manifest names; the PNGs are drawn pixel by pixel (4x4 samples a pixel) and encoded
// with node's zlib, so no image tool is needed.
import { deflateSync } from "node:zlib";

const BACKGROUND = [0x1e, 0x1e, 0x1e];
const CHEVRON = [0x4f, 0x9d, 0xff];
const UNDERSCORE = [0x3e, 0xcf, 0x8e];
// In units of the icon's side; the strokes stay inside the middle 60%, the safe zone
// of a maskable icon.
const STROKE = 0.075;
const STROKES = [
  { color: CHEVRON, from: [0.3, 0.33], to: [0.5, 0.5] },
  { color: CHEVRON, from: [0.5, 0.5], to: [0.3, 0.67] },
  { color: UNDERSCORE, from: [0.56, 0.67], to: [0.72, 0.67] },
];
// The corner radius of the plain icon's square (a maskable one fills the square).
const CORNER = 0.18;

export function iconSvg() {
  const lines = STROKES.map(({ color, from, to }) =>
    `<line x1="${from[0] * 512}" y1="${from[1] * 512}" x2="${to[0] * 512}" y2="${to[1] * 512}" ` +
    `stroke="${hex(color)}" stroke-width="${STROKE * 512}" stroke-linecap="round"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">` +
    `<rect width="512" height="512" rx="${CORNER * 512}" fill="${hex(BACKGROUND)}"/>${lines.join("")}</svg>\n`;
}

function hex(rgb) {
  return "#" + rgb.map((c) => c.toString(16).padStart(2, "0")).join("");
}

function distanceToSegment(x, y, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(x - ax - t * dx, y - ay - t * dy);
}

function insideSquare(x, y, corner) {
  const cx = Math.min(Math.max(x, corner), 1 - corner);
  const cy = Math.min(Math.max(y, corner), 1 - corner);
  return Math.hypot(x - cx, y - cy) <= corner;
}

// One sample: [r, g, b, a] at (x, y) in units of the side.
function sample(x, y, maskable) {
  for (const { color, from, to } of STROKES) {
    if (distanceToSegment(x, y, from, to) <= STROKE / 2) return [...color, 255];
  }
  if (maskable || insideSquare(x, y, CORNER)) return [...BACKGROUND, 255];
  return [0, 0, 0, 0];
}

export function iconPng(size, { maskable = false } = {}) {
  const n = 4;
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let py = 0; py < size; py++) {
    rows[py * (size * 4 + 1)] = 0; // no filter
    for (let px = 0; px < size; px++) {
      const sum = [0, 0, 0, 0];
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const s = sample((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size, maskable);
          // Colours weighted by coverage, so edges blend into transparency cleanly.
          for (let c = 0; c < 3; c++) sum[c] += s[c] * s[3];
          sum[3] += s[3];
        }
      }
      const at = py * (size * 4 + 1) + 1 + px * 4;
      for (let c = 0; c < 3; c++) rows[at + c] = sum[3] ? Math.round(sum[c] / sum[3]) : 0;
      rows[at + 3] = Math.round(sum[3] / (n * n));
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA, deflate, no filter method, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}
