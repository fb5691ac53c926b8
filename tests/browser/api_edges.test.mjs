// API edges of issue 16 with the real default model: one validation path for every entry point
// (chat, complete, summarizer, Prompt API: NaN is BAD_REQUEST everywhere, with one message),
// concurrent prompt() calls on one LanguageModel session queued in order (no lost turn), and the
// extension's chat history trimmed to the context instead of overflowing.
// Needs `make wasm` and `make models`; answers of a few tokens.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO, MODEL_PATH, requireDist, requireFile, openTestPage, closeTestPage } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");
const ID = "smollm2-135m-instruct-q4_1";

let srv, browser, page;
before(async () => {
  ({ srv, browser, page } = await openTestPage());
  await page.evaluate(async (id) => {
    const H = await import("/dist/index.js");
    globalThis.engine = await H.Engine.load(id, { backend: "cpu" });
  }, ID);
});
after(async () => {
  await closeTestPage({ browser, srv });
});

test("temperature NaN (and Infinity, out of range) is BAD_REQUEST with the same message from chat, complete, summarizer and the Prompt API", async () => {
  const r = await page.evaluate(async () => {
    const e = globalThis.engine;
    const messages = [{ role: "user", content: "Hi" }];
    const out = {};
    for (const t of [NaN, Infinity, 3]) {
      const attempts = {
        chat: () => e.chat.completions.create({ messages, temperature: t, max_tokens: 2 }),
        complete: () => e.complete("Hi", { temperature: t, max_tokens: 2 }),
        summarizer: async () => (await e.summarizer({ temperature: t })).summarize("A short text."),
        languageModel: async () => (await e.languageModel({ temperature: t })).prompt("Hi"),
      };
      for (const [name, f] of Object.entries(attempts)) {
        try { await f(); out[`${name} ${t}`] = "ok?!"; } catch (x) { out[`${name} ${t}`] = `${x.code}: ${x.message}`; }
      }
    }
    const ok = await e.complete("Hi", { temperature: 0, max_tokens: 2 });
    return { out, ok: ok.text.length >= 0 && ok.usage.completion_tokens > 0 };
  });
  for (const [k, v] of Object.entries(r.out)) {
    const t = k.split(" ")[1];
    assert.equal(v, `BAD_REQUEST: temperature must be a number in [0, 2], got ${t}`, k);
  }
  assert.equal(Object.keys(r.out).length, 12);
  assert.ok(r.ok, "the engine still answers");
});

test("two concurrent prompt() calls on one LanguageModel session run in order; both turns stay in the conversation", async () => {
  const r = await page.evaluate(async () => {
    const s = await globalThis.engine.languageModel({ initialPrompts: [{ role: "system", content: "Be brief." }], temperature: 0, maxTokens: 4 });
    const [a, b] = await Promise.all([s.prompt("Say one."), s.prompt("Say two.")]);
    return { a, b, messages: s.messages };
  });
  assert.deepEqual(r.messages.map((m) => m.role), ["system", "user", "assistant", "user", "assistant"]);
  assert.deepEqual([r.messages[1].content, r.messages[3].content], ["Say one.", "Say two."]);
  assert.deepEqual([r.messages[2].content, r.messages[4].content], [r.a, r.b]);
});

test("the extension's chat history is trimmed to fit the context instead of overflowing", async () => {
  const r = await page.evaluate(async () => {
    const { fitHistory } = await import("/extension/history.js");
    const e = globalThis.engine;
    const system = "You answer questions about a web page. Be brief and use only the page.\n\n" + "The page talks about rivers and mountains. ".repeat(90);
    const history = [];
    for (let i = 0; i < 12; i++) {
      history.push({ role: "user", content: `Question ${i}: what does the page say about topic number ${i}?` });
      history.push({ role: "assistant", content: `Answer ${i}: ` + "it says quite a lot about that topic, in several long sentences. ".repeat(8) });
    }
    history.push({ role: "user", content: "Last question: and the mountains?" });
    const tokens = async (h) => e.countTokens(await e.renderChat([{ role: "system", content: system }, ...h]));
    const before = await tokens(history);
    const kept = await fitHistory(e, system, history, { reserve: 120 });
    const after = await tokens(kept);
    const c = await e.chat.completions.create({ messages: [{ role: "system", content: system }, ...kept], max_tokens: 4, temperature: 0 });
    return { before, after, n_ctx: e.model.n_ctx, kept, answered: c.choices[0].finish_reason };
  });
  assert.ok(r.before + 120 > r.n_ctx, `the untrimmed history overflows (${r.before} tokens)`);
  assert.ok(r.after + 120 <= r.n_ctx, `trimmed to ${r.after} tokens`);
  assert.ok(r.kept.length >= 3 && r.kept.length % 2 === 1, `kept ${r.kept.length} messages`);
  assert.equal(r.kept.at(-1).content, "Last question: and the mountains?");
  assert.ok(r.kept.every((m, i) => m.role === (i % 2 === 0 ? "user" : "assistant")));
  assert.match(r.kept.at(-2).content, /^Answer 11:/, "the newest turns are kept");
  assert.ok(["stop", "length"].includes(r.answered));
  assert.deepEqual(page.errors, []);
});
