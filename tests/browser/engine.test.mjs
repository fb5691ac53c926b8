// The browser runtime end to end, in headless Chromium against the real wasm engine and the real
// default model: load with progress, greedy chat equal to the native CLI and llama.cpp, streaming,
// abort, queueing, second load with zero network requests, offline, resume, integrity, quota,
// malformed GGUF, Prompt API, polyfill (WebGPU, GPU loss → CPU and load memory: engine_webgpu.test.mjs).
// Needs `make wasm` and `make models`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import {
  REPO, MODEL_PATH, requireDist, requireFile, launchBrowser, startTestServer, openPage, mountsWithFixtures, resetServerStats, nativeBin, inPage,
} from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");

const ID = "smollm2-135m-instruct-q4_1";
const MODEL_BYTES = fs.statSync(MODEL_PATH).size;
const GOLDEN = JSON.parse(fs.readFileSync(path.join(REPO, "tests/goldens/smollm2.json"), "utf8"));
const G2 = GOLDEN.prompts.find((p) => p.name === "chat_2plus2");
const ASK = [{ role: "user", content: "What is 2+2?" }];

/** The native CLI's greedy output for the same chat (the oracle the browser must match). */
function nativeChat(prompt, n) {
  const bin = nativeBin();
  const out = execFileSync(bin, ["run", "--chat", "--prompt", prompt, "-n", String(n)], { cwd: REPO, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return out.replace(/\n$/, "");
}

let dir, srv, browser, page;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-engine-"));
  // Malformed models: a GGUF header with an absurd tensor count, and an HTML page named .gguf.
  const bad = Buffer.alloc(64);
  bad.write("GGUF", 0, "latin1");
  bad.writeUInt32LE(3, 4);
  bad.writeBigUInt64LE(1n << 60n, 8);
  bad.writeBigUInt64LE(1n << 60n, 16);
  fs.writeFileSync(path.join(dir, "bad-header.gguf"), bad);
  fs.writeFileSync(path.join(dir, "not-a-model.gguf"), "<!doctype html><title>404</title><p>this is not a model</p>".repeat(50));
  srv = await startTestServer({ roots: mountsWithFixtures(dir) });
  browser = await launchBrowser();
  page = await openPage(browser.context, srv);
});
after(async () => {
  await browser?.close();
  await srv?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("cold load in a Worker reports download → upload → ready progress and model facts", async () => {
  resetServerStats(srv);
  const r = await inPage(page, async (H, { id }) => {
    const progress = [];
    const t0 = performance.now();
    globalThis.engine = await H.Engine.load(id, { backend: "cpu", onProgress: (p) => progress.push(p) });
    return { ms: performance.now() - t0, progress, model: globalThis.engine.model, backend: globalThis.engine.backend };
  }, { id: ID });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  console.log(`# cold load (localhost, CPU, Worker): ${r.ms.toFixed(0)} ms; wasm memory after load ${(r.model.wasmMemoryBytes / 1048576).toFixed(0)} MiB (the CPU path keeps the weights in wasm memory)`);
  assert.ok(r.model.wasmMemoryBytes > 0);
  const phases = [...new Set(r.progress.map((p) => p.phase))];
  assert.deepEqual(phases, ["download", "upload", "ready"]);
  const dl = r.progress.filter((p) => p.phase === "download");
  assert.ok(dl.length >= 12, "at least one event per 8 MiB chunk");
  assert.ok(dl.every((p, i) => p.total === MODEL_BYTES && (i === 0 || p.loaded >= dl[i - 1].loaded)));
  assert.equal(dl.at(-1).loaded, MODEL_BYTES);
  assert.deepEqual(r.progress.at(-1), { phase: "ready", loaded: MODEL_BYTES, total: MODEL_BYTES });
  assert.equal(r.model.id, ID);
  assert.equal(r.model.arch, "llama");
  assert.equal(r.model.n_ctx, 2048);
  assert.equal(r.model.has_chat_template, true);
  assert.equal(r.model.fromStore, false);
  assert.equal(r.backend, "cpu");
  assert.equal(srv.stats.bytes[`/models/${path.basename(MODEL_PATH)}`], MODEL_BYTES);
  assert.equal(await inPage(page, (H, id) => H.models.has(id), ID), true);
});

test("greedy chat on the CPU equals the native CLI and llama.cpp's tokens", async () => {
  const r = await inPage(page, async (H, { messages }) => {
    const c = await globalThis.engine.chat.completions.create({ messages, temperature: 0, max_tokens: 32 });
    return { c, prompt: await globalThis.engine.renderChat(messages) };
  }, { messages: ASK });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.prompt, G2.prompt, "the chat template renders what llama.cpp saw");
  assert.equal(r.c.object, "chat.completion");
  assert.equal(r.c.choices[0].message.role, "assistant");
  assert.equal(r.c.choices[0].message.content, G2.text, "llama.cpp's greedy text");
  assert.equal(r.c.choices[0].message.content, nativeChat("What is 2+2?", 32), "the native CLI's greedy text");
  assert.equal(r.c.choices[0].finish_reason, "stop");
  assert.equal(r.c.usage.prompt_tokens, G2.prompt_ids.length);
  // llama.cpp's list ends with the end-of-turn token, which the engine does not count as output.
  assert.equal(r.c.usage.completion_tokens, G2.greedy.length - (G2.greedy.at(-1) === 2 ? 1 : 0));
  assert.equal(r.c.usage.total_tokens, r.c.usage.prompt_tokens + r.c.usage.completion_tokens);
});

test("streaming yields OpenAI chunks: role first, content deltas, finish_reason and usage last; TTFT and tok/s", async () => {
  const r = await inPage(page, async (H, { messages }) => {
    const chunks = [];
    const t0 = performance.now();
    let first = 0;
    for await (const c of await globalThis.engine.chat.completions.create({ messages, stream: true, temperature: 0, max_tokens: 64 })) {
      if (!first && c.choices[0].delta.content) first = performance.now();
      chunks.push(c);
    }
    return { chunks, ttft: first - t0, total: performance.now() - t0 };
  }, { messages: [{ role: "user", content: "List three primary colors." }] });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const { chunks } = r;
  assert.ok(chunks.length > 3);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const last = chunks.at(-1);
  assert.ok(["stop", "length"].includes(last.choices[0].finish_reason));
  assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null && !c.usage));
  const text = chunks.map((c) => c.choices[0].delta.content ?? "").join("");
  const gold = GOLDEN.prompts.find((p) => p.name === "chat_colors");
  assert.ok(text.length > 0 && (gold.text.startsWith(text.slice(0, 20)) || text.startsWith(gold.text.slice(0, 20))), `stream text ${JSON.stringify(text)}`);
  const u = last.usage;
  assert.equal(u.completion_tokens, chunks.filter((c) => c.choices[0].delta.content).length);
  const decode = (u.completion_tokens - 1) / ((r.total - r.ttft) / 1000);
  console.log(`# CPU (Worker): time to first token ${r.ttft.toFixed(0)} ms for ${u.prompt_tokens} prompt tokens (${u.prompt_tokens_details.cached_tokens} cached); decode ${decode.toFixed(1)} tok/s`);
});

test("a multi-turn chat reuses the KV cache for the shared prefix", async () => {
  const r = await inPage(page, async (H) => {
    const e = globalThis.engine;
    await e.reset();
    const turn1 = [{ role: "system", content: "You are a terse assistant." }, { role: "user", content: "Name a fruit." }];
    const a = await e.chat.completions.create({ messages: turn1, temperature: 0, max_tokens: 8 });
    const turn2 = [...turn1, a.choices[0].message, { role: "user", content: "Name another one." }];
    const b = await e.chat.completions.create({ messages: turn2, temperature: 0, max_tokens: 8 });
    return { a: a.usage, b: b.usage };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.a.prompt_tokens_details.cached_tokens, 0);
  assert.ok(r.b.prompt_tokens_details.cached_tokens >= r.a.prompt_tokens, JSON.stringify(r));
});

test("abort mid-stream gives ABORTED, then the next request works; a queued request aborted before it starts never runs", async () => {
  const r = await inPage(page, async (H, { messages }) => {
    const e = globalThis.engine;
    const ac = new AbortController();
    const seen = [];
    let err = null;
    try {
      for await (const c of await e.chat.completions.create({ messages: [{ role: "user", content: "Write a long story about a dragon." }], stream: true, max_tokens: 400, temperature: 0, signal: ac.signal })) {
        if (c.choices[0].delta.content) seen.push(c.choices[0].delta.content);
        if (seen.length === 3) ac.abort();
      }
    } catch (x) {
      err = { code: x.code, name: x.name, isHearth: x instanceof H.HearthError };
    }
    // Breaking out of a stream also cancels it.
    for await (const c of await e.chat.completions.create({ messages, stream: true, max_tokens: 400 })) if (c.choices[0].delta.content) break;
    const after = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 32 });
    // A pre-aborted signal rejects at once.
    let pre = null;
    try { await e.chat.completions.create({ messages, signal: AbortSignal.abort() }); } catch (x) { pre = x.code; }
    // Two requests at once run one after the other (never interleaved); the second, aborted while queued, never starts.
    const order = [];
    const ac2 = new AbortController();
    const p1 = e.chat.completions.create({ messages, temperature: 0, max_tokens: 12 }).then((c) => { order.push("first done"); return c; });
    const p2 = e.chat.completions.create({ messages, temperature: 0, max_tokens: 12, signal: ac2.signal }).catch((x) => { order.push("second " + x.code); });
    const s3 = await e.chat.completions.create({ messages, stream: true, temperature: 0, max_tokens: 12 });
    ac2.abort();
    const third = [];
    for await (const c of s3) {
      const d = c.choices[0].delta.content;
      if (d && third.length === 0) order.push("third started"); // (the role chunk comes at once; content only when it runs)
      if (d) third.push(d);
    }
    await Promise.all([p1, p2]);
    return { seen: seen.length, err, after: after.choices[0].message.content, pre, order, third: third.join("") };
  }, { messages: ASK });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.seen, 3);
  assert.deepEqual(r.err, { code: "ABORTED", name: "HearthError", isHearth: true });
  assert.equal(r.after, G2.text);
  assert.equal(r.pre, "ABORTED");
  assert.deepEqual(r.order, ["second ABORTED", "first done", "third started"]);
  assert.equal(r.third, G2.text.slice(0, r.third.length));
});

test("requests are validated: BAD_REQUEST and CONTEXT_OVERFLOW leave the engine usable", async () => {
  const r = await inPage(page, async (H, { messages }) => {
    const e = globalThis.engine;
    const codes = [];
    for (const bad of [{ messages: [] }, { messages: [{ role: "tool", content: "x" }] }, { messages, temperature: -1 }, { messages, n: 2 }, { messages, stop: ["a", "b", "c", "d", "e"] }]) {
      try { await e.chat.completions.create(bad); codes.push("ok"); } catch (x) { codes.push(x.code); }
    }
    const huge = "lorem ipsum dolor sit amet ".repeat(1500);
    try { await e.chat.completions.create({ messages: [{ role: "user", content: huge }], max_tokens: 4 }); codes.push("ok"); } catch (x) { codes.push(x.code); }
    const ok = await e.chat.completions.create({ messages: [{ role: "developer", content: [{ type: "text", text: "Be brief." }] }, ...messages], temperature: 0, max_tokens: 4, stop: "\n" });
    return { codes, ok: ok.choices[0].message.content.length > 0 };
  }, { messages: ASK });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.deepEqual(r.codes, ["BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "CONTEXT_OVERFLOW"]);
  assert.ok(r.ok);
});

test("complete, countTokens, renderChat, reset and unload", async () => {
  const gold = GOLDEN.prompts.find((p) => p.name === "raw_fox");
  const r = await inPage(page, async (H, { prompt }) => {
    const e = globalThis.engine;
    const deltas = [];
    const c = await e.complete(prompt, { temperature: 0, max_tokens: 8, onDelta: (d) => deltas.push(d) });
    const n = await e.countTokens(prompt);
    await e.reset();
    const again = await e.complete(prompt, { temperature: 0, max_tokens: 8 });
    await e.unload();
    let after = null;
    try { await e.countTokens("x"); } catch (x) { after = x.code; }
    return { text: c.text, deltas: deltas.join(""), n, again: again.text, cached: again.usage.cached_tokens, after };
  }, { prompt: gold.prompt });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.n, gold.prompt_ids.length);
  assert.equal(r.text, r.deltas);
  assert.equal(r.again, r.text);
  assert.equal(r.cached, 0, "reset forgot the KV cache");
  assert.equal(r.after, "BAD_REQUEST");
});

test("second load (in-thread) reads the store: zero network requests; a relaunched browser also loads from the store", async () => {
  const warm = await inPage(page, async (H, { id }) => {
    const e = await H.Engine.load(id, { worker: false, backend: "cpu" }); // the wasm module is now in this realm
    await e.unload();
    return true;
  }, { id: ID });
  assert.equal(warm, true, JSON.stringify(warm));
  const requests = [];
  const onReq = (req) => requests.push(req.url());
  browser.context.on("request", onReq);
  resetServerStats(srv);
  const r = await inPage(page, async (H, { id, messages }) => {
    const progress = [];
    const t0 = performance.now();
    const e = await H.Engine.load(id, { worker: false, backend: "cpu", onProgress: (p) => progress.push(p.phase) });
    const ms = performance.now() - t0;
    const c = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 32 });
    globalThis.inThread = e;
    return { ms, phases: [...new Set(progress)], fromStore: e.model.fromStore, text: c.choices[0].message.content };
  }, { id: ID, messages: ASK });
  browser.context.off("request", onReq);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  console.log(`# warm load from the store (CPU, in-thread): ${r.ms.toFixed(0)} ms`);
  assert.deepEqual(requests, []);
  assert.equal(srv.stats.requests, 0);
  assert.deepEqual(r.phases, ["cache", "upload", "ready"]);
  assert.equal(r.fromStore, true);
  assert.equal(r.text, G2.text);

  // A new browser process on the same profile (a later visit): the model comes from the store.
  await browser.close({ keepProfile: true });
  browser = await launchBrowser({ userDataDir: browser.userDataDir });
  page = await openPage(browser.context, srv);
  resetServerStats(srv);
  const again = await inPage(page, async (H, { id }) => {
    const t0 = performance.now();
    globalThis.engine = await H.Engine.load(id, { backend: "cpu" });
    return { ms: performance.now() - t0, fromStore: globalThis.engine.model.fromStore };
  }, { id: ID });
  assert.equal(again.error, undefined, JSON.stringify(again.error));
  console.log(`# warm load from the store (CPU, Worker, new browser process): ${again.ms.toFixed(0)} ms`);
  assert.equal(again.fromStore, true);
  assert.equal(srv.stats.log.filter((l) => l.path.startsWith("/models/")).length, 0, "no request for the weights");
});

test("offline: with the context offline, load from the store and chat", async () => {
  await inPage(page, async (H, { id }) => {
    const e = await H.Engine.load(id, { worker: false, backend: "cpu" }); // app code into this realm while online
    await e.unload();
  }, { id: ID });
  await browser.context.setOffline(true);
  try {
    const r = await inPage(page, async (H, { id, messages }) => {
      const online = navigator.onLine;
      const e = await H.Engine.load(id, { worker: false, backend: "cpu" });
      const c = await e.chat.completions.create({ messages, temperature: 0, max_tokens: 32 });
      await e.unload();
      let net = null;
      try { await fetch("/models/x"); } catch { net = "failed"; }
      return { online, text: c.choices[0].message.content, net };
    }, { id: ID, messages: ASK });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.online, false);
    assert.equal(r.net, "failed", "the network really is off");
    assert.equal(r.text, G2.text);
  } finally {
    await browser.context.setOffline(false);
  }
});

test("malformed GGUF URLs give INVALID_MODEL, store nothing, and the page keeps working", async () => {
  const r = await inPage(page, async (H) => {
    const codes = [];
    for (const url of ["/fixtures/bad-header.gguf", "/fixtures/not-a-model.gguf"]) {
      try { await H.Engine.load(url, { backend: "cpu" }); codes.push("loaded?!"); } catch (x) { codes.push(x.code); }
    }
    const stored = (await H.models.list()).map((m) => m.id);
    const c = await globalThis.engine.chat.completions.create({ messages: [{ role: "user", content: "What is 2+2?" }], temperature: 0, max_tokens: 32 });
    return { codes, stored, text: c.choices[0].message.content };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.deepEqual(r.codes, ["INVALID_MODEL", "INVALID_MODEL"]);
  assert.deepEqual(r.stored, [ID]);
  assert.equal(r.text, G2.text);
  assert.deepEqual(page.errors, []);
});

test("Prompt API sessions: prompt, promptStreaming, append, measureContextUsage, clone, destroy", async () => {
  const r = await inPage(page, async (H) => {
    const e = globalThis.engine;
    const s = await e.languageModel({ initialPrompts: [{ role: "system", content: "You are a helpful AI assistant named SmolLM, trained by Hugging Face" }], temperature: 0 });
    const window0 = s.contextWindow;
    const usage0 = s.contextUsage;
    const measured = await s.measureContextUsage("What is 2+2?");
    const a = await s.prompt("What is 2+2?");
    const usage1 = s.contextUsage;
    const c = await s.clone();
    await s.append([{ role: "user", content: [{ type: "text", value: "Thanks." }] }]);
    const usage2 = s.contextUsage;
    let streamed = "";
    for await (const d of c.promptStreaming("And 3+3?")) streamed += d;
    const aliases = { quota: s.inputQuota === s.contextWindow, usage: s.inputUsage === s.contextUsage, measure: (await s.measureInputUsage("Hello there")) === (await s.measureContextUsage("Hello there")) };
    s.destroy();
    let destroyed = null;
    try { await s.prompt("x"); } catch (x) { destroyed = x.code; }
    let bad = null;
    try { await e.languageModel({ topK: 0 }); } catch (x) { bad = x.code; }
    return { window0, usage0, measured, a, usage1, usage2, streamed, destroyed, bad, aliases, cloneMessages: c.messages.length };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.window0, 2048);
  assert.ok(r.usage0 > 0 && r.measured > 0);
  assert.equal(r.a, G2.text, "same prompt as the chat golden (the default system prompt)");
  assert.ok(r.usage1 > r.usage0 + r.measured - 2);
  assert.ok(r.usage2 > r.usage1);
  assert.ok(r.streamed.length > 0);
  assert.equal(r.cloneMessages, 5);
  assert.deepEqual(r.aliases, { quota: true, usage: true, measure: true });
  assert.equal(r.destroyed, "BAD_REQUEST");
  assert.equal(r.bad, "BAD_REQUEST");
});

test("summarize a text 3x the context by map-reduce; streaming; inputQuota; measureInputUsage", async () => {
  const topics = ["the history of tea in China", "how bees make honey", "the first railways in England", "the water cycle", "why the sky is blue", "how compilers work", "the rules of chess", "volcanoes in Iceland"];
  const text = topics.map((t, i) => `Section ${i + 1}. This section is about ${t}. ` + `It explains ${t} in plain words, with examples, dates and names, so that a reader new to ${t} understands the main ideas. `.repeat(6)).join("\n\n");
  const r = await inPage(page, async (H, { id, text }) => {
    const e = await H.Engine.load(id, { backend: "cpu", contextSize: 512 });
    const s = await e.summarizer({ type: "key-points", length: "short", format: "markdown", sharedContext: "An encyclopedia page." });
    const usage = await s.measureInputUsage(text);
    const progress = [];
    const t0 = performance.now();
    const summary = await s.summarize(text, { onChunkProgress: (p) => progress.push(p) });
    const ms = performance.now() - t0;
    const short = await e.summarizer({ type: "headline", format: "plain-text" });
    let streamed = "";
    for await (const d of short.summarizeStreaming("The city council voted on Tuesday to build a new library next to the river. It opens in 2027.", { context: "Local news." })) streamed += d;
    const props = { type: s.type, format: s.format, length: s.length, inputQuota: s.inputQuota };
    s.destroy();
    let destroyed = null;
    try { await s.summarize("x"); } catch (x) { destroyed = x.code; }
    // A Prompt API session on the small context drops its oldest turns when full, and says so.
    const lm = await e.languageModel({ initialPrompts: [{ role: "system", content: "Be brief." }] });
    let overflows = 0;
    lm.addEventListener("contextoverflow", () => overflows++);
    lm.oncontextoverflow = () => overflows++;
    const para = text.slice(0, 1200);
    for (let i = 0; i < 3; i++) await lm.append(para);
    const lmState = { overflows, usage: lm.contextUsage, window: lm.contextWindow, roles: lm.messages.map((m) => m.role) };
    await e.unload();
    return { n_ctx: 512, usage, progress, summary, ms, streamed, props, destroyed, lmState };
  }, { id: ID, text });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  console.log(`# summarize ${r.usage} tokens with a 512-token context: ${r.progress.filter((p) => p.done === 0).map((p) => `round ${p.round}: ${p.total} parts`).join(", ")}; ${(r.ms / 1000).toFixed(1)} s`);
  assert.ok(r.usage >= 3 * r.n_ctx, `the text is ${r.usage} tokens`);
  assert.ok(r.props.inputQuota > 0 && r.props.inputQuota < r.n_ctx);
  assert.deepEqual({ ...r.props, inputQuota: 0 }, { type: "key-points", format: "markdown", length: "short", inputQuota: 0 });
  const round0 = r.progress.filter((p) => p.round === 0);
  assert.ok(round0[0].total >= 3, "at least 3 parts in the map step");
  assert.equal(round0.at(-1).done, round0[0].total);
  // Key points stop reading parts once the list is full: the last event says how many were skipped.
  const last = round0.at(-1);
  if (last.skipped !== undefined) assert.ok(last.skipped > 0 && round0.at(-2).done === last.total - last.skipped, JSON.stringify(round0));
  assert.ok(r.summary.trim().length > 0);
  assert.ok(r.streamed.trim().length > 0);
  assert.equal(r.destroyed, "BAD_REQUEST");
  assert.ok(r.lmState.overflows >= 2, JSON.stringify(r.lmState));
  assert.ok(r.lmState.usage <= r.lmState.window);
  assert.equal(r.lmState.roles[0], "system", "the system prompt is never dropped");
});

test("polyfill installs Summarizer and LanguageModel globals backed by the stored model", async () => {
  const r = await inPage(page, async (H) => {
    const before = { s: await globalThis.Summarizer?.availability?.(), l: await globalThis.LanguageModel?.availability?.() };
    const P = await import("/dist/polyfill.js");
    P.configure({ engine: { backend: "cpu" } });
    const availability = await Summarizer.availability();
    const events = [];
    const s = await Summarizer.create({ type: "tldr", length: "short", monitor(m) { m.addEventListener("downloadprogress", (e) => events.push(e.loaded)); } });
    const summary = await s.summarize("Hearth runs small language models inside the browser. Nothing leaves the machine. The weights are stored so later visits work offline.");
    const lm = await LanguageModel.create({ initialPrompts: [{ role: "system", content: "You are a helpful AI assistant named SmolLM, trained by Hugging Face" }], temperature: 0 });
    const answer = await lm.prompt("What is 2+2?");
    return { before, installed: P.installed, availability, events, summary, answer, params: await LanguageModel.params(), after: await LanguageModel.availability() };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(["unavailable", undefined].includes(r.before.s) && ["unavailable", undefined].includes(r.before.l), "no usable built-in AI here");
  assert.deepEqual(r.installed, { Summarizer: true, LanguageModel: true, Writer: true, Rewriter: true, LanguageDetector: true });
  assert.equal(r.availability, "available");
  assert.deepEqual(r.events, [], "no downloadprogress events for a model that was already available");
  assert.ok(r.summary.length > 0);
  assert.equal(r.answer, G2.text);
  assert.equal(r.params.defaultTopK, 3);
  assert.equal(r.after, "available");
});

test("integrity: a wrong sha256 gives INTEGRITY and leaves nothing stored", async () => {
  const r = await inPage(page, async (H, { id }) => {
    await H.models.delete(id);
    let err = null;
    try { await H.Engine.load(id, { backend: "cpu", sha256: "0".repeat(64) }); } catch (x) { err = { code: x.code, details: x.details }; }
    return { err, stored: await H.models.list(), has: await H.models.has(id) };
  }, { id: ID });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.err.code, "INTEGRITY");
  assert.equal(r.err.details.expected, "0".repeat(64));
  assert.match(r.err.details.actual, /^[0-9a-f]{64}$/);
  assert.deepEqual(r.stored, []);
  assert.equal(r.has, false);
});

test("quota: a short storage estimate gives QUOTA with the numbers before any byte is written", async () => {
  const qpage = await browser.context.newPage();
  await qpage.addInitScript(() => {
    navigator.storage.estimate = async () => ({ quota: 50e6, usage: 10e6 });
  });
  await qpage.goto(srv.url + "__test__/blank.html");
  const r = await inPage(qpage, async (H, { id }) => {
    let err = null;
    // In-thread: the simulated estimate is installed in this page (init scripts do not reach Workers).
    try { await H.Engine.load(id, { backend: "cpu", worker: false }); } catch (x) { err = { code: x.code, message: x.message, details: x.details }; }
    const root = await navigator.storage.getDirectory();
    const names = [];
    for await (const [n] of root) names.push(n);
    let entries = [];
    if (names.includes("hearth-models")) for await (const [n] of await root.getDirectoryHandle("hearth-models")) entries.push(n);
    return { err, entries };
  }, { id: ID });
  await qpage.close();
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.err.code, "QUOTA");
  assert.match(r.err.message, /98\.4 MB more, 40\.0 MB available/);
  assert.deepEqual(r.err.details, { needed: MODEL_BYTES, available: 40e6, quota: 50e6, usage: 10e6 });
  assert.deepEqual(r.entries, []);
});

test("resume: a page reloaded at ~50% of the model's download transfers < 0.6x the file on the next load", async () => {
  await inPage(page, (H, id) => H.models.delete(id), ID);
  resetServerStats(srv);
  // The first download hangs at 60% (the connection stays open): the reload below interrupts
  // it, and a Worker that outlives the reload for a moment cannot finish it behind our back.
  const modelPath = `/models/${path.basename(MODEL_PATH)}`;
  srv.stalls.set(modelPath, Math.floor(MODEL_BYTES * 0.6));
  await page.evaluate((id) => {
    globalThis.__half = new Promise((resolve) => {
      import("/dist/index.js").then((H) => H.Engine.load(id, { backend: "cpu", onProgress: (p) => { if (p.phase === "download" && p.loaded >= p.total / 2) resolve(p.loaded); } }).catch(() => {}));
    });
  }, ID);
  const half = await page.evaluate(() => globalThis.__half);
  await page.reload();
  srv.stalls.delete(modelPath);
  resetServerStats(srv);
  const r = await inPage(page, async (H, { id }) => {
    const partial = (await H.models.list())[0];
    globalThis.engine = await H.Engine.load(id, { backend: "cpu" });
    const c = await globalThis.engine.chat.completions.create({ messages: [{ role: "user", content: "What is 2+2?" }], temperature: 0, max_tokens: 32 });
    return { partial, text: c.choices[0].message.content };
  }, { id: ID });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const sent = srv.stats.bytes[modelPath];
  console.log(`# model resume: reloaded at ${half} bytes, ${r.partial.storedBytes} stored, then ${sent} transferred (${(sent / MODEL_BYTES).toFixed(2)}x)`);
  assert.equal(r.partial.complete, false);
  assert.equal(sent, MODEL_BYTES - r.partial.storedBytes);
  assert.ok(sent < 0.6 * MODEL_BYTES);
  assert.equal(r.text, G2.text);
});
