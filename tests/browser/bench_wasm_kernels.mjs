// Times the CPU backend's matrix products inside headless Chromium (wasm export CpuMatmulBench):
// the kernels as the engine runs them, without the rest of a forward pass. Not a test (no timed
// assertions): prints ms per product and GMAC/s, the median of 7 timed runs after a warm-up.
//   node tests/browser/bench_wasm_kernels.mjs [threads] ['[["Q4_1",rows,cols,n],...]']
// threads 0: the baseline build (www/pkg); T ≥ 1: the threaded build (www/pkg-mt) with a pool of T.
// Default shapes: SmolLM2's FFN up/down and attention products, prefill (36 tokens) and decode.
import { launchBrowser, startTestServer, openPage, requireFile, REPO } from "./harness.mjs";
import path from "node:path";

const threads = Number(process.argv[2] ?? 1);
const cases = JSON.parse(process.argv[3] ?? '[["Q4_1",1536,576,36],["Q4_1",576,1536,36],["Q4_1",576,576,36],["Q4_1",1536,576,1]]');
const dir = threads > 0 ? "pkg-mt" : "pkg";
requireFile(path.join(REPO, "www", dir, "hearth_bg.wasm"), "make wasm");
const srv = await startTestServer({ isolate: true });
const b = await launchBrowser();
try {
  const page = await openPage(b.context, srv);
  const rows = await page.evaluate(async ({ threads, cases, dir }) => {
    const mod = await import(`/${dir}/hearth.js`);
    await mod.default({ module_or_path: `/${dir}/hearth_bg.wasm` });
    if (threads > 0) await mod.initThreadPool(threads);
    const out = [];
    for (const [ty, rows, cols, n] of cases) {
      const bench = new mod.CpuMatmulBench(ty, rows, cols, n);
      const reps = Math.max(3, Math.round(2e8 / (rows * cols * n)));
      bench.run(reps); // warm-up: lets V8 tier the kernels up
      const ts = [];
      for (let i = 0; i < 7; i++) {
        const t = performance.now();
        bench.run(reps);
        ts.push((performance.now() - t) / reps);
      }
      ts.sort((a, b) => a - b);
      const ms = ts[3];
      out.push(`${ty} ${rows}x${cols} n=${n}: ${ms.toFixed(3)} ms/product, ${((rows * cols * n) / ms / 1e6).toFixed(2)} GMAC/s`);
      bench.free();
    }
    return out;
  }, { threads, cases, dir });
  console.log(`${dir}, ${threads || 1} thread(s)`);
  console.log(rows.join("\n"));
} finally {
  await b.close();
  await srv.close();
}
