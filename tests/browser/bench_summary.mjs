// Summary benchmark driver for `make bench-summary` (bench/summary.py): the real Summarizer API
// (www/dist over www/pkg or www/pkg-mt, in the engine Worker, exactly as a page uses it) in
// headless Chromium over a JSONL file of {id, article, highlights}. One browser and one loaded
// engine per model; for each prompt set, type and article: summarizeStreaming(), timing the first
// non-empty delta (ttft_ms) and the whole summary (total_ms).
// Not a test: it asserts nothing about quality or speed. Raw outputs as JSON to --out.
//   node tests/browser/bench_summary.mjs --model ID --data FILE.jsonl --out FILE.json
//        [--types key-points,tldr] [--length short] [--prompts small-model,legacy]
//        [--limit N] [--offset N] [--legacy-limit N] [--legacy-every K] [--input-budget N] [--context-size N (default 2048; 512 map-reduces most news articles)]
//        [--threads N (0: the single-thread build)] [--timeout S]
import fs from "node:fs";
import path from "node:path";
import { REPO, launchBrowser, startTestServer, openPage, requireFile } from "./harness.mjs";

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv.splice(i, 2)[1] : d; };
const MODEL_ID = opt("--model", "smollm2-135m-instruct-q4_1");
const DATA = opt("--data", null);
const OUT = opt("--out", null);
const TYPES = opt("--types", "key-points,tldr").split(",");
const LENGTH = opt("--length", "short");
const PROMPTS = opt("--prompts", "small-model,legacy").split(",");
const LIMIT = Number(opt("--limit", "0"));
const OFFSET = Number(opt("--offset", "0"));
const THREADS = Number(opt("--threads", "0"));
const INPUT_BUDGET = Number(opt("--input-budget", "0")); // the summarizer's inputBudget (0: its default)
const LEGACY_LIMIT = Number(opt("--legacy-limit", "0")); // legacy prompts on the first N articles only (0: all)
const LEGACY_EVERY = Number(opt("--legacy-every", "1")); // legacy prompts on every K-th article only (a spread sample)
const CONTEXT_SIZE = Number(opt("--context-size", "0")); // the engine's contextSize (0: its default, 2048)
const TIMEOUT_S = Number(opt("--timeout", "600"));
if (!DATA || !OUT) throw new Error("--data FILE.jsonl and --out FILE.json are required");
requireFile(path.join(REPO, "www", "dist", "index.js"), "make www");
requireFile(path.join(REPO, "www", THREADS > 0 ? "pkg-mt" : "pkg", "hearth_bg.wasm"), THREADS > 0 ? "make wasm-threads" : "make wasm-baseline");

let records = fs.readFileSync(DATA, "utf8").split("\n").filter((l) => l.trim()).map((l, i) => {
  const r = JSON.parse(l);
  if (typeof r.id !== "string" && typeof r.id !== "number") throw new Error(`${DATA}:${i + 1}: no id`);
  if (typeof r.article !== "string") throw new Error(`${DATA}:${i + 1}: no article`);
  return { id: String(r.id), article: r.article };
});
records = records.slice(OFFSET, LIMIT > 0 ? OFFSET + LIMIT : undefined);

const srv = await startTestServer({ isolate: THREADS > 0 });
const b = await launchBrowser();
const outputs = [];
let info = null;
let error = null;
const t0 = Date.now();
const save = () => fs.writeFileSync(OUT, JSON.stringify({ model: MODEL_ID, info, error, wall_s: (Date.now() - t0) / 1000, outputs }, null, 1));
try {
  const page = await openPage(b.context, srv);
  page.setDefaultTimeout(TIMEOUT_S * 1000);
  page.on("console", (m) => { if (m.type() === "error") console.error(`[page] ${m.text()}`); });
  info = await page.evaluate(async ({ MODEL_ID, THREADS, CONTEXT_SIZE }) => {
    const H = await import("/dist/index.js");
    const o = { backend: "cpu", threads: THREADS > 0 ? THREADS : false };
    if (CONTEXT_SIZE > 0) o.contextSize = CONTEXT_SIZE;
    globalThis.benchEngine = await H.Engine.load(MODEL_ID, o);
    globalThis.benchSummarizers = new Map();
    const m = globalThis.benchEngine.model;
    return { id: m.id, name: m.name, backend: m.backend, wasmBuild: m.wasmBuild, threads: m.threads, n_ctx: m.n_ctx, has_chat_template: m.has_chat_template };
  }, { MODEL_ID, THREADS, CONTEXT_SIZE });
  if (!info.has_chat_template) throw new Error(`${MODEL_ID} has no chat template: summaries need an instruction-tuned model`);
  // Article by article: the types of one prompt set share the text's prompt prefix (the engine
  // reuses its KV cache), as on a page that shows key points and a TL;DR of the same text.
  for (const [i, rec] of records.entries()) {
    for (const prompts of PROMPTS) {
      if (prompts === "legacy" && ((LEGACY_LIMIT > 0 && i >= LEGACY_LIMIT) || i % LEGACY_EVERY !== 0)) continue;
      for (const type of TYPES) {
        const r = await page.evaluate(async ({ prompts, type, LENGTH, INPUT_BUDGET, text }) => {
          const key = `${prompts}/${type}`;
          let s = globalThis.benchSummarizers.get(key);
          if (!s) {
            const o = { type, length: LENGTH, format: "markdown", prompts };
            if (INPUT_BUDGET > 0 && prompts !== "legacy") o.inputBudget = INPUT_BUDGET;
            s = await globalThis.benchEngine.summarizer(o);
            globalThis.benchSummarizers.set(key, s);
          }
          const input_tokens = await s.measureInputUsage(text);
          const t = performance.now();
          let first = 0;
          let summary = "";
          for await (const d of s.summarizeStreaming(text)) {
            if (!first && d.trim()) first = performance.now();
            summary += d;
          }
          const end = performance.now();
          return { summary: summary.trim(), ttft_ms: (first || end) - t, total_ms: end - t, input_tokens, input_quota: s.inputQuota };
        }, { prompts, type, LENGTH, INPUT_BUDGET, text: rec.article });
        outputs.push({ id: rec.id, model: MODEL_ID, type, length: LENGTH, prompts, ...r });
        save(); // a run stopped part-way keeps what it measured
        console.error(`[bench_summary] ${MODEL_ID} ${prompts} ${type} ${i + 1}/${records.length} ${rec.id.slice(0, 8)}: ${(r.total_ms / 1000).toFixed(1)} s ${JSON.stringify(r.summary.slice(0, 100))}`);
      }
    }
  }
} catch (e) {
  error = String(e.message ?? e).split("\n")[0];
  console.error(`[bench_summary] ${MODEL_ID}: ${error}`);
} finally {
  await b.close().catch(() => {});
  await srv.close();
}
save();
process.exit(error ? 1 : 0);
