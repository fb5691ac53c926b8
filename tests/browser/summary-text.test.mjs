// The Summarizer's model-free text handling (www/src/summary-text.ts, from www/dist): sentence
// splitting, salient-sentence selection, and the shaping of a model's reply into bullets,
// whole sentences and a headline. Plain Node: no browser, no model.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO, requireDist } from "./harness.mjs";

requireDist();
const T = await import(pathToFileURL(path.join(REPO, "www/dist/summary-text.js")).href);

test("sentences split after . ! ? and quotes, not after abbreviations, initials or before lowercase", () => {
  assert.deepEqual(T.splitSentences('Mr. Smith paid $3.5 million to the U.S. government. "Wow!" she said. J. R. Tolkien wrote.\nA new line'), [
    "Mr. Smith paid $3.5 million to the U.S. government.",
    '"Wow!" she said.',
    "J. R. Tolkien wrote.",
    "A new line",
  ]);
  assert.equal(T.trimToSentenceEnd("One thing. Two things and"), "One thing.");
  assert.equal(T.trimToSentenceEnd("Nothing finished"), "");
});

test("bullets: markers, emphasis and preambles go; duplicates and fragments are skipped; the list stops at N", () => {
  const c = new T.ItemCollector(3);
  for (const l of ["Here are the key points:", "", "- **The cat** sat on the mat", "- The cat sat on the mat.", "1. Prices rose 5% in May", "* Short", "- A third fact about Paris.", "- A fourth fact."]) c.push(l);
  assert.deepEqual(c.items, ["The cat sat on the mat.", "Prices rose 5% in May.", "A third fact about Paris."]);
  assert.equal(c.full, true);
});

test("sentences stream out once finished; a reply cut at the budget drops its open sentence", () => {
  const s = new T.SentenceCollector(3);
  const got = [];
  for (const d of ["Sure! Here is", " a summary:\n", "The council voted on Tues", "day to build a library. It op", "ens in 2027. The cost is"]) got.push(...s.push(d));
  assert.deepEqual(got, ["The council voted on Tuesday to build a library.", "It opens in 2027."]);
  assert.deepEqual(s.finish(true), []);
  const t = new T.SentenceCollector(1);
  t.push("The library opens in 2027");
  assert.deepEqual(t.finish(false), ["The library opens in 2027."], "a reply that ended by itself is closed with a period");
});

test("headline: first content line, no label or quotes, at most N words", () => {
  assert.equal(T.shapeHeadline('Headline:\n"City Votes For A New Library By The River"\nmore', 5), "City Votes For A New");
  assert.equal(T.shapeHeadline("# Storm cuts power to 30,000 homes.", 12), "Storm cuts power to 30,000 homes");
});

test("salient selection keeps the central sentences within the token budget, in text order", () => {
  const s = T.splitSentences("A big storm hit London on Monday. Cats like milk. The storm in London killed 3 people. Officials in London said the storm was the worst since 1987.");
  // Token counts: 8, 4, 8, 12 (+1 per join). The two best (0 and 2) fit; 3 does not; 1 still fits.
  assert.deepEqual(T.selectSalient(s, s.map((x) => x.split(" ").length), 20), [0, 1, 2]);
  assert.deepEqual(T.selectSalient(s, s.map((x) => x.split(" ").length), 1), [0], "always the best one");
});

test("key points due after each part of a long text: earlier parts weigh more, the first gives one, the last completes", async () => {
  const M = await import(pathToFileURL(path.join(REPO, "www/dist/summary-map.js")).href);
  assert.deepEqual(M.pointsAfterEachPart([300, 300, 300], 3), [1, 2, 3]);
  assert.deepEqual(M.pointsAfterEachPart([300, 300, 300], 7), [3, 5, 7]);
  assert.deepEqual(M.pointsAfterEachPart([311, 311, 40], 3), [2, 3, 3], "a short last part gets nothing when the others filled the list");
  assert.deepEqual(M.pointsAfterEachPart(Array(7).fill(300), 3), [1, 1, 2, 2, 2, 3, 3], "more parts than points: the first still gives one");
  assert.deepEqual(M.pointsAfterEachPart([300], 5), [5]);
});
