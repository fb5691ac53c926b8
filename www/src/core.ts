/**
 * The engine core: hosts one wasm `WasmEngine`, feeds it the model's bytes from the weight store,
 * runs generations one at a time, and moves to the CPU when the GPU device is lost. It runs in
 * the Worker (`worker.ts`) or, with `worker: false`, in the caller's realm. A trap (a Rust panic)
 * marks the engine dead: the request reports `INTERNAL` with the panic text, and the engine is
 * re-created on a fresh wasm instance on the next request (`revive`), or, in the Worker, the
 * page replaces the whole Worker (`worker-client.ts`).
 */

import { chooseBackend, probeWebGpu } from "./backend-choice.js";
import { probeBackends, probeFormat, probeReason } from "./backend-probe.js";
import { tuneGpu } from "./backend-tune.js";
import { HearthError, throwIfAborted } from "./errors.js";
import { findModel, resolveParts, type ModelSource } from "./registry.js";
import { SerialQueue } from "./serial-queue.js";
import { WeightStore, defaultStore, type LoadProgress } from "./store.js";
import { sha256Hex } from "./sha256.js";
import { runGeneration } from "./token-loop.js";
import type { BackendChange, ChatMessage, GenerateRequest, GenerateResult, GpuTuneInfo, GpuTuneMode, LoadConfig, ModelInfo } from "./types.js";
import { PromptCache, prefixMessageCount, type PreparedPrefix } from "./prompt-cache.js";
import { checkGenerateRequest } from "./validate.js";
import type { WasmEngine } from "./wasm-api.js";
import { chooseBuild } from "./wasm-build.js";
import { createEngine, feedFromStore } from "./wasm-engine.js";
import { isTrap, loadBuild, loadWasmModule, markDead, trapError, urlsOf, type LoadedWasm } from "./wasm-instance.js";

export { probeWebGpu } from "./backend-choice.js";

/** What the public API needs from an engine, in-thread or in a Worker. */
export interface Driver {
  readonly info: ModelInfo;
  generate(req: GenerateRequest, onDelta: (text: string) => void, signal?: AbortSignal): Promise<GenerateResult>;
  countTokens(text: string): Promise<number>;
  /** Tokens of each text, in one call (one Worker round trip). */
  countTokensBatch(texts: string[]): Promise<number[]>;
  renderChat(messages: ChatMessage[]): Promise<string>;
  /** Builds constrained decoding's vocabulary tables now; the ms spent (0 when already built). */
  prepareConstraints(): Promise<number>;
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

/** Callbacks of a load. */
export interface CoreHooks {
  onProgress?: (p: LoadProgress) => void;
  onBackendChange?: (c: BackendChange) => void;
  signal?: AbortSignal;
}

/** Options of an {@link EngineCore} beyond the load's. */
export interface CoreOptions {
  /**
   * After a trap, re-create the engine on a fresh wasm instance on the next request (the
   * in-page engine). `false` (in the Worker): stay dead; the page discards the whole Worker.
   */
  revive?: boolean;
}

/** The in-realm engine. Create with {@link EngineCore.load}. */
export class EngineCore implements Driver {
  private readonly queue = new SerialQueue();
  private disposed = false;
  /** The INTERNAL error of the trap that killed the engine, until it is re-created. */
  crashed: HearthError | null = null;
  /** Aborts the generation running now (unload stops it). */
  private running: AbortController | null = null;
  /** The persisted prompt cache (`config.promptCache`), when the model's sha256 is known. */
  private promptCache: PromptCache | null = null;

  private constructor(
    private wasm: LoadedWasm,
    private engine: WasmEngine,
    public info: ModelInfo,
    /** The model's file, or the parts of a split model in order. */
    private readonly sources: ModelSource[],
    private readonly config: LoadConfig,
    private readonly store: WeightStore,
    private readonly hooks: CoreHooks,
    private readonly opts: CoreOptions,
  ) {}

  /** Loads a model (registry id or URL): store or network → wasm engine on the chosen backend. */
  static async load(modelIdOrUrl: string | readonly string[], config: LoadConfig, hooks: CoreHooks = {}, store: WeightStore = defaultStore, opts: CoreOptions = { revive: true }): Promise<EngineCore> {
    const t0 = performance.now();
    const { signal } = hooks;
    throwIfAborted(signal);
    if (!Number.isInteger(config.contextSize) || config.contextSize < 16) {
      throw new HearthError("BAD_REQUEST", `contextSize must be an integer >= 16, got ${config.contextSize}`);
    }
    const resolveOpts: { sha256?: string | string[]; modelBaseUrl?: string } = {};
    if (config.sha256 !== undefined) resolveOpts.sha256 = config.sha256;
    if (config.modelBaseUrl !== undefined) resolveOpts.modelBaseUrl = config.modelBaseUrl;
    const sources = resolveParts(modelIdOrUrl, resolveOpts);
    const source = sources[0] as ModelSource;
    let { backend, reason } = await chooseBackend(config.backend, probeWebGpu, (adapterKey) => measureBackends(adapterKey, config, source));
    let { wasm, choice } = await loadBuild(chooseBuild(backend, config.threads, urlsOf(config)), config);
    let engine: WasmEngine;
    try {
      engine = await createEngine(wasm, backend, config.contextSize);
    } catch (e) {
      const err = HearthError.from(e);
      if (backend !== "webgpu" || config.backend === "webgpu" || wasm.dead) throw err;
      backend = "cpu";
      reason = `WebGPU unavailable: ${err.message}`;
      ({ wasm, choice } = await loadBuild(chooseBuild(backend, config.threads, urlsOf(config)), config));
      engine = await createEngine(wasm, "cpu", config.contextSize);
    }
    const wasStored = (await Promise.all(sources.map((s) => store.has(s.id)))).every(Boolean);
    const info = await feedFromStore(wasm, engine, store, sources, { evict: config.evict, hooks });
    const stored = await Promise.all(sources.map((s) => store.get(s.id)));
    const modelInfo: ModelInfo = {
      id: source.id,
      url: source.url,
      arch: info.arch,
      name: info.name,
      n_ctx: info.n_ctx,
      n_vocab: info.n_vocab,
      has_chat_template: info.has_chat_template,
      backend,
      backendReason: reason,
      wasmBuild: choice.build,
      threads: backend === "cpu" ? wasm.threads : 1,
      threadsReason: choice.reason,
      bytes: sources.reduce((sum, s, i) => sum + (stored[i]?.bytes ?? s.bytes ?? 0), 0),
      fromStore: wasStored,
      loadMs: performance.now() - t0,
      wasmMemoryBytes: wasm.exports?.memory?.buffer.byteLength ?? 0,
    };
    if (backend === "webgpu") modelInfo.gpuTune = await tuneEngine(engine, config.gpuTune ?? "auto");
    hooks.onProgress?.({ phase: "ready", loaded: modelInfo.bytes, total: modelInfo.bytes });
    const core = new EngineCore(wasm, engine, modelInfo, sources, config, store, hooks, opts);
    core.promptCache = promptCacheFor(config, await modelSha256(sources, stored), modelInfo);
    return core;
  }

  /** The engine, re-created first when a trap killed it (and this core may revive). */
  private async live(): Promise<WasmEngine> {
    if (this.disposed) throw new HearthError("BAD_REQUEST", "the engine was unloaded");
    if (this.crashed || this.wasm.dead) {
      if (!this.opts.revive) throw this.crashed ?? new HearthError("INTERNAL", "the engine's wasm instance crashed");
      await this.revive();
    }
    return this.engine;
  }

  /** A fresh wasm instance and engine, fed the model from the store (no download). */
  private async revive(): Promise<void> {
    const wasm = await loadWasmModule(this.wasm.build, this.wasm.moduleUrl, this.wasm.poolSize);
    const engine = await createEngine(wasm, this.info.backend, this.config.contextSize);
    await feedFromStore(wasm, engine, this.store, this.sources, { evict: false, hooks: {} });
    // The shapes tuned at load (from the store now: nothing is timed again).
    if (this.info.backend === "webgpu") await tuneEngine(engine, this.config.gpuTune ?? "auto");
    this.wasm = wasm;
    this.engine = engine;
    this.crashed = null;
  }

  /** The HearthError for `e` thrown by a wasm call; a trap kills the engine. */
  private fail(e: unknown): HearthError {
    if (!isTrap(e)) return HearthError.from(e);
    const err = trapError(this.wasm, e);
    this.crashed = err;
    markDead(this.wasm);
    return err;
  }

  /** Runs `f` on the engine now (in the queue); wasm errors and traps become HearthErrors. */
  private async call<T>(f: (engine: WasmEngine) => T): Promise<T> {
    const engine = await this.live();
    try {
      return f(engine);
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** Runs one generation (queued behind any other request). */
  generate(req: GenerateRequest, onDelta: (text: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
    try {
      checkGenerateRequest(req);
    } catch (e) {
      return Promise.reject(e);
    }
    const queuedAt = performance.now();
    return this.queue.run(async () => {
      let emitted = false;
      const emit = (t: string) => {
        emitted = true;
        onDelta(t);
      };
      // Unload aborts the generation running now, whoever started it.
      const ac = new AbortController();
      const onOuter = () => ac.abort(signal?.reason);
      if (signal?.aborted) ac.abort(signal.reason);
      signal?.addEventListener("abort", onOuter, { once: true });
      this.running = ac;
      try {
        try {
          return await this.generateNow(req, emit, ac.signal, queuedAt);
        } catch (e) {
          const err = HearthError.from(e);
          if (err.code !== "DEVICE_LOST" || this.info.backend !== "webgpu") throw err;
          await this.fallBackToCpu(err.message);
          if (emitted) {
            throw new HearthError("DEVICE_LOST", `the GPU device was lost mid-generation (${err.message}); the engine now runs on the CPU: retry the request`);
          }
          return await this.generateNow(req, emit, ac.signal, queuedAt);
        }
      } finally {
        this.running = null;
        signal?.removeEventListener("abort", onOuter);
      }
    }, signal);
  }

  private async generateNow(req: GenerateRequest, onDelta: (text: string) => void, signal: AbortSignal, queuedAt: number): Promise<GenerateResult> {
    throwIfAborted(signal);
    const engine = await this.live();
    if (req.kind !== "chat") return runGeneration(engine, req, onDelta, signal, queuedAt, (e) => this.fail(e));
    const prefix = await this.preparePrefix(engine, req);
    const { cache_prefix: _, ...chat } = req;
    const r = await runGeneration(engine, chat, onDelta, signal, queuedAt, (e) => this.fail(e));
    if (prefix) {
      // The prefix a miss prefilled just before the generation is work of this request.
      r.usage.cached_tokens = Math.max(0, r.usage.cached_tokens - prefix.prefilled);
      await this.storePrefix(engine, prefix);
    }
    return r;
  }

  /** Restores the request's prefix from the persisted prompt cache (`prompt-cache.ts`). A store
   *  that fails (no OPFS, a read error) only costs the reuse; a trap kills the engine as usual. */
  private async preparePrefix(engine: WasmEngine, req: Extract<GenerateRequest, { kind: "chat" }>): Promise<PreparedPrefix | null> {
    if (!this.promptCache) return null;
    try {
      return await this.promptCache.prepare(engine, req.messages, prefixMessageCount(req));
    } catch (e) {
      if (isTrap(e)) throw this.fail(e);
      return null;
    }
  }

  /** Writes a prefix the store did not have (after its request, so it never delays a first token). */
  private async storePrefix(engine: WasmEngine, prefix: PreparedPrefix): Promise<void> {
    try {
      await this.promptCache?.store(engine, prefix);
    } catch (e) {
      if (isTrap(e)) throw this.fail(e);
    }
  }

  /** Re-creates the engine on the CPU from the stored bytes (no download) after a GPU loss. */
  private async fallBackToCpu(reason: string): Promise<void> {
    const from = this.info.backend;
    try {
      this.engine.free();
    } catch {
      // The lost device may already have torn the engine down.
    }
    const engine = await createEngine(this.wasm, "cpu", this.config.contextSize);
    await feedFromStore(this.wasm, engine, this.store, this.sources, { evict: false, hooks: {} });
    this.engine = engine;
    const why = `GPU device lost: ${reason}`;
    // The CPU engine lives in the module already loaded (the baseline build): one thread.
    this.promptCache = promptCacheFor(this.config, this.promptCache?.modelSha256 ?? null, { ...this.info, backend: "cpu", wasmBuild: this.wasm.build, threads: 1 });
    this.info = { ...this.info, backend: "cpu", backendReason: why, threads: this.wasm.mod.cpu_threads(), threadsReason: "single thread: moved to the CPU after a GPU loss" };
    this.hooks.onBackendChange?.({ from, to: "cpu", reason: why });
  }

  countTokens(text: string): Promise<number> {
    return this.queue.run(() => this.call((e) => e.count_tokens(text)));
  }

  countTokensBatch(texts: string[]): Promise<number[]> {
    return this.queue.run(() => this.call((e) => texts.map((t) => e.count_tokens(t))));
  }

  renderChat(messages: ChatMessage[]): Promise<string> {
    return this.queue.run(() => this.call((e) => e.render_chat(JSON.stringify(messages))));
  }

  prepareConstraints(): Promise<number> {
    return this.queue.run(() => this.call((e) => e.prepare_constraints()));
  }

  reset(): Promise<void> {
    return this.queue.run(() => this.call((e) => e.reset()));
  }

  /** Frees the engine; a generation running now is aborted (it rejects `ABORTED` within a token). */
  dispose(): Promise<void> {
    if (!this.disposed) this.running?.abort(new HearthError("ABORTED", "the engine was unloaded"));
    return this.queue.run(async () => {
      if (this.disposed) return;
      this.disposed = true;
      if (!this.wasm.dead) this.engine.free();
    });
  }
}

/** The model's sha256 (null when unknown): its file's, or for a split model the sha256 of its parts' hashes in order. */
async function modelSha256(sources: ModelSource[], stored: ({ sha256: string | null } | null)[]): Promise<string | null> {
  const sums = sources.map((s, i) => stored[i]?.sha256 ?? s.sha256 ?? null);
  if (sums.some((h) => h === null)) return null;
  if (sums.length === 1) return sums[0] as string;
  return sha256Hex(new TextEncoder().encode(sums.join("\n")));
}

/** The prompt cache of a loaded model: keyed by its sha256 (none known: no cache), backend, build, threads and context. */
function promptCacheFor(config: LoadConfig, sha256: string | null, info: Pick<ModelInfo, "backend" | "wasmBuild" | "threads" | "n_ctx">): PromptCache | null {
  if (!config.promptCache || !sha256) return null;
  return new PromptCache(sha256, `${info.backend}|${info.wasmBuild}|${info.threads}|${info.n_ctx}`, config.promptCache);
}

/** The WebGPU autotune of a loaded engine (`backend-tune.ts`); a failure leaves the built-in
 *  shapes in place and says why (the tune never fails a load). */
async function tuneEngine(engine: WasmEngine, mode: GpuTuneMode): Promise<GpuTuneInfo> {
  try {
    const p = await probeWebGpu();
    return await tuneGpu({ adapterKey: p.adapterKey ?? "", software: p.software, mode, run: (c, f, b) => engine.tune_gpu(c, f, b) });
  } catch (e) {
    return { mode, shapes: [], cached: false, ms: 0, skipped: `tune failed: ${HearthError.from(e).message}` };
  }
}

/**
 * `auto` on a hardware WebGPU adapter: WebGPU (in the baseline build) against the CPU path this
 * load would take (the threaded build where it runs), timed by `backend-probe.ts` and cached per
 * adapter. Both builds stay loaded for the load that follows.
 */
async function measureBackends(adapterKey: string, config: LoadConfig, source: ModelSource): Promise<{ backend: "webgpu" | "cpu"; reason: string }> {
  const gpuWasm = (await loadBuild(chooseBuild("webgpu", config.threads, urlsOf(config)), config)).wasm;
  const cpuWasm = (await loadBuild(chooseBuild("cpu", config.threads, urlsOf(config)), config)).wasm;
  const r = await probeBackends({
    adapterKey,
    cpuKey: `${cpuWasm.build}, ${cpuWasm.threads} thread${cpuWasm.threads === 1 ? "" : "s"}`,
    format: probeFormat(findModel(source.id)?.quant),
    run: (backend, ...args) => (backend === "webgpu" ? gpuWasm : cpuWasm).mod.probe_backend(backend, ...args),
  });
  return { backend: r.winner, reason: probeReason(r) };
}
