// Browser benchmark for structured output (bench/structured.py), headless Chromium, the baseline
// wasm build (www/pkg), CPU backend, one thread. Not a test: no timed assertions.
//
//   node tests/browser/bench_structured.mjs compile --model ID [--reps 5] [--tg 64]
//     Per case of bench/structured/schemas.json, back to back on one engine: the engine's own
//     timings of the constraint (usage.constraint: compile_ms; vocab_ms, the token trie, on the
//     engine's first constrained request only; then, on a second engine, the same trie built
//     ahead by engine.prepareConstraints() and what its first request still spends), then decode tok/s of a constrained completion
//     (K tokens) and of the same prompt unconstrained with max_tokens K (greedy both; the
//     unconstrained run may end earlier at an end-of-generation token: its count is recorded).
//   node tests/browser/bench_structured.mjs tools --model ID [--max-tokens 48] [--tool-choice auto|required]
//     bench/structured/tools.json through chat.completions.create (tools, tool_choice,
//     parallel_tool_calls false: each prompt wants one call; greedy): per prompt the call made (or none), whether its arguments validate against the
//     tool's schema (ajv), and whether they match the expected ones.
// Raw results as JSON on stdout (last line).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { REPO, launchBrowser, startTestServer, openPage, requireDist, requireFile } from "./harness.mjs";

const argv = process.argv.slice(2);
const mode = argv.shift();
const opt = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv.splice(i, 2)[1] : d; };
const MODEL_ID = opt("--model", "smollm2-135m-instruct-q4_1");
const REPS = Number(opt("--reps", "5"));
const TG = Number(opt("--tg", "64"));
const MAX_TOKENS = Number(opt("--max-tokens", "48"));
const TOOL_CHOICE = opt("--tool-choice", "auto");
const TIMEOUT_S = Number(opt("--timeout", "1200"));
if (mode !== "compile" && mode !== "tools") throw new Error("usage: bench_structured.mjs compile|tools --model ID …");
requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");

const schemas = JSON.parse(fs.readFileSync(path.join(REPO, "bench/structured/schemas.json"), "utf8")).cases;
const toolSet = JSON.parse(fs.readFileSync(path.join(REPO, "bench/structured/tools.json"), "utf8"));

const srv = await startTestServer();
const browser = await launchBrowser();
const timer = setTimeout(() => {
  console.error(`bench_structured: over ${TIMEOUT_S} s, giving up`);
  process.exit(2);
}, TIMEOUT_S * 1000);
try {
  const page = await openPage(browser.context, srv);
  page.setDefaultTimeout(TIMEOUT_S * 1000);
  const out = mode === "compile" ? await compile(page) : await tools(page);
  console.log(JSON.stringify({ mode, model: MODEL_ID, ...out }));
} finally {
  clearTimeout(timer);
  await browser.close();
  await srv.close();
}

async function compile(page) {
  return page.evaluate(async ({ MODEL_ID, schemas, REPS, TG }) => {
    const H = await import("/dist/index.js");
    const e = await H.Engine.load(MODEL_ID, { backend: "cpu", threads: false });
    const constraintOf = (c) => (c.json_schema ? { json_schema: c.json_schema } : { regex: c.regex });
    const tps = (r) => (r.usage.completion_tokens > 1 ? (r.usage.completion_tokens - 1) / ((r.timings.total_ms - r.timings.first_token_ms) / 1000) : null);
    const rows = [];
    for (const c of schemas) {
      const row = { name: c.name, compile_ms: [], vocab_ms: null, constrained_tps: [], unconstrained_tps: [], tokens: [], unconstrained_tokens: [], grammar_ms_per_token: [], mask_ms: [], masks: [], forced: [] };
      for (let rep = 0; rep <= REPS; rep++) {
        await e.reset(); // every request prefills its prompt (no KV reuse across the pair)
        const a = await e.complete(c.completion, { constraint: constraintOf(c), max_tokens: TG, temperature: 0 });
        await e.reset();
        const b = await e.complete(c.completion, { max_tokens: a.usage.completion_tokens, temperature: 0 });
        const k = a.usage.constraint;
        if (rep === 0 && row.vocab_ms === null) row.vocab_ms = k.vocab_ms;
        if (rep === 0) {
          row.first_compile_ms = k.compile_ms; // the first compile of this schema (warm-up rep)
          row.output = a.text;
          continue;
        }
        row.compile_ms.push(k.compile_ms);
        row.constrained_tps.push(tps(a));
        row.unconstrained_tps.push(tps(b));
        row.tokens.push(a.usage.completion_tokens);
        row.unconstrained_tokens.push(b.usage.completion_tokens);
        row.grammar_ms_per_token.push(k.grammar_ms / a.usage.completion_tokens);
        row.masks.push(k.masks);
        if (k.masks) row.mask_ms.push(k.mask_ms / k.masks);
        row.forced.push(k.forced_tokens);
      }
      rows.push(row);
    }
    const info = e.model;
    await e.unload();
    // The same trie built ahead on a fresh engine (engine.prepareConstraints), then that
    // engine's first constrained request: what it still spends on the trie.
    const e2 = await H.Engine.load(MODEL_ID, { backend: "cpu", threads: false });
    const prepare_ms = await e2.prepareConstraints();
    const c = schemas[0];
    const first = await e2.complete(c.completion, { constraint: constraintOf(c), max_tokens: 4, temperature: 0 });
    await e2.unload();
    return { backend: info.backend, reps: REPS, tg: TG, rows, prepare_ms, vocab_ms_after_prepare: first.usage.constraint.vocab_ms };
  }, { MODEL_ID, schemas, REPS, TG });
}

async function tools(page) {
  const require = createRequire(path.join(REPO, "www/package.json"));
  const Ajv = require("ajv");
  const ajv = new Ajv({ strict: false });
  const res = await page.evaluate(async ({ MODEL_ID, toolSet, MAX_TOKENS, TOOL_CHOICE }) => {
    const H = await import("/dist/index.js");
    const e = await H.Engine.load(MODEL_ID, { backend: "cpu", threads: false, contextSize: 2048 });
    const rows = [];
    const t0 = performance.now();
    for (const p of toolSet.prompts) {
      const r = await e.chat.completions.create({
        messages: [{ role: "system", content: toolSet.system }, { role: "user", content: p.prompt }],
        tools: toolSet.tools, tool_choice: TOOL_CHOICE, parallel_tool_calls: false, temperature: 0, max_tokens: MAX_TOKENS,
      });
      const m = r.choices[0].message;
      const call = m.tool_calls?.[0]?.function;
      rows.push({ prompt: p.prompt, expected: p.name, expected_args: p.args, called: call?.name ?? null, arguments: call?.arguments ?? null, calls: m.tool_calls?.length ?? 0, text: m.content, finish: r.choices[0].finish_reason });
    }
    const seconds = (performance.now() - t0) / 1000;
    await e.unload();
    return { rows, seconds };
  }, { MODEL_ID, toolSet, MAX_TOKENS, TOOL_CHOICE });
  const schemaOf = Object.fromEntries(toolSet.tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));
  const same = (a, b) => (typeof b === "string" ? typeof a === "string" && a.trim().toLowerCase() === b.trim().toLowerCase() : a === b);
  for (const r of res.rows) {
    let args = null;
    try {
      args = r.arguments === null ? null : JSON.parse(r.arguments);
    } catch {
      args = undefined;
    }
    r.right_tool = r.called === r.expected;
    r.valid_args = r.called !== null && args !== undefined && !!schemaOf[r.called]?.(args);
    r.args_match = r.right_tool && r.valid_args && Object.entries(r.expected_args).every(([k, v]) => same(args[k], v));
  }
  const n = res.rows.length;
  const count = (k) => res.rows.filter((r) => r[k]).length;
  return { n, tool_choice: TOOL_CHOICE, right_tool: count("right_tool"), valid_args: count("valid_args"), args_match: count("args_match"), no_call: res.rows.filter((r) => r.called === null).length, seconds: res.seconds, max_tokens: MAX_TOKENS, rows: res.rows };
}
