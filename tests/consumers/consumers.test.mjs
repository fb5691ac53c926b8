// Consumer tests: the package as a web developer gets it. `npm pack` of www/, installed from the
// tarball into fresh projects (tests/consumers/<name>: pinned bundler, committed lock file),
// built with the real bundler, served, and opened in Chromium, where each app loads the default
// model, chats and summarizes (tests/consumers/app.js):
// - vite:    `vite build` (production), served as a static site, plainly (the single-thread
//            build) and cross-origin isolated (the threaded build and its pool Workers);
// - vite:    the Vite dev server (dependency pre-bundling into node_modules/.vite/deps), cross-origin
//            isolated (COOP/COEP from the app's vite.config.js);
// - webpack: a webpack 5 production build, served the same two ways;
// - plain:   a page without a bundler importing the package from another origin (an import map
//            to a second 127.0.0.1 port, as from a CDN), cross-origin isolated: the threaded build.
// No Hearth-specific bundler option anywhere. Needs `make wasm www` and `make models`; the first
// run installs Vite and webpack from npm into .cache/consumers/ (later runs reuse them).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, MODEL_PATH, requireFile, launchBrowser, startTestServer } from "../browser/harness.mjs";
import { packPackage, prepareProject, runNode, serveDir, startProcess, freePort } from "./lib.mjs";

requireFile(MODEL_PATH, "make models");

let pack, modelSrv, browser;
before(async () => {
  pack = packPackage();
  modelSrv = await startTestServer(); // /models/ with CORS: the apps fetch the model cross-origin
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await modelSrv?.close();
});

/** Opens `url` (plus the model server) and waits for the app's `window.hearthResult`. */
async function runApp(url, { threads } = {}) {
  const page = await browser.context.newPage();
  const log = [];
  page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on("requestfailed", (r) => log.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  try {
    const q = new URLSearchParams({ models: modelSrv.url + "models/" });
    if (threads === false) q.set("threads", "false");
    await page.goto(`${url}?${q}`);
    await page.waitForFunction(() => window.hearthResult, null, { timeout: 300_000 });
    const r = await page.evaluate(() => window.hearthResult);
    if (process.env.HEARTH_TEST_VERBOSE) console.log(url, JSON.stringify(r), log.join("\n"));
    return { ...r, log };
  } finally {
    await page.close();
  }
}

/** What every app must have done: loaded on the CPU, answered, summarized. */
function assertWorked(r, build) {
  assert.equal(r.ok, true, `the app failed: ${r.code} ${r.message}\n${r.log?.join("\n")}`);
  assert.equal(r.model.id, "smollm2-135m-instruct-q4_1");
  assert.equal(r.model.backend, "cpu");
  assert.equal(r.model.wasmBuild, build, r.model.threadsReason);
  assert.ok(r.chat.trim().length > 0 && r.chatTokens > 0, `chat answered: ${JSON.stringify(r.chat)}`);
  assert.ok(r.summary.trim().length > 0, "the summary has text");
}

test("npm pack: dist, both wasm builds, types, README and licence; no source maps, no missing files", () => {
  const e = new Set(pack.entries);
  for (const f of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/worker.js", "dist/polyfill.js", "dist/polyfill.d.ts", "dist/store.js", "dist/assets.js", "dist/dom-errors.js", "dist/create-monitor.js", "dist/vendor/hash-wasm-sha256.js", "dist/vendor/hash-wasm-sha256.d.ts", "dist/vendor/tinyld-light.js",
    "pkg/hearth.js", "pkg/hearth.d.ts", "pkg/hearth_bg.wasm", "pkg-mt/hearth.js", "pkg-mt/hearth.d.ts", "pkg-mt/hearth_bg.wasm"]) {
    assert.ok(e.has(f), `the tarball has ${f}`);
  }
  assert.ok(pack.entries.some((f) => /^pkg-mt\/snippets\/wasm-bindgen-rayon-[^/]+\/src\/workerHelpers/.test(f)), "the thread pool's worker helpers are packed");
  assert.deepEqual(pack.entries.filter((f) => f.endsWith(".map") || f.startsWith("src/") || f.includes("node_modules")), []);
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO, "www", "package.json"), "utf8"));
  assert.equal(manifest.name, "@hearth-ai/web");
  console.log(`# ${path.basename(pack.file)}: ${(pack.bytes / 2 ** 20).toFixed(2)} MiB packed, ${(pack.unpackedBytes / 2 ** 20).toFixed(2)} MiB unpacked, ${pack.entries.length} files`);
});

/** Serves a production build twice: plainly (the single-thread build) and cross-origin isolated (the threaded build). */
async function runBuiltSite(dist) {
  for (const isolate of [false, true]) {
    const site = await serveDir(dist, { isolate });
    try {
      const r = await runApp(site.url);
      assert.equal(r.isolated, isolate);
      assertWorked(r, isolate ? "threads" : "baseline");
    } finally {
      await site.close();
    }
  }
}

test("Vite production build (vite build, served statically; plain and isolated): load, chat, summarize", async () => {
  const dir = prepareProject("vite", pack.file);
  const out = runNode(dir, ["node_modules/vite/bin/vite.js", "build", "--logLevel", "warn"]);
  assert.doesNotMatch(out, /warn|error/i, `vite build is silent at --logLevel warn:\n${out}`);
  await runBuiltSite(path.join(dir, "dist"));
});

test("Vite dev server (pre-bundled dependency), cross-origin isolated: load, chat, summarize", async () => {
  const dir = prepareProject("vite", pack.file);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const dev = await startProcess(dir, ["node_modules/vite/bin/vite.js", "--host", "127.0.0.1", "--port", String(port), "--strictPort", "--force"], url, { HEARTH_ISOLATE: "1" });
  try {
    const r = await runApp(url);
    assert.equal(r.isolated, true, "the dev server's page is cross-origin isolated");
    assertWorked(r, "threads");
  } finally {
    await dev.stop();
  }
});

test("webpack 5 production build (plain and isolated): load, chat, summarize", async () => {
  const dir = prepareProject("webpack", pack.file);
  const out = runNode(dir, ["build.mjs"]);
  assert.doesNotMatch(out, /WARNING|ERROR/, `webpack builds without warnings:\n${out}`);
  await runBuiltSite(path.join(dir, "dist"));
});

test("plain page importing the package from another origin, cross-origin isolated: the threaded build", async () => {
  const dir = prepareProject("plain", pack.file);
  const cdn = await serveDir(path.join(dir, "package"), { cors: true });
  const site = await serveDir(dir, { isolate: true, rewrite: (rel, buf) => (rel === "index.html" ? Buffer.from(String(buf).replace("__PACKAGE_URL__", cdn.url)) : buf) });
  try {
    assert.notEqual(new URL(cdn.url).origin, new URL(site.url).origin);
    const r = await runApp(site.url);
    assert.equal(r.isolated, true);
    assertWorked(r, "threads");
    assert.ok(r.model.threads >= 1);
  } finally {
    await site.close();
    await cdn.close();
  }
});
