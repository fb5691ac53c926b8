// Browser benchmark for `make bench` (bench/run.py): Hearth (CPU wasm, WebGPU) vs @wllama/wllama
// (llama.cpp in wasm) on the same GGUF, headless Chromium, static server on 127.0.0.1, one browser
// per configuration. Cold load once (network → store → engine), then --reps repeats after one
// warm-up of: warm load (store/HTTP cache → engine, a fresh engine), time to first token on a raw
// prompt, prefill tok/s (Hearth only: wllama's streaming API gives no prefill split), decode tok/s
// over --tg tokens. Raw samples as JSON on stdout (last line). Not a test: no timed assertions.
//   node tests/browser/bench_peers.mjs --model ID --file FILE.gguf [--reps 5] [--tg 128] [configs…]
import path from "node:path";
import { REPO, launchBrowser, startTestServer, openPage, requireFile } from "./harness.mjs";

const ALL = ["hearth-cpu", "hearth-webgpu", "wllama-cpu"];
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv.splice(i, 2)[1] : d; };
const MODEL_ID = opt("--model", "smollm2-135m-instruct-q4_1");
const FILE = opt("--file", "SmolLM2-135M-Instruct.Q4_1.gguf");
const REPS = Number(opt("--reps", "5"));
const TG = Number(opt("--tg", "128"));
const TIMEOUT_S = Number(opt("--timeout", "600"));
const which = argv.length ? argv : ALL;
const PROMPT = "Once upon a time, there was a little";
requireFile(path.join(REPO, "models", "cache", FILE), "make models");

async function hearth(page, backend) {
  return page.evaluate(async ({ backend, MODEL_ID, PROMPT, TG, REPS }) => {
    const H = await import("/dist/index.js");
    const t0 = performance.now();
    let e = await H.Engine.load(MODEL_ID, { backend });
    const cold = performance.now() - t0;
    const used = e.backend;
    await e.unload();
    const s = { warm_ms: [], ttft_ms: [], prefill_tps: [], decode_tps: [], n_decoded: [] };
    let text = "";
    for (let rep = 0; rep <= REPS; rep++) {
      const t1 = performance.now();
      e = await H.Engine.load(MODEL_ID, { backend });
      const warm = performance.now() - t1;
      let firstTok = 0;
      const t3 = performance.now();
      const r = await e.complete(PROMPT, { temperature: 0, max_tokens: TG, onDelta: () => { if (!firstTok) firstTok = performance.now(); } });
      const end = performance.now();
      await e.unload();
      text = r.text ?? text;
      if (rep === 0) continue; // warm-up
      s.warm_ms.push(warm);
      s.ttft_ms.push(firstTok - t3);
      s.prefill_tps.push(r.usage.prompt_tokens / ((firstTok - t3) / 1000));
      s.decode_tps.push((r.usage.completion_tokens - 1) / ((end - firstTok) / 1000));
      s.n_decoded.push(r.usage.completion_tokens);
    }
    return { backend: used, cold_ms: cold, ...s, text };
  }, { backend, MODEL_ID, PROMPT, TG, REPS });
}

async function wllama(page) {
  return page.evaluate(async ({ FILE, PROMPT, TG, REPS }) => {
    const { Wllama } = await import("/node_modules/@wllama/wllama/esm/index.js");
    const cfg = { default: "/node_modules/@wllama/wllama/esm/wasm/wllama.wasm" };
    const url = new URL(`/models/${FILE}`, location.href).href;
    const params = { n_ctx: 2048, n_threads: 1, n_gpu_layers: 0 };
    const quiet = { debug() {}, log() {}, warn() {}, error: console.error };
    let w = new Wllama(cfg, { suppressNativeLog: true, logger: quiet });
    const t0 = performance.now();
    await w.loadModelFromUrl(url, params);
    const cold = performance.now() - t0;
    await w.exit();
    const s = { warm_ms: [], ttft_ms: [], prefill_tps: [], decode_tps: [], n_decoded: [] };
    let text = "";
    for (let rep = 0; rep <= REPS; rep++) {
      w = new Wllama(cfg, { suppressNativeLog: true, allowOffline: true, logger: quiet });
      const t1 = performance.now();
      await w.loadModelFromUrl(url, params);
      const warm = performance.now() - t1;
      let n = 0;
      let firstTok = 0;
      text = "";
      const t3 = performance.now();
      const it = await w.createCompletion({ prompt: PROMPT, stream: true, max_tokens: TG, temperature: 0 });
      for await (const c of it) {
        const d = c.choices?.[0]?.text;
        if (d) { n++; text += d; if (!firstTok) firstTok = performance.now(); }
      }
      const end = performance.now();
      await w.exit();
      if (rep === 0) continue;
      s.warm_ms.push(warm);
      s.ttft_ms.push(firstTok - t3);
      s.decode_tps.push((n - 1) / ((end - firstTok) / 1000));
      s.n_decoded.push(n);
    }
    return { backend: "cpu (1 thread)", cold_ms: cold, ...s, prefill_tps: null, text };
  }, { FILE, PROMPT, TG, REPS });
}

const srv = await startTestServer();
const rows = [];
for (const w of which) {
  if (!ALL.includes(w)) throw new Error(`unknown configuration ${w}; pick from ${ALL.join(", ")}`);
  if (w.startsWith("hearth")) requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
  const b = await launchBrowser();
  const t = Date.now();
  try {
    const page = await openPage(b.context, srv);
    page.setDefaultTimeout(TIMEOUT_S * 1000);
    page.on("console", (m) => { if (m.type() === "error") console.error(`[${w}] ${m.text()}`); });
    const run = w.startsWith("hearth") ? hearth(page, w === "hearth-cpu" ? "cpu" : "webgpu") : wllama(page);
    const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error(`timed out after ${TIMEOUT_S} s`)), TIMEOUT_S * 1000));
    const r = await Promise.race([run, timeout]);
    rows.push({ config: w, model: MODEL_ID, reps: REPS, tg: TG, wall_s: (Date.now() - t) / 1000, ...r });
  } catch (e) {
    rows.push({ config: w, model: MODEL_ID, error: String(e.message ?? e).split("\n")[0], wall_s: (Date.now() - t) / 1000 });
  } finally {
    await b.close().catch(() => {});
  }
  console.error(`[bench_peers] ${MODEL_ID} ${w}: ${JSON.stringify(rows.at(-1)).slice(0, 300)}`);
}
await srv.close();
console.log(JSON.stringify(rows));
process.exit(0);
