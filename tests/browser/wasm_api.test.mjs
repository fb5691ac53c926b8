// www/src/wasm-api.ts (hand-written) must describe what wasm-bindgen generated (www/pkg/hearth.d.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, requireFile } from "./harness.mjs";

const GENERATED = path.join(REPO, "www/pkg/hearth.d.ts");
const GENERATED_MT = path.join(REPO, "www/pkg-mt/hearth.d.ts");
requireFile(GENERATED, "make wasm");
requireFile(GENERATED_MT, "make wasm");

/** Method name → parameter list (types normalised) of `class WasmEngine` / `interface WasmEngine`. */
function methods(src, kind) {
  const start = src.search(new RegExp(`${kind} WasmEngine\\b[^{]*\\{`));
  assert.ok(start >= 0, `no ${kind} WasmEngine`);
  let depth = 0, i = src.indexOf("{", start), end = i;
  for (; end < src.length; end++) { if (src[end] === "{") depth++; else if (src[end] === "}" && --depth === 0) break; }
  const body = src.slice(i + 1, end).replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const out = {};
  for (const m of body.matchAll(/(?:static\s+)?([a-z_]+)\(([^)]*)\)\s*:\s*([^;]+);/g)) {
    if (m[1] === "constructor") continue;
    out[m[1]] = m[2].split(",").map((p) => p.trim().split(":")[0].trim()).filter(Boolean).join(", ");
  }
  return out;
}

test("wasm-api.ts lists exactly the generated WasmEngine methods, with the same parameter names", () => {
  const generated = methods(fs.readFileSync(GENERATED, "utf8"), "class");
  const ours = methods(fs.readFileSync(path.join(REPO, "www/src/wasm-api.ts"), "utf8"), "interface");
  const oursStatic = methods(fs.readFileSync(path.join(REPO, "www/src/wasm-api.ts"), "utf8").replace("interface WasmEngine {", "interface X {").replace("interface WasmEngineClass", "interface WasmEngine"), "interface");
  const want = { ...ours, ...oursStatic };
  for (const k of ["__destroy_into_raw", "__wbg_ptr"]) delete generated[k];
  assert.deepEqual(Object.keys(generated).sort(), Object.keys(want).sort());
  for (const [k, v] of Object.entries(want)) assert.equal(generated[k], v, `parameters of ${k}`);
});

test("the threaded build has the same WasmEngine, plus initThreadPool; both export cpu_threads", () => {
  const base = fs.readFileSync(GENERATED, "utf8");
  const mt = fs.readFileSync(GENERATED_MT, "utf8");
  assert.deepEqual(methods(mt, "class"), methods(base, "class"));
  assert.match(mt, /export function initThreadPool\(num_threads: number\): Promise<any>;/);
  assert.doesNotMatch(base, /export function initThreadPool/);
  for (const src of [base, mt]) assert.match(src, /export function cpu_threads\(\): number;/);
  const ours = fs.readFileSync(path.join(REPO, "www/src/wasm-api.ts"), "utf8");
  assert.match(ours, /cpu_threads\(\): number;/);
  assert.match(ours, /initThreadPool\?: \(num_threads: number\) => Promise<void>;/);
});
