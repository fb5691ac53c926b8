// backend: "auto" measured (issue 21 item 4): the wasm probe (src/wasm/probe.rs) timed on
// WebGPU (SwiftShader here) and on the CPU, the faster one chosen, the answer cached per
// adapter in the store, and engine.model.backendReason saying which won and by how much.
// SwiftShader is a software adapter, which `auto` never measures; the end-to-end test presents
// it as a hardware one (the page's requestAdapter answers with a different `info`) so that the
// whole measured path runs. No timed assertions: whichever backend wins, the engine must run on
// the winner and say so.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO, requireDist, requireFile, openTestPage, closeTestPage, inPage } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");

let srv, browser, page;
before(async () => {
  ({ srv, browser, page } = await openTestPage());
});
after(async () => {
  await closeTestPage({ browser, srv });
});

test("probe_backend times both backends; probeBackends picks the faster, caches it per adapter, and refuses bad shapes", async () => {
  const r = await inPage(page, async () => {
    const wasm = await import("/pkg/hearth.js");
    await wasm.default();
    const P = await import("/dist/backend-probe.js");
    const run = (backend, ...a) => wasm.probe_backend(backend, ...a);
    const one = JSON.parse(await wasm.probe_backend("cpu", "Q4_1", 64, 256, 2, 5));
    const bad = [];
    for (const args of [["cpu", "Q4_9", 64, 256, 1, 5], ["cpu", "Q4_0", 0, 256, 1, 5], ["cpu", "Q4_0", 1 << 16, 1 << 16, 1, 5], ["cpu", "Q4_0", 64, 256, 1, -1], ["tpu", "Q4_0", 64, 256, 1, 5]]) {
      try { await wasm.probe_backend(...args); bad.push("resolved"); } catch (e) { bad.push(e.code); }
    }
    const key = { adapterKey: "test/adapter-" + Math.random(), cpuKey: "baseline, 1 thread", format: "Q4_0", run };
    const first = await P.probeBackends(key);
    const second = await P.probeBackends(key);
    const fresh = await P.probeBackends({ ...key, noCache: true });
    const file = await (await (await (await navigator.storage.getDirectory()).getDirectoryHandle("hearth-models")).getFileHandle("backend-probe.json")).getFile();
    return { one, bad, first, second, fresh, reason: P.probeReason(first), cachedReason: P.probeReason(second), fileKeys: Object.keys(JSON.parse(await file.text()).entries).length,
      formats: ["Q4_K_M", "Q4_1", "Q8_0", "F16", undefined].map(P.probeFormat) };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.one.backend, "cpu");
  assert.ok(r.one.ms_per_step > 0 && r.one.steps >= 3, JSON.stringify(r.one));
  assert.equal(r.one.bytes_per_step, 2 * 64 * (256 / 32) * 20, "two Q4_1 weights of 64 rows × 8 blocks of 20 bytes");
  assert.deepEqual(r.bad, ["BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST"]);
  const f = r.first;
  assert.ok(f.webgpuMs > 0 && f.cpuMs > 0, JSON.stringify(f));
  assert.equal(f.winner, f.webgpuMs < f.cpuMs ? "webgpu" : "cpu");
  assert.equal(f.cached, false);
  assert.equal(f.bytesPerStep, 4 * 2048 * 64 * 18, "four 2048 × 2048 Q4_0 weights");
  assert.deepEqual({ ...r.second, cached: false, probeMs: f.probeMs }, f, "the cached answer is the measured one");
  assert.equal(r.second.cached, true);
  assert.equal(r.second.probeMs, 0);
  assert.equal(r.fresh.cached, false, "noCache probes again");
  assert.ok(r.fileKeys >= 1);
  assert.match(r.reason, /^(WebGPU|CPU) measured faster: [\d.]+ ms on WebGPU vs [\d.]+ ms on the CPU \(baseline, 1 thread\) per 9\.4 MB decode-shaped step, [\d.]+x$/);
  assert.match(r.cachedReason, /\(cached probe\)$/);
  assert.deepEqual(r.formats, ["Q4_K", "Q4_1", "Q8_0", "Q4_0", "Q4_0"]);
});

test("chooseBackend: auto measures only a hardware adapter; a failed measurement keeps WebGPU and says why", async () => {
  const r = await inPage(page, async () => {
    const C = await import("/dist/backend-choice.js");
    const hw = async () => ({ ok: true, software: false, reason: "WebGPU adapter available", adapterKey: "v/a/d/x" });
    const sw = async () => ({ ok: true, software: true, reason: "WebGPU adapter is a software renderer (swiftshader)", adapterKey: "google/swiftshader//" });
    const calls = [];
    const measure = async (k) => { calls.push(k); return { backend: "cpu", reason: "CPU measured faster" }; };
    const failing = async () => { throw new Error("probe exploded"); };
    return {
      hw: await C.chooseBackend("auto", hw, measure),
      sw: await C.chooseBackend("auto", sw, measure),
      asked: await C.chooseBackend("webgpu", hw, measure),
      failed: await C.chooseBackend("auto", hw, failing),
      calls,
    };
  });
  assert.deepEqual(r.hw, { backend: "cpu", reason: "CPU measured faster" });
  assert.equal(r.sw.backend, "cpu");
  assert.deepEqual(r.asked, { backend: "webgpu", reason: "WebGPU requested" });
  assert.equal(r.failed.backend, "webgpu");
  assert.match(r.failed.reason, /speed probe failed: probe exploded/);
  assert.deepEqual(r.calls, ["v/a/d/x"], "measured once: the hardware adapter, with its key");
});

test("Engine.load auto on a (presented) hardware adapter runs on the probe's winner, says why, and reuses the probe next time", { timeout: 600_000 }, async () => {
  const r = await inPage(page, async (H) => {
    const gpu = navigator.gpu;
    const real = gpu.requestAdapter.bind(gpu);
    gpu.requestAdapter = async (o) => {
      const a = await real(o);
      if (a) Object.defineProperty(a, "info", { value: { vendor: "hearth-test", architecture: "presented-as-hardware", device: "", description: "", isFallbackAdapter: false } });
      return a;
    };
    const out = [];
    for (let i = 0; i < 2; i++) {
      const e = await H.Engine.load("smollm2-135m-instruct-q4_1", { backend: "auto", worker: false, threads: false });
      const c = await e.chat.completions.create({ messages: [{ role: "user", content: "Hi" }], max_tokens: 2, temperature: 0 });
      out.push({ backend: e.model.backend, reason: e.model.backendReason, text: c.choices[0].message.content });
      await e.unload();
    }
    gpu.requestAdapter = real;
    return out;
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const [a, b] = r;
  const m = /^(WebGPU|CPU) measured faster: ([\d.]+) ms on WebGPU vs ([\d.]+) ms on the CPU/.exec(a.reason);
  assert.ok(m, a.reason);
  assert.equal(a.backend, m[1] === "WebGPU" ? "webgpu" : "cpu", "the engine runs on the winner");
  assert.equal(Number(m[2]) < Number(m[3]), m[1] === "WebGPU", "the winner is the faster one");
  assert.match(b.reason, /\(cached probe\)$/);
  assert.equal(b.backend, a.backend);
  assert.ok(a.text.length > 0);
  console.log(`# auto on SwiftShader presented as hardware: ${a.reason}`);
});
