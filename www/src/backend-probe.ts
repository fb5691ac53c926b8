/**
 * The measured half of `backend: "auto"`: when the browser gives a hardware WebGPU adapter,
 * a short probe (`probe_backend` in the wasm module, `src/wasm/probe.rs`) times the same work on
 * WebGPU and on the CPU path this page would get (the threaded build where it runs), and the
 * faster one wins. Each step is four matrix–vector products through distinct 2048 × 2048
 * weights of the model's block format and one readback: a decoded token's shape (weights read
 * once, one submit and one readback on WebGPU), so fixed per-token costs count as well as
 * bandwidth. The result is kept in the store's directory, keyed by the adapter, the CPU build
 * and thread count and the block format, so later loads on this device do not probe again.
 *
 * ```ts
 * const r = await probeBackends({ adapterKey, format: "Q4_0", run: (backend, ...a) => mod.probe_backend(backend, ...a) });
 * r.winner; // "webgpu" | "cpu"
 * ```
 */

import { HearthError } from "./errors.js";
import { readAnswers, writeAnswers } from "./opfs.js";
import type { WasmProbe } from "./wasm-api.js";

/** The probe's work per step (see the module comment). */
export const PROBE_SHAPE = { rows: 2048, cols: 2048, products: 4 } as const;
/** Milliseconds each backend is timed for (after one warm-up step). */
export const PROBE_BUDGET_MS = 60;
/** Bump when the probe's work changes: older cached answers are then ignored. */
const PROBE_VERSION = 1;
const CACHE_FILE = "backend-probe.json";

/** What {@link probeBackends} decided and measured. */
export interface BackendProbeResult {
  winner: "webgpu" | "cpu";
  /** Mean ms of one step on each backend. */
  webgpuMs: number;
  cpuMs: number;
  /** Bytes of weights one step reads. */
  bytesPerStep: number;
  /** The CPU path that was timed (build and threads). */
  cpu: string;
  /** Whether this came from the cache (no probe ran). */
  cached: boolean;
  /** Wall time of the probe itself (0 when cached). */
  probeMs: number;
}

/** Runs one backend's probe: `probe_backend` of the wasm module that backend would use. */
export type ProbeRunner = (backend: "webgpu" | "cpu", ty: string, rows: number, cols: number, products: number, budgetMs: number) => Promise<string>;

/** Options of {@link probeBackends}. */
export interface ProbeOptions {
  /** The adapter (vendor, architecture, device, description): part of the cache key. */
  adapterKey: string;
  /** The CPU path (build label and threads): part of the cache key. */
  cpuKey: string;
  /** The block format the probe's weights use (the model's, when known; else Q4_0). */
  format: string;
  run: ProbeRunner;
  /** Skip the cache (read and write). */
  noCache?: boolean;
}

/** The probe's block format for a model whose registry quant is `quant` (Q4_K_M → Q4_K …). */
export function probeFormat(quant: string | undefined): string {
  const q = (quant ?? "").toUpperCase();
  const known = ["Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K"];
  return known.find((k) => q === k || q.startsWith(k + "_")) ?? "Q4_0";
}

/** The one-line reason `engine.model.backendReason` shows. */
export function probeReason(r: BackendProbeResult): string {
  const mb = (r.bytesPerStep / 1e6).toFixed(1);
  const [fast, slow] = r.winner === "webgpu" ? [r.webgpuMs, r.cpuMs] : [r.cpuMs, r.webgpuMs];
  return `${r.winner === "webgpu" ? "WebGPU" : "CPU"} measured faster: ${r.webgpuMs.toFixed(2)} ms on WebGPU vs ${r.cpuMs.toFixed(2)} ms on the CPU (${r.cpu}) per ${mb} MB decode-shaped step, ${(slow / fast).toFixed(1)}x${r.cached ? " (cached probe)" : ""}`;
}

function parseProbe(json: string): WasmProbe {
  const p = JSON.parse(json) as WasmProbe;
  if (!(p.ms_per_step > 0) || !(p.bytes_per_step > 0)) throw new HearthError("INTERNAL", `backend probe answered ${json}`);
  return p;
}

type CacheFile = { version: number; entries: Record<string, Omit<BackendProbeResult, "cached" | "probeMs">> };

async function readCache(): Promise<CacheFile> {
  const c = (await readAnswers(CACHE_FILE)) as CacheFile | null;
  return c && c.version === PROBE_VERSION && typeof c.entries === "object" ? c : { version: PROBE_VERSION, entries: {} };
}

/** Times WebGPU and the CPU (or answers from the cache) and picks the faster. */
export async function probeBackends(o: ProbeOptions): Promise<BackendProbeResult> {
  const key = `${o.adapterKey}|${o.cpuKey}|${o.format}|${PROBE_SHAPE.products}x${PROBE_SHAPE.rows}x${PROBE_SHAPE.cols}`;
  const cache = o.noCache ? null : await readCache();
  const hit = cache?.entries[key];
  if (hit) return { ...hit, cached: true, probeMs: 0 };
  const t0 = performance.now();
  const { rows, cols, products } = PROBE_SHAPE;
  const gpu = parseProbe(await o.run("webgpu", o.format, rows, cols, products, PROBE_BUDGET_MS));
  const cpu = parseProbe(await o.run("cpu", o.format, rows, cols, products, PROBE_BUDGET_MS));
  const r: BackendProbeResult = {
    winner: gpu.ms_per_step < cpu.ms_per_step ? "webgpu" : "cpu",
    webgpuMs: gpu.ms_per_step,
    cpuMs: cpu.ms_per_step,
    bytesPerStep: gpu.bytes_per_step,
    cpu: o.cpuKey,
    cached: false,
    probeMs: performance.now() - t0,
  };
  if (cache) {
    const { cached: _c, probeMs: _p, ...entry } = r;
    cache.entries[key] = entry;
    await writeAnswers(CACHE_FILE, cache);
  }
  return r;
}
