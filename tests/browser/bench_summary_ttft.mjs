// Time to the first summary token (issue 17's row), headless Chromium, CPU, one thread (the
// single-thread builds of both engines, a page that is not cross-origin isolated), warm load (the
// model already in the engine's store / wllama's cache; each repeat loads a fresh engine):
//   hearth: Engine.load → summarizer (key-points, short, markdown) → summarizeStreaming(text): the
//           first streamed chunk (a whole first bullet, as a page sees it) and the whole summary;
//           then the pass that wrote the summary again on a reset KV cache with max_tokens 1
//           (chat.completions: the engine's own time to first token on that prompt).
//   wllama: the same prompt text (Hearth's rendered chat prompt of that pass) as a raw completion,
//           max_tokens 1: time to its first token; and (--full 1; off by default: slow) the whole article in the same
//           prompt shape, what a page without Hearth's salient-sentence cut would send.
// Repeats back to back per engine (--reps, median reported by bench/run.py readers). Not a test.
//   node tests/browser/bench_summary_ttft.mjs --model ID --file FILE.gguf [--data FILE.jsonl]
//        [--id ARTICLE_ID] [--reps 3] [--full 0] [--timeout S]
// Prints one JSON line: {model, article, hearth: {...samples}, wllama: {...samples}}.
import fs from "node:fs";
import path from "node:path";
import { REPO, launchBrowser, startTestServer, openPage, requireFile } from "./harness.mjs";

const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv.splice(i, 2)[1] : d; };
const MODEL_ID = opt("--model", "smollm2-135m-instruct-q4_1");
const FILE = opt("--file", "SmolLM2-135M-Instruct.Q4_1.gguf");
const DATA = opt("--data", path.join(REPO, "..", "shared", "data", "cnndm-dev-60.jsonl"));
// A CNN/DailyMail article of ~1,500 tokens (1,144 words; 1,4xx–1,5xx tokens with the registry tokenizers).
const ARTICLE_ID = opt("--id", "00211175");
const REPS = Number(opt("--reps", "3"));
const FULL = Number(opt("--full", "0")) > 0;
const TIMEOUT_S = Number(opt("--timeout", "3600"));
requireFile(path.join(REPO, "models", "cache", FILE), "make models");
requireFile(path.join(REPO, "www", "pkg", "hearth_bg.wasm"), "make wasm-baseline");
requireFile(DATA, "the CNN/DailyMail sample (see make bench-summary)");
const rec = fs.readFileSync(DATA, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)).find((r) => String(r.id).startsWith(ARTICLE_ID));
if (!rec) throw new Error(`no article ${ARTICLE_ID} in ${DATA}`);
const TEXT = rec.article;

async function hearth(page) {
  return page.evaluate(async ({ MODEL_ID, TEXT, REPS }) => {
    const H = await import("/dist/index.js");
    let e = await H.Engine.load(MODEL_ID, { backend: "cpu", threads: false }); // cold: into the store
    const info = { ...e.model, text_tokens: await e.countTokens(TEXT) };
    await e.unload();
    const s = { warm_ms: [], first_chunk_ms: [], total_ms: [], engine_ttft_ms: [], prompt_tokens: [], summary: "", prompt: "", full_prompt: "" };
    for (let rep = 0; rep < REPS; rep++) {
      const t1 = performance.now();
      e = await H.Engine.load(MODEL_ID, { backend: "cpu", threads: false });
      s.warm_ms.push(performance.now() - t1);
      const sum = await e.summarizer({ type: "key-points", length: "short", format: "markdown" });
      let messages = null;
      let first = 0;
      let out = "";
      const t = performance.now();
      for await (const d of sum.summarizeStreaming(TEXT, { onRequest: (r) => { if (r.step === "summary") messages = r.messages; } })) {
        if (!first && d.trim()) first = performance.now();
        out += d;
      }
      const end = performance.now();
      s.first_chunk_ms.push(first - t);
      s.total_ms.push(end - t);
      s.summary = out;
      // The same pass on a fresh KV cache, one token: the engine's own time to first token.
      await e.reset();
      const t2 = performance.now();
      const r = await e.chat.completions.create({ messages, max_tokens: 1, temperature: 0 });
      s.engine_ttft_ms.push(performance.now() - t2);
      s.prompt_tokens.push(r.usage.prompt_tokens);
      s.prompt = await e.renderChat(messages);
      // The whole article in the same prompt shape (for the --full wllama run).
      const full = messages.map((m) => (m.role === "user" ? { ...m, content: m.content.replace(/^([\s\S]*?Text:\n)[\s\S]*(\n\n[^\n]*)$/, (_, a, b) => a + TEXT.trim() + b) } : m));
      s.full_prompt = await e.renderChat(full);
      await e.unload();
    }
    return { backend: info.backend, wasm_build: info.wasmBuild, threads: info.threads, text_tokens: info.text_tokens, ...s };
  }, { MODEL_ID, TEXT, REPS });
}

async function wllama(page, prompts) {
  return page.evaluate(async ({ FILE, prompts, REPS }) => {
    const { Wllama } = await import("/node_modules/@wllama/wllama/esm/index.js");
    const cfg = { default: "/node_modules/@wllama/wllama/esm/wasm/wllama.wasm" };
    const url = new URL(`/models/${FILE}`, location.href).href;
    const params = { n_ctx: 2048, n_threads: 1, n_gpu_layers: 0 };
    const quiet = { debug() {}, log() {}, warn() {}, error: console.error };
    let w = new Wllama(cfg, { suppressNativeLog: true, logger: quiet });
    await w.loadModelFromUrl(url, params); // cold: into wllama's cache
    await w.exit();
    const s = {};
    for (const [name, prompt] of Object.entries(prompts)) {
      const r = (s[name] = { warm_ms: [], ttft_ms: [], prompt_tokens: [] });
      for (let rep = 0; rep < REPS; rep++) {
        w = new Wllama(cfg, { suppressNativeLog: true, allowOffline: true, logger: quiet });
        const t1 = performance.now();
        await w.loadModelFromUrl(url, params);
        r.warm_ms.push(performance.now() - t1);
        let first = 0;
        let usage = null;
        let timings = null;
        const t = performance.now();
        for await (const ch of await w.createCompletion({ prompt, stream: true, max_tokens: 1, temperature: 0 })) {
          if (!first && ch.choices?.[0]?.text !== undefined) first = performance.now();
          if (ch.usage) usage = ch.usage;
          if (ch.timings) timings = ch.timings;
        }
        r.ttft_ms.push((first || performance.now()) - t);
        r.prompt_tokens.push(usage?.prompt_tokens ?? timings?.prompt_n ?? null);
        await w.exit();
      }
    }
    return s;
  }, { FILE, prompts, REPS });
}

const srv = await startTestServer();
const result = { model: MODEL_ID, article: rec.id, words: TEXT.split(/\s+/).length, reps: REPS };
const withPage = async (f) => {
  const b = await launchBrowser();
  try {
    const page = await openPage(b.context, srv);
    page.setDefaultTimeout(TIMEOUT_S * 1000);
    page.on("console", (m) => { if (m.type() === "error") console.error(`[page] ${m.text()}`); });
    return await f(page);
  } finally {
    await b.close().catch(() => {});
  }
};
try {
  result.hearth = await withPage(hearth);
  console.error(`[bench_summary_ttft] ${MODEL_ID} hearth: first chunk ${JSON.stringify(result.hearth.first_chunk_ms.map(Math.round))} ms, engine ttft ${JSON.stringify(result.hearth.engine_ttft_ms.map(Math.round))} ms`);
  const prompts = { same: result.hearth.prompt };
  if (FULL) prompts.full = result.hearth.full_prompt;
  result.wllama = await withPage((page) => wllama(page, prompts));
  console.error(`[bench_summary_ttft] ${MODEL_ID} wllama: ${JSON.stringify(Object.fromEntries(Object.entries(result.wllama).map(([k, v]) => [k, v.ttft_ms.map(Math.round)])))} ms`);
} catch (e) {
  result.error = String(e.message ?? e).split("\n")[0];
  console.error(`[bench_summary_ttft] ${MODEL_ID}: ${result.error}`);
} finally {
  await srv.close();
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
