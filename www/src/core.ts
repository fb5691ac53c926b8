/**
 * The engine core: hosts one wasm `WasmEngine`, feeds it the model's bytes from the weight store,
 * runs generations one at a time, and moves to the CPU when the GPU device is lost. It runs in
 * the Worker (`worker.ts`) or, with `worker: false`, in the caller's realm.
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
import type { HearthWasmModule, WasmEngine, WasmExports, WasmModelInfo, WasmStep } from "./wasm-api.js";
import { chooseBuild, type BuildChoice } from "./wasm-build.js";

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

interface LoadedWasm {
  mod: HearthWasmModule;
  exports: WasmExports;
  /** Threads the CPU backend computes on (the pool size in the threaded build, else 1). */
  threads: number;
}

const modules = new Map<string, Promise<LoadedWasm>>();
/**
 * Imports and initialises the wasm-bindgen module once per realm and URL; with `poolSize` > 0
 * (the threaded build) also starts its thread pool, once: a later call keeps the first pool.
 */
export function loadWasmModule(moduleUrl: string, poolSize = 0): Promise<LoadedWasm> {
  let p = modules.get(moduleUrl);
  if (!p) {
    p = (async () => {
      let mod: HearthWasmModule;
      try {
        mod = (await import(/* webpackIgnore: true */ moduleUrl)) as HearthWasmModule;
      } catch (e) {
        throw new HearthError("INTERNAL", `could not load the Hearth wasm module from ${moduleUrl} (run make wasm): ${e instanceof Error ? e.message : String(e)}`);
      }
      const wasmUrl = new URL("hearth_bg.wasm", moduleUrl);
      let exports: WasmExports;
      try {
        exports = await mod.default({ module_or_path: wasmUrl });
        // The pool must start before anything touches rayon, or rayon settles on one thread.
        if (poolSize > 0) await startThreadPool(mod, moduleUrl, poolSize);
      } catch (e) {
        throw new HearthError("INTERNAL", `could not start the Hearth wasm module ${moduleUrl}: ${e instanceof Error ? e.message : String(e)}`);
      }
      return { mod, exports, threads: mod.cpu_threads() };
    })();
    p.catch(() => modules.delete(moduleUrl));
    modules.set(moduleUrl, p);
  }
  return p;
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

/** Loads the build `choice` names; in `auto` mode a threaded build that fails to start falls back to the baseline. */
async function loadBuild(choice: BuildChoice, config: LoadConfig): Promise<LoadedWasm & { choice: BuildChoice }> {
  try {
    return { ...(await loadWasmModule(choice.moduleUrl, choice.poolSize)), choice };
  } catch (e) {
    if (choice.build !== "threads" || config.threads !== "auto") throw e;
    const fallback: BuildChoice = {
      ...chooseBuild("cpu", false, urlsOf(config)),
      reason: `single thread: the threaded build did not start (${HearthError.from(e).message})`,
    };
    return { ...(await loadWasmModule(fallback.moduleUrl)), choice: fallback };
  }
}

function urlsOf(config: LoadConfig): { baseline: string; threads: string } {
  return { baseline: config.wasmModuleUrl, threads: config.wasmThreadsModuleUrl };
}

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

/** The in-realm engine. Create with {@link EngineCore.load}. */
export class EngineCore implements Driver {
  private engine: WasmEngine;
  private readonly queue = new SerialQueue();
  private disposed = false;

  private constructor(
    private readonly mod: HearthWasmModule,
    engine: WasmEngine,
    public info: ModelInfo,
    private readonly source: ModelSource,
    private readonly config: LoadConfig,
    private readonly store: WeightStore,
    private readonly hooks: CoreHooks,
  ) {
    this.engine = engine;
  }

  /** Loads a model (registry id or URL): store or network → wasm engine on the chosen backend. */
  static async load(modelIdOrUrl: string, config: LoadConfig, hooks: CoreHooks = {}, store: WeightStore = defaultStore): Promise<EngineCore> {
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
    let wasm = await loadBuild(chooseBuild(backend, config.threads, urlsOf(config)), config);
    let engine: WasmEngine;
    try {
      engine = await wasm.mod.WasmEngine.create(backend, config.contextSize);
    } catch (e) {
      const err = HearthError.from(e);
      if (backend !== "webgpu" || config.backend === "webgpu") throw err;
      backend = "cpu";
      reason = `WebGPU unavailable: ${err.message}`;
      wasm = await loadBuild(chooseBuild(backend, config.threads, urlsOf(config)), config);
      engine = await wasm.mod.WasmEngine.create("cpu", config.contextSize).catch((e2: unknown) => {
        throw HearthError.from(e2);
      });
    }
    const { mod, exports } = wasm;
    const wasStored = await store.has(source.id);
    let info: WasmModelInfo;
    try {
      info = await feedFromStore(engine, store, source, { evict: config.evict, hooks });
    } catch (e) {
      engine.free();
      throw e;
    }
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
      wasmBuild: wasm.choice.build,
      threads: backend === "cpu" ? wasm.threads : 1,
      threadsReason: wasm.choice.reason,
      bytes: (await store.get(source.id))?.bytes ?? source.bytes ?? 0,
      fromStore: wasStored,
      loadMs: performance.now() - t0,
      wasmMemoryBytes: exports?.memory?.buffer.byteLength ?? 0,
    };
    hooks.onProgress?.({ phase: "ready", loaded: modelInfo.bytes, total: modelInfo.bytes });
    return new EngineCore(mod, engine, modelInfo, source, config, store, hooks);
  }

  private live(): WasmEngine {
    if (this.disposed) throw new HearthError("BAD_REQUEST", "the engine was unloaded");
    return this.engine;
  }

  /** Runs one generation (queued behind any other request). */
  generate(req: GenerateRequest, onDelta: (text: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
    const queuedAt = performance.now();
    return this.queue.run(async () => {
      let emitted = false;
      const emit = (t: string) => {
        emitted = true;
        onDelta(t);
      };
      try {
        return await this.generateNow(req, emit, signal, queuedAt);
      } catch (e) {
        const err = HearthError.from(e);
        if (err.code !== "DEVICE_LOST" || this.info.backend !== "webgpu") throw err;
        await this.fallBackToCpu(err.message);
        if (emitted) {
          throw new HearthError("DEVICE_LOST", `the GPU device was lost mid-generation (${err.message}); the engine now runs on the CPU: retry the request`);
        }
        return this.generateNow(req, emit, signal, queuedAt);
      }
    }, signal);
  }

  private async generateNow(req: GenerateRequest, onDelta: (text: string) => void, signal: AbortSignal | undefined, queuedAt: number): Promise<GenerateResult> {
    throwIfAborted(signal);
    const engine = this.live();
    const { kind, ...rest } = req;
    const body = stripUndefined(rest as Record<string, unknown>);
    const t0 = performance.now();
    try {
      if (kind === "chat") engine.start_chat(JSON.stringify(body));
      else engine.start_completion(JSON.stringify(body));
    } catch (e) {
      throw HearthError.from(e);
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
    signal?.addEventListener("abort", onAbort);
    try {
      for (;;) {
        let step: WasmStep;
        try {
          step = JSON.parse(await engine.step()) as WasmStep;
        } catch (e) {
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
          const end = performance.now();
          return {
            text,
            finish_reason: step.finish_reason === "length" ? "length" : "stop",
            usage,
            timings: { queued_ms: t0 - queuedAt, first_token_ms: (firstTokenAt || end) - t0, total_ms: end - t0 },
          };
        }
        // Let the Worker's message loop run (abort arrives as a message).
        await yieldToEventLoop();
        if (signal?.aborted) onAbort();
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
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
    const engine = await this.mod.WasmEngine.create("cpu", this.config.contextSize).catch((e: unknown) => {
      throw HearthError.from(e);
    });
    await feedFromStore(engine, this.store, this.source, { evict: false, hooks: {} });
    this.engine = engine;
    const why = `GPU device lost: ${reason}`;
    // The CPU engine lives in the module already loaded (the baseline build): one thread.
    this.info = { ...this.info, backend: "cpu", backendReason: why, threads: this.mod.cpu_threads(), threadsReason: "single thread: moved to the CPU after a GPU loss" };
    this.hooks.onBackendChange?.({ from, to: "cpu", reason: why });
  }

  countTokens(text: string): Promise<number> {
    return this.queue.run(async () => {
      try {
        return this.live().count_tokens(text);
      } catch (e) {
        throw HearthError.from(e);
      }
    });
  }

  countTokensBatch(texts: string[]): Promise<number[]> {
    return this.queue.run(async () => {
      try {
        const engine = this.live();
        return texts.map((t) => engine.count_tokens(t));
      } catch (e) {
        throw HearthError.from(e);
      }
    });
  }

  renderChat(messages: ChatMessage[]): Promise<string> {
    return this.queue.run(async () => {
      try {
        return this.live().render_chat(JSON.stringify(messages));
      } catch (e) {
        throw HearthError.from(e);
      }
    });
  }

  reset(): Promise<void> {
    return this.queue.run(async () => this.live().reset());
  }

  dispose(): Promise<void> {
    return this.queue.run(async () => {
      if (this.disposed) return;
      this.disposed = true;
      this.engine.free();
    });
  }
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * Streams the model's bytes (store, else network) into `engine`, in small pieces so neither JS
 * nor wasm ever holds the whole file. A file the engine rejects is deleted from the store.
 */
async function feedFromStore(
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
      for (let off = 0; off < chunk.length; off += FEED_PIECE) {
        engine.feed(chunk.subarray(off, Math.min(off + FEED_PIECE, chunk.length)));
      }
      fed += chunk.length;
    }
  } catch (e) {
    const err = HearthError.from(e);
    if (err.code === "UNSUPPORTED_MODEL") await store.delete(source.id);
    throw err;
  }
  onProgress?.({ phase: "upload", loaded: fed, total: total || fed });
  try {
    if (!engine.header_done()) throw new HearthError("UNSUPPORTED_MODEL", `${source.url} ended before its GGUF header did`);
    return JSON.parse(engine.finish_load()) as WasmModelInfo;
  } catch (e) {
    const err = HearthError.from(e, "UNSUPPORTED_MODEL");
    if (err.code === "UNSUPPORTED_MODEL") await store.delete(source.id);
    throw err;
  }
}
