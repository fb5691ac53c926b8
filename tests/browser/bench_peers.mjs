// Browser benchmark for `make bench` (bench/run.py): Hearth (CPU wasm single-thread and threaded,
// WebGPU) vs @wllama/wllama (llama.cpp in wasm, single- and multi-thread) on the same GGUF, headless
// Chromium, static server on 127.0.0.1, one browser per configuration. Cold load once (network →
// store → engine), then one warm-up and --reps repeats of: warm load (a fresh engine), the short
// PROMPT decoding --tg tokens (TTFT, prefill and decode tok/s), then (not in the warm-up) the long
// LONG_PROMPT (~430 tokens) decoding --tg-long tokens (long prefill = prompt tokens / TTFT, long
// decode tok/s).
// Per configuration, node samples the total RSS of that Chromium instance (procmem.mjs) every
// 50 ms: baseline after the blank page opened, peak, peak over baseline (`session_peak_…`: the
// whole run, every load of it). Then, for the CPU configurations, the memory figure proper
// (bench_memory.mjs): --memory-reps fresh browsers on the run's profile, each one warm load and
// one short chat, its peak over the blank page; `peak_over_baseline_mib` is their median, so no
// load counts the previous engine's memory with its own.
// The -mt configurations run on a cross-origin isolated server (COOP/COEP) with one thread per
// logical core, and fail loudly when the engine fell back to one thread.
// Raw samples as JSON on stdout (last line). Not a test: no timed assertions.
//   node tests/browser/bench_peers.mjs --model ID --file FILE.gguf [--reps 5] [--tg 128]
//        [--tg-long 64 (0: no long prompt)] [--warmup 1 (0: none)] [--chat 1 (0: no chat TTFT)]
//        [--timeout S] [--memory-reps 3 (0: the session peak only)] [configs…]
import fs from "node:fs";
import path from "node:path";
import { REPO, launchBrowser, startTestServer, openPage, requireFile } from "./harness.mjs";
import { sampleBrowserMemory } from "./procmem.mjs";
import { MEMORY_CONFIGS, memoryRuns } from "./bench_memory.mjs";
import { PROMPT, LONG_PROMPT, CHAT } from "./bench_prompts.mjs";

// config → {engine, isolated page, Hearth backend / wllama threads}
const CONFIGS = {
  "hearth-cpu": { engine: "hearth", isolate: false, backend: "cpu" },
  "hearth-cpu-mt": { engine: "hearth", isolate: true, backend: "cpu", mt: true },
  "hearth-webgpu": { engine: "hearth", isolate: false, backend: "webgpu" },
  "wllama-cpu": { engine: "wllama", isolate: false },
  "wllama-cpu-mt": { engine: "wllama", isolate: true, mt: true },
  // n_gpu_layers 99 (every layer on WebGPU); whether it really ran there is measured, not assumed:
  // its Worker's WebGPU calls are counted (webgpuCounting) and llama.cpp's load log is kept.
  "wllama-webgpu": { engine: "wllama", isolate: false, gpu: true },
};

/**
 * Page-side set-up for the WebGPU rows: `globalThis.benchGpu` = {adapter (info, features, the
 * limits that matter), counts: dispatches / submits / bind groups created in any `blob:` Worker
 * the page starts from then on, summed}. Those Workers are wrapped so that the counting code runs
 * in them too (wllama runs llama.cpp in `blob:` module Workers); the counts come back on a
 * BroadcastChannel. Other Workers (Hearth's, which resolve their assets against their own URL)
 * are left alone: Hearth reports its backend itself, and `hearth bench --profile` counts its calls.
 */
function webgpuCounting() {
  const INSTRUMENT = `(() => {
    const bc = new BroadcastChannel("bench-webgpu-calls");
    const id = Math.random().toString(36).slice(2);
    const n = { dispatches: 0, submits: 0, bind_groups: 0 };
    const wrap = (proto, name, key) => { const f = proto?.[name]; if (!f) return; proto[name] = function (...a) { n[key]++; return f.apply(this, a); }; };
    wrap(globalThis.GPUComputePassEncoder?.prototype, "dispatchWorkgroups", "dispatches");
    wrap(globalThis.GPUDevice?.prototype, "createBindGroup", "bind_groups");
    const submit = globalThis.GPUQueue?.prototype.submit;
    if (submit) GPUQueue.prototype.submit = function (...a) { n.submits++; const r = submit.apply(this, a); bc.postMessage({ id, ...n }); return r; };
  })();`;
  const counts = new Map(); // Worker → its latest cumulative counts
  const bc = new BroadcastChannel("bench-webgpu-calls");
  bc.onmessage = (e) => counts.set(e.data.id, e.data);
  const Native = globalThis.Worker;
  globalThis.Worker = function (url, opts) {
    const src = new URL(String(url), location.href).href;
    if (!src.startsWith("blob:")) return new Native(url, opts);
    // A static import runs the Worker's own module first, then the counting, both before the
    // first message is handled (a top-level await would let early messages go unheard).
    const body = opts?.type === "module" ? `import ${JSON.stringify(src)};\n${INSTRUMENT}` : `${INSTRUMENT}\nimportScripts(${JSON.stringify(src)});`;
    return new Native(URL.createObjectURL(new Blob([body], { type: "text/javascript" })), opts);
  };
  globalThis.Worker.prototype = Native.prototype;
  const total = () => {
    const t = { dispatches: 0, submits: 0, bind_groups: 0 };
    for (const c of counts.values()) for (const k of Object.keys(t)) t[k] += c[k];
    return t;
  };
  globalThis.benchGpu = { total };
}

/** The WebGPU adapter this page gets: info, features and the limits that size a model's buffers. */
async function adapterDescription() {
  const a = await navigator.gpu?.requestAdapter();
  if (!a) return null;
  const info = a.info ?? {};
  const limits = {};
  for (const k of ["maxBufferSize", "maxStorageBufferBindingSize", "maxStorageBuffersPerShaderStage", "maxComputeWorkgroupSizeX", "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupStorageSize"]) limits[k] = a.limits[k];
  return { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, is_fallback: info.isFallbackAdapter ?? null, features: [...a.features].sort(), limits };
}
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv.splice(i, 2)[1] : d; };
const MODEL_ID = opt("--model", "smollm2-135m-instruct-q4_1");
const FILE = opt("--file", "SmolLM2-135M-Instruct.Q4_1.gguf");
const REPS = Number(opt("--reps", "5"));
const TG = Number(opt("--tg", "128"));
const TG_LONG = Number(opt("--tg-long", "64"));
const TIMEOUT_S = Number(opt("--timeout", "600"));
const WARMUP = Number(opt("--warmup", "1")) > 0 ? 1 : 0; // 0: no warm-up rep (the tiny WebGPU run)
const CHAT_TTFT = Number(opt("--chat", "1")) > 0; // 0: no chat first-token measurement (the tiny WebGPU run)
const MEMORY_REPS = Number(opt("--memory-reps", "3"));
const which = argv.length ? argv : ["hearth-cpu", "hearth-cpu-mt", "wllama-cpu", "wllama-cpu-mt"];
const MIN_LONG_TOKENS = 400;
requireFile(path.join(REPO, "models", "cache", FILE), "make models");

/** Speeds of one completion: TTFT, prefill (prompt tokens / TTFT) and decode tok/s (tokens after the first). */
function speeds(t0, first, end, promptTokens, completionTokens) {
  const ttft = first - t0;
  return {
    ttft_ms: ttft,
    prefill_tps: promptTokens ? promptTokens / (ttft / 1000) : null,
    decode_tps: completionTokens > 1 ? (completionTokens - 1) / ((end - first) / 1000) : null,
  };
}

async function hearth(page, c) {
  return page.evaluate(async ({ c, MODEL_ID, PROMPT, LONG_PROMPT, CHAT, CHAT_TTFT, TG, TG_LONG, REPS, WARMUP }) => {
    const speeds = globalThis.benchSpeeds;
    const H = await import("/dist/index.js");
    // -mt: one thread per logical core, which needs the threaded build (www/pkg-mt) and an isolated page.
    const opts = c.mt ? { backend: c.backend, threads: navigator.hardwareConcurrency } : { backend: c.backend };
    const t0 = performance.now();
    let e = await H.Engine.load(MODEL_ID, opts);
    const cold = performance.now() - t0;
    const info = { ...e.model };
    await e.unload();
    if (c.mt && (info.wasmBuild !== "threads" || !(info.threads > 1))) {
      throw new Error(`fell back to the ${info.wasmBuild} build with ${info.threads} thread(s): ${info.threadsReason}`);
    }
    const s = { warm_ms: [], chat_ttft_ms: [], warm_to_chat_token_ms: [], ttft_ms: [], prefill_tps: [], decode_tps: [], n_decoded: [], prompt_tokens: [],
      long_prompt_tokens: [], long_cached_tokens: [], long_ttft_ms: [], long_prefill_tps: [], long_decode_tps: [], n_decoded_long: [] };
    let text = "", longText = "";
    const run = async (prompt, max_tokens) => {
      let first = 0;
      const t = performance.now();
      const r = await e.complete(prompt, { temperature: 0, max_tokens, onDelta: () => { if (!first) first = performance.now(); } });
      return { r, ...speeds(t, first, performance.now(), r.usage.prompt_tokens, r.usage.completion_tokens) };
    };
    for (let rep = 1 - WARMUP; rep <= REPS; rep++) {
      const t1 = performance.now();
      e = await H.Engine.load(MODEL_ID, opts);
      const warm = performance.now() - t1;
      // Issue 7's target "warm load to first token ≤ 1 s": the first token of a chat (template,
      // default system prompt and all), right after the warm load, on a fresh KV cache.
      // (Only where the model has a chat template: the Gemma 3 GGUF has none.)
      let chatTtft = null;
      if (info.has_chat_template && CHAT_TTFT) {
        let chatFirst = 0;
        const tc = performance.now();
        for await (const ch of await e.chat.completions.create({ messages: CHAT, stream: true, temperature: 0, max_tokens: 1 })) {
          if (!chatFirst && ch.choices[0]?.delta?.content) chatFirst = performance.now();
        }
        chatTtft = (chatFirst || performance.now()) - tc;
        await e.reset();
      }
      const a = await run(PROMPT, TG);
      // The long prompt only in measured reps: the short one already warmed every code path.
      const b = TG_LONG > 0 && rep > 0 ? await run(LONG_PROMPT, TG_LONG) : null;
      await e.unload();
      text = a.r.text ?? text;
      longText = b?.r.text ?? longText;
      if (rep === 0) continue; // warm-up
      s.warm_ms.push(warm);
      if (chatTtft !== null) {
        s.chat_ttft_ms.push(chatTtft);
        s.warm_to_chat_token_ms.push(warm + chatTtft);
      }
      s.ttft_ms.push(a.ttft_ms);
      s.prefill_tps.push(a.prefill_tps);
      s.decode_tps.push(a.decode_tps);
      s.n_decoded.push(a.r.usage.completion_tokens);
      s.prompt_tokens.push(a.r.usage.prompt_tokens);
      if (!b) continue;
      s.long_prompt_tokens.push(b.r.usage.prompt_tokens);
      s.long_cached_tokens.push(b.r.usage.cached_tokens);
      s.long_ttft_ms.push(b.ttft_ms);
      s.long_prefill_tps.push(b.prefill_tps);
      s.long_decode_tps.push(b.decode_tps);
      s.n_decoded_long.push(b.r.usage.completion_tokens);
    }
    return { backend: info.backend, wasm_build: info.wasmBuild, threads: info.threads, threads_reason: info.threadsReason,
      cross_origin_isolated: crossOriginIsolated, cold_ms: cold, ...s, text, long_text: longText };
  }, { c, MODEL_ID, PROMPT, LONG_PROMPT, CHAT, CHAT_TTFT, TG, TG_LONG, REPS, WARMUP });
}

async function wllama(page, c) {
  return page.evaluate(async ({ c, FILE, PROMPT, LONG_PROMPT, TG, TG_LONG, REPS, WARMUP }) => {
    const speeds = globalThis.benchSpeeds;
    const { Wllama } = await import("/node_modules/@wllama/wllama/esm/index.js");
    // One wasm with pthreads: it runs multi-threaded where the page is cross-origin isolated.
    const cfg = { default: "/node_modules/@wllama/wllama/esm/wasm/wllama.wasm" };
    const url = new URL(`/models/${FILE}`, location.href).href;
    const params = { n_ctx: 2048, n_threads: c.mt ? navigator.hardwareConcurrency : 1, n_gpu_layers: c.gpu ? 99 : 0 };
    // The WebGPU row keeps llama.cpp's own lines about devices and offloading (its evidence).
    const gpuLog = [];
    const keep = (...a) => { const t = a.join(" "); if (c.gpu && /webgpu|offload|buffer size|splits/i.test(t) && gpuLog.length < 40) gpuLog.push(t.trim().slice(0, 200)); };
    const quiet = { debug: keep, log: keep, warn: keep, error: console.error };
    let w = new Wllama(cfg, { suppressNativeLog: !c.gpu, logger: quiet });
    const t0 = performance.now();
    await w.loadModelFromUrl(url, params);
    const cold = performance.now() - t0;
    const multithread = w.isMultithread();
    const nThreads = w.getNumThreads();
    await w.exit();
    if (c.mt && !(multithread && nThreads > 1)) {
      throw new Error(`wllama is not multi-threaded: isMultithread() ${multithread}, getNumThreads() ${nThreads}, crossOriginIsolated ${crossOriginIsolated}`);
    }
    // Streams one raw completion; token counts from the final chunk's usage where wllama gives it.
    const run = async (prompt, max_tokens) => {
      let n = 0, first = 0, text = "", usage = null, timings = null;
      const gpu0 = globalThis.benchGpu?.total();
      const t = performance.now();
      const it = await w.createCompletion({ prompt, stream: true, max_tokens, temperature: 0 });
      for await (const ch of it) {
        const d = ch.choices?.[0]?.text;
        if (d) { n++; text += d; if (!first) first = performance.now(); }
        if (ch.usage) usage = ch.usage;
        if (ch.timings) timings = ch.timings;
      }
      const end = performance.now();
      const promptTokens = usage?.prompt_tokens ?? timings?.prompt_n ?? null;
      const completion = usage?.completion_tokens ?? timings?.predicted_n ?? n;
      let gpuCalls = null;
      if (gpu0) {
        await new Promise((r) => setTimeout(r, 300)); // the last submit's message
        const g = globalThis.benchGpu.total();
        gpuCalls = Object.fromEntries(Object.keys(g).map((k) => [k, g[k] - gpu0[k]]));
      }
      return { text, promptTokens, completion, timings, gpuCalls, ...speeds(t, first, end, promptTokens, completion) };
    };
    const s = { warm_ms: [], ttft_ms: [], prefill_tps: [], decode_tps: [], n_decoded: [], prompt_tokens: [],
      long_prompt_tokens: [], long_ttft_ms: [], long_prefill_tps: [], long_decode_tps: [], n_decoded_long: [], engine_timings: [], webgpu_calls: [] };
    let text = "", longText = "";
    for (let rep = 1 - WARMUP; rep <= REPS; rep++) {
      w = new Wllama(cfg, { suppressNativeLog: true, allowOffline: true, logger: { debug() {}, log() {}, warn() {}, error: console.error } });
      const t1 = performance.now();
      await w.loadModelFromUrl(url, params);
      const warm = performance.now() - t1;
      const a = await run(PROMPT, TG);
      // The long prompt only in measured reps: the short one already warmed every code path.
      const b = TG_LONG > 0 && rep > 0 ? await run(LONG_PROMPT, TG_LONG) : null;
      await w.exit();
      text = a.text;
      longText = b?.text ?? longText;
      if (rep === 0) continue;
      s.warm_ms.push(warm);
      s.ttft_ms.push(a.ttft_ms);
      s.prefill_tps.push(a.prefill_tps);
      s.decode_tps.push(a.decode_tps);
      s.n_decoded.push(a.completion);
      s.prompt_tokens.push(a.promptTokens);
      // llama-server's own timings (prompt_per_second, predicted_per_second), for reference.
      s.engine_timings.push({ short: a.timings, long: b?.timings ?? null });
      if (a.gpuCalls) s.webgpu_calls.push({ ...a.gpuCalls, prompt_tokens: a.promptTokens, decoded_tokens: a.completion });
      if (!b) continue;
      s.long_prompt_tokens.push(b.promptTokens);
      s.long_ttft_ms.push(b.ttft_ms);
      s.long_prefill_tps.push(b.prefill_tps);
      s.long_decode_tps.push(b.decode_tps);
      s.n_decoded_long.push(b.completion);
    }
    // The WebGPU row ran on WebGPU only if its Workers dispatched compute work during every run
    // (on SwiftShader, wllama 3.13 puts every buffer on the CPU and dispatches nothing: see
    // llama.cpp's own lines in native_log).
    const onGpu = c.gpu && s.webgpu_calls.length > 0 && s.webgpu_calls.every((g) => g.dispatches > 0);
    const cpu = `cpu (${nThreads} thread${nThreads > 1 ? "s" : ""})`;
    return { backend: onGpu ? "webgpu (n_gpu_layers 99)" : c.gpu ? `${cpu}: n_gpu_layers 99 asked, no WebGPU dispatch made` : cpu,
      ran_on_webgpu: c.gpu ? onGpu : undefined, multithread, threads: nThreads,
      cross_origin_isolated: crossOriginIsolated, cold_ms: cold, ...s, native_log: c.gpu ? gpuLog : undefined, text, long_text: longText };
  }, { c, FILE, PROMPT, LONG_PROMPT, TG, TG_LONG, REPS, WARMUP });
}

/** Fails the row when the long prompt was shorter than promised (or not counted). */
function checkLong(r) {
  if (TG_LONG <= 0) return;
  const bad = r.long_prompt_tokens.filter((n) => !(n >= MIN_LONG_TOKENS));
  if (bad.length) throw new Error(`long prompt: ${JSON.stringify(bad)} tokens, expected >= ${MIN_LONG_TOKENS}`);
}

const servers = {};
const serverFor = async (isolate) => (servers[isolate] ??= await startTestServer({ isolate }));
const rows = [];
for (const w of which) {
  const c = CONFIGS[w];
  if (!c) throw new Error(`unknown configuration ${w}; pick from ${Object.keys(CONFIGS).join(", ")}`);
  if (c.engine === "hearth") requireFile(path.join(REPO, c.mt ? "www/pkg-mt/hearth_bg.wasm" : "www/pkg/hearth_bg.wasm"), "make wasm");
  const srv = await serverFor(c.isolate);
  const b = await launchBrowser();
  const t = Date.now();
  let mem = null;
  const row = { config: w, model: MODEL_ID, reps: REPS, warmup: WARMUP, tg: TG, tg_long: TG_LONG };
  try {
    try {
      mem = sampleBrowserMemory(b.userDataDir);
    } catch (e) {
      row.mem_error = String(e.message ?? e); // no memory figures, but the speeds still count
    }
    const page = await openPage(b.context, srv);
    mem?.baseline();
    // The shared helper, defined in the page through the DevTools protocol (no eval in the page).
    await page.evaluate(`globalThis.benchSpeeds = ${speeds}`);
    page.setDefaultTimeout(TIMEOUT_S * 1000);
    page.on("console", (m) => { if (m.type() === "error") console.error(`[${w}] ${m.text()}`); });
    if (c.gpu || c.backend === "webgpu") {
      if (c.gpu) await page.evaluate(`(${webgpuCounting})()`);
      row.adapter = await page.evaluate(`(${adapterDescription})()`);
    }
    const run = c.engine === "hearth" ? hearth(page, c) : wllama(page, c);
    let timer;
    const timeout = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${TIMEOUT_S} s`)), TIMEOUT_S * 1000); });
    const r = await Promise.race([run, timeout]).finally(() => clearTimeout(timer));
    Object.assign(row, r);
    checkLong(r); // an error row that keeps its samples
  } catch (e) {
    row.error = String(e.message ?? e).split("\n")[0];
  } finally {
    const m = mem?.stop() ?? {};
    if (m.peak_over_baseline_mib !== undefined) m.session_peak_over_baseline_mib = m.peak_over_baseline_mib;
    Object.assign(row, m, { wall_s: (Date.now() - t) / 1000 });
    await b.close({ keepProfile: true }).catch(() => {});
  }
  // One load per browser, on this run's profile (the model is in its store / cache by now).
  if (MEMORY_CONFIGS[w] && MEMORY_REPS > 0 && !row.error && !row.mem_error) {
    try {
      const r = await memoryRuns({ c, srv, userDataDir: b.userDataDir, reps: MEMORY_REPS, modelId: MODEL_ID, file: FILE, timeoutS: TIMEOUT_S });
      Object.assign(row, r, { peak_over_baseline_mib: r.mem_one_load_median_mib });
    } catch (e) {
      row.mem_error = String(e.message ?? e).split("\n")[0];
    }
  }
  fs.rmSync(b.userDataDir, { recursive: true, force: true });
  rows.push(row);
  const brief = Object.fromEntries(["error", "mem_error", "wall_s", "warm_ms", "decode_tps", "long_prefill_tps", "long_decode_tps", "peak_over_baseline_mib", "session_peak_over_baseline_mib", "mem_wall_s"]
    .filter((k) => row[k] !== undefined).map((k) => [k, row[k]]));
  console.error(`[bench_peers] ${MODEL_ID} ${w}: ${JSON.stringify(brief)}`);
}
for (const s of Object.values(servers)) await s.close();
console.log(JSON.stringify(rows));
process.exit(0);
