// Memory of repeated engine loads in one page, for finding leaks (not a test, no assertions):
// per load, the browser's total RSS above the blank page (procmem.mjs) once loaded, after a short
// completion, its peak during the load, and right after unload, 1.5 s and 9.5 s later.
//   node tests/browser/probe_memory.mjs [mt|st] [MODEL_ID] [LOADS]
// mt: the threaded build on a cross-origin isolated page (one thread per core); st: single-thread.
// Needs `make www wasm models-test`. BENCHMARKS.md ("Where the time goes", Memory) has results.
import { launchBrowser, startTestServer, openPage } from "./harness.mjs";
import { browserPid, processTree, rssBytes } from "./procmem.mjs";

const [mode = "mt", model = "smollm2-135m-instruct-q4_1", loads = "3"] = process.argv.slice(2);
const mt = mode === "mt";
const srv = await startTestServer({ isolate: mt });
const b = await launchBrowser();
try {
  const page = await openPage(b.context, srv);
  const root = browserPid(b.userDataDir);
  const rss = () => Math.round(rssBytes(processTree(root)) / 2 ** 20);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const base = rss();
  console.log(`blank page: ${base} MiB (every figure below is MiB above it)`);
  await page.evaluate(async () => { globalThis.H = await import("/dist/index.js"); });
  for (let i = 0; i < Number(loads); i++) {
    let peak = 0;
    const timer = setInterval(() => { peak = Math.max(peak, rss()); }, 50);
    const info = await page.evaluate(async ([mt, model]) => {
      const t0 = performance.now();
      const e = await H.Engine.load(model, mt ? { backend: "cpu", threads: navigator.hardwareConcurrency } : { backend: "cpu" });
      globalThis.probeEngine = e;
      return { ms: performance.now() - t0, build: e.model.wasmBuild, threads: e.model.threads, wasm: e.model.wasmMemoryBytes };
    }, [mt, model]);
    const loaded = rss() - base;
    await page.evaluate(() => probeEngine.complete("Once upon a time", { max_tokens: 4, temperature: 0 }));
    const completed = rss() - base;
    await page.evaluate(() => probeEngine.unload());
    clearInterval(timer);
    const unloaded = rss() - base;
    await sleep(1500);
    const later = rss() - base;
    await sleep(8000);
    console.log(`load ${i} (${info.build}, ${info.threads} thread(s), ${Math.round(info.ms)} ms, wasm memory ${Math.round(info.wasm / 2 ** 20)}): ` +
      `loaded ${loaded}, completed ${completed}, peak ${peak - base}, unloaded ${unloaded}, +1.5 s ${later}, +9.5 s ${rss() - base}`);
  }
} finally {
  await b.close();
  await srv.close();
}
process.exit(0);
