// Measures what the store's per-chunk XXH32 read checks cost on a warm load of the default model
// (issue 16: should stay under 5 % of the warm load), in headless Chromium, in the engine's
// Worker setting: the warm Engine.load (store → engine, CPU, single thread) and, in a Worker, the
// XXH32 of the same stored chunks as the store reads them. Prints; asserts nothing.
// Run: node tests/browser/bench_checksum.mjs   (needs make www wasm models; REPS=5 by default)
import { MODEL_PATH, requireFile, launchBrowser, startTestServer, openPage } from "./harness.mjs";

requireFile(MODEL_PATH, "make models");
const ID = "smollm2-135m-instruct-q4_1";
const reps = Number(process.env.REPS ?? 5);
const srv = await startTestServer();
const browser = await launchBrowser();
try {
  const page = await openPage(browser.context, srv);
  const r = await page.evaluate(async ({ id, reps }) => {
    const H = await import("/dist/index.js");
    await (await H.Engine.load(id, { backend: "cpu", threads: false })).unload(); // stored; later loads are warm
    const loads = [];
    for (let i = 0; i < reps; i++) {
      const e = await H.Engine.load(id, { backend: "cpu", threads: false });
      loads.push(e.model.loadMs);
      await e.unload();
    }
    // The checks alone, in a Worker reading the chunks as the store does (sync access handles).
    const src = `
      import { xxh32 } from "${location.origin}/dist/checksum.js";
      import { defaultStore } from "${location.origin}/dist/store.js";
      onmessage = async () => {
        const dir = await defaultStore["modelDir"](${JSON.stringify(id)}, false);
        const runs = [];
        for (let r = 0; r < ${reps}; r++) {
          let read = 0, sum = 0, bytes = 0;
          for (let i = 0; ; i++) {
            let fh;
            try { fh = await dir.getFileHandle("chunk-" + String(i).padStart(6, "0") + ".bin"); } catch { break; }
            let t = performance.now();
            const h = await fh.createSyncAccessHandle();
            const buf = new Uint8Array(h.getSize());
            h.read(buf, { at: 0 });
            h.close();
            read += performance.now() - t;
            t = performance.now();
            xxh32(buf);
            sum += performance.now() - t;
            bytes += buf.length;
          }
          runs.push({ read, sum, bytes });
        }
        postMessage(runs);
      };`;
    const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), { type: "module" });
    const runs = await new Promise((res, rej) => { w.onmessage = (e) => res(e.data); w.onerror = (e) => rej(new Error(e.message)); w.postMessage(null); });
    w.terminate();
    return { loads, runs };
  }, { id: ID, reps });
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const load = med(r.loads);
  const sum = med(r.runs.map((x) => x.sum));
  const read = med(r.runs.map((x) => x.read));
  const mb = r.runs[0].bytes / 1048576;
  console.log(`warm load (Worker, CPU, 1 thread), median of ${reps}: ${load.toFixed(0)} ms (all: ${r.loads.map((x) => x.toFixed(0)).join(", ")})`);
  console.log(`XXH32 of the ${mb.toFixed(1)} MiB stored (Worker), median: ${sum.toFixed(1)} ms = ${(mb / 1024 / (sum / 1000)).toFixed(2)} GiB/s; reading the chunks: ${read.toFixed(0)} ms`);
  console.log(`read checks / warm load: ${((100 * sum) / load).toFixed(1)} %`);
} finally {
  await browser.close();
  await srv.close();
}
