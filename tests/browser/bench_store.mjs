// Measures browser storage for model weights: write + read of ~100 MB in 8 MiB chunks through the
// Cache API and through OPFS (main-thread createWritable, and a Worker's sync access handle), in
// headless Chromium. Numbers feed docs/store-decision.md. Run: node tests/browser/bench_store.mjs
import { startServer } from "../../www/server.mjs";
import { launchBrowser } from "./harness.mjs";

const MB = 1024 * 1024;
const srv = await startServer({ testHooks: true });
const { context, close } = await launchBrowser();
const page = await context.newPage();
await page.goto(srv.url + "__test__/blank.html");
const reps = Number(process.env.REPS ?? 3);
const result = await page.evaluate(async ({ reps }) => {
  const CHUNK = 8 * 1024 * 1024, N = 12; // 96 MiB
  const chunks = [];
  for (let i = 0; i < N; i++) { const c = new Uint8Array(CHUNK); for (let j = 0; j < CHUNK; j += 4096) c[j] = (i + j) & 255; chunks.push(c); }
  const out = { cache: [], opfs: [], opfsWorker: [] };
  for (let r = 0; r < reps; r++) {
    // Cache API
    await caches.delete("bench");
    let t0 = performance.now();
    const cache = await caches.open("bench");
    for (let i = 0; i < N; i++) await cache.put(new Request(`/__bench__/${i}`), new Response(chunks[i], { headers: { "Content-Type": "application/octet-stream" } }));
    let t1 = performance.now();
    let sum = 0;
    for (let i = 0; i < N; i++) { const resp = await cache.match(`/__bench__/${i}`); const b = new Uint8Array(await resp.arrayBuffer()); sum += b[0]; }
    let t2 = performance.now();
    out.cache.push({ write_ms: t1 - t0, read_ms: t2 - t1 });
    await caches.delete("bench");
    // OPFS, main thread
    const root = await navigator.storage.getDirectory();
    try { await root.removeEntry("bench", { recursive: true }); } catch {}
    t0 = performance.now();
    const dir = await root.getDirectoryHandle("bench", { create: true });
    for (let i = 0; i < N; i++) { const fh = await dir.getFileHandle(`c${i}`, { create: true }); const w = await fh.createWritable(); await w.write(chunks[i]); await w.close(); }
    t1 = performance.now();
    for (let i = 0; i < N; i++) { const fh = await dir.getFileHandle(`c${i}`); const f = await fh.getFile(); const b = new Uint8Array(await f.arrayBuffer()); sum += b[0]; }
    t2 = performance.now();
    out.opfs.push({ write_ms: t1 - t0, read_ms: t2 - t1 });
    await root.removeEntry("bench", { recursive: true });
    // OPFS, worker with sync access handles
    const src = `onmessage = async (e) => { const chunks = e.data; const root = await navigator.storage.getDirectory();
      const dir = await root.getDirectoryHandle("benchw", { create: true });
      let t0 = performance.now();
      for (let i = 0; i < chunks.length; i++) { const fh = await dir.getFileHandle("c"+i, { create: true }); const h = await fh.createSyncAccessHandle(); h.truncate(0); h.write(chunks[i], { at: 0 }); h.flush(); h.close(); }
      let t1 = performance.now(); let s = 0;
      for (let i = 0; i < chunks.length; i++) { const fh = await dir.getFileHandle("c"+i); const h = await fh.createSyncAccessHandle(); const b = new Uint8Array(h.getSize()); h.read(b, { at: 0 }); h.close(); s += b[0]; }
      let t2 = performance.now(); await root.removeEntry("benchw", { recursive: true });
      postMessage({ write_ms: t1 - t0, read_ms: t2 - t1 }); };`;
    const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })));
    const res = await new Promise((resolve) => { w.onmessage = (e) => resolve(e.data); w.postMessage(chunks); });
    w.terminate();
    out.opfsWorker.push(res);
  }
  return { bytes: CHUNK * N, out };
}, { reps });
const fmt = (ms) => ((result.bytes / MB) / (ms / 1000)).toFixed(0) + " MiB/s";
console.log(`bytes: ${result.bytes / MB} MiB in 8 MiB chunks, ${reps} reps (Chromium headless)`);
for (const [k, runs] of Object.entries(result.out)) {
  const best = (f) => Math.min(...runs.map((r) => r[f]));
  console.log(`${k.padEnd(11)} write best ${best("write_ms").toFixed(0)} ms (${fmt(best("write_ms"))})  read best ${best("read_ms").toFixed(0)} ms (${fmt(best("read_ms"))})  all: ${JSON.stringify(runs.map((r) => [Math.round(r.write_ms), Math.round(r.read_ms)]))}`);
}
await close();
await srv.close();
