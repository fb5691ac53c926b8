// The JS API's parts that need no model: HearthError, option validation, WebGPU probing, the
// polyfill's install rules, and a clear error when the wasm package is missing. Runs in Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO, requireDist, openTestPage, closeTestPage } from "./harness.mjs";

requireDist();
let t, page;
before(async () => {
  t = await openTestPage();
  page = t.page;
});
after(() => closeTestPage(t ?? {}));

test("HearthError.from maps wasm objects, DOMExceptions and anything else to stable codes", async () => {
  const { HearthError } = await import(pathToFileURL(path.join(REPO, "www/dist/errors.js")).href);
  const a = HearthError.from({ code: "CONTEXT_OVERFLOW", message: "too long" });
  assert.ok(a instanceof HearthError && a instanceof Error);
  assert.deepEqual([a.code, a.message, a.name], ["CONTEXT_OVERFLOW", "too long", "HearthError"]);
  assert.equal(HearthError.from(new DOMException("x", "AbortError")).code, "ABORTED");
  assert.equal(HearthError.from(new DOMException("x", "QuotaExceededError")).code, "QUOTA");
  assert.equal(HearthError.from({ code: "NOT_A_CODE", message: "m" }).code, "INTERNAL");
  assert.equal(HearthError.from("boom", "NETWORK").code, "NETWORK");
  assert.equal(HearthError.from(a), a);
  const q = new HearthError("QUOTA", "full", { needed: 5, available: 1 });
  assert.deepEqual(JSON.parse(JSON.stringify(q)), { code: "QUOTA", message: "full", details: { needed: 5, available: 1 } });
});

test("probeWebGpu finds the SwiftShader adapter in this Chromium and knows it is software", async () => {
  const r = await page.evaluate(async () => (await import("/dist/index.js")).probeWebGpu());
  assert.equal(r.ok, true);
  assert.equal(r.software, true, r.reason);
  assert.match(r.reason, /software renderer \(swiftshader\)/i);
});

test("Engine.load rejects bad options with BAD_REQUEST and a missing wasm package with a clear INTERNAL error", async () => {
  const r = await page.evaluate(async () => {
    const { Engine } = await import("/dist/index.js");
    const codes = {};
    const tryLoad = async (name, ...args) => {
      try { await Engine.load(...args); codes[name] = "loaded"; } catch (e) { codes[name] = `${e.code}: ${e.message}`; }
    };
    await tryLoad("backend", "x", { backend: "tpu" });
    await tryLoad("sha256", "x", { sha256: "xyz" });
    await tryLoad("ctx", "/models/none.gguf", { worker: false, contextSize: 3 });
    await tryLoad("nowasm", "/models/none.gguf", { worker: false, wasmUrl: "/no-such-dir/hearth.js" });
    await tryLoad("nowasmWorker", "/models/none.gguf", { wasmUrl: "/no-such-dir/hearth.js" });
    await tryLoad("aborted", "x", { signal: AbortSignal.abort() });
    return codes;
  });
  assert.match(r.backend, /^BAD_REQUEST/);
  assert.match(r.sha256, /^BAD_REQUEST/);
  assert.match(r.ctx, /^BAD_REQUEST/);
  assert.match(r.nowasm, /^INTERNAL: could not load the Hearth wasm module .*make wasm/);
  assert.match(r.nowasmWorker, /^INTERNAL: could not load the Hearth wasm module .*make wasm/);
  assert.match(r.aborted, /^ABORTED/);
});

test("the polyfill keeps a usable native global, replaces an unavailable one, and reports availability", async () => {
  const p = await t.browser.context.newPage();
  await p.goto(t.srv.url + "__test__/blank.html");
  const r = await p.evaluate(async () => {
    // Chromium 148 ships LanguageModel and Summarizer globals that answer "unavailable" here
    // (no on-device model). Stand in a usable native Summarizer to check it is kept.
    const nativeLM = globalThis.LanguageModel;
    const nativeLMAvailability = nativeLM ? await nativeLM.availability() : "absent";
    const usable = { availability: async () => "available", create: async () => "native" };
    globalThis.Summarizer = usable;
    const P = await import("/dist/polyfill.js");
    const first = { ...P.installed, summarizerKept: globalThis.Summarizer === usable, lmReplaced: globalThis.LanguageModel === P.LanguageModel, nativeKept: P.native.LanguageModel === nativeLM };
    const forced = P.install({ force: true });
    return {
      nativeLMAvailability, first, forced, nowPolyfilled: globalThis.Summarizer === P.Summarizer,
      availability: await LanguageModel.availability(), sAvailability: await Summarizer.availability(),
      params: await LanguageModel.params(),
    };
  });
  await p.close();
  console.log(`# native LanguageModel.availability() in this Chromium: ${r.nativeLMAvailability}`);
  assert.deepEqual(r.first, { Summarizer: false, LanguageModel: true, Writer: true, Rewriter: true, LanguageDetector: true, summarizerKept: true, lmReplaced: true, nativeKept: true });
  assert.deepEqual(r.forced, { Summarizer: true, LanguageModel: true, Writer: true, Rewriter: true, LanguageDetector: true });
  assert.equal(r.nowPolyfilled, true);
  assert.equal(r.availability, "downloadable", "nothing stored in this fresh profile");
  assert.equal(r.sAvailability, "downloadable");
  assert.deepEqual(r.params, { defaultTopK: 3, maxTopK: 128, defaultTemperature: 1, maxTemperature: 2 });
});

test("the shipped .d.ts files have no `any` in public types", async () => {
  const fs = await import("node:fs");
  const dir = path.join(REPO, "www/dist");
  const offenders = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".d.ts"))) {
    const src = fs.readFileSync(path.join(dir, f), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const [i, line] of src.split("\n").entries()) if (/\bany\b/.test(line)) offenders.push(`${f}:${i + 1}: ${line.trim()}`);
  }
  assert.deepEqual(offenders, []);
  for (const f of ["index.d.ts", "polyfill.d.ts", "store.d.ts"]) assert.ok(fs.existsSync(path.join(dir, f)), f);
});
