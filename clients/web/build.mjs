// Builds the web app into dist/: one ES module entry (app.js, the name index.html loads), shared
// and lazily imported code (hls.js) as content-hashed chunks in dist/assets/, and the static files.
// dist/ is committed so a hub node serves the app without a build step; a test checks it is the
// build of the sources as they are.
import { build } from "esbuild";
import { cp, mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
// `node build.mjs [folder]`: the folder to build into (tests build elsewhere to compare with dist/).
const dist = process.argv[2] ? resolve(process.argv[2]) : join(here, "dist");
const BUDGET = 150 * 1024; // all JavaScript, gzip-compressed

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await cp(join(here, "static"), dist, { recursive: true });

await build({
  // Chunk names hash paths relative to the working directory: fixed, so any caller builds the same files.
  absWorkingDir: here,
  entryPoints: { app: join(here, "src", "app.js") },
  outdir: dist,
  entryNames: "[name]",
  chunkNames: "assets/[name]-[hash]",
  assetNames: "assets/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  target: ["es2022"],
  platform: "browser",
  legalComments: "none",
  // Bare imports of the client library resolve from its own node_modules.
  nodePaths: [join(here, "node_modules"), join(here, "..", "js", "node_modules")],
  logLevel: "warning",
});

/** @param {string} dir @returns {Promise<string[]>} */
async function files(dir) {
  const out = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) out.push(...(await files(path)));
    else out.push(path);
  }
  return out;
}

let total = 0;
for (const file of (await files(dist)).filter((f) => f.endsWith(".js")).sort()) {
  const size = gzipSync(await readFile(file), { level: 9 }).length;
  total += size;
  console.log(`${file.slice(dist.length + 1).padEnd(40)} ${(size / 1024).toFixed(1).padStart(7)} KiB gzip`);
}
console.log(`${"all JavaScript".padEnd(40)} ${(total / 1024).toFixed(1).padStart(7)} KiB gzip (budget ${BUDGET / 1024} KiB)`);
if (total > BUDGET) {
  console.error("over the JavaScript budget");
  process.exit(1);
}
