/**
 * The wasm module instances of this realm (page or Worker): imported and initialised once per
 * URL and shared by every engine in the realm, until one of them traps. A trap (a Rust panic
 * aborts: `WebAssembly.RuntimeError`) leaves the instance's memory and borrows in whatever state
 * the panic found them, so the instance is marked dead and the next load imports a fresh one.
 */

import { HearthError } from "./errors.js";
import type { HearthWasmModule, WasmExports } from "./wasm-api.js";
import { chooseBuild, type BuildChoice } from "./wasm-build.js";
import { importWasmBuild, wasmBuildLabel, type WasmAsset, type WasmBuildName } from "./assets.js";
import type { LoadConfig } from "./types.js";

/** One initialised instance of a wasm-bindgen module. */
export interface LoadedWasm {
  mod: HearthWasmModule;
  exports: WasmExports;
  /** Threads the CPU backend computes on (the pool size in the threaded build, else 1). */
  threads: number;
  /** Which build, from where (`moduleUrl` undefined: the package's own, located by `assets.ts`). */
  build: WasmBuildName;
  moduleUrl: string | undefined;
  poolSize: number;
  /** The module cache key (`wasmBuildLabel`). */
  label: string;
  /** Set once the instance trapped: nothing may call into it again. */
  dead: boolean;
}

const modules = new Map<string, Promise<LoadedWasm>>();
const instances = new Map<string, number>();

/**
 * Imports and initialises a wasm build once per realm (the package's own, or the module at
 * `moduleUrl`: `assets.ts`); with `poolSize` > 0 (the threaded build) also starts its thread
 * pool, once: a later call keeps the first pool. After {@link markDead} the next call imports a
 * new instance (the module URL with a fresh fragment is a new ES module, so its glue holds a new
 * `WebAssembly.Instance`).
 */
export function loadWasmModule(build: WasmBuildName, moduleUrl: string | undefined, poolSize = 0): Promise<LoadedWasm> {
  const label = wasmBuildLabel(build, moduleUrl);
  let p = modules.get(label);
  if (!p) {
    const n = instances.get(label) ?? 0;
    instances.set(label, n + 1);
    p = (async () => {
      let asset: WasmAsset;
      try {
        asset = await importWasmBuild(build, moduleUrl, n);
      } catch (e) {
        throw new HearthError("INTERNAL", `could not load the Hearth wasm module from ${label} (run make wasm): ${e instanceof Error ? e.message : String(e)}`);
      }
      const { mod, wasmUrl } = asset;
      let exports: WasmExports;
      try {
        exports = await mod.default({ module_or_path: wasmUrl });
        // The pool must start before anything touches rayon, or rayon settles on one thread.
        if (poolSize > 0) await startThreadPool(mod, label, poolSize);
      } catch (e) {
        throw new HearthError("INTERNAL", `could not start the Hearth wasm module ${label}: ${e instanceof Error ? e.message : String(e)}`);
      }
      return { mod, exports, threads: mod.cpu_threads(), build, moduleUrl, poolSize, label, dead: false };
    })();
    p.catch(() => {
      if (modules.get(label) === p) modules.delete(label);
    });
    modules.set(label, p);
  }
  return p;
}

/** Marks an instance dead (it trapped): later loads of its URL import a fresh instance. */
export function markDead(w: LoadedWasm): void {
  w.dead = true;
  const p = modules.get(w.label);
  if (p) {
    p.then((cur) => {
      if (cur === w && modules.get(w.label) === p) modules.delete(w.label);
    }, () => undefined);
  }
}

/** Whether `e` is a wasm trap (a panic, an out-of-bounds access, a stack overflow in wasm). */
export function isTrap(e: unknown): boolean {
  return typeof WebAssembly !== "undefined" && e instanceof WebAssembly.RuntimeError;
}

/**
 * The INTERNAL error for a trap, with the panic message when the build keeps it (an export
 * `last_panic_message` set by the panic hook), else the trap's own message.
 */
export function trapError(w: LoadedWasm, e: unknown): HearthError {
  let text = "";
  const f = (w.mod as unknown as { last_panic_message?: () => string | undefined | null }).last_panic_message;
  if (typeof f === "function") {
    try {
      text = f() ?? "";
    } catch {
      text = "";
    }
  }
  return crashError(text, e instanceof Error ? e.message : String(e));
}

/** The INTERNAL error of a crash: the panic text where there is one, else the trap's. */
export function crashError(panic: string, trap: string): HearthError {
  return new HearthError("INTERNAL", `the engine crashed: ${panic || trap}${panic ? ` (${trap})` : ""}; it is discarded and re-created on the next request`);
}

/** What a thread-pool Worker posts on its trap channel when it traps (`rayon_worker_helpers.js`). */
export interface PoolTrapReport {
  type: "hearth_pool_trap";
  /** The panic hook's text (`last_panic_message`), "" when there is none. */
  panic: string;
  /** The trap (`RuntimeError: unreachable`). */
  trap: string;
}

/** The INTERNAL error for a pool Worker's trap report (`report` as received: it is checked). */
export function poolTrapError(report: unknown): HearthError | null {
  const r = report as Partial<PoolTrapReport> | null;
  if (r?.type !== "hearth_pool_trap") return null;
  const panic = typeof r.panic === "string" ? r.panic : "";
  const trap = typeof r.trap === "string" ? r.trap : "a trap";
  return crashError(panic, `${trap} in a thread-pool Worker`);
}

const POOL_TRAP_CHANNEL = Symbol.for("hearth.poolTrapChannel");

/**
 * Names the BroadcastChannel this realm's thread pool reports a trap on (before the pool
 * starts: each pool Worker gets the name then). A panic on a pool thread leaves the engine's
 * thread blocked in wasm, waiting for that thread's task, so only someone outside this realm can
 * notice it: the page's `worker-client.ts` listens on the channel, ends this Worker and
 * re-creates it. In-page engines never run the threaded build (it needs a Worker).
 */
export function setPoolTrapChannel(name: string | undefined): void {
  (globalThis as unknown as Record<symbol, string | undefined>)[POOL_TRAP_CHANNEL] = name;
}

type TrapListener = (e: unknown) => void;
const trapListeners = new Set<TrapListener>();
let watching = false;

/**
 * Calls `listener` for each trap nobody caught: a panic inside an `async` wasm export (the
 * engine's `step()`) traps in the microtask that polls its future, so the export's promise
 * never settles and the trap only shows as the realm's `error` event. Returns the unsubscribe.
 */
export function onUncaughtTrap(listener: TrapListener): () => void {
  if (!watching) {
    watching = true;
    const scope = globalThis as unknown as EventTarget;
    scope.addEventListener?.("error", (ev: Event) => {
      const err = (ev as ErrorEvent).error;
      if (!isTrap(err) || trapListeners.size === 0) return;
      ev.preventDefault(); // handled: the engine reports it and is re-created
      for (const l of [...trapListeners]) l(err);
    });
  }
  trapListeners.add(listener);
  return () => trapListeners.delete(listener);
}

/** How long the thread pool may take to start before the load gives up on it. */
const POOL_START_MS = 60_000;

/**
 * Starts the threaded build's pool. wasm-bindgen-rayon spawns its Workers from a `blob:` URL and
 * waits for each to report ready, so a Worker that never starts (a Content-Security-Policy
 * without `worker-src blob:`) would leave it waiting forever: a CSP violation or a timeout ends
 * the wait with an error instead.
 */
async function startThreadPool(mod: HearthWasmModule, moduleUrl: string, poolSize: number): Promise<void> {
  if (!mod.initThreadPool) throw new Error(`${moduleUrl} is not the threaded build (no initThreadPool)`);
  const scope = globalThis as unknown as EventTarget;
  let onViolation: ((e: Event) => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const blocked = new Promise<never>((_, reject) => {
    onViolation = (e) => {
      const v = e as Event & { violatedDirective?: string; blockedURI?: string };
      reject(new Error(`the Content-Security-Policy blocks the pool's Workers (${v.violatedDirective ?? "?"}: ${v.blockedURI ?? "?"})`));
    };
    scope.addEventListener?.("securitypolicyviolation", onViolation);
    timer = setTimeout(() => reject(new Error(`the thread pool did not start within ${POOL_START_MS / 1000} s`)), POOL_START_MS);
  });
  try {
    await Promise.race([mod.initThreadPool(poolSize), blocked]);
  } finally {
    if (onViolation) scope.removeEventListener?.("securitypolicyviolation", onViolation);
    clearTimeout(timer);
  }
}

/** How long `stopThreadPools` waits for the pool's Workers to leave (they take milliseconds). */
const POOL_STOP_MS = 1000;

type StopPoolWorkers = (stop: () => void, timeoutMs: number) => Promise<number>;

/**
 * Stops the thread pool of every threaded instance in this realm and marks the instance dead:
 * the engine Worker's last act at `unload()`, before the page terminates it. Each pool thread
 * leaves rayon's loop and its Worker closes itself (`scripts/rayon_worker_helpers.js`), so the
 * page's `terminate()` finds no Worker still running script. Otherwise Chromium lets a pool
 * Worker (blocked in rayon's wait, so always running script) go on for 2 s before ending it by
 * force, and the whole shared memory stays resident that long after `unload()`. Resolves with
 * how many pool Workers closed (within {@link POOL_STOP_MS}).
 */
export async function stopThreadPools(): Promise<number> {
  const stopWorkers = (globalThis as unknown as Record<symbol, StopPoolWorkers | undefined>)[Symbol.for("hearth.stopPoolWorkers")];
  let closed = 0;
  for (const p of [...modules.values()]) {
    const w = await p.catch(() => null);
    if (!w || w.poolSize === 0 || w.dead || !w.mod.stopThreadPool) continue;
    markDead(w);
    const stop = w.mod.stopThreadPool.bind(w.mod);
    if (typeof stopWorkers === "function") closed += await stopWorkers(stop, POOL_STOP_MS);
    else stop();
  }
  return closed;
}

/** Loads the build `choice` names; in `auto` mode a threaded build that fails to start falls back to the baseline. */
export async function loadBuild(choice: BuildChoice, config: LoadConfig): Promise<{ wasm: LoadedWasm; choice: BuildChoice }> {
  try {
    return { wasm: await loadWasmModule(choice.build, choice.moduleUrl, choice.poolSize), choice };
  } catch (e) {
    if (choice.build !== "threads" || config.threads !== "auto") throw e;
    const fallback: BuildChoice = {
      ...chooseBuild("cpu", false, urlsOf(config)),
      reason: `single thread: the threaded build did not start (${HearthError.from(e).message})`,
    };
    return { wasm: await loadWasmModule(fallback.build, fallback.moduleUrl), choice: fallback };
  }
}

export function urlsOf(config: LoadConfig): { baseline?: string | undefined; threads?: string | undefined } {
  return { baseline: config.wasmModuleUrl, threads: config.wasmThreadsModuleUrl };
}
