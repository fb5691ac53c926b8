// The weight store in Chromium (real OPFS, real fetch against the test server): download with
// progress, zero-network second open, resume after an interrupted download, integrity failure,
// quota failure, LRU eviction, list/has/delete. Needs no wasm.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { requireDist, makeFixture, mountsWithFixtures, sha256File, resetServerStats, openTestPage, closeTestPage } from "./harness.mjs";

requireDist();
const SIZE = 64 * 1024 * 1024 + 12345; // 8 chunks of 8 MiB and a short one
let dir, srv, browser, page, sha, smallSha;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-store-"));
  sha = sha256File(makeFixture(dir, "big.gguf", SIZE, 7));
  smallSha = sha256File(makeFixture(dir, "small.gguf", 3 * 1024 * 1024 + 5, 9));
  ({ srv, browser, page } = await openTestPage({ roots: mountsWithFixtures(dir) }));
});
after(async () => {
  await closeTestPage({ browser, srv });
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `store.open(source, opts)` in the page, consuming every chunk; returns what happened. */
function drain(source, { abortAt, evict = false, offline = false } = {}) {
  return page.evaluate(async ({ source, abortAt, evict, offline }) => {
    const { WeightStore } = await import("/dist/store.js");
    const { Sha256 } = await import("/dist/sha256.js");
    const store = new WeightStore();
    const ac = new AbortController();
    const progress = [];
    const h = await Sha256.create();
    let bytes = 0, maxChunk = 0;
    try {
      for await (const c of store.open(source, { evict, offline, signal: ac.signal, onProgress: (p) => { progress.push(p); if (abortAt && p.loaded >= abortAt) ac.abort(); } })) {
        h.update(c); bytes += c.length; maxChunk = Math.max(maxChunk, c.length);
      }
      return { ok: true, bytes, sha: h.hex(), progress, maxChunk };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message, details: e.details, bytes, progress };
    }
  }, { source, abortAt, evict, offline });
}
const storeCall = (method, ...args) => page.evaluate(async ({ method, args }) => {
  const { models, defaultStore } = await import("/dist/store.js");
  return method in models ? models[method](...args) : defaultStore[method](...args);
}, { method, args });
const opfsEntries = () => page.evaluate(async () => {
  const root = await navigator.storage.getDirectory();
  let d; try { d = await root.getDirectoryHandle("hearth-models"); } catch { return []; }
  const out = [];
  for await (const [name, h] of d) { out.push(name); if (h.kind === "directory") for await (const [n] of h) out.push(name + "/" + n); }
  return out;
});
const big = () => ({ id: "big", url: srv.url + "fixtures/big.gguf", bytes: SIZE, sha256: sha });

test("download stores the bytes with progress; has/list report it; chunks stay 8 MiB", async () => {
  resetServerStats(srv);
  const r = await drain(big());
  assert.ok(r.ok, r.message);
  assert.equal(r.bytes, SIZE);
  assert.equal(r.sha, sha);
  assert.equal(r.maxChunk, 8 * 1024 * 1024);
  assert.ok(r.progress.length >= 9, "progress at least per chunk");
  assert.ok(r.progress.every((p) => p.phase === "download" && p.total === SIZE));
  assert.deepEqual(r.progress.map((p) => p.loaded), [...r.progress.map((p) => p.loaded)].sort((a, b) => a - b));
  assert.equal(r.progress.at(-1).loaded, SIZE);
  assert.equal(srv.stats.bytes["/fixtures/big.gguf"], SIZE);
  assert.equal(await storeCall("has", "big"), true);
  const list = await storeCall("list");
  assert.equal(list.length, 1);
  assert.equal(list[0].complete, true);
  assert.equal(list[0].sha256, sha);
  assert.equal(list[0].storedBytes, SIZE);
});

test("second open reads from the store with zero network requests, even offline", async () => {
  resetServerStats(srv);
  let requests = 0;
  const count = () => requests++;
  page.on("request", count);
  await browser.context.setOffline(true);
  try {
    const r = await drain(big(), { offline: true });
    assert.ok(r.ok, r.message);
    assert.equal(r.sha, sha);
    assert.ok(r.progress.every((p) => p.phase === "cache"));
  } finally {
    await browser.context.setOffline(false);
    page.off("request", count);
  }
  assert.equal(requests, 0);
  assert.equal(srv.stats.requests, 0);
});

test("offline: a model not stored fails with NETWORK and stores nothing", async () => {
  const r = await drain({ id: "small", url: srv.url + "fixtures/small.gguf" }, { offline: true });
  assert.equal(r.code, "NETWORK");
  assert.equal(await storeCall("has", "small"), false);
});

test("a download cut by the network gives NETWORK, stays partial, and resumes exactly where the store stopped", async () => {
  await storeCall("delete", "big");
  resetServerStats(srv);
  const cut = await drain({ ...big(), url: srv.url + `fixtures/big.gguf?fail_after=${Math.floor(SIZE / 2)}` });
  assert.equal(cut.ok, false);
  assert.equal(cut.code, "NETWORK", cut.message);
  const partial = await storeCall("get", "big");
  assert.equal(partial.complete, false);
  // Chromium drops what it still had in flight when the connection failed, so the store holds
  // what reached the page: some prefix, never more than was sent.
  assert.ok(partial.storedBytes > 0 && partial.storedBytes <= Math.floor(SIZE / 2), `stored ${partial.storedBytes}`);
  assert.equal(await storeCall("has", "big"), false);
  resetServerStats(srv);
  const r = await drain(big());
  assert.ok(r.ok, r.message);
  assert.equal(r.sha, sha);
  assert.equal(srv.stats.bytes["/fixtures/big.gguf"], SIZE - partial.storedBytes);
  assert.ok(srv.stats.log.some((l) => l.range === `bytes=${partial.storedBytes}-`));
});

test("a page reloaded at ~50% of a download resumes with Range: the second load transfers < 0.6x the file", async () => {
  await storeCall("delete", "big");
  resetServerStats(srv);
  // Start the download in the page and reload the page once half the bytes have arrived.
  await page.evaluate((source) => {
    globalThis.__half = new Promise((resolve) => {
      import("/dist/store.js").then(async ({ WeightStore }) => {
        try {
          for await (const c of new WeightStore().open(source, { onProgress: (p) => { if (p.loaded >= p.total / 2) resolve(p.loaded); } })) void c;
        } catch { /* the reload ends it */ }
      });
    });
  }, big());
  const half = await page.evaluate(() => globalThis.__half);
  await page.reload();
  const partial = await storeCall("get", "big");
  assert.equal(partial.complete, false);
  assert.equal(await storeCall("has", "big"), false);
  resetServerStats(srv);
  const r = await drain(big());
  assert.ok(r.ok, r.message);
  assert.equal(r.sha, sha);
  const sent = srv.stats.bytes["/fixtures/big.gguf"];
  console.log(`# reloaded at ${half} of ${SIZE}; stored ${partial.storedBytes}; resume transferred ${sent} (${(sent / SIZE).toFixed(2)}x)`);
  assert.equal(sent, SIZE - partial.storedBytes);
  assert.ok(sent < 0.6 * SIZE, `resume transferred ${sent} of ${SIZE}`);
  assert.equal(await storeCall("has", "big"), true);
});

test("abort via AbortSignal gives ABORTED, keeps the stored prefix, and resumes", async () => {
  await storeCall("delete", "big");
  const r = await drain(big(), { abortAt: 20 * 1024 * 1024 });
  assert.equal(r.code, "ABORTED");
  const m = await storeCall("get", "big");
  assert.equal(m.complete, false);
  assert.ok(m.storedBytes >= 16 * 1024 * 1024);
  resetServerStats(srv);
  const again = await drain(big());
  assert.ok(again.ok);
  assert.equal(again.sha, sha);
  assert.equal(srv.stats.bytes["/fixtures/big.gguf"], SIZE - m.storedBytes);
});

test("wrong sha256 gives INTEGRITY and leaves nothing stored", async () => {
  const before = await opfsEntries();
  const r = await drain({ id: "bad", url: srv.url + "fixtures/small.gguf", sha256: "0".repeat(64) });
  assert.equal(r.code, "INTEGRITY");
  assert.equal(r.details.expected, "0".repeat(64));
  assert.equal(r.details.actual, smallSha);
  assert.equal(await storeCall("get", "bad"), null);
  assert.deepEqual(await opfsEntries(), before);
  // A wrong size is caught before any byte is stored.
  const r2 = await drain({ id: "bad", url: srv.url + "fixtures/small.gguf", bytes: 123 });
  assert.equal(r2.code, "INTEGRITY");
  assert.deepEqual(await opfsEntries(), before);
});

test("HTTP errors give NETWORK with the status", async () => {
  const r = await drain({ id: "missing", url: srv.url + "fixtures/missing.gguf" });
  assert.equal(r.code, "NETWORK");
  assert.equal(r.details.status, 404);
  assert.equal(await storeCall("get", "missing"), null);
});

test("quota: a short storage estimate gives QUOTA with the numbers before any byte is written; evict: true frees LRU models", async () => {
  const qpage = await browser.context.newPage();
  // The simulated estimate: the real usage, and a quota the test sets (window.__hearthQuota).
  await qpage.addInitScript(() => {
    const real = navigator.storage.estimate.bind(navigator.storage);
    navigator.storage.estimate = async () => {
      const e = await real();
      return { quota: globalThis.__hearthQuota ?? e.quota, usage: e.usage };
    };
  });
  await qpage.goto(srv.url + "__test__/blank.html");
  const result = await qpage.evaluate(async (args) => {
    const { WeightStore } = await import("/dist/store.js");
    const store = new WeightStore();
    const listing = async () => (await store.list()).map((m) => m.id).sort();
    const before = await listing();
    const usage = (await navigator.storage.estimate()).usage;
    globalThis.__hearthQuota = usage + 1024 * 1024; // 1 MiB free; the small model needs 3 MiB
    let err;
    try { for await (const c of store.open(args.small)) void c; } catch (e) { err = { code: e.code, message: e.message, details: e.details }; }
    const afterFail = await listing();
    // Now allow eviction: "big" (64 MiB, least recently used) has to go.
    let ok = true, evictErr;
    try { for await (const c of store.open(args.small, { evict: true })) void c; } catch (e) { ok = false; evictErr = e.message; }
    globalThis.__hearthQuota = undefined;
    return { before, err, afterFail, ok, evictErr, afterEvict: await listing() };
  }, { small: { id: "small", url: srv.url + "fixtures/small.gguf", sha256: smallSha } });
  await qpage.close();
  assert.deepEqual(result.before, ["big"]);
  assert.equal(result.err?.code, "QUOTA", JSON.stringify(result.err));
  assert.match(result.err.message, /MB/);
  assert.ok(result.err.details.needed === 3 * 1024 * 1024 + 5 && result.err.details.available <= 1024 * 1024);
  assert.deepEqual(result.afterFail, ["big"], "nothing written for the failed model");
  assert.ok(result.ok, result.evictErr);
  assert.deepEqual(result.afterEvict, ["small"]);
});

test("download() prefetches without a consumer; usage() sums stored bytes", async () => {
  const r = await page.evaluate(async (source) => {
    const { WeightStore } = await import("/dist/store.js");
    const store = new WeightStore();
    const before = await store.usage();
    const m = await store.download(source);
    return { before, complete: m.complete, sha: m.sha256, after: await store.usage() };
  }, { id: "small2", url: srv.url + "fixtures/small.gguf", sha256: smallSha });
  assert.equal(r.complete, true);
  assert.equal(r.sha, smallSha);
  assert.equal(r.after - r.before, 3 * 1024 * 1024 + 5);
  assert.equal(await storeCall("delete", "small2"), true);
});

test("models.delete removes bytes and manifest; delete of an unknown id is false", async () => {
  assert.equal(await storeCall("delete", "small"), true);
  assert.equal(await storeCall("delete", "small"), false);
  assert.equal(await storeCall("has", "small"), false);
  assert.deepEqual(await storeCall("list"), []);
  assert.deepEqual(await opfsEntries(), []);
  assert.deepEqual(page.errors, []);
});
