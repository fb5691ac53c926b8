// Synthetic models (tests/goldens/synthetic: random weights, each family's real metadata layout,
// tensor names and vocabulary) through `Engine.load` in Chromium, CPU backend, baseline wasm:
// one model per family, and a split model (gguf-split's layout) loaded from its first part's URL.
// Each greedy completion must equal the native engine's on the same file, and start with the text
// of llama.cpp's own greedy tokens (the committed goldens) over the steps where llama.cpp's
// top-1/top-2 gap is clear. The files are generated here from the committed recipes
// (examples/synthetic_gguf.rs, which also checks the native tokens against llama.cpp's).
// Needs `make wasm` and `make test-data` (the vocabularies); builds the example in the test
// profile (the library `cargo test` built). Adds 18 to 30 s to `make test-browser` here.
// Also: split parts behind signed URLs (one shared query string; a list of per-part URLs, each
// with its own signature), and the default registry model (SmolLM2) split as gguf-split splits it
// (examples/split_gguf.rs, checked against gguf-split's bytes by tests/split_real.rs) giving the
// unsplit file's greedy text; and the CPU backend's 4 GiB refusal from the header of a 7B-shaped
// model (a sparse file, examples/synthetic_gguf.rs --sparse).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { REPO, MODEL_FILE, MODEL_PATH, requireDist, requireFile, openTestPage, closeTestPage, mountsWithFixtures, resetServerStats, inPage } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(path.join(REPO, ".cache/llama-vocab/ggml-vocab-qwen2.gguf"), "make test-data");

/**
 * One model per family: the block format whose llama.cpp goldens have the longest clear run
 * (random weights give near-ties). qwen3 is the split model's family (qwen3_q8_0). gemma2's
 * goldens have no clear step at all (soft-capped random logits tie to 1e-4): the browser is held
 * to the native engine there, whose logits tests/synthetic.rs compares with llama.cpp's.
 */
const FAMILIES = ["llama3_q8_0", "mistral_q6_k", "smollm3_q8_0", "gemma3_q4_k", "gemma2_q4_k", "phi3_q6_k"];
const NO_CLEAR_STEP = new Set(["gemma2"]);
const SPLIT = JSON.parse(fs.readFileSync(path.join(REPO, "tests/goldens/synthetic/split.json"), "utf8"));
const TOKENS = 8;
const REAL_SPLIT = JSON.parse(fs.readFileSync(path.join(REPO, "tests/goldens/split_smollm2.json"), "utf8"));
requireFile(MODEL_PATH, "make models");

/** Writes the recipes' GGUF files (and, with `split`, their parts) into `out`; returns expect.json. */
function synthesize(out, names, split) {
  const args = ["run", "--quiet", "--profile", "test", "--example", "synthetic_gguf", "--", out, "--tokens", String(TOKENS), ...(split ? ["--split", String(split)] : []), ...names];
  execFileSync("cargo", args, { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  return JSON.parse(fs.readFileSync(path.join(out, "expect.json"), "utf8")).models;
}

let dir, ctx, families, split;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-synthetic-"));
  const t0 = Date.now();
  families = synthesize(path.join(dir, "families"), FAMILIES);
  [split] = synthesize(path.join(dir, "split"), [SPLIT.model], SPLIT.max_tensors);
  execFileSync("cargo", ["run", "--quiet", "--profile", "test", "--example", "synthetic_gguf", "--", path.join(dir, "sparse"), "--sparse", "32", "llama7b_q4_k"], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  execFileSync("cargo", ["run", "--quiet", "--profile", "test", "--example", "split_gguf", "--", MODEL_PATH, path.join(dir, "real"), String(REAL_SPLIT.max_tensors), "smollm2"], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  console.log(`# synthetic files written and checked natively in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  ctx = await openTestPage({ roots: mountsWithFixtures(dir) });
});
after(async () => {
  await closeTestPage(ctx ?? {});
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Loads `url` in the page (CPU, baseline build, in a Worker) and completes the model's prompt greedily. */
function loadAndComplete(url, m, extra = {}) {
  return inPage(ctx.page, async (H, { url, prompt, n, extra }) => {
    const progress = [];
    const engine = await H.Engine.load(url, { backend: "cpu", threads: false, contextSize: 256, onProgress: (p) => progress.push(p), ...extra });
    try {
      const r = await engine.complete(prompt, { max_tokens: n, temperature: 0 });
      return { text: r.text, tokens: r.usage.completion_tokens, model: engine.model, progress };
    } finally {
      await engine.unload();
    }
  }, { url, prompt: m.prompt, n: TOKENS, extra });
}

/** The requests for model files since the last reset (the Worker's script and wasm are not counted). */
function fixtureRequests() {
  return ctx.srv.stats.log.filter((l) => l.path.startsWith("/fixtures/")).map((l) => `${l.method} ${l.path}`);
}

function checkText(r, m) {
  assert.equal(r.error, undefined, `${m.name}: ${JSON.stringify(r.error)}`);
  if (!NO_CLEAR_STEP.has(m.family)) assert.ok(m.llama_cpp_checked > 0, `${m.name}: no clear llama.cpp step to check`);
  assert.ok(r.text.startsWith(m.llama_cpp_text), `${m.name}: ${JSON.stringify(r.text)} does not start with llama.cpp's ${JSON.stringify(m.llama_cpp_text)}`);
  assert.equal(r.text, m.text, `${m.name}: browser text differs from the native engine's`);
}

test("each synthetic family loads through Engine.load and completes as llama.cpp and the native engine do", async () => {
  const t0 = Date.now();
  for (const m of families) {
    const r = await loadAndComplete(`/fixtures/families/${m.file}`, m);
    checkText(r, m);
    assert.equal(r.model.n_ctx, 256);
    console.log(`# ${m.name} (${m.family}): ${m.llama_cpp_checked} of ${r.tokens} tokens checked against llama.cpp, ${r.model.loadMs.toFixed(0)} ms load`);
  }
  console.log(`# ${families.length} families in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test("a split model loads from its first part's URL: every part stored, progress over all parts, the unsplit file's tokens", async () => {
  const n = split.parts.length;
  assert.equal(n, SPLIT.parts.length);
  const bytes = split.parts.map((p) => fs.readFileSync(path.join(dir, "split", p)));
  assert.deepEqual(bytes.map((b) => createHash("sha256").update(b).digest("hex")), SPLIT.parts.map((p) => p.sha256), "llama.cpp gguf-split's very bytes");
  const sizes = bytes.map((b) => b.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  resetServerStats(ctx.srv);
  const r = await loadAndComplete(`/fixtures/split/${split.parts[0]}`, split);
  checkText(r, split);
  assert.equal(r.model.bytes, total);
  assert.equal(r.model.fromStore, false);
  for (const [i, p] of split.parts.entries()) assert.equal(ctx.srv.stats.bytes[`/fixtures/split/${p}`], sizes[i], `${p} downloaded once`);
  const dl = r.progress.filter((p) => p.phase === "download");
  assert.deepEqual([...new Set(dl.map((p) => p.part))], split.parts.map((_, i) => i + 1));
  assert.ok(dl.every((p, i) => p.parts === n && p.total === total && (i === 0 || p.loaded >= dl[i - 1].loaded)), "one total over all parts, loaded never going back");
  assert.equal(dl.at(-1).loaded, total);
  assert.deepEqual(r.progress.at(-1), { phase: "ready", loaded: total, total });
  const stored = await inPage(ctx.page, async (H, urls) => Promise.all(urls.map((u) => H.models.has(new URL(u, location.href).href))), split.parts.map((p) => `/fixtures/split/${p}`));
  assert.deepEqual(stored, split.parts.map(() => true), "each part stored complete");

  // Again, from any part's URL: everything from the store, no network.
  resetServerStats(ctx.srv);
  const again = await loadAndComplete(`/fixtures/split/${split.parts[n - 1]}`, split);
  checkText(again, split);
  assert.equal(again.model.fromStore, true);
  assert.deepEqual(fixtureRequests(), []);
  assert.deepEqual([...new Set(again.progress.map((p) => p.phase))], ["cache", "upload", "ready"]);
});

test("a split download cut mid-way resumes: the retry fetches only the missing bytes of that part, then the rest", async () => {
  const resume = path.join(dir, "resume");
  fs.mkdirSync(resume);
  for (const p of split.parts) fs.copyFileSync(path.join(dir, "split", p), path.join(resume, p));
  const sizes = split.parts.map((p) => fs.statSync(path.join(resume, p)).size);
  const first = `/fixtures/resume/${split.parts[0]}`;
  ctx.srv.cuts.set(first, 20e6);
  let cut;
  try {
    cut = await loadAndComplete(first, split);
  } finally {
    ctx.srv.cuts.delete(first);
  }
  assert.equal(cut.error?.code, "NETWORK", JSON.stringify(cut));
  const stored = await inPage(ctx.page, async (H, url) => (await H.models.list()).find((m) => m.id === new URL(url, location.href).href)?.storedBytes ?? 0, first);
  assert.ok(stored > 0 && stored <= 20e6, `part 1 keeps its prefix (${stored} bytes)`);
  resetServerStats(ctx.srv);
  const r = await loadAndComplete(first, split);
  checkText(r, split);
  assert.equal(ctx.srv.stats.bytes[first], sizes[0] - stored, "only part 1's missing bytes");
  assert.ok(ctx.srv.stats.log.some((l) => l.path === first && l.range === `bytes=${stored}-`));
  for (const [i, p] of split.parts.entries()) if (i > 0) assert.equal(ctx.srv.stats.bytes[`/fixtures/resume/${p}`], sizes[i]);
});

test("a split model with a part missing, a wrong hash count or a part from another split is refused clearly", async () => {
  const src = path.join(dir, "split");
  const broken = path.join(dir, "broken");
  fs.mkdirSync(broken);
  // Part 2 missing on the server.
  fs.copyFileSync(path.join(src, split.parts[0]), path.join(broken, `m-00001-of-0000${split.parts.length}.gguf`));
  const missing = await loadAndComplete(`/fixtures/broken/m-00001-of-0000${split.parts.length}.gguf`, split);
  assert.equal(missing.error?.code, "INVALID_MODEL", JSON.stringify(missing));
  assert.match(missing.error.message, /part 2 .*m-00002-of-0000\d\.gguf.* is missing: HTTP 404/);
  // Part 3 served under part 2's name: the engine sees the wrong split.no.
  fs.copyFileSync(path.join(src, split.parts[2]), path.join(broken, `m-00002-of-0000${split.parts.length}.gguf`));
  fs.copyFileSync(path.join(src, split.parts[2]), path.join(broken, `m-00003-of-0000${split.parts.length}.gguf`));
  const wrong = await loadAndComplete(`/fixtures/broken/m-00001-of-0000${split.parts.length}.gguf`, split);
  assert.equal(wrong.error?.code, "INVALID_MODEL", JSON.stringify(wrong));
  assert.match(wrong.error.message, /split/);
  console.log(`# missing part: ${missing.error.message}\n# wrong part: ${wrong.error.message}`);
  const left = await inPage(ctx.page, async (H) => (await H.models.list()).filter((m) => m.id.includes("/fixtures/broken/")).length);
  assert.equal(left, 0, "a refused split model's parts are deleted from the store");
  // One sha256 for a split model: BAD_REQUEST before any download.
  resetServerStats(ctx.srv);
  const hash = await loadAndComplete(`/fixtures/split/${split.parts[0]}`, split, { sha256: "0".repeat(64) });
  assert.equal(hash.error?.code, "BAD_REQUEST", JSON.stringify(hash));
  assert.match(hash.error.message, /array of 3 hashes/);
  assert.deepEqual(fixtureRequests(), []);
});

/** The requests (path and query) for the split model's parts under `/fixtures/<sub>/` since the last reset. */
function partRequests(sub) {
  return ctx.srv.stats.log.filter((l) => l.path.startsWith(`/fixtures/${sub}/`) && l.method === "GET").map((l) => `${l.path.split("/").pop()}${l.search}`);
}

test("split parts behind signed URLs: one query string kept on every derived part; per-part signatures as a list of URLs", async () => {
  const n = split.parts.length;
  for (const sub of ["token", "signed"]) {
    fs.mkdirSync(path.join(dir, sub));
    for (const p of split.parts) fs.copyFileSync(path.join(dir, "split", p), path.join(dir, sub, p));
  }
  // One token for the directory: every part is fetched, and stored, with the first part's query string.
  resetServerStats(ctx.srv);
  const shared = await loadAndComplete(`/fixtures/token/${split.parts[0]}?token=abc&x=1`, split);
  checkText(shared, split);
  assert.deepEqual(partRequests("token"), split.parts.map((p) => `${p}?token=abc&x=1`));
  const stored = await inPage(ctx.page, async (H, urls) => Promise.all(urls.map((u) => H.models.has(new URL(u, location.href).href))), split.parts.map((p) => `/fixtures/token/${p}?token=abc&x=1`));
  assert.deepEqual(stored, split.parts.map(() => true), "each part stored under its URL, query string included");

  // Each part signed on its own (the server answers 403 to any other signature).
  const sig = (i) => `s${i + 1}-${"f".repeat(8)}`;
  split.parts.forEach((p, i) => ctx.srv.signatures.set(`/fixtures/signed/${p}`, sig(i)));
  const urls = split.parts.map((p, i) => `/fixtures/signed/${p}?sig=${sig(i)}`);
  try {
    // The first part's URL alone: part 2 gets part 1's signature and is refused, with the way out in the message.
    resetServerStats(ctx.srv);
    const derived = await loadAndComplete(urls[0], split);
    assert.equal(derived.error?.code, "NETWORK", JSON.stringify(derived));
    assert.match(derived.error.message, new RegExp(`part 2 of ${n} .*HTTP 403.*same query string.*list of their URLs`));
    console.log(`# derived part with the first part's signature: ${derived.error.message}`);
    // The list: each part with its own signature; part 1 from the store (stored under its signed URL).
    resetServerStats(ctx.srv);
    const listed = await loadAndComplete(urls, split);
    checkText(listed, split);
    assert.deepEqual(partRequests("signed"), urls.slice(1).map((u) => u.split("/").pop()), "parts 2.. fetched with their own signatures, part 1 from the store");
    assert.equal(listed.model.bytes, split.parts.reduce((a, p) => a + fs.statSync(path.join(dir, "split", p)).size, 0));
    // From the store, no network; the list with the hashes of its parts.
    resetServerStats(ctx.srv);
    const sums = split.parts.map((p) => createHash("sha256").update(fs.readFileSync(path.join(dir, "split", p))).digest("hex"));
    const again = await loadAndComplete(urls, split, { sha256: sums });
    checkText(again, split);
    assert.equal(again.model.fromStore, true);
    assert.deepEqual(fixtureRequests(), []);
  } finally {
    ctx.srv.signatures.clear();
  }
  // A list out of order, with a URL twice, or with a hash count that does not match: BAD_REQUEST before any request.
  resetServerStats(ctx.srv);
  const swapped = await loadAndComplete([urls[1], urls[0], ...urls.slice(2)], split);
  assert.equal(swapped.error?.code, "BAD_REQUEST", JSON.stringify(swapped));
  assert.match(swapped.error.message, /is part 2 of 3 but is number 1 of a list of 3 parts/);
  const twice = await loadAndComplete(["/fixtures/a.gguf", "/fixtures/a.gguf"], split);
  assert.equal(twice.error?.code, "BAD_REQUEST", JSON.stringify(twice));
  const hashes = await loadAndComplete(urls, split, { sha256: ["0".repeat(64)] });
  assert.equal(hashes.error?.code, "BAD_REQUEST", JSON.stringify(hashes));
  assert.match(hashes.error.message, /1 hashes for a model split into 3 files/);
  assert.deepEqual(fixtureRequests(), []);
});

test("a real model (SmolLM2) split as gguf-split splits it loads from its first part's URL with the unsplit file's greedy text", async () => {
  const prompt = "The three primary colours are";
  const run = (url) => inPage(ctx.page, async (H, { url, prompt }) => {
    const engine = await H.Engine.load(url, { backend: "cpu", threads: false, contextSize: 256 });
    try {
      const r = await engine.complete(prompt, { max_tokens: 16, temperature: 0 });
      return { text: r.text, tokens: r.usage.completion_tokens, model: engine.model };
    } finally {
      await engine.unload();
    }
  }, { url, prompt });
  const whole = await run(`/models/${MODEL_FILE}`);
  assert.equal(whole.error, undefined, JSON.stringify(whole));
  assert.equal(whole.tokens, 16);
  const t0 = Date.now();
  const parts = await run(`/fixtures/real/${REAL_SPLIT.parts[0].name}`);
  assert.equal(parts.error, undefined, JSON.stringify(parts));
  assert.equal(parts.text, whole.text, "split and unsplit greedy text");
  assert.equal(parts.model.bytes, REAL_SPLIT.parts.reduce((a, p) => a + p.bytes, 0));
  console.log(`# ${MODEL_FILE} in ${REAL_SPLIT.parts.length} parts: ${JSON.stringify(parts.text)} (as the unsplit file), ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test("the CPU backend (wasm32, 4 GiB) refuses a 7B-shaped model from its header, before the weights download", async () => {
  // llama7b's recipe with all 32 layers (3.11 GiB of Q4_K), as a sparse file: header, then zeros.
  const [m] = JSON.parse(fs.readFileSync(path.join(dir, "sparse", "expect.json"), "utf8")).models;
  const url = `/fixtures/sparse/${m.file}`;
  // A guard: were it not refused, the download would end at 64 MiB (NETWORK) instead of storing GBs.
  ctx.srv.cuts.set(url, 64 << 20);
  resetServerStats(ctx.srv);
  let r;
  try {
    r = await inPage(ctx.page, async (H, url) => {
      try {
        await H.Engine.load(url, { backend: "cpu", threads: false, contextSize: 4096 });
        return { loaded: true };
      } catch (e) {
        return { code: e.code, message: e.message, stored: await H.models.has(new URL(url, location.href).href) };
      }
    }, url);
  } finally {
    ctx.srv.cuts.delete(url);
  }
  assert.equal(r.code, "UNSUPPORTED_MODEL", JSON.stringify(r));
  assert.match(r.message, /the model needs 4\.\d\d GiB \(3\.11 GiB of weights \+ 1\.00 GiB of KV cache for 4096 tokens \+ 0\.25 GiB working memory\), more than this backend's 4\.00 GiB .*use the WebGPU backend, a smaller quantization or a shorter context/);
  assert.equal(r.stored, false);
  const sent = ctx.srv.stats.bytes[url] ?? 0;
  assert.ok(sent < 64 << 20, `${sent} bytes sent`);
  console.log(`# ${m.file} (${(m.bytes / 2 ** 30).toFixed(2)} GiB) on the CPU backend: ${r.message}; ${(sent / 2 ** 20).toFixed(1)} MiB sent`);
});
