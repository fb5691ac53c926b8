/**
 * The engine core: hosts one wasm `WasmEngine`, feeds it the model's bytes from the weight store,
 * runs generations one at a time, and moves to the CPU when the GPU device is lost. It runs in
 * the Worker (`worker.ts`) or, with `worker: false`, in the caller's realm. A trap (a Rust panic)
 * marks the engine dead: the request reports `INTERNAL` with the panic text, and the engine is
 * re-created on a fresh wasm instance on the next request (`revive`), or, in the Worker, the
 * page replaces the whole Worker (`worker-client.ts`).
 */

import { HearthError, abortError, throwIfAborted } from "./errors.js";
import { resolveModel, type ModelSource } from "./registry.js";
import { WeightStore, defaultStore, type LoadProgress } from "./store.js";
import type {
  Backend,
  BackendChange,
  ChatMessage,
  GenerateRequest,
  GenerateResult,
  LoadConfig,
  ModelInfo,
  Usage,
} from "./types.js";
import { PromptCache, prefixMessageCount, type PreparedPrefix } from "./prompt-cache.js";
import { checkGenerateRequest } from "./validate.js";
import type { WasmEngine, WasmModelInfo, WasmStep } from "./wasm-api.js";
import { chooseBuild } from "./wasm-build.js";
import { isTrap, loadBuild, loadWasmModule, markDead, onUncaughtTrap, trapError, urlsOf, type LoadedWasm } from "./wasm-instance.js";

/** What the public API needs from an engine, in-thread or in a Worker. */
export interface Driver {
  readonly info: ModelInfo;
  generate(req: GenerateRequest, onDelta: (text: string) => void, signal?: AbortSignal): Promise<GenerateResult>;
  countTokens(text: string): Promise<number>;
  /** Tokens of each text, in one call (one Worker round trip). */
  countTokensBatch(texts: string[]): Promise<number[]>;
  renderChat(messages: ChatMessage[]): Promise<string>;
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

/** Callbacks of a load. */
export interface CoreHooks {
  onProgress?: (p: LoadProgress) => void;
  onBackendChange?: (c: BackendChange) => void;
  signal?: AbortSignal;
}

/** Bytes handed to `feed()` at a time: the wasm side copies each piece, so keep them small. */
const FEED_PIECE = 1 << 20;

/** A macrotask break, so Worker messages (abort) are seen between tokens. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

/** A software WebGPU adapter (SwiftShader, llvmpipe): far slower than the wasm CPU backend. */
function softwareAdapterName(adapter: unknown): string | null {
  const a = adapter as { info?: AdapterInfoLike; isFallbackAdapter?: boolean };
  const info = a.info ?? {};
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
  const m = /swiftshader|llvmpipe|lavapipe|software/i.exec(text);
  if (m) return m[0];
  return info.isFallbackAdapter === true || a.isFallbackAdapter === true ? "fallback adapter" : null;
}

/**
 * Whether WebGPU gives an adapter here; the reason when it does not. `software` is true when
 * the adapter is a software renderer: `backend: "auto"` then runs on the CPU, which is faster
 * (measured in headless Chromium: SwiftShader 0.2 tok/s vs wasm CPU 17 tok/s on SmolLM2).
 */
export async function probeWebGpu(): Promise<{ ok: boolean; reason: string; software: boolean }> {
  const gpu = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (!gpu) return { ok: false, reason: "WebGPU unavailable: navigator.gpu is missing", software: false };
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { ok: false, reason: "WebGPU unavailable: no adapter", software: false };
    const soft = softwareAdapterName(adapter);
    return soft
      ? { ok: true, reason: `WebGPU adapter is a software renderer (${soft})`, software: true }
      : { ok: true, reason: "WebGPU adapter available", software: false };
  } catch (e) {
    return { ok: false, reason: `WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`, software: false };
  }
}

/** Runs tasks one after another; a task whose signal fires while it waits never starts. */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const prev = this.tail;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (!signal) return;
      onAbort = () => reject(abortError(signal));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    const result = prev.then(() => {
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      throwIfAborted(signal);
      return task();
    });
    this.tail = result.catch(() => undefined);
    // A waiting request rejects as soon as it is aborted; the queue still skips it in turn.
    return signal ? Promise.race([result, aborted]) : result;
  }
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
    private readonly source: ModelSource,
    private readonly config: LoadConfig,
    private readonly store: WeightStore,
    private readonly hooks: CoreHooks,
    private readonly opts: CoreOptions,
  ) {}

  /** Loads a model (registry id or URL): store or network → wasm engine on the chosen backend. */
  static async load(modelIdOrUrl: string, config: LoadConfig, hooks: CoreHooks = {}, store: WeightStore = defaultStore, opts: CoreOptions = { revive: true }): Promise<EngineCore> {
    const t0 = performance.now();
    const { signal } = hooks;
    throwIfAborted(signal);
    if (!Number.isInteger(config.contextSize) || config.contextSize < 16) {
      throw new HearthError("BAD_REQUEST", `contextSize must be an integer >= 16, got ${config.contextSize}`);
    }
    const resolveOpts: { sha256?: string; modelBaseUrl?: string } = {};
    if (config.sha256 !== undefined) resolveOpts.sha256 = config.sha256;
    if (config.modelBaseUrl !== undefined) resolveOpts.modelBaseUrl = config.modelBaseUrl;
    const source = resolveModel(modelIdOrUrl, resolveOpts);
    let backend: Backend;
    let reason: string;
    if (config.backend === "cpu") {
      backend = "cpu";
      reason = "CPU requested";
    } else {
      const probe = await probeWebGpu();
      if (probe.ok && probe.software && config.backend === "auto") {
        backend = "cpu";
        reason = `WebGPU unavailable: ${probe.reason}, slower than the CPU backend`;
      } else if (probe.ok) {
        backend = "webgpu";
        reason = config.backend === "webgpu" ? "WebGPU requested" : "WebGPU adapter available";
      } else if (config.backend === "webgpu") {
        throw new HearthError("DEVICE_LOST", probe.reason);
      } else {
        backend = "cpu";
        reason = probe.reason;
      }
    }
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
    const wasStored = await store.has(source.id);
    const info = await feedFromStore(wasm, engine, store, source, { evict: config.evict, hooks });
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
      bytes: (await store.get(source.id))?.bytes ?? source.bytes ?? 0,
      fromStore: wasStored,
      loadMs: performance.now() - t0,
      wasmMemoryBytes: wasm.exports?.memory?.buffer.byteLength ?? 0,
    };
    hooks.onProgress?.({ phase: "ready", loaded: modelInfo.bytes, total: modelInfo.bytes });
    const core = new EngineCore(wasm, engine, modelInfo, source, config, store, hooks, opts);
    core.promptCache = promptCacheFor(config, (await store.get(source.id))?.sha256 ?? source.sha256 ?? null, modelInfo);
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
    await feedFromStore(wasm, engine, this.store, this.source, { evict: false, hooks: {} });
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
    const { kind, ...rest } = req;
    const body = stripUndefined(rest as Record<string, unknown>);
    delete body.cache_prefix;
    const t0 = performance.now();
    const prefix = kind === "chat" ? await this.preparePrefix(engine, req) : null;
    try {
      if (kind === "chat") engine.start_chat(JSON.stringify(body));
      else engine.start_completion(JSON.stringify(body));
    } catch (e) {
      throw this.fail(e);
    }
    let text = "";
    let firstTokenAt = 0;
    let cancelled = false;
    const onAbort = () => {
      if (!cancelled) {
        cancelled = true;
        engine.cancel();
      }
    };
    signal.addEventListener("abort", onAbort);
    // A panic inside the async step() traps outside any call of ours: its promise never
    // settles and the trap only reaches the realm's error event.
    let trapped!: (e: unknown) => void;
    const trap = new Promise<never>((_, reject) => (trapped = reject));
    trap.catch(() => undefined);
    const unwatch = onUncaughtTrap((e) => trapped(e));
    try {
      for (;;) {
        let step: WasmStep;
        try {
          step = JSON.parse(await Promise.race([engine.step(), trap])) as WasmStep;
        } catch (e) {
          if (isTrap(e)) throw this.fail(e);
          if (cancelled) throw abortError(signal);
          throw HearthError.from(e);
        }
        if (step.delta) {
          if (!firstTokenAt) firstTokenAt = performance.now();
          text += step.delta;
          if (!cancelled) onDelta(step.delta);
        }
        if (step.done) {
          if (step.finish_reason === "cancelled" || cancelled) throw abortError(signal);
          const usage: Usage = step.usage ?? { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0 };
          // The prefix a miss prefilled just before the generation is work of this request.
          if (prefix) usage.cached_tokens = Math.max(0, usage.cached_tokens - prefix.prefilled);
          const end = performance.now();
          if (prefix) await this.storePrefix(engine, prefix);
          return {
            text,
            finish_reason: step.finish_reason === "length" ? "length" : "stop",
            usage,
            timings: { queued_ms: t0 - queuedAt, first_token_ms: (firstTokenAt || end) - t0, total_ms: end - t0 },
          };
        }
        // Let the Worker's message loop run (abort arrives as a message).
        await yieldToEventLoop();
        if (signal.aborted) onAbort();
      }
    } finally {
      unwatch();
      signal.removeEventListener("abort", onAbort);
    }
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
    await feedFromStore(this.wasm, engine, this.store, this.source, { evict: false, hooks: {} });
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

/** The prompt cache of a loaded model: keyed by its sha256 (none known: no cache), backend, build, threads and context. */
function promptCacheFor(config: LoadConfig, sha256: string | null, info: Pick<ModelInfo, "backend" | "wasmBuild" | "threads" | "n_ctx">): PromptCache | null {
  if (!config.promptCache || !sha256) return null;
  return new PromptCache(sha256, `${info.backend}|${info.wasmBuild}|${info.threads}|${info.n_ctx}`, config.promptCache);
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/** `WasmEngine.create` on `wasm`, its failures as HearthErrors (a trap marks the instance dead). */
async function createEngine(wasm: LoadedWasm, backend: Backend, contextSize: number): Promise<WasmEngine> {
  if (wasm.dead) throw new HearthError("INTERNAL", "the engine's wasm instance crashed");
  // create() is async: a trap inside it reaches only the realm's error event.
  let trapped!: (e: unknown) => void;
  const trap = new Promise<never>((_, reject) => (trapped = reject));
  trap.catch(() => undefined);
  const unwatch = onUncaughtTrap((e) => trapped(e));
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

/**
 * Streams the model's bytes (store, else network) into `engine`, in small pieces so neither JS
 * nor wasm ever holds the whole file. Whatever fails, the engine is freed before this rejects
 * (the store has already released its lock, reader and response body), and a file the engine
 * rejected, or crashed on, is deleted from the store: it is not kept as good.
 */
async function feedFromStore(
  wasm: LoadedWasm,
  engine: WasmEngine,
  store: WeightStore,
  source: ModelSource,
  opts: { evict: boolean; hooks: CoreHooks },
): Promise<WasmModelInfo> {
  const { signal, onProgress } = opts.hooks;
  let fed = 0;
  let total = source.bytes ?? 0;
  // reuseBuffer: each chunk is copied into wasm before the next is read.
  const openOpts: { evict: boolean; reuseBuffer: boolean; signal?: AbortSignal; onProgress: (p: LoadProgress) => void } = {
    evict: opts.evict,
    reuseBuffer: true,
    onProgress: (p) => {
      total = p.total;
      onProgress?.(p);
    },
  };
  if (signal) openOpts.signal = signal;
  try {
    for await (const chunk of store.open(source, openOpts)) {
      // The file's size (Content-Length or the stored size) before the first byte: the engine
      // then checks every tensor range against it as soon as the header is parsed.
      if (fed === 0 && total > 0) engine.set_total_size(total);
      for (let off = 0; off < chunk.length; off += FEED_PIECE) {
        engine.feed(chunk.subarray(off, Math.min(off + FEED_PIECE, chunk.length)));
      }
      fed += chunk.length;
    }
    onProgress?.({ phase: "upload", loaded: fed, total: total || fed });
    if (!engine.header_done()) throw new HearthError("UNSUPPORTED_MODEL", `${source.url} ended before its GGUF header did`);
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
    if (isTrap(e) || err.code === "UNSUPPORTED_MODEL" || err.code === "INVALID_MODEL") await store.delete(source.id);
    throw err;
  }
}
