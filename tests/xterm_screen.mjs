// The reference terminal for tests/test_differential.py: xterm.js's headless build
// (@xterm/headless, a devDependency of vibetwist/web) fed byte streams, its screens
// dumped as JSON. One JSON request per line on stdin, one JSON answer per line on stdout.
//
// A request is a list of streams, each {cols, rows, scrollback, steps}: a step is
// {data: "<base64 bytes>"} (written as one chunk) or {resize: [cols, rows]}.
// The answer is a list of results, each {alternate, cursor: [x, y], screen, main,
// history}: `screen` the visible rows of the active buffer, `main` the visible rows
// of the normal buffer (the screen under the alternate one), `history` the normal
// buffer's lines above its visible rows, oldest first. A row is a list of cells
// [chars, width, fg, bg, attrs]; a colour is null (default), a palette index, or
// [r, g, b]; attrs are the snapshot's bits (vibetwist/model/snapshot.py). A stream that makes
// xterm.js throw gives {error} instead.
import { createInterface } from "node:readline";
import { createRequire } from "node:module";

const require = createRequire(new URL("../vibetwist/web/package.json", import.meta.url));
const { Terminal } = require("@xterm/headless");

const BOLD = 1, ITALIC = 2, UNDERLINE = 4, DIM = 8, INVERSE = 16, INVISIBLE = 32, STRIKETHROUGH = 64;

function color(cell, fg) {
  if (fg ? cell.isFgDefault() : cell.isBgDefault()) return null;
  const value = fg ? cell.getFgColor() : cell.getBgColor();
  if (fg ? cell.isFgRGB() : cell.isBgRGB()) return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
  return value;
}

function attrs(cell) {
  return (cell.isBold() ? BOLD : 0) | (cell.isItalic() ? ITALIC : 0) | (cell.isUnderline() ? UNDERLINE : 0)
    | (cell.isDim() ? DIM : 0) | (cell.isInverse() ? INVERSE : 0) | (cell.isInvisible() ? INVISIBLE : 0)
    | (cell.isStrikethrough() ? STRIKETHROUGH : 0);
}

function row(line, cols, cell) {
  const cells = [];
  for (let x = 0; x < cols; x++) {
    line.getCell(x, cell);
    cells.push([cell.getChars(), cell.getWidth(), color(cell, true), color(cell, false), attrs(cell)]);
  }
  return cells;
}

function rows(buffer, from, to, cols) {
  const cell = buffer.getNullCell();
  const out = [];
  for (let y = from; y < to; y++) out.push(row(buffer.getLine(y), cols, cell));
  return out;
}

// xterm.js parses in timers of its own: an error it throws there fails the stream being written.
let failWrite = null;
process.on("uncaughtException", (error) => {
  if (!failWrite) throw error;
  failWrite(error);
});
const write = (term, data) =>
  new Promise((resolve, reject) => {
    failWrite = reject;
    term.write(data, resolve);
  });

async function run({ cols, rows: height, scrollback, steps }) {
  const term = new Terminal({ cols, rows: height, scrollback, allowProposedApi: true });
  for (const step of steps) {
    if (step.resize) term.resize(step.resize[0], step.resize[1]);
    else await write(term, Buffer.from(step.data, "base64"));
  }
  const active = term.buffer.active;
  const normal = term.buffer.normal;
  const result = {
    alternate: active.type === "alternate",
    cursor: [active.cursorX, active.cursorY],
    screen: rows(active, active.baseY, active.baseY + term.rows, term.cols),
    main: rows(normal, normal.baseY, normal.baseY + term.rows, term.cols),
    history: rows(normal, 0, normal.baseY, term.cols),
  };
  term.dispose();
  return result;
}

for await (const line of createInterface({ input: process.stdin })) {
  const streams = JSON.parse(line);
  const results = [];
  for (const stream of streams) {
    try {
      results.push(await run(stream));
    } catch (error) {
      results.push({ error: String(error && error.stack) });
    }
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}
