// Qwen2.5-Coder 0.5B Instruct (qwen2: Q/K/V biases, NeoX RoPE, ChatML; Q5_0/Q8_0/Q4_K/Q6_K
// weights) in headless Chromium on the wasm CPU backend: one short greedy chat, equal to the
// native CLI's greedy output for the same messages. Needs `make wasm`, `make www` and
// `make models-test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { REPO, requireDist, requireFile, nativeBin, openTestPage, closeTestPage } from "./harness.mjs";

const ID = "qwen2.5-coder-0.5b-instruct-q4_k_m";
const FILE = path.join(REPO, "models/cache", `${ID}.gguf`);
const PROMPT = "Write a Python one-liner that reverses a string s.";
const N = 16;

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(FILE, "make models-test");

/** The native CLI's greedy output for a one-message chat (the oracle the browser must match). */
function nativeChat(prompt, n) {
  const out = execFileSync(nativeBin(), ["run", "--model", FILE, "--chat", "--prompt", prompt, "-n", String(n)], {
    cwd: REPO, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"],
  });
  return out.replace(/\n$/, "");
}

let srv, browser, page;
before(async () => {
  ({ srv, browser, page } = await openTestPage());
});
after(async () => {
  await closeTestPage({ browser, srv });
});

test("Qwen2.5-Coder 0.5B: greedy chat on the wasm CPU backend equals the native CLI", async () => {
  const t0 = Date.now();
  const r = await page.evaluate(async ({ id, prompt, n }) => {
    const H = await import("/dist/index.js");
    try {
      const engine = await H.Engine.load(id, { backend: "cpu" });
      const t = performance.now();
      const c = await engine.chat.completions.create({ messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: n });
      const out = { text: c.choices[0].message.content, usage: c.usage, arch: engine.model.arch, backend: engine.backend, ms: performance.now() - t };
      await engine.unload();
      return out;
    } catch (e) {
      return { error: { code: e?.code ?? "THROWN", message: String(e?.message ?? e) } };
    }
  }, { id: ID, prompt: PROMPT, n: N });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.deepEqual(page.errors, []);
  console.log(`# qwen2.5-coder-0.5b in Chromium (CPU): load + chat ${((Date.now() - t0) / 1000).toFixed(1)} s, chat ${(r.ms / 1000).toFixed(1)} s, ${r.usage.completion_tokens} tokens: ${JSON.stringify(r.text)}`);
  assert.equal(r.arch, "qwen2");
  assert.equal(r.backend, "cpu");
  assert.ok(r.text.trim().length > 0, "non-empty output");
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= N);
  assert.equal(r.text, nativeChat(PROMPT, N), "the native CLI's greedy text");
});
