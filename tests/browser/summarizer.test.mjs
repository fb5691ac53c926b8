// The Summarizer's format guarantee (issue 22), in headless Chromium with the default model,
// greedy: key-points is a Markdown list of exactly the requested number of bullets, a tldr is
// one paragraph within its sentence budget, and no summary ends mid-sentence; a text over one
// pass is cut to its salient sentences (batched token count through the Worker) and still
// shaped; the legacy prompts stay runnable. Needs `make wasm` and `make models`.
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
