// The CPU integer and attention kernels of both wasm builds inside Chromium — SIMD128 (baseline) and
// relaxed SIMD (threaded build, on a cross-origin isolated page) — each against its scalar
// reference on random rows (src/backend/cpu/kernels/check.rs, the checks `cargo test` makes natively),
// through the wasm export `cpu_kernel_check`. Native tests never run these kernels.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO, launchBrowser, openPage, requireFile, startTestServer } from "./harness.mjs";

requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(path.join(REPO, "www/pkg-mt/hearth_bg.wasm"), "make wasm");

for (const [build, dir, isolate] of [["baseline", "pkg", false], ["threads", "pkg-mt", true]]) {
  test(`${build} build: every integer kernel (one token and the four-token tile) matches its reference`, async () => {
    const srv = await startTestServer({ isolate });
    const browser = await launchBrowser();
    try {
      const page = await openPage(browser.context, srv);
      const runs = await page.evaluate(async (dir) => {
        const mod = await import(`/${dir}/hearth.js`);
        await mod.default({ module_or_path: `/${dir}/hearth_bg.wasm` });
        return [3, 11].map((seed) => JSON.parse(mod.cpu_kernel_check(seed)));
      }, dir);
      assert.equal(page.errors.length, 0, page.errors.join("\n"));
      for (const checks of runs) {
        const kinds = new Set(checks.map((c) => `${c.ty} ${c.kernel}`));
        const want = ["Q4_0 dot", "Q4_1 dot4", "Q8_0 dot4", "Q4_K dot4", "Q5_K dot4", "Q6_K dot", "Q5_0 dot4", "Q8 quantize"];
        // Both builds have the interleaved tile kernels of the legacy formats and the k-quants.
        const tiled = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"];
        want.push(...tiled.map((t) => `${t} tile`));
        // …the four-row tiles and the one-token four-row kernels, both equal to the one-row tile
        // bit for bit (so a token's result does not depend on how the prompt was split).
        want.push(...tiled.flatMap((t) => [`${t} tile_rows`, `${t} tile_rows_bits`, `${t} rows_bits`]));
        // Attention: the SIMD128 block kernels and the portable ones against the scalar
        // reference, and a query alone vs in a tile (bit for bit).
        want.push("Simd128 attention", "Portable attention", "Simd128 attention_tile");
        for (const k of want) {
          assert.ok(kinds.has(k), `${k} missing from ${[...kinds].join(", ")}`);
        }
        for (const c of checks) assert.ok(c.ok, `${c.ty} ${c.kernel} cols=${c.cols}: error ${c.error} > ${c.tolerance}`);
      }
      // Whole products (CpuMatmulBench): a batch of tokens (tile kernels, remainder tokens, the
      // pool's tasks writing the output in place) against the same tokens one at a time.
      const { diffs, bad } = await page.evaluate(async ({ dir, isolate }) => {
        const mod = await import(`/${dir}/hearth.js`);
        if (isolate) await mod.initThreadPool(2);
        const diffs = {};
        for (const [ty, rows, cols, n] of [["Q4_1", 40, 64, 7], ["Q8_0", 33, 96, 9], ["Q5_0", 50, 32, 4], ["Q4_K", 17, 256, 5], ["Q5_K", 9, 512, 6], ["Q6_K", 21, 768, 7]]) {
          const b = new mod.CpuMatmulBench(ty, rows, cols, n);
          diffs[`${ty} ${rows}x${cols} n=${n}`] = b.batch_vs_single();
          b.free();
        }
        const bad = [];
        for (const args of [["Q9_9", 4, 32, 1], ["Q4_1", 4, 33, 1], ["Q4_1", 0, 32, 1], ["Q4_1", 1 << 20, 1 << 10, 1 << 10]]) {
          try {
            new mod.CpuMatmulBench(...args);
            bad.push("no error");
          } catch (e) {
            bad.push(e.code);
          }
        }
        return { diffs, bad };
      }, { dir, isolate });
      for (const [k, d] of Object.entries(diffs)) assert.equal(d, 0, `${k}: batched vs one token at a time differ by ${d} (must be equal bit for bit)`);
      assert.deepEqual(bad, ["BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST"]);
      assert.equal(page.errors.length, 0, page.errors.join("\n"));
    } finally {
      await browser.close();
      await srv.close();
    }
  });
}
