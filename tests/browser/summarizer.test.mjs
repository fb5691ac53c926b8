// The Summarizer's format guarantee (issue 22), in headless Chromium with the default model,
// greedy: key-points is a Markdown list of exactly the requested number of bullets, a tldr is
// one paragraph within its sentence budget, and no summary ends mid-sentence; a text over one
// pass is cut to its salient sentences (batched token count through the Worker) and still
// shaped; the legacy prompts stay runnable. A text over twice one pass (map-reduce): key points
// stream part by part (the first bullet before the last part is read), the map requests reuse
// their shared prompt prefix from the KV cache, and no part is read twice (issue 17 item 4).
// Needs `make wasm` and `make models`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO, MODEL_PATH, requireDist, requireFile, openTestPage, closeTestPage } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");

const ID = "smollm2-135m-instruct-q4_1";
const TEXTS = [
  "The city council of Riverton voted 7 to 2 on Tuesday to build a new public library next to the river. " +
    "The library will cost 12 million dollars and open in 2027. Mayor Ana Lopez said the old library, built in 1962, " +
    "was too small for the growing town. Opponents argued that the money should go to road repairs instead.",
  "Researchers at the University of Oslo found that honey bees can count up to four. In the study, 40 bees were trained " +
    "to fly to the fourth of five identical landmarks to find sugar water. When the landmarks were moved closer together, " +
    "the bees still stopped at the fourth one. The team says this shows that insects can use numbers to navigate.",
  "A storm brought heavy snow to northern Japan on Sunday, cutting power to about 30,000 homes. Trains between Sapporo " +
    "and Asahikawa were cancelled, and more than 200 flights were grounded. The weather agency warned that another 50 " +
    "centimetres of snow could fall by Tuesday and asked people to stay indoors.",
];
// Eight more short news items: with TEXTS, a text of ~3 passes of the 512-token context (map-reduce).
const MORE = [
  "The port of Valdora handled 4.2 million containers last year, a record, after a second crane terminal opened in March. " +
    "Harbour master Felix Brandt said ships now wait six hours on average instead of two days.",
  "Farmers in the Tarn valley harvested 18 percent fewer apples this autumn after a late frost in April damaged the blossoms. " +
    "The cooperative in Albi raised its price to 1.40 euros a kilo and asked the region for emergency aid.",
  "A 14-year-old student from Lagos, Chidi Okafor, won the national chess championship on Saturday without losing a game. " +
    "He beat the defending champion in 41 moves and will represent Nigeria at the world youth event in Rome.",
  "Engineers finished the 9-kilometre Kessel tunnel under the Alps three months early, the rail company said on Monday. " +
    "Freight trains will start using it in June, cutting the trip between Basel and Milan by 50 minutes.",
  "The museum of Lund returned 312 stone tools to the Sami parliament, which will show them in a new centre in Kiruna. " +
    "Director Karin Holm called the return overdue and said talks about 40 further objects continue.",
  "Heavy rain flooded 600 houses in the river town of Bexley on Thursday night, and 1,200 people spent the night in two schools. " +
    "The fire service pumped water from the main street until noon, and the council promised repairs within a month.",
  "The bakery chain Morrow opened its 100th shop in Leeds on Friday, twelve years after its first one in a York market hall. " +
    "Founder Priya Shah said the chain will hire 250 more bakers next year and stop selling plastic-wrapped bread.",
  "Astronomers using a telescope in Chile spotted a comet that will pass close to Earth in 2031, at about 20 million kilometres. " +
    "It is named after Tomas Reyes, the amateur astronomer from Valparaiso who first reported it in January.",
];
const ENDS_SENTENCE = /[.!?…]["'’”)\]]*$/;

let srv, browser, page;
before(async () => {
  ({ srv, browser, page } = await openTestPage());
  await page.evaluate(async (id) => {
    const H = await import("/dist/index.js");
    globalThis.engine = await H.Engine.load(id, { backend: "cpu", contextSize: 512 });
  }, ID);
});
after(async () => {
  await page?.evaluate(() => globalThis.engine?.unload()).catch(() => {});
  await closeTestPage({ browser, srv });
});

function summarize(opts, texts) {
  return page.evaluate(async ({ opts, texts }) => {
    const s = await globalThis.engine.summarizer(opts);
    const out = [];
    for (const t of texts) {
      let streamed = "";
      for await (const d of s.summarizeStreaming(t)) streamed += d;
      out.push({ streamed, whole: await s.summarize(t), tokens: await s.measureInputUsage(t), quota: s.inputQuota });
    }
    s.destroy();
    return out;
  }, { opts, texts });
}

test("key-points: exactly 3 Markdown bullets, each a finished sentence; the stream equals summarize()", async () => {
  const out = await summarize({ type: "key-points", length: "short", format: "markdown" }, TEXTS);
  for (const o of out) {
    console.log(`# key-points: ${JSON.stringify(o.streamed)}`);
    assert.equal(o.streamed.trim(), o.whole, "greedy: the streamed summary equals summarize()");
    const lines = o.whole.split("\n");
    assert.equal(lines.length, 3, o.whole);
    for (const l of lines) {
      assert.match(l, /^- \S/, `a Markdown bullet: ${l}`);
      assert.match(l, ENDS_SENTENCE, `a finished sentence: ${l}`);
    }
  }
});

test("tldr: one paragraph of one finished sentence; plain-text key-points have no markers", async () => {
  const out = await summarize({ type: "tldr", length: "short", format: "plain-text" }, TEXTS);
  for (const o of out) {
    console.log(`# tldr: ${JSON.stringify(o.whole)}`);
    assert.doesNotMatch(o.whole, /\n/, "one paragraph");
    assert.match(o.whole, ENDS_SENTENCE);
    assert.ok(o.whole.split(/\s+/).length >= 3, o.whole);
    assert.doesNotMatch(o.whole.replace(/\b(?:Mr|Mrs|Dr|St)\./g, ""), /[.!?]["'’”)]*\s+[A-Z]/, `one sentence: ${o.whole}`);
  }
  const plain = await summarize({ type: "key-points", length: "short", format: "plain-text" }, TEXTS.slice(0, 1));
  const lines = plain[0].whole.split("\n");
  assert.equal(lines.length, 3, plain[0].whole);
  for (const l of lines) {
    assert.doesNotMatch(l, /^\s*(?:[-*•]|\d+[.)])\s/, l);
    assert.match(l, ENDS_SENTENCE, l);
  }
});

test("a text over one pass is cut to its salient sentences and keeps the shape; legacy prompts still run", async () => {
  // ~3 passes of the 512-token context would be map-reduce; ~1.5 passes is one pass over salient sentences.
  const long = [...TEXTS, ...TEXTS, TEXTS[0]].join("\n\n");
  const [o] = await summarize({ type: "key-points", length: "short", format: "markdown" }, [long]);
  console.log(`# over one pass (${o.tokens} tokens, quota ${o.quota}): ${JSON.stringify(o.whole)}`);
  assert.ok(o.tokens > o.quota && o.tokens <= 2 * o.quota, `${o.tokens} tokens, quota ${o.quota}`);
  const lines = o.whole.split("\n");
  assert.equal(lines.length, 3, o.whole);
  for (const l of lines) assert.match(l, /^- \S.*[.!?…]["'’”)\]]*$/, l);
  const [legacy] = await summarize({ type: "tldr", length: "short", prompts: "legacy" }, TEXTS.slice(0, 1));
  console.log(`# legacy tldr: ${JSON.stringify(legacy.whole)}`);
  assert.ok(legacy.whole.length > 0);
  const bad = await page.evaluate(() => globalThis.engine.summarizer({ prompts: "fancy" }).then(() => null, (e) => e.code));
  assert.equal(bad, "BAD_REQUEST");
});

test("map-reduce: key points stream part by part, shared prefixes come from the KV cache, no part is read twice", async () => {
  const long = [...TEXTS, ...MORE].join("\n\n");
  const r = await page.evaluate(async (text) => {
    const run = async (type) => {
      const s = await globalThis.engine.summarizer({ type, length: "short", format: "markdown" });
      const events = [];
      const requests = [];
      let out = "";
      const opts = { onChunkProgress: (p) => events.push(["progress", p.done, p.total]), onRequest: (q) => requests.push(q) };
      for await (const d of s.summarizeStreaming(text, opts)) {
        events.push(["chunk", d]);
        out += d;
      }
      const quota = s.inputQuota;
      s.destroy();
      // Tokens of each request's messages, counted here (template tokens aside).
      for (const q of requests) q.counts = await Promise.all(q.messages.map((m) => globalThis.engine.countTokens(m.content)));
      return { out: out.trim(), events, requests, quota };
    };
    return { tokens: await globalThis.engine.countTokens(text), first: await run("key-points"), again: await run("key-points") };
  }, long);
  const { first, again } = r;
  console.log(`# map-reduce key-points (${r.tokens} tokens, quota ${first.quota}): ${JSON.stringify(first.out)}`);
  assert.ok(r.tokens > 2 * first.quota, `${r.tokens} tokens must be over twice the quota ${first.quota} (map-reduce)`);
  // Streaming: the first bullet arrives while later parts are still being read.
  const maps = first.requests.filter((q) => q.step === "map");
  assert.ok(maps.length >= 2, `${maps.length} map requests`);
  assert.ok(first.requests.every((q) => q.step === "map"), "key points of a long text need no reduce pass");
  const firstChunk = first.events.findIndex((e) => e[0] === "chunk");
  assert.ok(firstChunk >= 0, JSON.stringify(first.events));
  assert.ok(first.events.slice(firstChunk).some((e) => e[0] === "progress" && e[1] > 0), `a part was read after the first bullet: ${JSON.stringify(first.events)}`);
  // The shape still holds: exactly 3 Markdown bullets, each a finished sentence.
  const lines = first.out.split("\n");
  assert.equal(lines.length, 3, first.out);
  for (const l of lines) assert.match(l, /^- \S.*[.!?…]["'’”)\]]*$/, l);
  // The parts after the first reuse the shared prefix (template, system prompt) from the KV cache:
  // what they prefill is at most their own user message plus a few template tokens.
  console.log(`# map requests: ${JSON.stringify(maps.map((q) => [q.part, q.usage.prompt_tokens, q.usage.cached_tokens]))}`);
  for (const q of maps.slice(1)) {
    const [system, user] = q.counts;
    assert.ok(q.usage.cached_tokens >= system, `part ${q.part}: ${q.usage.cached_tokens} cached, system prompt ${system} tokens`);
    assert.ok(q.usage.prompt_tokens - q.usage.cached_tokens <= user + 8, `part ${q.part}: prefilled ${q.usage.prompt_tokens - q.usage.cached_tokens}, user message ${user} tokens`);
  }
  // No part is read twice: the same text again makes no map request.
  assert.equal(again.requests.length, 0, JSON.stringify(again.requests.map((q) => q.step)));
  assert.equal(again.out, first.out, "greedy: the same key points");
});
