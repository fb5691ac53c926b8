// A multi-GB model through `Engine.load` on WebGPU in headless Chromium (SwiftShader), with the
// memory it took: opt-in, not a test (`make test-7b-browser`; issue #20 item 4). The point: on
// WebGPU the weights go to GPU buffers one tensor at a time, so wasm memory does not bound the
// model's size (the CPU backend refuses such a model: 4 GiB of wasm32 memory).
//
//   node tests/browser/synthetic_big.mjs FILE.gguf [--tokens 3] [--prompt TEXT] [--ctx 256] [--json OUT]
//
// FILE: e.g. the ~4 GB Mistral-7B-shaped synthetic model, written outside the repository with
// `python3 tests/goldens/make_synthetic.py --write mistral7b_full /tmp/x/mistral7b_full_q4_k.gguf`.
// It is served on 127.0.0.1, downloaded into the page's store (OPFS), fed to the engine in the page
// itself (`worker: false`, so the page's heap is the engine's), then a greedy completion of
// `--tokens` tokens. Reported: load time (download + store + upload), time to the first token and
// per later token, the peak wasm memory (the engine's WebAssembly.Memory: it never shrinks, so its
// size at the end is its peak), the peak JS heap + ArrayBuffers above the blank page (CDP
// Runtime.getHeapUsage, every 50 ms), the bytes of GPU buffers alive at the peak (createBuffer and
// destroy counted in the page), and the Chromium instance's total RSS (procmem.mjs: every process,
// /proc, every 50 ms; on SwiftShader the "GPU" memory is the GPU process's RAM). The profile (and
// the store's copy of the model) is deleted at the end.
// First, the same URL on the CPU backend (baseline build): a model over the 4 GiB of wasm32 memory
// must be refused from its header with UNSUPPORTED_MODEL, before its weights download (the bytes
// the server sent for it are reported) and with nothing left in the store; `--cpu-only` stops there.
import fs from "node:fs";
import path from "node:path";
import { launchBrowser, startTestServer, REPO, requireDist, requireFile, inPage } from "./harness.mjs";
import { sampleBrowserMemory } from "./procmem.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");

function args() {
  const a = process.argv.slice(2);
  const out = { file: null, tokens: 3, prompt: "The capital of France is", ctx: 256, json: null, cpuOnly: false };
  for (let i = 0; i < a.length; i++) {
    const v = () => a[++i];
    if (a[i] === "--tokens") out.tokens = Number(v());
    else if (a[i] === "--prompt") out.prompt = v();
    else if (a[i] === "--ctx") out.ctx = Number(v());
    else if (a[i] === "--json") out.json = v();
    else if (a[i] === "--cpu-only") out.cpuOnly = true;
    else out.file = a[i];
  }
  if (!out.file || !fs.existsSync(out.file)) throw new Error("usage: node tests/browser/synthetic_big.mjs FILE.gguf [--tokens N] [--prompt TEXT] [--ctx N] [--json OUT]");
  return out;
}

// Counts GPU buffers (created minus destroyed, and the peak) and keeps every wasm instance's
// memory, before the package loads: wrapped prototypes, the engine itself is unchanged.
const INIT = () => {
  const g = (globalThis.__big = { gpuLive: 0, gpuPeak: 0, gpuCreated: 0, buffers: 0, memories: [] });
  const sizes = new WeakMap();
  const create = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (desc) {
    const b = create.call(this, desc);
    sizes.set(b, desc.size);
    g.gpuLive += desc.size;
    g.gpuCreated += desc.size;
    g.buffers++;
    g.gpuPeak = Math.max(g.gpuPeak, g.gpuLive);
    return b;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function () {
    g.gpuLive -= sizes.get(this) ?? 0;
    sizes.delete(this);
    return destroy.call(this);
  };
  for (const name of ["instantiate", "instantiateStreaming"]) {
    const f = WebAssembly[name];
    WebAssembly[name] = async function (...a) {
      const r = await f.apply(this, a);
      const mem = (r.instance ?? r).exports?.memory;
      if (mem instanceof WebAssembly.Memory) g.memories.push(mem);
      return r;
    };
  }
};

async function main() {
  const o = args();
  const dir = path.dirname(path.resolve(o.file));
  const name = path.basename(o.file);
  const size = fs.statSync(o.file).size;
  const srv = await startTestServer({ roots: [["/fixtures/", dir], ["/", path.join(REPO, "www")]] });
  const browser = await launchBrowser();
  const mem = sampleBrowserMemory(browser.userDataDir);
  let heapPeak = 0;
  let sampling = true;
  try {
    await browser.context.addInitScript(INIT);
    const page = await browser.context.newPage();
    await page.goto(srv.url + "__test__/blank.html");
    await page.evaluate(() => import("/dist/index.js"));
    // The CPU backend: refused from the header, before the weights download.
    const url = `/fixtures/${name}`;
    const cpu = await inPage(page, async (H, { url, ctx }) => {
      const abs = new URL(url, location.href).href;
      try {
        const e = await H.Engine.load(url, { backend: "cpu", threads: false, contextSize: ctx });
        await e.unload();
        return { loaded: true };
      } catch (e) {
        return { code: e.code, message: e.message, stored: await H.models.has(abs), listed: (await H.models.list()).length };
      }
    }, { url, ctx: o.ctx });
    const sent = srv.stats.bytes[url] ?? 0;
    console.log(`CPU backend: ${JSON.stringify(cpu)}; the server sent ${(sent / 2 ** 20).toFixed(1)} MiB of the ${(size / 2 ** 20).toFixed(0)} MiB file`);
    if (cpu.code !== "UNSUPPORTED_MODEL" || cpu.stored || cpu.listed !== 0) throw new Error(`the CPU backend did not refuse the model from its header: ${JSON.stringify(cpu)}`);
    if (o.cpuOnly) return;
    const cdp = await browser.context.newCDPSession(page);
    const base = await cdp.send("Runtime.getHeapUsage");
    const baseRss = mem.baseline();
    const sampler = (async () => {
      while (sampling) {
        const h = await cdp.send("Runtime.getHeapUsage").catch(() => null);
        if (h) heapPeak = Math.max(heapPeak, h.usedSize + h.backingStorageSize - base.usedSize - base.backingStorageSize);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = Date.now();
    const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${s}`);
    let lastPhase = "";
    await page.exposeFunction("__progress", (p) => {
      if (p.phase !== lastPhase) log(`phase ${p.phase} ${(p.loaded / 2 ** 20).toFixed(0)} / ${(p.total / 2 ** 20).toFixed(0)} MiB`);
      lastPhase = p.phase;
    });
    await page.exposeFunction("__token", (i, text) => log(`token ${i}: ${JSON.stringify(text)}`));
    const r = await inPage(page, async (H, { url, o }) => {
      const g = globalThis.__big;
      const t0 = performance.now();
      const e = await H.Engine.load(url, { backend: "webgpu", worker: false, contextSize: o.ctx, onProgress: (p) => globalThis.__progress(p) });
      const loadMs = performance.now() - t0;
      const atLoad = { wasm: Math.max(...g.memories.map((m) => m.buffer.byteLength)), gpuLive: g.gpuLive, gpuPeak: g.gpuPeak, buffers: g.buffers };
      const times = [];
      const t1 = performance.now();
      let n = 0;
      let text = "";
      const res = await e.complete(o.prompt, {
        max_tokens: o.tokens,
        temperature: 0,
        onDelta: (d) => {
          times.push(performance.now() - t1);
          text += d;
          globalThis.__token(n++, d);
        },
      });
      const genMs = performance.now() - t1;
      const out = {
        model: e.model, loadMs, genMs, times, text: res.text, usage: res.usage, atLoad,
        wasmPeak: Math.max(...g.memories.map((m) => m.buffer.byteLength)), gpuPeak: g.gpuPeak, gpuCreated: g.gpuCreated, buffers: g.buffers,
      };
      await e.unload();
      await H.models.delete(new URL(url, location.href).href);
      return out;
    }, { url, o });
    sampling = false;
    await sampler;
    const m = mem.stop();
    if (r.error) throw new Error(JSON.stringify(r.error));
    const mib = (b) => b / 2 ** 20;
    const report = {
      cpu_refused: cpu.message, cpu_refusal_bytes_sent_mib: mib(sent),
      file: name, file_mib: mib(size), backend: r.model.backend, wasm_build: r.model.wasmBuild, arch: r.model.arch,
      load_s: r.loadMs / 1000, prompt: o.prompt, prompt_tokens: r.usage.prompt_tokens, completion_tokens: r.usage.completion_tokens,
      text: r.text, token_times_s: r.times.map((t) => t / 1000), gen_s: r.genMs / 1000,
      wasm_memory_mib_at_load: mib(r.atLoad.wasm), wasm_memory_peak_mib: mib(r.wasmPeak),
      js_heap_peak_over_blank_mib: mib(heapPeak),
      gpu_buffers_peak_mib: mib(r.gpuPeak), gpu_buffers_at_load_mib: mib(r.atLoad.gpuLive), gpu_buffers: r.buffers,
      chromium_rss_baseline_mib: baseRss, chromium_rss_peak_mib: m.peak_rss_mib, chromium_rss_peak_over_baseline_mib: m.peak_over_baseline_mib,
    };
    console.log(JSON.stringify(report, null, 1));
    if (o.json) fs.writeFileSync(o.json, JSON.stringify(report, null, 1) + "\n");
  } finally {
    sampling = false;
    mem.stop();
    await browser.close();
    await srv.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
