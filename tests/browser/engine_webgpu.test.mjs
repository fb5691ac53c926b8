// The WebGPU backend in headless Chromium (SwiftShader: no shader-f16, a CPU device, so
// correctness only): greedy chat equal to the CPU's and llama.cpp's, `auto` preferring the CPU
// over a software adapter, a lost GPU device moving the engine to the CPU from the stored bytes,
// and the memory a WebGPU load holds. Needs `make wasm`, `make models` (and `make models-test`
// for the Qwen memory case).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { tensorTable } from "./gguf.mjs";
import { REPO, MODEL_PATH, requireDist, requireFile, openTestPage, closeTestPage, resetServerStats, inPage } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");

const ID = "smollm2-135m-instruct-q4_1";
const GOLDEN = JSON.parse(fs.readFileSync(path.join(REPO, "tests/goldens/smollm2.json"), "utf8"));
const G2 = GOLDEN.prompts.find((p) => p.name === "chat_2plus2");
const ASK = [{ role: "user", content: "What is 2+2?" }];

let t, srv, browser, page;
before(async () => {
  t = await openTestPage();
  ({ srv, browser, page } = t);
  // The device-lost test feeds the CPU engine from the store: the model is stored first.
  const r = await inPage(page, async (H, id) => {
    const e = await H.Engine.load(id, { backend: "cpu", threads: false });
    await e.unload();
    return H.models.has(id);
  }, ID);
  assert.equal(r, true, JSON.stringify(r));
});
after(() => closeTestPage(t ?? {}));

test("WebGPU (SwiftShader) on request gives the CPU's greedy chat; auto prefers the CPU over a software adapter", async () => {
  const r = await inPage(page, async (H, { id, messages }) => {
    const probe = await H.probeWebGpu();
    const progress = [];
    const t0 = performance.now();
    const e = await H.Engine.load(id, { backend: "webgpu", onProgress: (p) => progress.push(p.phase) });
    const loadMs = performance.now() - t0;
    const chunks = [];
    const t1 = performance.now();
    let first = 0;
    for await (const c of await e.chat.completions.create({ messages, stream: true, temperature: 0, max_tokens: 32 })) {
      if (!first && c.choices[0].delta.content) first = performance.now();
      chunks.push(c);
    }
    const total = performance.now() - t1;
    const out = { probe, backend: e.backend, reason: e.model.backendReason, gpuTune: e.model.gpuTune, loadMs, ttft: first - t1, total, text: chunks.map((c) => c.choices[0].delta.content ?? "").join(""), usage: chunks.at(-1).usage };
    await e.unload();
    return out;
  }, { id: ID, messages: ASK });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.probe.ok, true, r.probe.reason);
  assert.equal(r.backend, "webgpu", r.reason);
  assert.equal(r.text, G2.text);
  // The matvec autotune does not time a software adapter (gpuTune "auto"): built-in shapes.
  assert.match(r.gpuTune?.skipped ?? "", /software adapter/, JSON.stringify(r.gpuTune));
  assert.deepEqual(r.gpuTune.shapes, []);
  console.log(`# WebGPU (SwiftShader, Worker): warm load ${r.loadMs.toFixed(0)} ms; time to first token ${r.ttft.toFixed(0)} ms; decode ${((r.usage.completion_tokens - 1) / ((r.total - r.ttft) / 1000)).toFixed(1)} tok/s`);
});

test("GPU device lost mid-session: the engine moves to the CPU from the stored bytes and says so", async () => {
  const gpage = await browser.context.newPage();
  // Keep every GPUDevice the page creates, so the test can destroy it (a real device loss).
  await gpage.addInitScript(() => {
    globalThis.__devices = [];
    const orig = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      const d = await orig.apply(this, args);
      globalThis.__devices.push(d);
      return d;
    };
  });
  await gpage.goto(srv.url + "__test__/blank.html");
  resetServerStats(srv);
  const r = await inPage(gpage, async (H, { id, messages }) => {
    const e = await H.Engine.load(id, { backend: "webgpu", worker: false });
    const events = [];
    e.addEventListener("backendchange", (ev) => events.push(ev.change));
    const before = e.backend;
    for (const d of globalThis.__devices) d.destroy();
    let text, code = null;
    try { text = (await e.chat.completions.create({ messages, temperature: 0, max_tokens: 32 })).choices[0].message.content; } catch (x) { code = x.code; }
    if (code === "DEVICE_LOST") text = (await e.chat.completions.create({ messages, temperature: 0, max_tokens: 32 })).choices[0].message.content;
    return { before, after: e.backend, events, text, reason: e.model.backendReason, devices: globalThis.__devices.length };
  }, { id: ID, messages: ASK });
  await gpage.close();
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.devices > 0);
  assert.equal(r.before, "webgpu");
  assert.equal(r.after, "cpu");
  assert.equal(r.events.length, 1);
  assert.equal(r.events[0].to, "cpu");
  assert.match(r.reason, /GPU device lost/);
  assert.equal(r.text, G2.text);
  assert.equal(srv.stats.log.filter((l) => l.path.startsWith("/models/")).length, 0, "the CPU engine was fed from the store");
});

/**
 * Loads `id` from the network on WebGPU in-thread (so the page's heap is the engine's heap) while
 * sampling the JS heap + ArrayBuffers; returns their peak above the blank page, the wasm memory
 * (which never shrinks, so its final size is its peak) and what the callback returned.
 */
async function loadMemory(id, then) {
  const mpage = await browser.context.newPage();
  await mpage.goto(srv.url + "__test__/blank.html");
  const cdp = await browser.context.newCDPSession(mpage);
  await mpage.evaluate(() => import("/dist/index.js"));
  const base = await cdp.send("Runtime.getHeapUsage");
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const h = await cdp.send("Runtime.getHeapUsage");
      peak = Math.max(peak, h.usedSize + h.backingStorageSize - base.usedSize - base.backingStorageSize);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const r = await inPage(mpage, async (H, { id, then }) => {
    await H.models.delete(id);
    const e = await H.Engine.load(id, { backend: "webgpu", worker: false });
    const info = e.model;
    const out = then ? await new Function("return " + then)()(e) : null;
    await e.unload();
    await H.models.delete(id);
    return { info, out };
  }, { id, then: then?.toString() });
  sampling = false;
  await sampler;
  await mpage.close();
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return { ...r, peak, total: peak + r.info.wasmMemoryBytes };
}

// Measured before the fix: 132 MiB of JS heap (a fresh 8 MiB buffer per stored chunk and the
// fetch body's chunks, all garbage awaiting a GC) + 80 MiB of wasm memory (each tensor grown in
// one Vec). Now: BYOB reads into one reused buffer, tensors as 1 MiB pieces written straight
// into GPU buffers.
test("memory: loading on WebGPU keeps JS heap + wasm memory under 1.5x the largest tensor + 64 MiB, also for a file larger than that bound", async () => {
  const mib = (n) => (n / 1048576).toFixed(1) + " MiB";
  const cases = [
    { id: ID, file: MODEL_PATH, chat: async (e) => (await e.chat.completions.create({ messages: [{ role: "user", content: "What is 2+2?" }], temperature: 0, max_tokens: 32 })).choices[0].message.content },
    // Qwen2.5-Coder 0.5B: 380 MiB of file against a ~271 MiB bound; load only (SwiftShader decodes it too slowly).
    { id: "qwen2.5-coder-0.5b-instruct-q4_k_m", file: path.join(REPO, "models/cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") },
  ];
  for (const c of cases) {
    requireFile(c.file, "make models-test");
    const largest = Math.max(...tensorTable(c.file).map((t) => t.bytes));
    const size = fs.statSync(c.file).size;
    const limit = 1.5 * largest + 64 * 1024 * 1024;
    const r = await loadMemory(c.id, c.chat);
    console.log(`# load memory (WebGPU, ${c.id}): JS heap + buffers peak ${mib(r.peak)}, wasm memory ${mib(r.info.wasmMemoryBytes)}; total ${mib(r.total)} of a ${mib(limit)} limit (largest tensor ${mib(largest)}; file ${mib(size)})`);
    assert.equal(r.info.backend, "webgpu");
    if (c.chat) assert.equal(r.out, G2.text);
    assert.ok(r.total < limit, `${c.id}: ${mib(r.total)} >= ${mib(limit)}`);
  }
});
