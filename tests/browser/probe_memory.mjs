// Memory of repeated engine loads in one page, for finding leaks (not a test, no assertions):
// per load, the browser's total RSS above the blank page (procmem.mjs) once loaded, after a short
// completion, its peak during the load, right after unload and at seven times up to 9.5 s later.
//   node tests/browser/probe_memory.mjs [mt|st] [MODEL_ID] [LOADS] [where]
// where: after the first completion, which processes grew and the largest mappings of the one
// that grew most (the wasm memory is one anonymous mapping of its reserved size).
// mt: the threaded build on a cross-origin isolated page (one thread per core); st: single-thread;
// gpu: WebGPU (SwiftShader here: its buffers are in the GPU process's memory).
// Needs `make www wasm models-test`. BENCHMARKS.md ("Where the time goes", Memory) has results.
import { launchBrowser, startTestServer, openPage } from "./harness.mjs";
import { browserPid, processTree, rssBytes, rssByProcess, processType, largestMappings } from "./procmem.mjs";

const [mode = "mt", model = "smollm2-135m-instruct-q4_1", loads = "3", where] = process.argv.slice(2);
const mt = mode === "mt";
const gpu = mode === "gpu";
const srv = await startTestServer({ isolate: mt });
const b = await launchBrowser();
try {
  const page = await openPage(b.context, srv);
  const root = browserPid(b.userDataDir);
  const rss = () => Math.round(rssBytes(processTree(root)) / 2 ** 20);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const base = rss();
  const blank = rssByProcess(processTree(root));
  console.log(`blank page: ${base} MiB (every figure below is MiB above it)`);
  await page.evaluate(async () => { globalThis.H = await import("/dist/index.js"); });
  for (let i = 0; i < Number(loads); i++) {
    let peak = 0;
    const timer = setInterval(() => { peak = Math.max(peak, rss()); }, 50);
    const info = await page.evaluate(async ([mt, model, gpu]) => {
      const t0 = performance.now();
      const e = await H.Engine.load(model, gpu ? { backend: "webgpu" } : mt ? { backend: "cpu", threads: navigator.hardwareConcurrency } : { backend: "cpu" });
      globalThis.probeEngine = e;
      return { ms: performance.now() - t0, build: e.model.wasmBuild, threads: e.model.threads, wasm: e.model.wasmMemoryBytes };
    }, [mt, model, gpu]);
    const loaded = rss() - base;
    await page.evaluate(() => probeEngine.complete("Once upon a time", { max_tokens: 4, temperature: 0 }));
    const completed = rss() - base;
    if (where && i === 0) {
      const mib = (b) => (b / 2 ** 20).toFixed(1);
      const grew = [...rssByProcess(processTree(root))].map(([p, b]) => [p, b - (blank.get(p) ?? 0)]).sort((a, b) => b[1] - a[1]);
      console.log(`grew (MiB): ${grew.filter(([, d]) => Math.abs(d) >= 2 ** 20).map(([p, d]) => `${processType(p)} ${p} ${mib(d)}`).join(", ")}`);
      for (const m of largestMappings(grew[0][0], 12)) console.log(`  ${mib(m.rss)} MiB resident of ${mib(m.size)} MiB ${m.name} ${m.range}`);
    }
    await page.evaluate(() => probeEngine.unload());
    clearInterval(timer);
    const unloaded = rss() - base;
    // RSS after unload() at these times (ms), to see when the engine's memory goes.
    const after = [];
    let waited = 0;
    for (const t of [250, 500, 1000, 1500, 3000, 5000, 9500]) {
      await sleep(t - waited);
      waited = t;
      after.push(`+${t / 1000} s ${rss() - base}`);
    }
    console.log(`load ${i} (${info.build}, ${info.threads} thread(s), ${Math.round(info.ms)} ms, wasm memory ${Math.round(info.wasm / 2 ** 20)}): ` +
      `loaded ${loaded}, completed ${completed}, peak ${peak - base}, unloaded ${unloaded}, ${after.join(", ")}`);
  }
} finally {
  await b.close();
  await srv.close();
}
process.exit(0);
