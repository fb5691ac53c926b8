// The static server: MIME types, Range, HEAD, validators, isolation headers, fault injection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startServer, parseRange } from "../../www/server.mjs";
import { makeFixture, mountsWithFixtures } from "./harness.mjs";

let srv, isolated, dir, fixture;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-srv-"));
  fixture = fs.readFileSync(makeFixture(dir, "f.gguf", 100000));
  fs.writeFileSync(path.join(dir, "a.wasm"), Buffer.from([0, 97, 115, 109, 1, 0, 0, 0]));
  fs.writeFileSync(path.join(dir, "m.mjs"), "export {};\n");
  srv = await startServer({ testHooks: true, roots: mountsWithFixtures(dir) });
  isolated = await startServer({ isolate: true, roots: mountsWithFixtures(dir) });
});
after(async () => {
  await srv.close();
  await isolated.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("parseRange covers the RFC 9110 single-range forms", () => {
  assert.deepEqual(parseRange("bytes=0-9", 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange("bytes=90-", 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange("bytes=-10", 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange("bytes=95-200", 100), { start: 95, end: 99 });
  assert.equal(parseRange("bytes=100-", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=5-4", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=0-1,5-6", 100), null);
  assert.equal(parseRange(undefined, 100), null);
});

test("MIME types for wasm, modules, GGUF and HTML", async () => {
  const type = async (p) => (await fetch(srv.url + p)).headers.get("content-type");
  assert.equal(await type("fixtures/a.wasm"), "application/wasm");
  assert.match(await type("fixtures/m.mjs"), /^text\/javascript/);
  assert.equal(await type("fixtures/f.gguf"), "application/octet-stream");
  assert.match(await type("__test__/blank.html"), /^text\/html/);
  assert.match(await type("server.mjs"), /^text\/javascript/);
});

test("Range gives 206 with Content-Range; bad ranges give 416", async () => {
  const r = await fetch(srv.url + "fixtures/f.gguf", { headers: { Range: "bytes=1000-1999" } });
  assert.equal(r.status, 206);
  assert.equal(r.headers.get("content-range"), "bytes 1000-1999/100000");
  assert.deepEqual(Buffer.from(await r.arrayBuffer()), fixture.subarray(1000, 2000));
  const open = await fetch(srv.url + "fixtures/f.gguf", { headers: { Range: "bytes=99990-" } });
  assert.equal(open.status, 206);
  assert.equal((await open.arrayBuffer()).byteLength, 10);
  const bad = await fetch(srv.url + "fixtures/f.gguf", { headers: { Range: "bytes=100000-" } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers.get("content-range"), "bytes */100000");
  const full = await fetch(srv.url + "fixtures/f.gguf");
  assert.equal(full.status, 200);
  assert.equal(full.headers.get("accept-ranges"), "bytes");
  assert.equal((await full.arrayBuffer()).byteLength, 100000);
});

test("HEAD, ETag/Last-Modified, 304 and If-Range", async () => {
  const h = await fetch(srv.url + "fixtures/f.gguf", { method: "HEAD" });
  assert.equal(h.status, 200);
  assert.equal(h.headers.get("content-length"), "100000");
  assert.equal((await h.arrayBuffer()).byteLength, 0);
  const etag = h.headers.get("etag");
  assert.ok(etag && h.headers.get("last-modified"));
  assert.equal((await fetch(srv.url + "fixtures/f.gguf", { headers: { "If-None-Match": etag } })).status, 304);
  const same = await fetch(srv.url + "fixtures/f.gguf", { headers: { Range: "bytes=10-19", "If-Range": etag } });
  assert.equal(same.status, 206);
  await same.arrayBuffer();
  const changed = await fetch(srv.url + "fixtures/f.gguf", { headers: { Range: "bytes=10-19", "If-Range": '"other"' } });
  assert.equal(changed.status, 200);
  await changed.arrayBuffer();
});

test("404s, no escaping the mounts, 405 for other methods", async () => {
  assert.equal((await fetch(srv.url + "fixtures/nope.bin")).status, 404);
  assert.equal((await fetch(srv.url + "fixtures/..%2f..%2fetc%2fpasswd")).status, 404);
  assert.equal((await fetch(srv.url + "models/..%2f..%2fMakefile")).status, 404);
  assert.equal((await fetch(srv.url + "server.mjs", { method: "POST" })).status, 405);
});

test("--isolate sends COOP/COEP; without it they are absent", async () => {
  const r = await fetch(isolated.url + "fixtures/a.wasm");
  assert.equal(r.headers.get("cross-origin-opener-policy"), "same-origin");
  assert.equal(r.headers.get("cross-origin-embedder-policy"), "require-corp");
  const plain = await fetch(srv.url + "fixtures/a.wasm");
  assert.equal(plain.headers.get("cross-origin-opener-policy"), null);
});

test("fail_after drops the connection after N bytes, counted in stats; only with --test-hooks", async () => {
  srv.stats.bytes = {};
  const r = await fetch(srv.url + "fixtures/f.gguf?fail_after=30000");
  await assert.rejects(r.arrayBuffer());
  assert.equal(srv.stats.bytes["/fixtures/f.gguf"], 30000);
  const stats = await (await fetch(srv.url + "__test__/stats")).json();
  assert.ok(stats.requests > 0);
  const plain = await fetch(isolated.url + "fixtures/f.gguf?fail_after=10");
  assert.equal((await plain.arrayBuffer()).byteLength, 100000);
  assert.equal((await fetch(isolated.url + "__test__/stats")).status, 404);
});

test("--throttle caps the body rate", async () => {
  const slow = await startServer({ throttle: 200000, roots: mountsWithFixtures(dir) });
  try {
    const t0 = performance.now();
    await (await fetch(slow.url + "fixtures/f.gguf")).arrayBuffer();
    assert.ok(performance.now() - t0 >= 300, "100 kB at 200 kB/s takes about 0.5 s");
  } finally {
    await slow.close();
  }
});
