/**
 * The WebGPU matvec autotune in the browser (`src/backend/gpu/tune.rs`): after a WebGPU load,
 * the decode matvec's launch shape (threads per workgroup, threads per row) is timed per weight
 * class of the model on this adapter, or taken from the store, where earlier choices are kept
 * per adapter (`hearth-models/gpu-tune.json` in OPFS, next to the backend probe's answers).
 * Software adapters (SwiftShader) are not tuned unless `gpuTune: "force"`. `engine.model.gpuTune`
 * says what was used.
 *
 * ```ts
 * const t = await tuneGpu({ adapterKey, software: false, mode: "auto", run: (cached, force, budget) => engine.tune_gpu(cached, force, budget) });
 * t.shapes; // [{format: "Q4_K", cols: 896, wg: 64, tpr: 16, tuned: false, speedup: 1}, …]
 * ```
 */

import { readAnswers, writeAnswers } from "./opfs.js";
import type { GpuTuneInfo, GpuTuneMode } from "./types.js";

const CACHE_FILE = "gpu-tune.json";
/** Bump when the file's layout changes (the Rust side versions its own keys). */
const FILE_VERSION = 1;

interface Shape {
  wg: number;
  tpr: number;
}

/** One entry of the Rust report (`TuneEntry`). */
interface RustEntry {
  format: string;
  cols: number;
  shape: Shape;
  default: Shape;
  default_ms: number;
  best_ms: number;
  candidates: [Shape, number | null][];
  rounds?: number;
  cached?: boolean;
}

interface RustReport {
  adapter: string;
  skipped: string | null;
  entries: [string, RustEntry][];
  ms: number;
}

type CacheFile = { version: number; adapters: Record<string, Record<string, RustEntry>> };

/** Runs the engine's tune: `tune_gpu(cachedJson, force, budgetMs)` of the wasm engine. */
export type TuneRunner = (cachedJson: string, force: boolean, budgetMs: number) => Promise<string>;

/** Options of {@link tuneGpu}. */
export interface TuneGpuOptions {
  /** The adapter (vendor, architecture, device, description): the store's key. */
  adapterKey: string;
  /** Whether the adapter is a software renderer (not tuned unless `mode` is `force`). */
  software: boolean;
  mode: GpuTuneMode;
  run: TuneRunner;
  /** Timing budget in ms (0: the engine's default, 250 ms). */
  budgetMs?: number;
}

async function readCache(): Promise<CacheFile> {
  const c = (await readAnswers(CACHE_FILE)) as CacheFile | null;
  return c && c.version === FILE_VERSION && typeof c.adapters === "object" && c.adapters !== null ? c : { version: FILE_VERSION, adapters: {} };
}

/** The summary `engine.model.gpuTune` shows. */
function summary(r: RustReport, mode: GpuTuneMode): GpuTuneInfo {
  const shapes = r.entries.map(([, e]) => ({
    format: e.format,
    cols: e.cols,
    wg: e.shape.wg,
    tpr: e.shape.tpr,
    tuned: e.shape.wg !== e.default.wg || e.shape.tpr !== e.default.tpr,
    speedup: e.best_ms > 0 ? e.default_ms / e.best_ms : 1,
  }));
  const info: GpuTuneInfo = { mode, shapes, cached: r.entries.length > 0 && r.entries.every(([, e]) => e.cached === true), ms: r.ms };
  if (r.skipped) info.skipped = r.skipped;
  return info;
}

/** Tunes (or takes from the store) the matvec shapes of the loaded WebGPU engine. */
export async function tuneGpu(o: TuneGpuOptions): Promise<GpuTuneInfo> {
  if (o.mode === "off") return { mode: "off", shapes: [], cached: false, ms: 0, skipped: "gpuTune: off" };
  // The engine cannot tell a software adapter in the browser (wgpu reports no device type there).
  if (o.software && o.mode !== "force") return { mode: o.mode, shapes: [], cached: false, ms: 0, skipped: "software adapter: not tuned (gpuTune: force tunes it)" };
  const cache = await readCache();
  const mine = cache.adapters[o.adapterKey] ?? {};
  const report = JSON.parse(await o.run(JSON.stringify(mine), o.mode === "force", o.budgetMs ?? 0)) as RustReport;
  const fresh = report.entries.filter(([, e]) => !e.cached);
  if (fresh.length) {
    for (const [k, e] of fresh) mine[k] = { ...e, cached: false };
    cache.adapters[o.adapterKey] = mine;
    await writeAnswers(CACHE_FILE, cache);
  }
  return summary(report, o.mode);
}
