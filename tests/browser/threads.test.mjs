// Threads in the wasm CPU path: a cross-origin isolated page (COOP/COEP from the server's
// `isolate` option) runs the threaded build (www/pkg-mt/: a rayon pool of Web Workers, relaxed
// SIMD) and gives the same greedy chat as the single-thread build (www/pkg/); a page that is not
// isolated falls back to the single-thread build and says why. Prints decode tok/s of both builds
// measured in the same run. Needs `make wasm` (both builds) and `make models`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO, MODEL_PATH, requireDist, requireFile, launchBrowser, startTestServer, openPage } from "./harness.mjs";
import { browserPid, processTree, cpuSeconds } from "./procmem.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(path.join(REPO, "www/pkg-mt/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");

const ID = "smollm2-135m-instruct-q4_1";
const ASK = [{ role: "user", content: "What is 2+2?" }];
const STORY = [{ role: "user", content: "Write a short story about a lighthouse keeper." }];

// The intranet example's strict CSP: no `blob:` Workers. The pool's Workers start from the
// package's own script (scripts/rayon_worker_helpers.js), so the threaded build runs under it.
const STRICT_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'";
// A CSP that allows only the engine's Worker (dist/): the pool's Workers (pkg-mt/) are refused.
const NO_POOL_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src http://127.0.0.1:*/dist/";

let isolatedSrv, plainSrv, strictSrv, noPoolSrv, browser;
before(async () => {
  isolatedSrv = await startTestServer({ isolate: true });
  plainSrv = await startTestServer();
  strictSrv = await startTestServer({ isolate: true, csp: STRICT_CSP });
  noPoolSrv = await startTestServer({ isolate: true, csp: NO_POOL_CSP });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await isolatedSrv?.close();
  await plainSrv?.close();
  await strictSrv?.close();
  await noPoolSrv?.close();
});

/**
 * In a page of `srv`: loads the default model on the CPU with `opts` (in the engine's Worker),
 * runs a greedy chat and a greedy 64-token stream; returns the model facts, the chat's text and
 * the stream's decode tok/s (tokens after the first over the time after the first).
 */
async function loadAndChat(srv, opts, { chat = true } = {}) {
  const page = await openPage(browser.context, srv);
  try {
    return await page.evaluate(async ({ id, opts, ask, story, chat }) => {
      const H = await import("/dist/index.js");
      let engine;
      try {
        engine = await H.Engine.load(id, { backend: "cpu", ...opts });
      } catch (e) {
        return { isolated: crossOriginIsolated, error: { code: e?.code, message: String(e?.message ?? e) } };
      }
      if (!chat) {
        const model = engine.model;
        await engine.unload();
        return { isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, model };
      }
      const answer = await engine.chat.completions.create({ messages: ask, temperature: 0, max_tokens: 32 });
      let first = 0;
      let last;
      for await (const c of await engine.chat.completions.create({ messages: story, stream: true, temperature: 0, max_tokens: 64 })) {
        if (!first && c.choices[0].delta.content) first = performance.now();
        last = c;
      }
      const tokens = last.usage.completion_tokens;
      const decode = (tokens - 1) / ((performance.now() - first) / 1000);
      const model = engine.model;
      await engine.unload();
      return { isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, model, text: answer.choices[0].message.content, tokens, decode };
    }, { id: ID, opts, ask: ASK, story: STORY, chat });
  } finally {
    await page.close();
  }
}

test("cross-origin isolated: the threaded build runs N>1 threads and chats exactly as the single-thread build", async () => {
  const mt = await loadAndChat(isolatedSrv, {});
  assert.equal(mt.error, undefined, JSON.stringify(mt.error));
  assert.equal(mt.isolated, true, "the page is cross-origin isolated");
  assert.equal(mt.model.backend, "cpu");
  assert.equal(mt.model.wasmBuild, "threads", mt.model.threadsReason);
  assert.equal(mt.model.threads, mt.cores, "one thread per logical core by default");
  assert.ok(mt.model.threads > 1, `N>1 threads (this machine has ${mt.cores} logical cores)`);

  const st = await loadAndChat(isolatedSrv, { threads: false });
  assert.equal(st.error, undefined, JSON.stringify(st.error));
  assert.equal(st.model.wasmBuild, "baseline");
  assert.equal(st.model.threads, 1);
  assert.match(st.model.threadsReason, /threads: false/);

  assert.ok(mt.text.length > 0);
  assert.equal(mt.text, st.text, "greedy chat: threaded build = single-thread build");
  console.log(`# decode tok/s (CPU, Worker, ${mt.cores} logical cores, same run): single-thread build ${st.decode.toFixed(1)}, threaded build ${mt.decode.toFixed(1)} with ${mt.model.threads} threads (${(mt.decode / st.decode).toFixed(2)}x)`);
});

test("threaded build: between requests the pool's workers stop spinning (an idle engine uses no CPU)", async () => {
  // The CPU backend's workers spin between the products of a decode step and go back to rayon
  // (parked) a few ms after the last one. An engine left loaded must not keep a core busy.
  const page = await openPage(browser.context, isolatedSrv);
  try {
    const r = await page.evaluate(async ({ id, ask }) => {
      const H = await import("/dist/index.js");
      globalThis.idleEngine = await H.Engine.load(id, { backend: "cpu" });
      const a = await globalThis.idleEngine.chat.completions.create({ messages: ask, temperature: 0, max_tokens: 16 });
      return { model: globalThis.idleEngine.model, text: a.choices[0].message.content };
    }, { id: ID, ask: ASK });
    assert.equal(r.model.wasmBuild, "threads", r.model.threadsReason);
    assert.ok(r.text.length > 0);
    await new Promise((res) => setTimeout(res, 1000));
    const tree = processTree(browserPid(browser.userDataDir));
    const before = cpuSeconds(tree);
    await new Promise((res) => setTimeout(res, 3000));
    const used = cpuSeconds(tree) - before;
    // One spinning thread would use ~3 s here; an idle Chromium a few hundredths.
    assert.ok(used < 0.75, `the browser used ${used.toFixed(2)} CPU s in 3 s while the engine sat idle`);
    console.log(`# idle engine (threaded build): ${used.toFixed(2)} CPU s in 3 s`);
    await page.evaluate(() => globalThis.idleEngine.unload());
  } finally {
    await page.close();
  }
});

test("threaded build: unload stops the pool first (every pool Worker leaves rayon and closes before the engine's Worker ends)", async () => {
  // The engine Worker's own protocol (protocol.ts), as worker-client.ts speaks it at unload():
  // "dispose" answers with how many pool Workers closed. A pool Worker left blocked in rayon's
  // wait would keep the shared memory resident ~2 s past terminate() (wasm-instance.ts).
  const page = await openPage(browser.context, isolatedSrv);
  try {
    const r = await page.evaluate(async (id) => {
      const w = new Worker("/dist/worker.js", { type: "module" });
      const ask = (msg) => new Promise((resolve) => {
        w.addEventListener("message", function on(e) {
          if (e.data.id !== msg.id || (e.data.type !== "result" && e.data.type !== "error")) return;
          w.removeEventListener("message", on);
          resolve(e.data);
        });
        w.postMessage(msg);
      });
      const loaded = await ask({ id: 1, type: "load", model: id, config: { backend: "cpu", threads: 2, contextSize: 2048, evict: false } });
      const done = await ask({ id: 2, type: "generate", request: { kind: "completion", prompt: "Once upon a time", max_tokens: 4, temperature: 0 } });
      const disposed = await ask({ id: 3, type: "dispose" });
      const after = await ask({ id: 4, type: "countTokens", text: "hello" });
      w.terminate();
      return { loaded, done, disposed, after };
    }, ID);
    assert.equal(r.loaded.type, "result", JSON.stringify(r.loaded));
    assert.equal(r.loaded.value.wasmBuild, "threads");
    assert.equal(r.done.type, "result", JSON.stringify(r.done));
    assert.ok(r.done.value.usage.completion_tokens > 0);
    assert.deepEqual(r.disposed, { id: 3, type: "result", value: r.loaded.value.threads });
    assert.equal(r.after.type, "error");
    assert.equal(r.after.error.code, "BAD_REQUEST");
  } finally {
    await page.close();
  }
});

test("cross-origin isolated: an explicit thread count is honoured", async () => {
  const r = await loadAndChat(isolatedSrv, { threads: 2 }, { chat: false });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.model.wasmBuild, "threads");
  assert.equal(r.model.threads, 2);
});

test("not isolated: falls back to the single-thread build and says so; forcing threads is BAD_REQUEST", async () => {
  const r = await loadAndChat(plainSrv, {});
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.isolated, false);
  assert.equal(r.model.wasmBuild, "baseline");
  assert.equal(r.model.threads, 1);
  assert.match(r.model.threadsReason, /not cross-origin isolated/);
  assert.ok(r.text.length > 0);

  const forced = await loadAndChat(plainSrv, { threads: 4 }, { chat: false });
  assert.equal(forced.error?.code, "BAD_REQUEST");
  assert.match(forced.error.message, /not cross-origin isolated/);
});

test("isolated with a strict CSP (no blob: Workers): the pool starts from the package's own script", async () => {
  const r = await loadAndChat(strictSrv, {}, { chat: false });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.isolated, true);
  assert.equal(r.model.wasmBuild, "threads", r.model.threadsReason);
});

test("isolated but a CSP that refuses the pool's Workers: the load falls back to one thread and says why", async () => {
  const r = await loadAndChat(noPoolSrv, {}, { chat: false });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.isolated, true);
  assert.equal(r.model.wasmBuild, "baseline");
  assert.equal(r.model.threads, 1);
  assert.match(r.model.threadsReason, /threaded build did not start .*(Content-Security-Policy|thread pool Worker failed to start)/);
});
