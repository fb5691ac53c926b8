// Every way a load can fail leaves the page able to load again (issue 23) and the store
// consistent: INTEGRITY, NETWORK, QUOTA (a write failing mid-download), ABORTED, a malformed
// model, and a trap (a real Rust panic through the test-only wasm export __test_arm_panic).
// Each test fails a load that way, loads again in the same page (resuming where that makes
// sense) and reloads the page, which must load normally. Also: a trap during a request reports
// INTERNAL ("the engine crashed: <panic text>", the text where the build exports
// last_panic_message, else the trap's) and the engine (its Worker, or the in-page wasm instance) is
// re-created on the next request; unload() aborts a running generation.
// Needs `make wasm` and `make models`. One browser; answers of a few tokens.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  REPO, MODEL_FILE, MODEL_PATH, requireDist, requireFile, mountsWithFixtures, resetServerStats, sha256File, openTestPage, closeTestPage, startTestServer, openPage, inPage,
} from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(path.join(REPO, "www/pkg-mt/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");

const ID = "smollm2-135m-instruct-q4_1";
const MODEL_URL_PATH = `/models/${MODEL_FILE}`;
const MODEL_BYTES = fs.statSync(MODEL_PATH).size;
const ASK = [{ role: "user", content: "What is 2+2?" }];
const GLUE = fs.readFileSync(path.join(REPO, "www/pkg/hearth.js"), "utf8");
const GLUE_MT = fs.readFileSync(path.join(REPO, "www/pkg-mt/hearth.js"), "utf8");

let dir, srv, browser, page, sha;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-failures-"));
  fs.writeFileSync(path.join(dir, "not-a-model.gguf"), "<!doctype html><title>404</title><p>this is not a model</p>".repeat(50));
  // The wasm module under /fixtures/: a copy of the glue (a module of its own, so arming a
  // panic in it touches no other instance) next to the real wasm binary.
  fs.mkdirSync(path.join(dir, "wasm"));
  fs.symlinkSync(path.join(REPO, "www/pkg/hearth_bg.wasm"), path.join(dir, "wasm", "hearth_bg.wasm"));
  // The same for the threaded build (its pool Workers import ../../../hearth.js from snippets/).
  fs.mkdirSync(path.join(dir, "wasm-mt"));
  fs.symlinkSync(path.join(REPO, "www/pkg-mt/hearth_bg.wasm"), path.join(dir, "wasm-mt", "hearth_bg.wasm"));
  fs.symlinkSync(path.join(REPO, "www/pkg-mt/snippets"), path.join(dir, "wasm-mt", "snippets"));
  // Issue 23's set-up: the default model as ./model.gguf next to a plain page.
  fs.symlinkSync(MODEL_PATH, path.join(dir, "model.gguf"));
  fs.writeFileSync(path.join(dir, "page.html"), "<!doctype html><meta charset=utf-8><title>issue 23</title><p>a page next to model.gguf</p>\n");
  armPanic(null);
  armPanic(null, { threads: true });
  sha = sha256File(MODEL_PATH);
  ({ srv, browser, page } = await openTestPage({ roots: mountsWithFixtures(dir) }));
});
after(async () => {
  await closeTestPage({ browser, srv });
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Writes /fixtures/wasm/hearth.js: the wasm-bindgen glue whose init arms a panic in the engine
 * call `method` (feed, step, count_tokens) of the instance it creates; null: the plain glue.
 * Each new instance (a new Worker, or a re-created in-page instance) fetches it again.
 */
function armPanic(method, { threads = false } = {}) {
  let src = threads ? GLUE_MT : GLUE;
  if (method) {
    assert.match(src, /__wbg_init as default/, "the glue's default export");
    src = src.replace(/__wbg_init as default/, "__hearthArmed as default") +
      `\nasync function __hearthArmed(input) { const r = await __wbg_init(input); __test_arm_panic(${JSON.stringify(method)}); return r; }\n`;
  }
  fs.writeFileSync(path.join(dir, threads ? "wasm-mt" : "wasm", "hearth.js"), src);
}
const PANIC_WASM = "/fixtures/wasm/hearth.js";
const PANIC_WASM_MT = "/fixtures/wasm-mt/hearth.js";

/** Loads `model` with `opts`, asks 2+2 (4 tokens), unloads; returns what happened (or {error}). */
function loadAndAsk(p, model, opts = {}) {
  return inPage(p, async (H, { model, opts, messages }) => {
    const e = await H.Engine.load(model, { backend: "cpu", threads: false, ...opts });
    const c = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
    const r = { fromStore: e.model.fromStore, text: c.choices[0].message.content };
    await e.unload();
    return r;
  }, { model, opts, messages: ASK });
}

/** Loads and fails; returns {code, message, stored: manifests, locks: held+pending}. */
function failLoad(p, model, opts) {
  return inPage(p, async (H, { model, opts }) => {
    const ac = new AbortController();
    const o = { backend: "cpu", threads: false, signal: ac.signal, ...opts };
    if (opts.abortAt) o.onProgress = (pr) => { if (pr.loaded >= opts.abortAt) ac.abort(); };
    delete o.abortAt;
    let err = null;
    try { await H.Engine.load(model, o); } catch (x) { err = { code: x.code, message: x.message }; }
    const locks = await navigator.locks.query();
    return { err, stored: await H.models.list(), locks: locks.held.length + locks.pending.length };
  }, { model, opts });
}

/** The page reloaded, then a normal load (default options, in a Worker): from the store when `fromStore`. */
async function reloadAndLoad(model, { fromStore = true } = {}) {
  await page.reload();
  const r = await loadAndAsk(page, model);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.fromStore, fromStore);
  assert.ok(r.text.length > 0);
}

const clearStore = () => inPage(page, async (H) => { for (const m of await H.models.list()) await H.models.delete(m.id); });

// Issue 23, step by step as reported: a page next to ./model.gguf (the default model; the test
// server answers Range requests and sends strong ETags), CPU, threads: false; a wrong sha256,
// then the right one in the same page (in a Worker and in the page), or a reload instead.
const ISSUE23_MODEL_PATH = "/fixtures/model.gguf";
const modelRequests = () => srv.stats.log.filter((l) => l.path === ISSUE23_MODEL_PATH && l.method === "GET");

async function issue23Page() {
  const p = await browser.context.newPage();
  p.errors = [];
  p.on("pageerror", (e) => p.errors.push(String(e)));
  await p.goto(srv.url + "fixtures/page.html");
  return p;
}

/** Step 1: a wrong sha256 rejects INTEGRITY, the bytes are gone, no lock is held or pending. */
async function issue23Step1(p, worker) {
  const f = await failLoad(p, "./model.gguf", { sha256: "0".repeat(64), worker });
  assert.equal(f.err?.code, "INTEGRITY", JSON.stringify(f));
  assert.match(f.err.message, /sha256 of .*model\.gguf is [0-9a-f]{64}, expected 0{64}/);
  assert.deepEqual(f.stored, [], "the downloaded bytes were deleted");
  assert.equal(f.locks, 0, "no lock held or pending");
}

/** Step 2 (or a load after the reload): the right sha256 downloads again, from byte 0, and answers. */
async function issue23Load(p, worker) {
  resetServerStats(srv);
  const r = await loadAndAsk(p, "./model.gguf", { sha256: sha, worker });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.fromStore, false);
  assert.ok(r.text.length > 0);
  // The retry reaches the server (the report: "no request for the model reaching the server"):
  // one whole GET (nothing was kept to resume from).
  const gets = modelRequests();
  assert.equal(gets.length, 1, JSON.stringify(srv.stats.log));
  assert.equal(gets[0].range, null);
  assert.equal(srv.stats.bytes[ISSUE23_MODEL_PATH], MODEL_BYTES, "downloaded again, whole");
}

test("INTEGRITY (issue 23, as reported): ./model.gguf with a wrong sha256, then the right one in the same page loads (Worker and in-page); the page reloads", async () => {
  await clearStore();
  for (const worker of [true, false]) {
    const p = await issue23Page();
    try {
      await issue23Step1(p, worker);
      await issue23Load(p, worker);
      await p.reload();
      const r = await loadAndAsk(p, "./model.gguf", { sha256: sha, worker });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.equal(r.fromStore, true);
      assert.deepEqual(p.errors, []);
    } finally {
      await p.close();
    }
    await clearStore();
  }
});

test("INTEGRITY (issue 23, step 3): after the failure a reload finishes and the right sha256 then loads", async () => {
  await clearStore();
  const p = await issue23Page();
  try {
    await issue23Step1(p, undefined);
    await p.reload();
    await issue23Load(p, undefined);
    assert.deepEqual(p.errors, []);
  } finally {
    await p.close();
  }
  await clearStore();
});

test("NETWORK: a download cut at 30 MB keeps its prefix; the retry in the same page resumes with Range; the page reloads", async () => {
  await clearStore();
  srv.cuts.set(MODEL_URL_PATH, 30e6);
  let f;
  try {
    f = await failLoad(page, ID, {});
  } finally {
    srv.cuts.delete(MODEL_URL_PATH);
  }
  assert.equal(f.err?.code, "NETWORK", JSON.stringify(f));
  assert.equal(f.stored.length, 1);
  const stored = f.stored[0].storedBytes;
  assert.ok(stored > 0 && stored <= 30e6 && !f.stored[0].complete, JSON.stringify(f.stored[0]));
  assert.equal(f.locks, 0);
  resetServerStats(srv);
  const r = await loadAndAsk(page, ID);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(srv.stats.bytes[MODEL_URL_PATH], MODEL_BYTES - stored, "only the missing bytes");
  assert.ok(srv.stats.log.some((l) => l.range === `bytes=${stored}-`));
  await reloadAndLoad(ID);
});

test("QUOTA: a chunk write failing with QuotaExceededError cancels the download; the retry resumes; the page reloads", async () => {
  await clearStore();
  // In-thread (worker: false), so the page's patches are what the store uses: the fifth chunk
  // write fails as on a full disk, and the model's response body records being cancelled.
  await page.evaluate(() => {
    const proto = FileSystemWritableFileStream.prototype;
    const write = proto.write;
    const realFetch = globalThis.fetch;
    let chunks = 0;
    globalThis.__cancelled = false;
    globalThis.__unpatch = () => { proto.write = write; globalThis.fetch = realFetch; };
    proto.write = function (data) {
      if (data instanceof Uint8Array && ++chunks === 5) return Promise.reject(new DOMException("simulated full disk", "QuotaExceededError"));
      return write.call(this, data);
    };
    globalThis.fetch = async (input, init) => {
      const resp = await realFetch(input, init);
      if (!String(input).endsWith(".gguf")) return resp;
      const reader = resp.body.getReader();
      const body = new ReadableStream({
        async pull(c) { const r = await reader.read(); if (r.done) c.close(); else c.enqueue(r.value); },
        cancel(reason) { globalThis.__cancelled = true; return reader.cancel(reason); },
      });
      return new Response(body, { status: resp.status, headers: resp.headers });
    };
  });
  let f, cancelled;
  try {
    f = await failLoad(page, ID, { worker: false });
    cancelled = await page.evaluate(() => globalThis.__cancelled);
  } finally {
    await page.evaluate(() => globalThis.__unpatch());
  }
  assert.equal(f.err?.code, "QUOTA", JSON.stringify(f));
  assert.match(f.err.message, /storage full/);
  assert.equal(cancelled, true, "the response body was cancelled");
  assert.equal(f.locks, 0);
  assert.equal(f.stored.length, 1);
  assert.equal(f.stored[0].storedBytes, 4 * 8 * 1024 * 1024, "four whole chunks kept");
  resetServerStats(srv);
  const r = await loadAndAsk(page, ID, { worker: false });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(srv.stats.bytes[MODEL_URL_PATH], MODEL_BYTES - 4 * 8 * 1024 * 1024);
  await reloadAndLoad(ID);
});

test("ABORTED: an abort mid-download keeps the prefix; the retry resumes; the page reloads", async () => {
  await clearStore();
  const f = await failLoad(page, ID, { abortAt: 20e6 });
  assert.equal(f.err?.code, "ABORTED", JSON.stringify(f));
  assert.equal(f.locks, 0);
  const stored = f.stored[0]?.storedBytes ?? 0;
  assert.ok(stored >= 16 * 1024 * 1024, `stored ${stored}`);
  resetServerStats(srv);
  const r = await loadAndAsk(page, ID);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(srv.stats.bytes[MODEL_URL_PATH], MODEL_BYTES - stored);
  await reloadAndLoad(ID);
});

test("malformed model: INVALID_MODEL stores nothing; a good model then loads in the same page; the page reloads", async () => {
  const f = await failLoad(page, "/fixtures/not-a-model.gguf", {});
  assert.equal(f.err?.code, "INVALID_MODEL", JSON.stringify(f));
  assert.deepEqual(f.stored.map((m) => m.id), [ID]);
  assert.equal(f.locks, 0);
  const r = await loadAndAsk(page, ID);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.fromStore, true);
  await reloadAndLoad(ID);
});

test("a trap while loading (a panic in feed): INTERNAL \"the engine crashed\", the file is not kept; the next load downloads it and works; the page reloads", async () => {
  for (const worker of [true, false]) {
    armPanic("feed");
    const f = await failLoad(page, ID, { worker, wasmUrl: PANIC_WASM });
    armPanic(null);
    assert.equal(f.err?.code, "INTERNAL", JSON.stringify(f));
    assert.match(f.err.message, /the engine crashed/);
    // The panic hook keeps the panic text (last_panic_message): the error carries it.
    assert.match(f.err.message, /the engine crashed: panicked at [^\n]*\nhearth test panic in feed/);
    assert.deepEqual(f.stored, [], "a file whose load crashed is not kept as good");
    assert.equal(f.locks, 0);
    resetServerStats(srv);
    const r = await loadAndAsk(page, ID, { worker, wasmUrl: PANIC_WASM });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.fromStore, false);
    assert.equal(srv.stats.bytes[MODEL_URL_PATH], MODEL_BYTES);
  }
  await reloadAndLoad(ID);
});

test("a trap during a request: INTERNAL \"the engine crashed\"; the Worker / in-page instance is re-created on the next request", async () => {
  let n = 0;
  // A new URL each time: an in-page instance stays cached per URL while it is alive.
  const run = (worker, method) => inPage(page, async (H, { worker, method, wasmUrl, messages }) => {
    const e = await H.Engine.load("smollm2-135m-instruct-q4_1", { backend: "cpu", threads: false, worker, wasmUrl });
    const out = {};
    try {
      if (method === "step") await e.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
      else await e.countTokens("hello");
      out.first = "ok?!";
    } catch (x) { out.first = { code: x.code, message: x.message }; }
    // The panic is armed once per instance: the re-created one fetches the plain glue again.
    await globalThis.__armPlain();
    const c = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
    out.after = c.choices[0].message.content;
    out.tokens = await e.countTokens("hello");
    await e.unload();
    return out;
  }, { worker, method, wasmUrl: `${PANIC_WASM}?run=${++n}`, messages: ASK });
  await page.exposeFunction("__armPlain", () => armPanic(null));
  for (const [worker, method] of [[true, "step"], [true, "count_tokens"], [false, "count_tokens"], [false, "step"]]) {
    armPanic(method);
    const r = await run(worker, method);
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.first?.code, "INTERNAL", `${worker ? "Worker" : "in-page"} ${method}: ${JSON.stringify(r.first)}`);
    assert.match(r.first.message, /the engine crashed: panicked at [^\n]*\nhearth test panic in /);
    assert.ok(r.after.length > 0);
    assert.ok(r.tokens > 0);
  }
  armPanic(null);
  assert.deepEqual(page.errors, []);
});

test("a panic on a thread of the threaded build's pool, while loading and during a request: INTERNAL with the panic text, the file is not kept, the Worker is re-created; the next chat and load in the page work", { timeout: 600_000 }, async () => {
  // The threaded build needs a cross-origin isolated page. The panic fires in a task of a
  // parallel job on a pool Worker while the engine's thread waits for it (blocked in wasm): only
  // the pool's report on its BroadcastChannel can end that wait (worker-client.ts).
  const iso = await startTestServer({ isolate: true, roots: mountsWithFixtures(dir) });
  const p = await openPage(browser.context, iso);
  const PANIC = /the engine crashed: panicked at [^\n]*\nhearth test panic in a pool thread during (feed|step) \(task \d+; armed by __test_arm_panic\) \(RuntimeError: unreachable[^)]*in a thread-pool Worker\)/;
  try {
    await p.exposeFunction("__armPlainMt", () => armPanic(null, { threads: true }));
    const o = { backend: "cpu", threads: 2, wasmThreadsUrl: PANIC_WASM_MT };

    // While loading (the model is downloaded here: this origin's store is empty).
    armPanic("pool:feed", { threads: true });
    const f = await failLoad(p, ID, o);
    armPanic(null, { threads: true });
    assert.equal(f.err?.code, "INTERNAL", JSON.stringify(f));
    assert.match(f.err.message, PANIC);
    assert.match(f.err.message, /during feed/);
    assert.deepEqual(f.stored, [], "a file whose load crashed is not kept as good");
    assert.equal(f.locks, 0);

    // During a request; then the re-created Worker, and a new load in the same page.
    armPanic("pool:step", { threads: true });
    const r = await inPage(p, async (H, { o, messages }) => {
      const e = await H.Engine.load("smollm2-135m-instruct-q4_1", o);
      const out = { build: e.model.wasmBuild, threads: e.model.threads };
      try {
        await e.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
        out.first = "ok?!";
      } catch (x) {
        out.first = { code: x.code, message: x.message };
      }
      // The re-created Worker fetches the plain glue.
      await globalThis.__armPlainMt();
      const c = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
      out.after = c.choices[0].message.content;
      out.afterBuild = e.model.wasmBuild;
      await e.unload();
      const e2 = await H.Engine.load("smollm2-135m-instruct-q4_1", o);
      const c2 = await e2.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
      out.again = c2.choices[0].message.content;
      out.againBuild = e2.model.wasmBuild;
      out.fromStore = e2.model.fromStore;
      await e2.unload();
      return out;
    }, { o, messages: ASK });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.build, "threads");
    assert.equal(r.threads, 2);
    assert.equal(r.first?.code, "INTERNAL", JSON.stringify(r.first));
    assert.match(r.first.message, PANIC);
    assert.match(r.first.message, /during step/);
    assert.ok(r.after.length > 0);
    assert.equal(r.afterBuild, "threads");
    assert.equal(r.again, r.after, "greedy: the same answer from the re-created Worker and a new load");
    assert.equal(r.againBuild, "threads");
    assert.equal(r.fromStore, true);
    assert.deepEqual(p.errors, []);
  } finally {
    armPanic(null, { threads: true });
    await p.close();
    await iso.close();
  }
});

test("unload() during a generation aborts it: the generation rejects ABORTED, the engine is gone", async () => {
  for (const worker of [true, false]) {
    const r = await inPage(page, async (H, { worker }) => {
      const e = await H.Engine.load("smollm2-135m-instruct-q4_1", { backend: "cpu", threads: false, worker });
      let tokens = 0;
      let unloaded;
      const gen = e.complete("Once upon a time", { max_tokens: 2000, temperature: 0, onDelta: () => { if (++tokens === 2) unloaded = e.unload(); } });
      let code = null;
      try { await gen; } catch (x) { code = x.code; }
      await unloaded;
      let after = null;
      try { await e.countTokens("x"); } catch (x) { after = x.code; }
      return { code, tokens, after };
    }, { worker });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.code, "ABORTED", JSON.stringify(r));
    assert.ok(r.tokens < 2000);
    assert.equal(r.after, "BAD_REQUEST");
  }
});
