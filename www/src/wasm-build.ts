/**
 * Which of the two wasm builds (`wasm-pack.toml`) a load uses, and why:
 * - `baseline` (`pkg/`): SIMD128, one thread, WebGPU and CPU backends; runs everywhere.
 * - `threads` (`pkg-mt/`): CPU backend only, a rayon pool of Web Workers over shared memory,
 *   relaxed SIMD. Needs a cross-origin isolated page (COOP/COEP, for `SharedArrayBuffer`), a
 *   Worker to run in (the engine's thread blocks while the pool works, which a page's main
 *   thread may not do) and relaxed SIMD (Chromium 114+, Firefox 120+; not Safari yet).
 */

import { HearthError } from "./errors.js";
import type { Backend } from "./types.js";

/** The wasm build an engine runs on. */
export type WasmBuild = "baseline" | "threads";

/**
 * `(func (result v128) (f32x4.relaxed_madd (i8x16.splat 1) (i8x16.splat 2) (i8x16.splat 3)))`:
 * validates only where the browser has relaxed SIMD (the opcode the threaded build uses).
 */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 19, 1, 17, 0, 65, 1, 253, 15, 65, 2, 253, 15, 65, 3, 253, 15, 253, 133, 2, 11,
]);
/** `(memory 1 1 shared)`: validates where the browser has wasm threads. */
const SHARED_MEMORY_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 5, 4, 1, 3, 1, 1]);

function validates(bytes: Uint8Array<ArrayBuffer>): boolean {
  try {
    return WebAssembly.validate(bytes);
  } catch {
    return false;
  }
}

/** Whether this realm can run the threaded build; the reason when it cannot. */
export function threadsSupport(): { ok: boolean; reason: string } {
  const g = globalThis as { crossOriginIsolated?: boolean; WorkerGlobalScope?: unknown };
  if (g.crossOriginIsolated !== true) return { ok: false, reason: "the page is not cross-origin isolated (no COOP/COEP headers)" };
  if (typeof SharedArrayBuffer === "undefined") return { ok: false, reason: "SharedArrayBuffer is unavailable" };
  if (typeof g.WorkerGlobalScope === "undefined") return { ok: false, reason: "the engine runs on the page's main thread (worker: false), which may not block" };
  if (!validates(SHARED_MEMORY_PROBE)) return { ok: false, reason: "this browser has no WebAssembly threads" };
  if (!validates(RELAXED_SIMD_PROBE)) return { ok: false, reason: "this browser has no WebAssembly relaxed SIMD" };
  return { ok: true, reason: "cross-origin isolated, WebAssembly threads and relaxed SIMD available" };
}

/** The build chosen for a load: its module URL, the thread pool size (0: none) and why. */
export interface BuildChoice {
  build: WasmBuild;
  /** The build's module URL when the load overrides it (`wasmUrl`/`wasmThreadsUrl`); else the package's own (`assets.ts`). */
  moduleUrl?: string | undefined;
  poolSize: number;
  reason: string;
}

/**
 * Picks the build for `backend` (WebGPU: always the baseline). On the CPU, `threads`: `"auto"`
 * (the threaded build with one thread per logical core where it can run, else the baseline),
 * `false` (baseline), or a pool size (the threaded build, `BAD_REQUEST` where it cannot run).
 */
export function chooseBuild(backend: Backend, threads: number | false | "auto", urls: { baseline?: string | undefined; threads?: string | undefined }): BuildChoice {
  const baseline = (reason: string): BuildChoice => ({ build: "baseline", moduleUrl: urls.baseline, poolSize: 0, reason });
  if (threads === false) return baseline("single thread requested (threads: false)");
  if (backend !== "cpu") return baseline("WebGPU backend: CPU threads do not apply");
  const support = threadsSupport();
  if (!support.ok) {
    if (threads !== "auto") throw new HearthError("BAD_REQUEST", `threads: ${threads} is not possible here: ${support.reason}`);
    return baseline(`single thread: ${support.reason}`);
  }
  if (threads === "auto") {
    const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
    return { build: "threads", moduleUrl: urls.threads, poolSize: Math.max(1, Math.floor(cores)), reason: `${support.reason}: one thread per logical core` };
  }
  return { build: "threads", moduleUrl: urls.threads, poolSize: threads, reason: `${support.reason}: ${threads} threads requested` };
}

/** Validates the `threads` option of a load (`BAD_REQUEST` otherwise). */
export function checkThreadsOption(threads: unknown): number | false | "auto" {
  if (threads === undefined || threads === "auto") return "auto";
  if (threads === false) return false;
  if (typeof threads === "number" && Number.isInteger(threads) && threads >= 1 && threads <= 256) return threads;
  throw new HearthError("BAD_REQUEST", `threads must be false or an integer 1..256, got ${String(threads)}`);
}
