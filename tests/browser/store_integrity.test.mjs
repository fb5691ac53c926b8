// The store's integrity and locking (issue 16), in Chromium against the test server, no wasm:
// a byte flipped in a stored chunk is caught by its checksum and fetched again (wrong bytes never
// reach the consumer); a resume needs a strong validator and the 206's total to match, else it
// restarts from byte 0; delete() and eviction take the model's Web Lock (two pages, one
// download); a complete model loads with a full disk (its manifest is not rewritten); a stale
// partial is deleted before the quota check; the consumer stopping cancels the download.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO, requireDist, launchBrowser, startTestServer, openPage, makeFixture, mountsWithFixtures, sha256File, resetServerStats } from "./harness.mjs";

requireDist();
const MiB = 1024 * 1024;
const SIZE = 40 * MiB + 777; // 5 chunks of 8 MiB and a short one
let dir, srv, browser, pageA, pageB, sha;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-integrity-"));
  sha = sha256File(makeFixture(dir, "m.gguf", SIZE, 11));
  srv = await startTestServer({ roots: mountsWithFixtures(dir) });
  browser = await launchBrowser();
  pageA = await openPage(browser.context, srv);
  pageB = await openPage(browser.context, srv);
});
after(async () => {
  await browser?.close();
  await srv?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("XXH32 matches the reference vectors, aligned or not", async () => {
  const { xxh32 } = await import(pathToFileURL(path.join(REPO, "www/dist/checksum.js")).href);
  const enc = (t) => new TextEncoder().encode(t);
  assert.equal(xxh32(new Uint8Array(0)), 0x02cc5d05);
  assert.equal(xxh32(enc("a")), 0x550d7456);
  assert.equal(xxh32(enc("abc")), 0x32d153ff);
  assert.equal(xxh32(enc("Nobody inspects the spammish repetition")), 0xe2293b2f);
  const s = enc("xabcdefghijklmnopqrstuvwxyz0123456789");
  assert.equal(xxh32(s.subarray(1)), xxh32(s.slice(1)), "an unaligned view hashes like a copy");
});

const FILE = "/fixtures/m.gguf";
const source = () => ({ id: "m", url: srv.url + FILE.slice(1), bytes: SIZE, sha256: sha });

/**
 * Drains `store.open(source)` in `page` and returns {ok, sha, bytes, code, message}. `fetchPatch`
 * (a function's source, `(resp, init) => resp`) rewrites each response the store sees.
 */
function drain(page, src, { fetchPatch = null, offline = false } = {}) {
  return page.evaluate(async ({ src, fetchPatch, offline }) => {
    const { WeightStore } = await import("/dist/store.js");
    const { Sha256 } = await import("/dist/sha256.js");
    const patch = fetchPatch ? new Function("return " + fetchPatch)() : null;
    const store = new WeightStore(patch ? { fetch: async (u, init) => patch(await fetch(u, init), init) } : {});
    const h = await Sha256.create();
    let bytes = 0;
    try {
      for await (const c of store.open(src, { offline })) { h.update(c); bytes += c.length; }
      return { ok: true, sha: h.hex(), bytes };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message, bytes };
    }
  }, { src, fetchPatch: fetchPatch?.toString() ?? null, offline });
}
/** Stores the first `n` chunks of the model (the consumer stops there), through `fetchPatch` if given. */
function storePrefix(page, n, { fetchPatch = null } = {}) {
  return page.evaluate(async ({ src, n, fetchPatch }) => {
    const { WeightStore } = await import("/dist/store.js");
    const patch = fetchPatch ? new Function("return " + fetchPatch)() : null;
    const store = new WeightStore(patch ? { fetch: async (u, init) => patch(await fetch(u, init), init) } : {});
    let i = 0;
    for await (const c of store.open(src)) { void c; if (++i === n) break; }
    return (await store.get(src.id)).storedBytes;
  }, { src: source(), n, fetchPatch: fetchPatch?.toString() ?? null });
}
const call = (page, method, ...args) => page.evaluate(async ({ method, args }) => {
  const { defaultStore } = await import("/dist/store.js");
  return defaultStore[method](...args);
}, { method, args });
/** Runs `fn(modelDir)` in the page on the model's OPFS directory. */
const inModelDir = (page, fn, arg) => page.evaluate(async ({ src, arg }) => {
  const { defaultStore } = await import("/dist/store.js");
  const d = await defaultStore["modelDir"]("m", false);
  return new Function("return " + src)()(d, arg);
}, { src: fn.toString(), arg });
const bytesSent = () => srv.stats.bytes[FILE] ?? 0;

test("a flipped byte in a stored chunk: the read notices, drops that chunk onward, resumes, and hands out only right bytes", async () => {
  await call(pageA, "delete", "m");
  assert.ok((await drain(pageA, source())).ok);
  const before = await call(pageA, "get", "m");
  assert.equal(before.sums.length, 6);
  // Flip one byte in the middle of chunk 2 (on disk, behind the store's back).
  await inModelDir(pageA, async (d) => {
    const fh = await d.getFileHandle("chunk-000002.bin");
    const bytes = new Uint8Array(await (await fh.getFile()).arrayBuffer());
    bytes[12345] ^= 0x40;
    const w = await fh.createWritable();
    await w.write(bytes);
    await w.close();
  });
  resetServerStats(srv);
  const r = await drain(pageA, source());
  assert.ok(r.ok, r.message);
  assert.equal(r.bytes, SIZE);
  assert.equal(r.sha, sha, "the consumer got the right bytes");
  assert.equal(bytesSent(), SIZE - 16 * MiB, "chunks 2.. came again");
  assert.ok(srv.stats.log.some((l) => l.range === `bytes=${16 * MiB}-`));
  const after = await call(pageA, "get", "m");
  assert.equal(after.complete, true);
  assert.deepEqual(after.sums, before.sums);
  // A chunk that went missing from a complete model is fetched again too.
  await inModelDir(pageA, (d) => d.removeEntry("chunk-000004.bin"));
  resetServerStats(srv);
  assert.equal((await drain(pageA, source())).sha, sha);
  assert.equal(bytesSent(), SIZE - 32 * MiB);
});

test("warm read cost of the checksums (reported, not asserted)", async () => {
  const r = await pageA.evaluate(async () => {
    const { WeightStore } = await import("/dist/store.js");
    const { xxh32 } = await import("/dist/checksum.js");
    const store = new WeightStore();
    const src = { id: "m", url: "unused" };
    const chunks = [];
    let t0 = performance.now();
    for await (const c of store.open(src, { offline: true })) chunks.push(c.length);
    const open = performance.now() - t0;
    const buf = new Uint8Array(8 * 1024 * 1024);
    t0 = performance.now();
    for (let i = 0; i < 5; i++) xxh32(buf);
    const perMiB = (performance.now() - t0) / 40;
    return { open, perMiB, bytes: chunks.reduce((a, b) => a + b, 0) };
  });
  console.log(`# warm open of ${(r.bytes / MiB).toFixed(0)} MiB (page, Blob reads): ${r.open.toFixed(0)} ms; XXH32 ${(1 / r.perMiB).toFixed(2)} GiB/s (${(r.perMiB * r.bytes / MiB).toFixed(0)} ms of it)`);
  assert.equal(r.bytes, SIZE);
});

test("resume needs a strong validator: with a weak ETag (and no usable Last-Modified) a partial restarts from byte 0", async () => {
  await call(pageA, "delete", "m");
  const weak = (resp) => {
    const h = new Headers(resp.headers);
    h.set("ETag", "W/" + (h.get("ETag") ?? '"x"'));
    h.delete("Last-Modified");
    return new Response(resp.body, { status: resp.status, headers: h });
  };
  assert.equal(await storePrefix(pageA, 2, { fetchPatch: weak }), 16 * MiB);
  const partial = await call(pageA, "get", "m");
  assert.equal(partial.validator, null);
  resetServerStats(srv);
  const r = await drain(pageA, source(), { fetchPatch: weak });
  assert.ok(r.ok, r.message);
  assert.equal(r.sha, sha);
  assert.equal(bytesSent(), SIZE, "the whole file again");
  assert.ok(srv.stats.log.every((l) => l.range === null), "no Range request");
});

test("a 206 whose total size differs from the stored one restarts from byte 0", async () => {
  await call(pageA, "delete", "m");
  const stored = await storePrefix(pageA, 2);
  assert.equal((await call(pageA, "get", "m")).validator, (await call(pageA, "get", "m")).etag, "a strong ETag");
  // The server's 206 claims another total (as for a file that changed size behind a reused validator).
  const otherTotal = (resp) => {
    if (resp.status !== 206) return resp;
    const h = new Headers(resp.headers);
    h.set("Content-Range", h.get("Content-Range").replace(/\/\d+$/, "/999999999"));
    return new Response(resp.body, { status: 206, headers: h });
  };
  resetServerStats(srv);
  const r = await drain(pageA, source(), { fetchPatch: otherTotal });
  assert.ok(r.ok, r.message);
  assert.equal(r.sha, sha);
  assert.ok(srv.stats.log.some((l) => l.range === `bytes=${stored}-`), "it asked to resume");
  assert.ok(srv.stats.log.some((l) => l.range === null), "then fetched the whole file");
  assert.equal((await call(pageA, "get", "m")).complete, true);
});

test("two pages: both open the model at once, the download happens once; delete() in B waits for A's read; eviction skips a model in use", async () => {
  await call(pageA, "delete", "m");
  resetServerStats(srv);
  const [a, b] = await Promise.all([drain(pageA, source()), drain(pageB, source())]);
  assert.ok(a.ok && b.ok, JSON.stringify([a, b]));
  assert.equal(a.sha, sha);
  assert.equal(b.sha, sha);
  assert.equal(bytesSent(), SIZE, "one download for two pages");

  // A reads slowly (it holds the model's lock); B's delete waits for it.
  await pageA.evaluate(async (src) => {
    const { WeightStore } = await import("/dist/store.js");
    const it = new WeightStore().open(src)[Symbol.asyncIterator]();
    await it.next(); // holds the lock now
    globalThis.__finish = async () => { let n = 1; while (!(await it.next()).done) n++; return n; };
  }, source());
  const order = [];
  const deleting = call(pageB, "delete", "m").then((r) => { order.push("deleted"); return r; });
  // B's request is queued on the lock while A holds it.
  for (;;) {
    const q = await pageB.evaluate(() => navigator.locks.query());
    if (q.pending.some((l) => l.name === "hearth-model:m")) break;
  }
  // Eviction from B cannot take the model A is reading: QUOTA instead.
  const evict = await pageB.evaluate(async () => {
    const { defaultStore } = await import("/dist/store.js");
    const real = navigator.storage.estimate.bind(navigator.storage);
    navigator.storage.estimate = async () => ({ quota: (await real()).usage + 1, usage: (await real()).usage });
    try { await defaultStore.ensureSpace(1e9, { evict: true }); return "ok?!"; } catch (e) { return e.code; } finally { navigator.storage.estimate = real; }
  });
  assert.equal(evict, "QUOTA");
  order.push("A reads on");
  const chunks = await pageA.evaluate(() => globalThis.__finish());
  assert.equal(chunks, 6);
  assert.equal(await deleting, true);
  assert.deepEqual(order, ["A reads on", "deleted"]);
  assert.equal(await call(pageA, "get", "m"), null);
});

test("a complete model loads offline with a full disk (no manifest write); a stale partial is deleted before the quota check", async () => {
  await call(pageA, "delete", "m");
  assert.ok((await drain(pageA, source())).ok);
  const r = await pageA.evaluate(async (src) => {
    const { WeightStore } = await import("/dist/store.js");
    const proto = FileSystemFileHandle.prototype;
    const create = proto.createWritable;
    proto.createWritable = () => Promise.reject(new DOMException("simulated full disk", "QuotaExceededError"));
    let n = 0;
    try {
      for await (const c of new WeightStore().open(src, { offline: true })) n += c.length;
      return { ok: true, n };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message };
    } finally {
      proto.createWritable = create;
    }
  }, source());
  assert.deepEqual(r, { ok: true, n: SIZE });

  // A partial whose validator no longer matches (the server answers 200): with room for the
  // file only once the partial is gone, the download must not fail with QUOTA.
  await call(pageA, "delete", "m");
  assert.equal(await storePrefix(pageA, 3), 24 * MiB);
  await inModelDir(pageA, async (d) => {
    const fh = await d.getFileHandle("manifest.json");
    const m = JSON.parse(await (await fh.getFile()).text());
    m.validator = '"changed"';
    const w = await fh.createWritable();
    await w.write(JSON.stringify(m));
    await w.close();
  });
  const q = await pageA.evaluate(async (src) => {
    const { WeightStore } = await import("/dist/store.js");
    const real = navigator.storage.estimate.bind(navigator.storage);
    const start = await real();
    // Room for the whole file only if the partial's 24 MiB are freed first.
    navigator.storage.estimate = async () => ({ quota: start.usage + src.bytes - 8 * 1024 * 1024, usage: (await real()).usage });
    try {
      let n = 0;
      for await (const c of new WeightStore().open(src)) n += c.length;
      return { ok: true, n };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message };
    } finally {
      navigator.storage.estimate = real;
    }
  }, source());
  assert.deepEqual(q, { ok: true, n: SIZE });
});

test("a consumer that stops early cancels the download and releases the lock; the next open resumes", async () => {
  await call(pageA, "delete", "m");
  const r = await pageA.evaluate(async (src) => {
    const { WeightStore } = await import("/dist/store.js");
    let cancelled = false;
    // The response body, wrapped to see whether the store cancels it.
    const store = new WeightStore({
      fetch: async (u, init) => {
        const resp = await fetch(u, init);
        const reader = resp.body.getReader();
        const body = new ReadableStream({
          async pull(c) { const x = await reader.read(); if (x.done) c.close(); else c.enqueue(x.value); },
          cancel(reason) { cancelled = true; return reader.cancel(reason); },
        });
        return new Response(body, { status: resp.status, headers: resp.headers });
      },
    });
    for await (const c of store.open(src)) { void c; break; }
    const q = await navigator.locks.query();
    return { locks: q.held.length + q.pending.length, cancelled };
  }, source());
  assert.deepEqual(r, { locks: 0, cancelled: true });
  const stored = (await call(pageA, "get", "m")).storedBytes;
  assert.equal(stored, 8 * MiB);
  resetServerStats(srv);
  assert.equal((await drain(pageA, source())).sha, sha);
  assert.equal(bytesSent(), SIZE - stored);
  assert.deepEqual([...pageA.errors, ...pageB.errors], []);
});
