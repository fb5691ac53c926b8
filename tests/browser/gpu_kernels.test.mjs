// The WebGPU kernels inside Chromium (WebGPU on SwiftShader: no shader-f16), each against
// the CPU backend on the same random inputs — the same checks `cargo test` runs natively on
// lavapipe (src/backend/gpu/selfcheck.rs), through the wasm export `gpu_selfcheck`.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO, launchBrowser, openPage, requireFile, startTestServer } from "./harness.mjs";

requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");

test("every WebGPU kernel matches the CPU backend in Chromium, at odd sizes, for two seeds", async () => {
  const srv = await startTestServer();
  const browser = await launchBrowser();
  try {
    const page = await openPage(browser.context, srv);
    const result = await page.evaluate(async () => {
      const mod = await import("/pkg/hearth.js");
      await mod.default({ module_or_path: "/pkg/hearth_bg.wasm" });
      const runs = [];
      for (const seed of [41, 7]) runs.push(JSON.parse(await mod.gpu_selfcheck(seed)));
      const adapter = await navigator.gpu.requestAdapter();
      return { runs, features: adapter ? [...adapter.features] : [] };
    });
    assert.equal(page.errors.length, 0, page.errors.join("\n"));
    assert.ok(!result.features.includes("shader-f16"), "SwiftShader has no shader-f16: the f16-free path is what runs");
    for (const checks of result.runs) {
      assert.ok(checks.length >= 20, `only ${checks.length} checks ran`);
      const names = checks.map((c) => c.name).join(", ");
      for (const op of ["matmul Q4_1 n=1", "matmul Q8_0 n=5", "matmul_bias Q4_K n=1", "embed F16", "rms_norm", "rope neox=true", "attention", "glu Gelu", "argmax",
        // the opt-in integer products (8-bit activations, dot4I8Packed): decode, bias, tiled
        "int8 matmul Q4_1 n=1", "int8 matmul_bias Q5_0 n=1", "int8 matmul Q6_K n=9", "int8 matmul Q8_0 n=9"]) {
        assert.ok(names.includes(op), `${op} missing from ${names}`);
      }
      for (const c of checks) assert.ok(c.ok, `${c.name}: normalised error ${c.error} > ${c.tolerance}`);
    }
  } finally {
    await browser.close();
    await srv.close();
  }
});
