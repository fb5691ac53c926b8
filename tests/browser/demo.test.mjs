// The demo page (www/demo/) in headless Chromium, as a user drives it: keyboard and 360 px
// layout, loading the real model with progress and the backend shown, a greedy chat (Enter to
// send, Escape to stop, multi-turn), model output through the sanitizer, summarize (file drop,
// chunk progress), a base model without a chat template, deleting the stored model, and no
// console errors throughout. Saves docs/screenshots/{chat,summarize}.png.
// Needs `make wasm www models-test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, MODEL_PATH, requireDist, requireFile, launchBrowser, startTestServer } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");
const GEMMA = path.join(REPO, "models/cache/gemma-3-270m-q4_k_m.gguf");
requireFile(GEMMA, "make models-test");

const GOLDEN = JSON.parse(fs.readFileSync(path.join(REPO, "tests/goldens/smollm2.json"), "utf8"));
const G2 = GOLDEN.prompts.find((p) => p.name === "chat_2plus2");
const SHOTS = path.join(REPO, "docs", "screenshots");

let srv, browser, page;
const errors = [];
const dialogs = [];
before(async () => {
  srv = await startTestServer();
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(`${m.text()} (${m.location().url})`));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(srv.url + "demo/");
  await page.waitForFunction(() => document.querySelector("#model-select").options.length > 0);
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

/** Waits until the chat request in flight (if any) has ended. */
async function chatIdle() {
  await page.waitForFunction(() => document.querySelector("#stop-button").disabled, null, { timeout: 180000 });
}

async function send(text) {
  await page.fill("#chat-input", text);
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => !document.querySelector("#stop-button").disabled || document.querySelector("#chat-stats").textContent);
  await chatIdle();
}

const lastAnswer = () => page.evaluate(() => [...document.querySelectorAll(".message.assistant .body")].at(-1).textContent);

test("360 px wide: no horizontal scrolling, every control labelled, a sensible Tab order", async () => {
  const r = await page.evaluate(() => {
    const unlabelled = [...document.querySelectorAll("input, select, textarea")].filter((el) => !el.labels?.length && !el.getAttribute("aria-label")).map((el) => el.id);
    const nameless = [...document.querySelectorAll("button")].filter((b) => !b.textContent.trim() && !b.getAttribute("aria-label")).map((b) => b.id);
    return { scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth, unlabelled, nameless };
  });
  assert.ok(r.scroll <= r.width, `page is ${r.scroll}px wide in a ${r.width}px viewport`);
  assert.deepEqual(r.unlabelled, []);
  assert.deepEqual(r.nameless, []);
  const order = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press("Tab");
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.localName));
  }
  // The delete button is disabled until a model is stored; the chat box until one is loaded.
  assert.deepEqual(order, ["model-select", "backend-select", "load-button", "tab-chat", "summary", "new-chat-button"]);
  assert.match(await page.textContent("#model-facts"), /98\.4 MB, licence Apache-2\.0.*Not stored yet/);
  assert.match(await page.textContent("#backend-status"), /WebGPU/);
});

test("loading from the keyboard shows download progress with bytes and speed, then the backend and why", async () => {
  await page.evaluate(() => {
    globalThis.__progress = [];
    new MutationObserver(() => globalThis.__progress.push(document.querySelector("#progress-text").textContent)).observe(document.querySelector("#progress-text"), { childList: true, characterData: true, subtree: true });
  });
  await page.focus("#load-button");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => !document.querySelector("#chat-input").disabled, null, { timeout: 120000 });
  const progress = await page.evaluate(() => globalThis.__progress);
  assert.ok(progress.some((t) => /^Downloading: [\d.]+ MB of 98\.4 MB · [\d.]+ (MB|kB)\/s$/.test(t)), progress.slice(-3).join(" | "));
  assert.match(await page.textContent("#status"), /ready: loaded and stored for offline use/);
  const backend = await page.textContent("#backend-status");
  // The backend that runs and why: WebGPU, or the CPU with the reason WebGPU was not used.
  assert.match(backend, /^Backend: (WebGPU \(GPU\)\. WebGPU adapter available|CPU \(WebAssembly\)\. WebGPU unavailable: .+)/, backend);
  console.log(`# demo: ${backend}`);
  assert.match(await page.textContent("#model-select option:checked"), /· stored$/);
});

test("chat: Enter sends, greedy reply streams (llama.cpp's text), tokens/s shown; a second turn reuses the KV cache", async () => {
  await page.setViewportSize({ width: 800, height: 600 });
  await page.click("details summary");
  await page.fill("#temperature", "0");
  await page.fill("#max-tokens", "32");
  await send("What is 2+2?");
  assert.equal(await lastAnswer(), G2.text);
  const stats = await page.textContent("#chat-stats");
  assert.match(stats, /^\d+ tokens · [\d.]+ tok\/s · first token after \d+ ms · \d+ prompt tokens \(0 reused\)/, stats);
  console.log(`# demo chat: ${stats}`);
  await send("And 3+3?");
  assert.ok((await lastAnswer()).length > 0);
  const stats2 = await page.textContent("#chat-stats");
  assert.ok(Number(/\((\d+) reused\)/.exec(stats2)[1]) > 20, `multi-turn reuses the cache: ${stats2}`);
  assert.equal(await page.locator(".message").count(), 4);
  await page.evaluate(() => document.querySelector(".tabs").scrollIntoView());
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, "chat.png") });
});

test("chat: Escape stops a long reply; the page stays usable", async () => {
  await page.fill("#max-tokens", "400");
  const before = await page.locator(".message.assistant").count();
  await page.fill("#chat-input", "Write a long story about a dragon who learns to cook.");
  await page.press("#chat-input", "Enter");
  // Escape once this reply (a new message, not the previous test's) is streaming and the page
  // is busy with it: checking only "the last reply has text" could match the previous reply
  // before the new one existed, and Escape then had nothing to stop (a make test run failed so).
  await page.waitForFunction((n) => {
    const bodies = document.querySelectorAll(".message.assistant .body");
    return bodies.length > n && bodies[bodies.length - 1].textContent.length > 0 && !document.querySelector("#stop-button").disabled;
  }, before, { timeout: 60000 });
  await page.keyboard.press("Escape");
  await chatIdle();
  assert.equal(await page.textContent(".message.assistant:last-child .stopped"), "(stopped)");
  assert.equal(await page.textContent("#chat-stats"), "Stopped.");
  assert.equal(await page.evaluate(() => document.activeElement.id), "chat-input");
  await page.fill("#max-tokens", "32");
  await page.click("#new-chat-button");
  assert.equal(await page.locator(".message").count(), 0);
});

test("model output goes through the sanitizer: <img onerror>, <script>, javascript: links never run", async () => {
  const payload = [
    "Here is **bold**, `code` and [a link](https://example.org/).\n\n",
    'An image <img src=x onerror="window.__pwned=1;alert(1)"> ',
    "<script>window.__pwned=2;alert(2)</script>\n\n",
    "[click me](javascript:window.__pwned=3) and <a href=\"javascript:window.__pwned=4\">this</a>\n\n",
    '<svg onload="window.__pwned=5"></svg><iframe srcdoc="<script>parent.__pwned=6</script>"></iframe>',
    '<details open ontoggle="window.__pwned=7">x</details>',
  ];
  // The real chat path (input → stream → renderer), with an engine that streams this text.
  await page.evaluate(async (pieces) => {
    const { state } = await import("/demo/app.js");
    globalThis.__realEngine = state.engine;
    const chunk = (content, extra = {}) => ({ choices: [{ index: 0, delta: { content }, finish_reason: null }], ...extra });
    state.engine = {
      model: state.engine.model,
      reset: async () => undefined,
      chat: { completions: { create: async () => (async function* () {
        for (const p of pieces) yield chunk(p);
        yield { choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 5, completion_tokens: pieces.length, total_tokens: 5 + pieces.length, prompt_tokens_details: { cached_tokens: 0 } } };
      })() } },
    };
  }, payload);
  await send("Say something dangerous.");
  await page.waitForTimeout(300); // time for an injected handler to fire, if any got through
  const r = await page.evaluate(async () => {
    const body = [...document.querySelectorAll(".message.assistant .body")].at(-1);
    const all = [...body.querySelectorAll("*")];
    const render = await import("/demo/render.js");
    // The sanitizer on raw HTML too (the Markdown step escapes it first, so test it alone).
    const raw = render.sanitize('<p onclick="x()">p</p><img src=x onerror="window.__pwned=8"><a href=" java\tscript:alert(1)">j</a><a href="https://ok.example/">ok</a><script>window.__pwned=9</script><style>*{}</style><b>b</b>');
    const holder = document.createElement("div");
    holder.append(raw);
    document.body.append(holder);
    await new Promise((res) => setTimeout(res, 200));
    const rawHtml = holder.innerHTML;
    holder.remove();
    const { state } = await import("/demo/app.js");
    state.engine = globalThis.__realEngine;
    return {
      pwned: globalThis.__pwned ?? null,
      tags: [...new Set(all.map((e) => e.localName))].sort(),
      onAttrs: all.flatMap((e) => [...e.attributes].map((a) => a.name)).filter((n) => n.startsWith("on")),
      hrefs: all.filter((e) => e.hasAttribute("href")).map((e) => e.getAttribute("href")),
      text: body.textContent,
      rawHtml,
    };
  });
  assert.equal(r.pwned, null);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(r.onAttrs, []);
  assert.deepEqual(r.hrefs, ["https://example.org/"]);
  assert.deepEqual(r.tags, ["a", "code", "p", "strong"]);
  assert.match(r.text, /<img src=x onerror=/, "raw HTML from the model is shown as text");
  assert.equal(r.rawHtml, '<p>p</p><a rel="noopener noreferrer nofollow" target="_blank">j</a><a href="https://ok.example/" rel="noopener noreferrer nofollow" target="_blank">ok</a>b');
  await page.click("#new-chat-button");
});

test("Markdown (marked): GFM tables and nested lists render; raw HTML inside them stays text", async () => {
  const r = await page.evaluate(async () => {
    const render = await import("/demo/render.js");
    const el = document.createElement("div");
    render.renderOutput(el, "| Name | Cups |\n|:--|--:|\n| <b>Ada</b> | 2 |\n\n- tea\n  - green\n    1. sencha\n• coffee");
    return {
      th: [...el.querySelectorAll("table > thead > tr > th")].map((e) => [e.textContent, e.getAttribute("align")]),
      td: [...el.querySelectorAll("table > tbody > tr > td")].map((e) => e.textContent),
      bold: el.querySelectorAll("b").length,
      nested: el.querySelector("ul > li > ul > li > ol > li")?.textContent ?? null,
      bullets: el.querySelectorAll("ul > li").length,
    };
  });
  assert.deepEqual(r.th, [["Name", "left"], ["Cups", "right"]]);
  assert.deepEqual(r.td, ["<b>Ada</b>", "2"]);
  assert.equal(r.bold, 0);
  assert.equal(r.nested, "sencha");
  assert.ok(r.bullets >= 3, `"•" reads as a bullet too (${r.bullets} items)`);
});

test("summarize: a dropped HTML file becomes text; a TL;DR streams; chunk progress of long texts is shown", async () => {
  await page.click("#tab-summarize");
  const html = "<html><head><style>p{}</style><script>window.__pwned='drop'</script></head><body><nav>Menu</nav><article><h1>Tea</h1><p>Tea is a drink made by pouring hot water over the cured leaves of the tea plant. It began in south-west China, where it was first drunk as a medicine.</p><p>Tea spread to Japan and Korea with Buddhist monks, and reached Europe in the 17th century through Portuguese and Dutch traders. Today it is the most widely consumed drink in the world after water.</p></article></body></html>";
  await page.evaluate((content) => {
    const dt = new DataTransfer();
    dt.items.add(new File([content], "tea.html", { type: "text/html" }));
    document.querySelector("#doc-input").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, html);
  await page.waitForFunction(() => document.querySelector("#doc-input").value.startsWith("Tea"));
  const text = await page.inputValue("#doc-input");
  assert.doesNotMatch(text, /Menu|__pwned|p\{\}/);
  assert.match(await page.textContent("#summarize-progress"), /Opened tea\.html/);
  await page.selectOption("#sum-type", "tldr");
  await page.click("#summarize-button");
  await page.waitForFunction(() => /^Summarized \d+ tokens/.test(document.querySelector("#summarize-progress").textContent), null, { timeout: 180000 });
  const summary = await page.textContent("#summary");
  console.log(`# demo summary: ${JSON.stringify(summary)}`);
  assert.ok(summary.trim().length > 10);
  await page.evaluate(() => document.querySelector(".tabs").scrollIntoView());
  await page.screenshot({ path: path.join(SHOTS, "summarize.png") });

  // Chunk progress: the page shows the summarizer's map-reduce progress (a stand-in summarizer
  // reports it; the real map-reduce is tested in engine.test.mjs, and takes a minute on the CPU).
  const seen = await page.evaluate(async () => {
    const { state } = await import("/demo/app.js");
    const real = state.engine;
    const texts = [];
    const note = () => texts.push(document.querySelector("#summarize-progress").textContent);
    state.engine = { model: real.model, summarizer: async () => ({
      inputQuota: 100, measureInputUsage: async () => 300, destroy() {},
      summarizeStreaming: (input, { onChunkProgress }) => (async function* () {
        note();
        for (let i = 0; i <= 3; i++) { onChunkProgress({ round: 0, done: i, total: 3 }); note(); await new Promise((r) => setTimeout(r, 10)); }
        yield "- done";
      })(),
    }) };
    document.querySelector("#summarize-progress").textContent = "";
    document.querySelector("#summarize-button").click();
    while (!/^Summarized/.test(document.querySelector("#summarize-progress").textContent)) await new Promise((r) => setTimeout(r, 20));
    state.engine = real;
    return texts;
  });
  assert.ok(seen.includes("300 tokens, more than one pass takes (100): summarizing it in parts first."), seen.join(" | "));
  assert.ok(seen.includes("300 tokens, in parts: part 2 of 3 summarized."), seen.join(" | "));
  await page.click("#tab-chat");
});

test("a base model without a chat template: chat and summarize say so, and it continues text instead", async () => {
  await page.selectOption("#model-select", "gemma3-270m-q4_k_m");
  await page.waitForFunction(() => /Base model: no chat template/.test(document.querySelector("#model-facts").textContent));
  await page.selectOption("#backend-select", "cpu");
  await page.click("#load-button");
  await page.waitForFunction(() => /^Gemma.* is ready|^Could not/.test(document.querySelector("#status").textContent), null, { timeout: 240000 });
  assert.match(await page.textContent("#status"), /^Gemma 3 270M \(base\) is ready/);
  assert.match(await page.textContent("#chat-notice"), /base model without a chat template, so it cannot chat/);
  assert.equal(await page.isVisible("#chat-notice"), true);
  assert.equal(await page.isDisabled("#summarize-button"), true);
  assert.match(await page.textContent("#backend-status"), /^Backend: CPU \(WebAssembly\)\. CPU requested\. 1 thread \(single thread: the page is not cross-origin isolated \(no COOP\/COEP headers\)\)\.$/);
  await page.fill("#max-tokens", "8");
  await send("The capital of France is");
  assert.ok((await lastAnswer()).length > 0);
  assert.doesNotMatch(await page.textContent("#chat-stats"), /^0 tokens/);
});

test("delete stored model removes it from this browser's storage; no console errors in the whole session", async () => {
  await page.selectOption("#model-select", "smollm2-135m-instruct-q4_1");
  await page.waitForFunction(() => /Apache/.test(document.querySelector("#model-facts").textContent));
  await page.click("#delete-button");
  await page.waitForFunction(() => /deleted/.test(document.querySelector("#status").textContent));
  assert.match(await page.textContent("#model-facts"), /Not stored yet/);
  assert.equal(await page.evaluate(async () => (await import("/dist/index.js")).models.has("smollm2-135m-instruct-q4_1")), false);
  assert.deepEqual(errors, []);
  assert.deepEqual(dialogs, []);
});
