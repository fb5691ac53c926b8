// The WebGPU matvec autotune's browser half (www/src/backend-tune.ts, issue 21 item 3): choices
// kept in the store per adapter, handed back to the engine on the next load, a software adapter
// left untuned unless forced, `gpuTune: "off"` calling nothing, and a bad option refused. The
// engine side (`tune_gpu`, src/backend/gpu/tune.rs) is timed natively on lavapipe
// (`cargo test --lib backend::gpu::tune`); here the runner is a stand-in that answers as the
// engine does, because tuning SwiftShader would take minutes. engine_webgpu.test.mjs checks that a
// real WebGPU load on SwiftShader reports the tune as skipped.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireDist, openTestPage, closeTestPage, inPage } from "./harness.mjs";

requireDist();

let srv, browser, page;
before(async () => {
  ({ srv, browser, page } = await openTestPage());
});
after(async () => {
  await closeTestPage({ browser, srv });
});

test("tuneGpu keeps fresh choices per adapter, passes them back as cached, and honours off/force", async () => {
  const r = await inPage(page, async () => {
    const T = await import("/dist/backend-tune.js");
    const calls = [];
    const shape = (wg, tpr) => ({ wg, tpr });
    // Answers like WasmEngine.tune_gpu: entries it was given come back marked cached.
    const run = async (cachedJson, force, budget) => {
      calls.push({ cached: JSON.parse(cachedJson), force, budget });
      const given = JSON.parse(cachedJson);
      const fresh = { "v1|a|matvec|Q4_K|896": { format: "Q4_K", cols: 896, shape: shape(128, 8), default: shape(64, 16), default_ms: 2, best_ms: 1.6, candidates: [[shape(64, 16), 2], [shape(128, 8), 1.6]], rounds: 3 },
        "v1|a|matvec|Q6_K|4864": { format: "Q6_K", cols: 4864, shape: shape(64, 64), default: shape(64, 64), default_ms: 3, best_ms: 3, candidates: [[shape(64, 64), 3], [shape(32, 64), null]], rounds: 3 } };
      const entries = Object.entries(fresh).map(([k, e]) => (given[k] ? [k, { ...given[k], cached: true }] : [k, { ...e, cached: false }]));
      return JSON.stringify({ adapter: "a", skipped: null, entries, ms: 12.5 });
    };
    const adapterKey = "test/tune-" + Math.random();
    const first = await T.tuneGpu({ adapterKey, software: false, mode: "auto", run });
    const second = await T.tuneGpu({ adapterKey, software: false, mode: "auto", run });
    const other = await T.tuneGpu({ adapterKey: adapterKey + "-other", software: true, mode: "force", run, budgetMs: 40 });
    const n = calls.length;
    const off = await T.tuneGpu({ adapterKey, software: false, mode: "off", run });
    const file = JSON.parse(await (await (await (await (await navigator.storage.getDirectory()).getDirectoryHandle("hearth-models")).getFileHandle("gpu-tune.json")).getFile()).text());
    let bad = null;
    try { await (await import("/dist/index.js")).Engine.load("smollm2-135m-instruct-q4_1", { backend: "webgpu", gpuTune: "fast" }); } catch (e) { bad = e.code; }
    return { first, second, other, off, calls, n, after: calls.length, stored: Object.keys(file.adapters[adapterKey] ?? {}), bad };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.deepEqual(r.calls[0].cached, {}, "nothing stored for a new adapter");
  assert.equal(r.calls[0].force, false);
  assert.equal(r.calls[0].budget, 0, "the engine's default budget");
  assert.deepEqual(r.first.shapes, [
    { format: "Q4_K", cols: 896, wg: 128, tpr: 8, tuned: true, speedup: 2 / 1.6 },
    { format: "Q6_K", cols: 4864, wg: 64, tpr: 64, tuned: false, speedup: 1 },
  ]);
  assert.equal(r.first.cached, false);
  assert.equal(r.first.ms, 12.5);
  assert.equal(r.first.mode, "auto");
  assert.deepEqual(Object.keys(r.calls[1].cached).sort(), ["v1|a|matvec|Q4_K|896", "v1|a|matvec|Q6_K|4864"], "the second load is given the stored choices");
  assert.deepEqual(r.calls[1].cached["v1|a|matvec|Q4_K|896"].shape, { wg: 128, tpr: 8 });
  assert.equal(r.second.cached, true);
  assert.deepEqual(r.second.shapes, r.first.shapes);
  assert.deepEqual(r.calls[2].cached, {}, "another adapter's choices are not given");
  assert.equal(r.calls[2].force, true, "force tunes a software adapter");
  assert.equal(r.calls[2].budget, 40);
  assert.equal(r.after, r.n, "gpuTune off calls nothing");
  assert.deepEqual(r.off.shapes, []);
  assert.match(r.off.skipped, /off/);
  assert.deepEqual(r.stored.sort(), ["v1|a|matvec|Q4_K|896", "v1|a|matvec|Q6_K|4864"]);
  assert.equal(r.bad, "BAD_REQUEST");
});
