// Builds the client into dist/: app.js (the modules and xterm.js, bundled),
// app.css (the client's styles and xterm.js's), index.html, the service worker
// sw.js, the web app manifest and the icons (drawn by icons.mjs).
// Run by `npm run build`, which ./dev runs after `npm ci`.
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { iconPng, iconSvg } from "./icons.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist);
await build({
  entryPoints: { app: join(here, "src/main.js") },
  outdir: dist,
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  legalComments: "eof",
  logLevel: "warning",
});
// The service worker is a classic script of its own, served with scope "/".
await build({
  entryPoints: { sw: join(here, "src/sw.js") },
  outdir: dist,
  bundle: true,
  format: "iife",
  target: ["es2020"],
  minify: true,
  logLevel: "warning",
});
await copyFile(join(here, "index.html"), join(dist, "index.html"));
await copyFile(join(here, "manifest.webmanifest"), join(dist, "manifest.webmanifest"));
await writeFile(join(dist, "icon.svg"), iconSvg());
for (const size of [192, 512]) {
  await writeFile(join(dist, `icon-${size}.png`), iconPng(size));
  await writeFile(join(dist, `icon-${size}-maskable.png`), iconPng(size, { maskable: true }));
}
