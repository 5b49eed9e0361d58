// Builds the client into dist/: app.js (the modules and xterm.js, bundled),
// app.css (the client's styles and xterm.js's) and index.html.
// Run by `npm run build`, which ./dev runs after `npm ci`.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

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
await copyFile(join(here, "index.html"), join(dist, "index.html"));
