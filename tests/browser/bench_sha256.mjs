// SHA-256 throughput in Chromium (MB/s): the package's Sha256 (hash-wasm, vendored) vs
// crypto.subtle.digest (one-shot, native), and optionally an older Sha256 module given as a
// path (`node tests/browser/bench_sha256.mjs [old-sha256.js]`), all in the same page and run:
// 64 MiB in 8 MiB updates (the store's chunk size), best of 3. Not part of make test.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO, requireDist, launchBrowser, startTestServer, openPage } from "./harness.mjs";

requireDist();
const old = process.argv[2];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-sha-"));
if (old) fs.copyFileSync(old, path.join(dir, "old-sha256.js"));
const srv = await startTestServer({ roots: [["/old/", dir], ["/", path.join(REPO, "www")]] });
const b = await launchBrowser();
try {
  const page = await openPage(b.context, srv);
  const r = await page.evaluate(async (withOld) => {
    const data = new Uint8Array(64 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    const CHUNK = 8 * 1024 * 1024;
    const best = async (f) => {
      let ms = Infinity;
      let out;
      for (let rep = 0; rep < 3; rep++) {
        const t0 = performance.now();
        out = await f();
        ms = Math.min(ms, performance.now() - t0);
      }
      return { mbps: data.length / 1e6 / (ms / 1000), hex: out };
    };
    const { Sha256, toHex } = await import("/dist/sha256.js");
    const res = {};
    res["hash-wasm (Sha256)"] = await best(async () => {
      const h = await Sha256.create();
      for (let o = 0; o < data.length; o += CHUNK) h.update(data.subarray(o, o + CHUNK));
      return h.hex();
    });
    res["crypto.subtle.digest (one-shot)"] = await best(async () => toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", data))));
    if (withOld) {
      const O = await import("/old/old-sha256.js");
      res["previous TypeScript Sha256"] = await best(async () => {
        const h = new O.Sha256();
        for (let o = 0; o < data.length; o += CHUNK) h.update(data.subarray(o, o + CHUNK));
        return h.hex();
      });
    }
    return res;
  }, Boolean(old));
  const ref = r["crypto.subtle.digest (one-shot)"].hex;
  for (const [k, v] of Object.entries(r)) console.log(`${k}: ${v.mbps.toFixed(0)} MB/s${v.hex === ref ? "" : "  (DIGEST MISMATCH)"}`);
} finally {
  await b.close();
  await srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
