// The incremental SHA-256 (hash-wasm, vendored) against FIPS 180-4 vectors, Node's crypto, and (in Chromium) crypto.subtle.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO, requireDist, launchBrowser, startTestServer, openPage } from "./harness.mjs";

requireDist();
const { Sha256, sha256Hex } = await import(pathToFileURL(path.join(REPO, "www/dist/sha256.js")).href);
const enc = (s) => new TextEncoder().encode(s);

test("FIPS 180-4 / NIST vectors", async () => {
  assert.equal(await sha256Hex(enc("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(await sha256Hex(enc("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(await sha256Hex(enc("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  assert.equal(
    await sha256Hex(enc("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
  );
  const h = await Sha256.create();
  const a = new Uint8Array(1000).fill(97);
  for (let i = 0; i < 1000; i++) h.update(a); // one million 'a'
  assert.equal(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
});

test("any split into updates gives the same digest as one-shot (lengths around block edges)", async () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 4097]) {
    const data = randomBytes(n);
    const want = createHash("sha256").update(data).digest("hex");
    assert.equal(await sha256Hex(data), want, `one-shot n=${n}`);
    for (let trial = 0; trial < 5; trial++) {
      const h = await Sha256.create();
      let off = 0;
      while (off < n) {
        const step = 1 + Math.floor(Math.random() * 130);
        h.update(data.subarray(off, off + step));
        off += step;
      }
      assert.equal(h.hex(), want, `split n=${n}`);
    }
  }
});

test("save/restore resumes mid-stream (on and off a block boundary); misuse throws", async () => {
  const data = randomBytes(64 * 10 + 7);
  const want = createHash("sha256").update(data).digest("hex");
  for (const cut of [640, 643]) {
    const state = (await Sha256.create()).update(data.subarray(0, cut)).save();
    const r = (await Sha256.restore(Uint8Array.from(state))).update(data.subarray(cut));
    assert.equal(r.hex(), want, `resumed at ${cut}`);
  }
  await assert.rejects(Sha256.restore(new Uint8Array([1, 2])), RangeError);
  const done = await Sha256.create();
  done.digest();
  assert.throws(() => done.update(data));
  assert.throws(() => done.digest());
  assert.throws(() => done.save());
});

test("in Chromium: equals crypto.subtle.digest over 20 MB fed in uneven chunks", async () => {
  const srv = await startTestServer();
  const b = await launchBrowser();
  try {
    const page = await openPage(b.context, srv);
    const r = await page.evaluate(async () => {
      const { Sha256, toHex } = await import("/dist/sha256.js");
      const data = new Uint8Array(20 * 1024 * 1024 + 13);
      for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, data.length)));
      const h = await Sha256.create();
      const t0 = performance.now();
      for (let off = 0, k = 1; off < data.length; k++) { const step = (k * 7919) % 3000000 + 1; h.update(data.subarray(off, off + step)); off += step; }
      const ours = h.hex();
      const ms = performance.now() - t0;
      const ref = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
      return { ours, ref, mbps: data.length / 1e6 / (ms / 1000) };
    });
    assert.equal(r.ours, r.ref);
    console.log(`# sha256 in Chromium: ${r.mbps.toFixed(0)} MB/s`);
  } finally {
    await b.close();
    await srv.close();
  }
});
