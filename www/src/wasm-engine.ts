/**
 * One `WasmEngine` on a loaded wasm instance: creating it, and feeding it a model's bytes from
 * the weight store. Failures come out as HearthErrors; a trap marks the instance dead.
 */

import { HearthError } from "./errors.js";
import type { ModelSource } from "./registry.js";
import type { LoadProgress, WeightStore } from "./store.js";
import type { Backend } from "./types.js";
import type { WasmEngine, WasmModelInfo } from "./wasm-api.js";
import { isTrap, markDead, onUncaughtTrap, trapError, type LoadedWasm } from "./wasm-instance.js";

/** Bytes handed to `feed()` at a time: the wasm side copies each piece, so keep them small. */
const FEED_PIECE = 1 << 20;

/**
 * A promise that rejects with the next trap nobody caught in this realm, and the function that
 * stops watching. A panic inside an async export (`create()`, `step()`) traps outside any call
 * of ours: the export's promise never settles, so race it against this one.
 */
export function watchTraps(): { trap: Promise<never>; unwatch: () => void } {
  let trapped!: (e: unknown) => void;
  const trap = new Promise<never>((_, reject) => (trapped = reject));
  trap.catch(() => undefined);
  return { trap, unwatch: onUncaughtTrap((e) => trapped(e)) };
}

/** `WasmEngine.create` on `wasm`, its failures as HearthErrors (a trap marks the instance dead). */
export async function createEngine(wasm: LoadedWasm, backend: Backend, contextSize: number): Promise<WasmEngine> {
  if (wasm.dead) throw new HearthError("INTERNAL", "the engine's wasm instance crashed");
  const { trap, unwatch } = watchTraps();
  try {
    return await Promise.race([wasm.mod.WasmEngine.create(backend, contextSize), trap]);
  } catch (e) {
    if (!isTrap(e)) throw HearthError.from(e);
    markDead(wasm);
    throw trapError(wasm, e);
  } finally {
    unwatch();
  }
}

/** Callbacks of a feed. */
export interface FeedHooks {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

/**
 * Streams the model's bytes (store, else network) into `engine`, in small pieces so neither JS
 * nor wasm ever holds the whole file. A model split into parts (`sources` in order, each stored
 * on its own) is fed part after part, `next_part()` between them; progress counts all parts.
 * Whatever fails, the engine is freed before this rejects (the store has already released its
 * lock, reader and response body), and a file the engine rejected, or crashed on, is deleted
 * from the store (every part of a split model): it is not kept as good. A later part the server
 * does not have (404/410) is `INVALID_MODEL` naming it; the parts stored so far are kept.
 */
export async function feedFromStore(
  wasm: LoadedWasm,
  engine: WasmEngine,
  store: WeightStore,
  sources: readonly ModelSource[],
  opts: { evict: boolean; hooks: FeedHooks },
): Promise<WasmModelInfo> {
  const { signal, onProgress } = opts.hooks;
  const n = sources.length;
  // Each part's size as far as known: a progress bar over the whole model from the start.
  const sizes = n > 1 ? await Promise.all(sources.map(async (s) => (await store.size(s, signal)) ?? 0)) : [sources[0]?.bytes ?? 0];
  const sum = () => sizes.reduce((a, b) => a + b, 0);
  const partOf = (i: number) => (n > 1 ? { part: i + 1, parts: n } : {});
  let before = 0; // bytes of the parts fed already
  let i = 0;
  try {
    for (; i < n; i++) {
      const source = sources[i] as ModelSource;
      if (i > 0) engine.next_part();
      let fed = 0;
      // reuseBuffer: each chunk is copied into wasm before the next is read.
      const openOpts: { evict: boolean; reuseBuffer: boolean; signal?: AbortSignal; onProgress: (p: LoadProgress) => void } = {
        evict: opts.evict,
        reuseBuffer: true,
        onProgress: (p) => {
          sizes[i] = p.total;
          onProgress?.({ phase: p.phase, loaded: before + p.loaded, total: sum(), ...partOf(i) });
        },
      };
      if (signal) openOpts.signal = signal;
      for await (const chunk of store.open(source, openOpts)) {
        // The file's size (Content-Length or the stored size) before the first byte: the engine
        // then checks every tensor range against it as soon as the header is parsed.
        if (fed === 0 && (sizes[i] ?? 0) > 0) engine.set_total_size(sizes[i] as number);
        for (let off = 0; off < chunk.length; off += FEED_PIECE) {
          engine.feed(chunk.subarray(off, Math.min(off + FEED_PIECE, chunk.length)));
        }
        fed += chunk.length;
      }
      sizes[i] = fed;
      before += fed;
      if (i === 0 && !engine.header_done()) throw new HearthError("UNSUPPORTED_MODEL", `${source.url} ended before its GGUF header did`);
    }
    onProgress?.({ phase: "upload", loaded: before, total: before });
    return JSON.parse(engine.finish_load()) as WasmModelInfo;
  } catch (e) {
    let err: HearthError;
    if (isTrap(e)) {
      markDead(wasm);
      err = trapError(wasm, e);
    } else {
      err = HearthError.from(e);
      try {
        engine.free();
      } catch {
        // Freed already or unusable: nothing more to release.
      }
    }
    // A file the engine refused or crashed on is not kept (the next load downloads it again).
    if (isTrap(e) || err.code === "UNSUPPORTED_MODEL" || err.code === "INVALID_MODEL") {
      for (const s of sources) await store.delete(s.id);
    } else if (i > 0 && i < n && err.code === "NETWORK" && (err.details?.status === 404 || err.details?.status === 410)) {
      const url = (sources[i] as ModelSource).url;
      throw new HearthError("INVALID_MODEL", `the model is split into ${n} files and part ${i + 1} (${url}) is missing: HTTP ${String(err.details.status)}`, { status: err.details.status });
    } else if (i < n && (sources[i] as ModelSource).derived && new URL((sources[i] as ModelSource).url).search !== "" && err.code === "NETWORK" && (err.details?.status === 401 || err.details?.status === 403)) {
      const url = (sources[i] as ModelSource).url;
      throw new HearthError("NETWORK", `part ${i + 1} of ${n} (${url}) was refused: HTTP ${String(err.details.status)}. Its URL is the first part's with the number changed and the same query string; parts signed one by one are loaded from the list of their URLs: Engine.load([part1, part2, ...])`, err.details);
    }
    throw err;
  }
}
