// Browser benchmark, one headless Chromium run per configuration, default model, localhost:
// cold load (network → store → engine), warm load (store → engine, a new page), time to first
// token of a chat, decode tok/s — for Hearth (CPU wasm, WebGPU) and @wllama/wllama (npm, llama.cpp
// in wasm) on the same GGUF. Not a test (no timed assertions): prints a table, and JSON with --json.
//   node tests/browser/bench_engine.mjs [hearth-cpu] [hearth-webgpu] [wllama-cpu] [wllama-webgpu]
import fs from "node:fs";
import path from "node:path";
import { REPO, MODEL_PATH, MODEL_FILE, launchBrowser, startTestServer, openPage, requireFile } from "./harness.mjs";

const ALL = ["hearth-cpu", "hearth-webgpu", "wllama-cpu", "wllama-webgpu"];
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const which = args.length ? args : ALL;
const asJson = process.argv.includes("--json");
requireFile(MODEL_PATH, "make models");
const CHAT = [{ role: "user", content: "What is 2+2?" }];
const DECODE_PROMPT = "Once upon a time, there was a little";
const DECODE_N = 128;

async function hearth(page, backend) {
  return page.evaluate(async ({ backend, CHAT, DECODE_PROMPT, DECODE_N }) => {
    const H = await import("/dist/index.js");
    const t0 = performance.now();
    let e = await H.Engine.load("smollm2-135m-instruct-q4_1", { backend });
    const cold = performance.now() - t0;
    const used = e.backend;
    await e.unload();
    const t1 = performance.now();
    e = await H.Engine.load("smollm2-135m-instruct-q4_1", { backend });
    const warm = performance.now() - t1;
    // Time to first token of a chat (fresh KV cache), then decode speed on a raw prompt.
    const t2 = performance.now();
    let first = 0;
    let text = "";
    for await (const c of await e.chat.completions.create({ messages: CHAT, stream: true, temperature: 0, max_tokens: 32 })) {
      if (!first && c.choices[0].delta.content) first = performance.now();
      text += c.choices[0].delta.content ?? "";
    }
    const ttft = first - t2;
    await e.reset();
    let firstTok = 0;
    const t3 = performance.now();
    const r = await e.complete(DECODE_PROMPT, { temperature: 0, max_tokens: DECODE_N, onDelta: () => { if (!firstTok) firstTok = performance.now(); } });
    const decode = (r.usage.completion_tokens - 1) / ((performance.now() - firstTok) / 1000);
    const prefill = r.usage.prompt_tokens / ((firstTok - t3) / 1000);
    await e.unload();
    return { backend: used, cold_ms: cold, warm_ms: warm, ttft_ms: ttft, decode_tps: decode, prefill_tps: prefill, n_decoded: r.usage.completion_tokens, text };
  }, { backend, CHAT, DECODE_PROMPT, DECODE_N });
}

async function wllama(page, gpu) {
  return page.evaluate(async ({ gpu, file, CHAT, DECODE_PROMPT, DECODE_N }) => {
    const { Wllama } = await import("/node_modules/@wllama/wllama/esm/index.js");
    const cfg = { default: "/node_modules/@wllama/wllama/esm/wasm/wllama.wasm" };
    const url = new URL(`/models/${file}`, location.href).href;
    const params = { n_ctx: 2048, n_threads: 1, n_gpu_layers: gpu ? 999 : 0 };
    let w = new Wllama(cfg, { suppressNativeLog: true, logger: { debug() {}, log() {}, warn() {}, error: console.error } });
    const t0 = performance.now();
    await w.loadModelFromUrl(url, params);
    const cold = performance.now() - t0;
    await w.exit();
    w = new Wllama(cfg, { suppressNativeLog: true, allowOffline: true, logger: { debug() {}, log() {}, warn() {}, error: console.error } });
    const t1 = performance.now();
    await w.loadModelFromUrl(url, params);
    const warm = performance.now() - t1;
    const t2 = performance.now();
    let first = 0;
    let text = "";
    const it = await w.createChatCompletion({ messages: CHAT, stream: true, max_tokens: 32, temperature: 0 });
    for await (const c of it) {
      const d = c.choices?.[0]?.delta?.content ?? "";
      if (!first && d) first = performance.now();
      text += d;
    }
    const ttft = first - t2;
    let n = 0;
    let firstTok = 0;
    const t3 = performance.now();
    const it2 = await w.createCompletion({ prompt: DECODE_PROMPT, stream: true, max_tokens: DECODE_N, temperature: 0 });
    for await (const c of it2) {
      if (c.choices?.[0]?.text) { n++; if (!firstTok) firstTok = performance.now(); }
    }
    const decode = (n - 1) / ((performance.now() - firstTok) / 1000);
    await w.exit();
    return { backend: gpu ? "webgpu (n_gpu_layers 999)" : "cpu (1 thread)", cold_ms: cold, warm_ms: warm, ttft_ms: ttft, decode_tps: decode, prefill_tps: null, n_decoded: n, text };
  }, { gpu, file: MODEL_FILE, CHAT, DECODE_PROMPT, DECODE_N });
}

const srv = await startTestServer();
const rows = [];
for (const w of which) {
  if (!ALL.includes(w)) throw new Error(`unknown configuration ${w}; pick from ${ALL.join(", ")}`);
  if (w.startsWith("hearth")) requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
  const b = await launchBrowser();
  try {
    const page = await openPage(b.context, srv);
    page.on("console", (m) => { if (m.type() === "error") console.error(`[${w}] ${m.text()}`); });
    const r = w.startsWith("hearth") ? await hearth(page, w === "hearth-cpu" ? "cpu" : "webgpu") : await wllama(page, w === "wllama-webgpu");
    rows.push({ config: w, ...r });
  } catch (e) {
    rows.push({ config: w, error: String(e.message ?? e).split("\n")[0] });
  } finally {
    await b.close();
  }
}
await srv.close();
if (asJson) console.log(JSON.stringify(rows, null, 2));
const f = (v, d = 0) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(d) : "—");
console.log(`\nheadless Chromium, ${MODEL_FILE} (${(fs.statSync(MODEL_PATH).size / 1e6).toFixed(1)} MB), localhost, single-threaded wasm`);
console.log("| config | backend | cold load ms | warm load ms | TTFT ms (chat) | prefill tok/s | decode tok/s |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  if (r.error) console.log(`| ${r.config} | error: ${r.error} | | | | | |`);
  else console.log(`| ${r.config} | ${r.backend} | ${f(r.cold_ms)} | ${f(r.warm_ms)} | ${f(r.ttft_ms)} | ${f(r.prefill_tps, 1)} | ${f(r.decode_tps, 1)} |`);
}
for (const r of rows) if (r.text) console.log(`${r.config}: ${JSON.stringify(r.text)}`);
