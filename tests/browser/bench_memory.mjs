// Peak memory of one load per browser, for the bench (bench_peers.mjs runs it after each
// configuration's speed run, on that run's browser profile) and standalone. Each repeat starts a
// fresh Chromium on the same profile (so the model is already in Hearth's store / wllama's cache),
// opens the blank page, takes the baseline 2 s later, then makes one warm load and one short chat (the
// bench's CHAT, 16 tokens; a raw completion of PROMPT where the model has no chat template) and
// stops sampling before unload: peak RSS of the whole Chromium instance (procmem.mjs) minus the
// blank page. One load per browser, so no engine's memory is counted with the previous one's
// (a threaded engine's shared memory outlived unload() by ~2 s before #17).
// Not a test: no assertions.
//   node tests/browser/bench_memory.mjs --model ID --file FILE.gguf [--reps 3] [configs…]
// prints one JSON row per configuration (the last line: all of them).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { REPO, launchBrowser, startTestServer, openPage, requireFile } from "./harness.mjs";
import { sampleBrowserMemory } from "./procmem.mjs";
import { PROMPT, CHAT } from "./bench_prompts.mjs";

/** The configurations of bench_peers.mjs measured here (the same names and settings). WebGPU
 * (SwiftShader here: ~10 s per decoded token) generates `maxTokens` 2: the weights, KV cache and
 * staging are all in place after the first token, and 16 would take minutes per repeat. */
export const MEMORY_CONFIGS = {
  "hearth-cpu": { engine: "hearth", isolate: false, backend: "cpu" },
  "hearth-webgpu": { engine: "hearth", isolate: false, backend: "webgpu", maxTokens: 2 },
  "hearth-cpu-mt": { engine: "hearth", isolate: true, backend: "cpu", mt: true },
  "wllama-cpu": { engine: "wllama", isolate: false },
  "wllama-cpu-mt": { engine: "wllama", isolate: true, mt: true },
};

const MAX_TOKENS = 16;
const SETTLE_MS = 2000;

/** Page side: one Hearth load (from the store) and one short chat; what ran and the sizes. */
async function hearthOnce({ c, MODEL_ID, CHAT, PROMPT, MAX_TOKENS, fill }) {
  const H = await import("/dist/index.js");
  const opts = c.mt ? { backend: c.backend, threads: navigator.hardwareConcurrency } : { backend: c.backend };
  const t0 = performance.now();
  const e = await H.Engine.load(MODEL_ID, opts);
  const load_ms = performance.now() - t0;
  const info = e.model;
  let exercise = "none";
  if (!fill) {
    if (info.has_chat_template) {
      await e.chat.completions.create({ messages: CHAT, temperature: 0, max_tokens: MAX_TOKENS });
      exercise = "chat";
    } else {
      await e.complete(PROMPT, { temperature: 0, max_tokens: MAX_TOKENS });
      exercise = "completion";
    }
  }
  if (fill) await e.unload();
  else globalThis.benchEngine = e; // unloaded after sampling stops
  return { load_ms, exercise, max_tokens: MAX_TOKENS, backend: info.backend, wasm_build: info.wasmBuild, threads: info.threads, wasm_memory_mib: info.wasmMemoryBytes / 2 ** 20 };
}

/** Page side: one wllama load (from its cache) and one short chat. */
async function wllamaOnce({ c, FILE, CHAT, PROMPT, MAX_TOKENS, fill }) {
  const { Wllama } = await import("/node_modules/@wllama/wllama/esm/index.js");
  const cfg = { default: "/node_modules/@wllama/wllama/esm/wasm/wllama.wasm" };
  const url = new URL(`/models/${FILE}`, location.href).href;
  const quiet = { debug() {}, log() {}, warn() {}, error: console.error };
  const w = new Wllama(cfg, { suppressNativeLog: true, allowOffline: !fill, logger: quiet });
  const t0 = performance.now();
  await w.loadModelFromUrl(url, { n_ctx: 2048, n_threads: c.mt ? navigator.hardwareConcurrency : 1, n_gpu_layers: 0 });
  const load_ms = performance.now() - t0;
  const threads = w.getNumThreads();
  let exercise = "none";
  if (!fill) {
    try {
      await w.createChatCompletion({ messages: CHAT, max_tokens: MAX_TOKENS, temperature: 0 });
      exercise = "chat";
    } catch {
      await w.createCompletion({ prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0 });
      exercise = "completion";
    }
  }
  if (fill) await w.exit();
  else globalThis.benchEngine = { unload: () => w.exit() };
  return { load_ms, exercise, threads };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};

/**
 * `reps` fresh browsers on `userDataDir` (the model already stored there, unless `fill`: then a
 * first browser loads it once from the network, unmeasured). Returns {mem_one_load_mib: [peak
 * over the blank page per repeat], mem_one_load_median_mib, mem_reps: [details], mem_wall_s}.
 */
export async function memoryRuns({ c, srv, userDataDir, reps, modelId, file, fill = false, timeoutS = 300 }) {
  const t = Date.now();
  const args = { c, MODEL_ID: modelId, FILE: file, CHAT, PROMPT, MAX_TOKENS: c.maxTokens ?? MAX_TOKENS };
  const once = c.engine === "hearth" ? hearthOnce : wllamaOnce;
  const runs = [];
  for (let rep = fill ? -1 : 0; rep < reps; rep++) {
    const b = await launchBrowser({ userDataDir });
    try {
      const mem = rep < 0 ? null : sampleBrowserMemory(userDataDir);
      const page = await openPage(b.context, srv);
      page.setDefaultTimeout(timeoutS * 1000);
      // A fresh browser's memory still moves for a moment after the first page opened.
      if (mem) await new Promise((r) => setTimeout(r, SETTLE_MS));
      mem?.baseline();
      const r = await page.evaluate(once, { ...args, fill: rep < 0 });
      const m = mem?.stop();
      if (m) runs.push({ ...r, peak_over_baseline_mib: m.peak_over_baseline_mib, baseline_rss_mib: m.baseline_rss_mib });
      if (rep >= 0) await page.evaluate(() => globalThis.benchEngine.unload());
    } finally {
      await b.close({ keepProfile: true }).catch(() => {});
    }
  }
  const peaks = runs.map((r) => r.peak_over_baseline_mib);
  return { mem_one_load_mib: peaks, mem_one_load_median_mib: median(peaks), mem_reps: runs, mem_wall_s: (Date.now() - t) / 1000 };
}

// Standalone: a cold fill and `--reps` measured loads per configuration, each on its own profile.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv.splice(i, 2)[1] : d; };
  const modelId = opt("--model", "smollm2-135m-instruct-q4_1");
  const file = opt("--file", "SmolLM2-135M-Instruct.Q4_1.gguf");
  const reps = Number(opt("--reps", "3"));
  const which = argv.length ? argv : Object.keys(MEMORY_CONFIGS);
  requireFile(path.join(REPO, "models", "cache", file), "make models");
  const servers = {};
  const rows = [];
  for (const w of which) {
    const c = MEMORY_CONFIGS[w];
    if (!c) throw new Error(`unknown configuration ${w}; pick from ${Object.keys(MEMORY_CONFIGS).join(", ")}`);
    const srv = (servers[c.isolate] ??= await startTestServer({ isolate: c.isolate }));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-chromium-"));
    const row = { config: w, model: modelId };
    try {
      Object.assign(row, await memoryRuns({ c, srv, userDataDir: dir, reps, modelId, file, fill: true }));
    } catch (e) {
      row.error = String(e.message ?? e).split("\n")[0];
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    rows.push(row);
    console.error(`[bench_memory] ${modelId} ${w}: ${JSON.stringify({ error: row.error, peaks: row.mem_one_load_mib, median: row.mem_one_load_median_mib, wasm: row.mem_reps?.[0]?.wasm_memory_mib, wall_s: row.mem_wall_s })}`);
  }
  for (const s of Object.values(servers)) await s.close();
  console.log(JSON.stringify(rows));
  process.exit(0);
}
