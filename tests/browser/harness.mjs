// Shared setup of the browser tests: the static server on a free port and headless Chromium
// (the system's, through playwright-core; nothing here downloads a browser).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { startServer } from "../../www/server.mjs";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(REPO, "www", "package.json"));
const { chromium } = require("playwright-core");

export const CHROMIUM_FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** The Chromium binary: $CHROMIUM, else /usr/bin/chromium. Throws (the test fails) when absent. */
export function chromiumPath() {
  const candidates = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter(Boolean);
  for (const p of candidates) if (fs.existsSync(p)) return p;
  throw new Error(`Chromium not found (looked for ${candidates.join(", ")}); install Debian's chromium (make setup)`);
}

/** Launches Chromium with a fresh persistent profile; returns {context, userDataDir, close}. */
export async function launchBrowser({ userDataDir, extraArgs = [] } = {}) {
  const dir = userDataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "hearth-chromium-"));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: chromiumPath(),
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraArgs],
  });
  return {
    context,
    userDataDir: dir,
    close: async ({ keepProfile = false } = {}) => {
      await context.close();
      if (!keepProfile) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts the test server (fault injection and counters on). */
export function startTestServer(opts = {}) {
  return startServer({ testHooks: true, ...opts });
}

/** Server-side counters: {requests, bytes: {path: n}, log}. */
export async function serverStats(srv) {
  return JSON.parse(JSON.stringify(srv.stats));
}

export function resetServerStats(srv) {
  srv.stats.requests = 0;
  srv.stats.bytes = {};
  srv.stats.log = [];
}

/** Opens a blank page on the server's origin, with console errors collected in `page.errors`. */
export async function openPage(context, srv) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => {
    if (process.env.HEARTH_TEST_VERBOSE) console.log(`[page ${m.type()}] ${m.text()}`);
  });
  await page.goto(srv.url + "__test__/blank.html");
  return page;
}

/**
 * The set-up most browser test files share: the test server (`serverOpts` as
 * {@link startTestServer}'s), one browser and a blank page on the server's origin.
 */
export async function openTestPage(serverOpts = {}) {
  const srv = await startTestServer(serverOpts);
  const browser = await launchBrowser();
  const page = await openPage(browser.context, srv);
  return { srv, browser, page };
}

/** Closes what {@link openTestPage} opened: the browser, then the server (either may be missing when set-up failed). */
export async function closeTestPage({ browser, srv }) {
  await browser?.close();
  await srv?.close();
}

/**
 * Evaluates `fn(H, arg)` in page `p`, where H is the package's `/dist/index.js` module (also left
 * as `globalThis.H`); `fn` is sent as source, so it may use only `H`, `arg` and page globals.
 * A rejection comes back as `{error: {code, message, name}}` (a HearthError's `code`, else "THROWN").
 */
export function inPage(p, fn, arg) {
  return p.evaluate(async ({ src, arg }) => {
    const H = await import("/dist/index.js");
    globalThis.H = H;
    const f = new Function("return " + src)();
    try {
      return await f(H, arg);
    } catch (e) {
      return { error: { code: e?.code ?? "THROWN", message: String(e?.message ?? e), name: e?.name } };
    }
  }, { src: fn.toString(), arg });
}

export const MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf";
export const MODEL_PATH = path.join(REPO, "models", "cache", MODEL_FILE);

/** Whether the wasm package has been built (`make wasm`). */
export function wasmBuilt() {
  return fs.existsSync(path.join(REPO, "www", "pkg", "hearth_bg.wasm")) && fs.existsSync(path.join(REPO, "www", "pkg", "hearth.js"));
}

/** Fails (does not skip) when a prerequisite is missing, naming the make target that provides it. */
export function requireFile(p, hint) {
  if (!fs.existsSync(p)) throw new Error(`${path.relative(REPO, p)} is missing: run ${hint}`);
}

/** Fails unless `www/dist` is built (`make www`). */
export function requireDist() {
  requireFile(path.join(REPO, "www", "dist", "index.js"), "make www (npm run build in www/)");
}

/** Mounts for a server that also serves `dir` at /fixtures/. */
export function mountsWithFixtures(dir) {
  return [
    ["/fixtures/", dir],
    ["/models/", path.join(REPO, "models", "cache")],
    ["/", path.join(REPO, "www")],
  ];
}

/** Writes a deterministic pseudo-random file of `size` bytes; returns its path. */
export function makeFixture(dir, name, size, seed = 1) {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (let i = size - (size % 4); i < size; i++) buf[i] = i & 255;
  const p = path.join(dir, name);
  fs.writeFileSync(p, buf);
  return p;
}

export function sha256File(p) {
  return createHash("sha256").update(fs.readFileSync(p)).digest("hex");
}

/**
 * The native CLI (the greedy-output oracle): $HEARTH_BIN, else the newer of the release build
 * and the test-profile build (`make native-bin`, also built by `cargo test`), under
 * $CARGO_TARGET_DIR or target/.
 */
export function nativeBin() {
  if (process.env.HEARTH_BIN) {
    requireFile(process.env.HEARTH_BIN, "unset HEARTH_BIN or point it at a built hearth");
    return process.env.HEARTH_BIN;
  }
  const dir = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, "target");
  const found = ["release", "debug"].map((p) => path.join(dir, p, "hearth")).filter((f) => fs.existsSync(f));
  if (!found.length) throw new Error(`the native hearth binary is missing under ${dir}: run make native-bin`);
  // The newer of the two: a stale release build must not stand in for the current code.
  return found.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
}
