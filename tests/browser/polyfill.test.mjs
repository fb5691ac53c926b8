// The polyfill's shape against the Prompt API / Writing Assistance APIs (in a fresh profile, so
// the model starts not stored): create({signal}) stops the load with the signal's reason; the
// monitor's downloadprogress goes 0 → 1 (first 0, last 1, once; none once the model is
// available; `ondownloadprogress` works); availability(options) refuses other modalities and
// languages and rejects bad enums with TypeError; sessions reject with DOMExceptions (Hearth's
// code kept as `code`), destroy() aborts what runs and then rejects with InvalidStateError.
// Needs `make wasm` and `make models`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { MODEL_PATH, requireDist, requireFile, openTestPage, closeTestPage } from "./harness.mjs";

requireDist();
requireFile(MODEL_PATH, "make models");

let t, page;
before(async () => {
  t = await openTestPage();
  page = t.page;
  await page.evaluate(async () => {
    const P = await import("/dist/polyfill.js");
    P.install({ force: true });
    P.configure({ engine: { backend: "cpu", threads: false } });
  });
});
after(() => closeTestPage(t ?? {}));

test("create({signal}) aborted during the download rejects with the signal's reason and stops the load", async () => {
  const r = await page.evaluate(async () => {
    const ac = new AbortController();
    const reason = new DOMException("user went away", "AbortError");
    const p = Summarizer.create({ signal: ac.signal, monitor(m) { m.addEventListener("downloadprogress", (e) => { if (e.loaded > 0) ac.abort(reason); }); } });
    let err;
    try { await p; } catch (e) { err = e; }
    // The load was stopped, not left running: the next availability is not "downloading".
    await new Promise((res) => setTimeout(res, 500));
    return { same: err === reason, name: err?.name, after: await Summarizer.availability() };
  });
  assert.equal(r.same, true, `rejected with the signal's reason (${r.name})`);
  assert.equal(r.after, "downloadable");
});

test("monitor: ondownloadprogress and listeners see loaded 0 first, 1 last and once, never decreasing; none when available", async () => {
  const r = await page.evaluate(async () => {
    const seen = [];
    const viaAttr = [];
    const s = await Summarizer.create({ type: "tldr", monitor(m) {
      m.addEventListener("downloadprogress", (e) => seen.push([e.loaded, e.total, performance.now()]));
      m.ondownloadprogress = (e) => viaAttr.push(e.loaded);
    } });
    const later = [];
    await LanguageModel.create({ monitor(m) { m.addEventListener("downloadprogress", (e) => later.push(e.loaded)); } });
    return { seen, viaAttr, later, availability: await Summarizer.availability(), hasSummarize: typeof s.summarize };
  });
  assert.ok(r.seen.length >= 2, JSON.stringify(r.seen));
  assert.deepEqual(r.seen[0].slice(0, 2), [0, 1]);
  assert.deepEqual(r.seen.at(-1).slice(0, 2), [1, 1]);
  // The spec's download loop: fractions in steps of 1/65,536, > 50 ms apart (the last excepted).
  assert.ok(r.seen.every(([l]) => Number.isInteger(l * 65536)), JSON.stringify(r.seen));
  assert.ok(r.seen.slice(1, -1).every(([, , t], i) => t - r.seen[i][2] > 50), JSON.stringify(r.seen));
  assert.equal(r.seen.filter(([l]) => l === 1).length, 1);
  assert.ok(r.seen.every(([l], i) => i === 0 || l > r.seen[i - 1][0]), "strictly increasing");
  assert.deepEqual(r.viaAttr, r.seen.map(([l]) => l));
  assert.deepEqual(r.later, [], "no events once the model is available");
  assert.equal(r.availability, "available");
  assert.equal(r.hasSummarize, "function");
});

test("availability(options): other modalities and languages are unavailable; bad enums reject with TypeError", async () => {
  const r = await page.evaluate(async () => {
    const name = async (p) => { try { await p; return "resolved"; } catch (e) { return e.constructor.name; } };
    return {
      image: await LanguageModel.availability({ expectedInputs: [{ type: "image" }] }),
      japanese: await LanguageModel.availability({ expectedInputs: [{ type: "text", languages: ["ja"] }] }),
      english: await LanguageModel.availability({ expectedInputs: [{ type: "text", languages: ["en"] }] }),
      sJapanese: await Summarizer.availability({ outputLanguage: "ja" }),
      sEnglish: await Summarizer.availability({ expectedInputLanguages: ["en-GB"], outputLanguage: "en" }),
      badType: await name(Summarizer.availability({ type: "poem" })),
      badInput: await name(LanguageModel.availability({ expectedInputs: [{ type: "video" }] })),
      createImage: await (async () => { try { await LanguageModel.create({ expectedInputs: [{ type: "image" }] }); return null; } catch (e) { return e.name; } })(),
    };
  });
  assert.deepEqual(r, {
    image: "unavailable", japanese: "unavailable", english: "available", sJapanese: "unavailable", sEnglish: "available",
    badType: "TypeError", badInput: "TypeError", createImage: "NotSupportedError",
  });
});

test("sessions reject with the specs' errors (code kept); destroy() aborts what runs, then InvalidStateError", async () => {
  const r = await page.evaluate(async () => {
    const err = (e) => ({ ctor: e?.constructor?.name, name: e?.name, code: e?.code, isDOMException: e instanceof DOMException });
    const lm = await LanguageModel.create({ temperature: 0, topK: 1 });
    const out = {};
    try { await lm.prompt(42); } catch (e) { out.badInput = err(e); }
    try { await lm.prompt("x".repeat(40000)); } catch (e) { out.overflow = err(e); }
    const ac = new AbortController();
    const reason = new Error("stop");
    const pending = lm.prompt("Write a long story about a lighthouse.", { signal: ac.signal });
    setTimeout(() => ac.abort(reason), 50);
    try { await pending; } catch (e) { out.abortedSame = e === reason; }
    const running = lm.prompt("Write a long story about a dragon.");
    setTimeout(() => lm.destroy(), 50);
    try { await running; out.running = "resolved"; } catch (e) { out.destroyedWhileRunning = err(e); }
    try { await lm.prompt("hi"); } catch (e) { out.afterDestroy = err(e); }
    const s = await Summarizer.create();
    s.destroy();
    try { s.summarizeStreaming("text"); } catch (e) { out.streamingAfterDestroy = err(e); }
    return out;
  });
  assert.deepEqual(r.badInput, { ctor: "TypeError", name: "TypeError", code: "BAD_REQUEST", isDOMException: false });
  assert.equal(r.overflow.name, "QuotaExceededError");
  assert.equal(r.overflow.code, "CONTEXT_OVERFLOW");
  assert.equal(r.overflow.isDOMException, true);
  assert.equal(r.abortedSame, true, "a prompt aborted by its signal rejects with the signal's reason");
  assert.equal(r.destroyedWhileRunning?.name, "AbortError", JSON.stringify(r));
  assert.equal(r.afterDestroy.name, "InvalidStateError");
  assert.equal(r.streamingAfterDestroy.name, "InvalidStateError");
});

test("Writer and Rewriter: availability(options), create, write/rewrite and their streams, the same error shape", async () => {
  const r = await page.evaluate(async () => {
    const name = async (p) => { try { await p; return "resolved"; } catch (e) { return e.name; } };
    const w = await Writer.create({ tone: "formal", length: "short", sharedContext: "A note to a neighbour" });
    const text = await w.write("Ask to borrow a ladder on Saturday.", { context: "We live next door." });
    let streamed = "";
    const rw = await Rewriter.create({ tone: "more-casual", length: "shorter" });
    const reader = rw.rewriteStreaming("Dear Sir, I would be most grateful if I could borrow your ladder on Saturday.").getReader();
    for (let i = 0; i < 8; i++) { const { value, done } = await reader.read(); if (done) break; streamed += value; }
    await reader.cancel();
    rw.destroy();
    return {
      text, streamed, tone: w.tone, length: w.length, format: w.format, rwTone: rw.tone,
      availability: await Writer.availability({ tone: "casual" }), rAvailability: await Rewriter.availability({ outputLanguage: "ja" }),
      badTone: await name(Writer.availability({ tone: "angry" })),
      badRewriterLength: await name(Rewriter.create({ length: "short" })),
      afterDestroy: await name(rw.rewrite("x")),
      badInput: await name(w.write(42)),
    };
  });
  assert.ok(r.text.trim().length > 0, "write() answered");
  assert.ok(r.streamed.trim().length > 0, "rewriteStreaming() streamed");
  assert.deepEqual([r.tone, r.length, r.format, r.rwTone], ["formal", "short", "markdown", "more-casual"]);
  assert.equal(r.availability, "available");
  assert.equal(r.rAvailability, "unavailable");
  assert.equal(r.badTone, "TypeError");
  assert.equal(r.badRewriterLength, "TypeError");
  assert.equal(r.afterDestroy, "InvalidStateError");
  assert.equal(r.badInput, "TypeError");
});

test("LanguageDetector (tinyld, no model): detects French and English, und last, availability by language, the same error shape", async () => {
  const r = await page.evaluate(async () => {
    const name = async (p) => { try { await p; return "resolved"; } catch (e) { return e.name; } };
    const events = [];
    const d = await LanguageDetector.create({ expectedInputLanguages: ["fr", "en"], monitor(m) { m.addEventListener("downloadprogress", (e) => events.push(e.loaded)); } });
    const fr = await d.detect("Bonjour, je voudrais un café, s'il vous plaît. Merci beaucoup!");
    const en = await d.detect("The weather is lovely today, so we are going for a long walk by the river.");
    const none = await d.detect("12345 67890");
    d.destroy();
    return {
      fr: fr[0].detectedLanguage, en: en[0].detectedLanguage, last: fr.at(-1).detectedLanguage, none,
      sum: fr.reduce((s, x) => s + x.confidence, 0), sorted: fr.slice(0, -1).every((x, i, a) => i === 0 || a[i - 1].confidence >= x.confidence),
      events, expected: d.expectedInputLanguages, quota: d.inputQuota,
      available: await LanguageDetector.availability({ expectedInputLanguages: ["de", "en-US"] }),
      unknown: await LanguageDetector.availability({ expectedInputLanguages: ["tlh"] }),
      afterDestroy: await name(d.detect("hello")),
      createUnknown: await name(LanguageDetector.create({ expectedInputLanguages: ["xx"] })),
    };
  });
  assert.equal(r.fr, "fr");
  assert.equal(r.en, "en");
  assert.equal(r.last, "und");
  assert.deepEqual(r.none, [{ detectedLanguage: "und", confidence: 1 }]);
  assert.ok(Math.abs(r.sum - 1) < 1e-9, `confidences sum to 1 (${r.sum})`);
  assert.equal(r.sorted, true);
  assert.deepEqual(r.events, [], "nothing to download");
  assert.deepEqual(r.expected, ["fr", "en"]);
  assert.equal(r.quota, Infinity);
  assert.equal(r.available, "available");
  assert.equal(r.unknown, "unavailable");
  assert.equal(r.afterDestroy, "InvalidStateError");
  assert.equal(r.createUnknown, "NotSupportedError");
});
