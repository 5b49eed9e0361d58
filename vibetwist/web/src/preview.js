// Draws a decoded screen snapshot (snapshot.js) as coloured text: the small
// live previews of the session list.
import { BOLD, DIM, INVERSE, INVISIBLE, ITALIC, STRIKETHROUGH, UNDERLINE } from "./snapshot.js";

const BASE16 = [
  "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
  "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
];

// The CSS colour of a palette index (xterm's 256 colours) or {r, g, b}.
export function cssColor(color) {
  if (color === null) return null;
  if (typeof color === "object") return `rgb(${color.r},${color.g},${color.b})`;
  if (color < 16) return BASE16[color];
  if (color < 232) {
    const steps = [0, 95, 135, 175, 215, 255];
    const i = color - 16;
    return `rgb(${steps[Math.floor(i / 36)]},${steps[Math.floor(i / 6) % 6]},${steps[i % 6]})`;
  }
  const level = 8 + (color - 232) * 10;
  return `rgb(${level},${level},${level})`;
}

function styleKey(cell) {
  return JSON.stringify([cell.fg, cell.bg, cell.attrs]);
}

function span(text, cell) {
  const el = document.createElement("span");
  el.textContent = text;
  let fg = cssColor(cell.fg);
  let bg = cssColor(cell.bg);
  if (cell.attrs & INVERSE) [fg, bg] = [bg || "#d4d4d4", fg || "#1e1e1e"];
  if (fg) el.style.color = fg;
  if (bg) el.style.backgroundColor = bg;
  if (cell.attrs & BOLD) el.style.fontWeight = "bold";
  if (cell.attrs & ITALIC) el.style.fontStyle = "italic";
  if (cell.attrs & DIM) el.style.opacity = "0.6";
  if (cell.attrs & INVISIBLE) el.style.visibility = "hidden";
  const lines = [];
  if (cell.attrs & UNDERLINE) lines.push("underline");
  if (cell.attrs & STRIKETHROUGH) lines.push("line-through");
  if (lines.length) el.style.textDecoration = lines.join(" ");
  return el;
}

// Fill `pre` with the snapshot's rows, one line each, in runs of equal style.
export function drawSnapshot(pre, snapshot) {
  const lines = [];
  for (const row of snapshot.rows) {
    const line = document.createElement("div");
    let run = "";
    let runCell = null;
    for (const cell of row) {
      if (runCell && styleKey(cell) === styleKey(runCell)) {
        run += cell.char;
        continue;
      }
      if (runCell) line.append(span(run, runCell));
      run = cell.char;
      runCell = cell;
    }
    if (runCell) line.append(span(run, runCell));
    if (!row.length) line.append("\u00a0");
    lines.push(line);
  }
  pre.replaceChildren(...lines);
  // Scale the text so the whole screen fits the preview's height.
  const rows = Math.max(snapshot.rows.length, 24);
  pre.style.fontSize = `${Math.max(3, Math.min(8, pre.clientHeight / rows / 1.15)).toFixed(2)}px`;
}
