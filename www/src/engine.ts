/** `Engine`: the entry point. Loads a model once, then chat, summarize and Prompt API sessions. */

import { ChatCompletions } from "./chat.js";
import { EngineCore, type CoreHooks, type Driver } from "./core.js";
import { HearthError, throwIfAborted } from "./errors.js";
import { HearthLanguageModel, type LanguageModelCreateOptions } from "./language-model.js";
import { DEFAULT_MODEL_ID } from "./registry.js";
import type { LoadProgress } from "./store.js";
import { HearthSummarizer, type SummarizerOptions } from "./summarizer.js";
import type { Backend, BackendChange, BackendPreference, ChatMessage, GenerateRequest, GenerateResult, GpuTuneMode, LoadConfig, ModelInfo, PromptCacheOptions } from "./types.js";
import { checkThreadsOption } from "./wasm-build.js";
import { WorkerDriver } from "./worker-client.js";
import { HearthRewriter, HearthWriter, type WritingOptions } from "./writing.js";

/** Options of {@link Engine.load}. */
export interface EngineLoadOptions {
  /** Byte progress of the load: `download` (network), `cache` (store), `upload`, `ready`. */
  onProgress?: (p: LoadProgress) => void;
  /** `auto` (default): the faster of WebGPU and the CPU here (a software or missing adapter: the CPU; a hardware one: a timed probe, cached per adapter; see `model.backendReason`). */
  backend?: BackendPreference;
  /** Aborts the load with `ABORTED`; bytes already stored are kept for a later resume. */
  signal?: AbortSignal;
  /**
   * Expected sha256 of the file (overrides the registry's). Mismatch → `INTEGRITY`. A model split
   * into parts (`model-00001-of-00003.gguf`, …) takes an array: one hash per part, in order.
   */
  sha256?: string | string[];
  /** Let the store delete least-recently-used models when storage is short (default false). */
  evict?: boolean;
  /** Run the engine in a dedicated Worker (default true). `false` runs it in this realm. */
  worker?: boolean;
  /** Context window in tokens (default 2048). */
  contextSize?: number;
  /**
   * CPU threads. Default: the threaded wasm build with one thread per logical core where it can
   * run (the CPU backend, in a Worker, on a cross-origin isolated page, in a browser with wasm
   * threads and relaxed SIMD), else the single-thread build. `false`: always single-thread.
   * A number: that many threads, or `BAD_REQUEST` where the threaded build cannot run.
   * Applies to the CPU backend; the WebGPU backend always runs the single-thread build.
   * `engine.model.wasmBuild`, `.threads` and `.threadsReason` say what was chosen and why.
   */
  threads?: number | false;
  /** URL of the wasm-bindgen module (default: the package's `pkg/hearth.js`, located as bundlers expect: `assets.ts`). */
  wasmUrl?: string | URL;
  /** URL of the threaded wasm-bindgen module (default: the package's `pkg-mt/hearth.js`). */
  wasmThreadsUrl?: string | URL;
  /** URL of the engine worker script (default: the package's `dist/worker.js`; another origin's starts through a `blob:` shim). */
  workerUrl?: string | URL;
  /** Where registry model files are served (default `/models/` on the page's origin). */
  modelBaseUrl?: string | URL;
  /** Called when the engine moves to another backend (also an event, `backendchange`). */
  onBackendChange?: (c: BackendChange) => void;
  /**
   * Persist the KV cache of prompt prefixes across page loads (default off): a chat's leading
   * system messages (or a request's `cache_prefix` messages), the summarizer's instructions, a
   * Prompt API session's `initialPrompts`. The next page load that sends the same prefix to the
   * same model, backend and build restores it from the store instead of prefilling it:
   * `usage.prompt_tokens_details.cached_tokens` counts it. `true` or `{maxBytes}` (default 256 MiB,
   * least recently used entries deleted first). `prompt-cache.ts` has the details.
   */
  promptCache?: boolean | PromptCacheOptions;
  /**
   * WebGPU only: time a few launch shapes of the decode matvec (threads per workgroup and per
   * row) for this model's weights on this adapter and keep the fastest, remembered per adapter
   * in the store (`auto`, the default: hardware adapters only, ~0.3 s on the first load of a
   * model shape); `force`: tune a software adapter too; `off`: the built-in shapes.
   * `engine.model.gpuTune` says what was used.
   */
  gpuTune?: GpuTuneMode;
}

/** The `backendchange` event. */
export class BackendChangeEvent extends Event {
  constructor(readonly change: BackendChange) {
    super("backendchange");
  }
}

/** A loaded model. Requests are queued and run one at a time, never interleaved. */
export class Engine extends EventTarget {
  /** OpenAI-shaped chat: `engine.chat.completions.create({...})`. */
  readonly chat: { readonly completions: ChatCompletions };
  private driverRef: Driver | null;

  private constructor(driver: Driver) {
    super();
    this.driverRef = driver;
    this.chat = { completions: new ChatCompletions(() => this.driver) };
  }

  /**
   * Loads a model by registry id (default: the registry's default model) or URL: from the
   * store when it is there (no network), else downloaded (resuming a partial download) and
   * stored. The URL of a part of a model split by `gguf-split` (`model-00001-of-00003.gguf`)
   * loads every part, from the same directory, each stored on its own, the URL's query string kept
   * on every part. Parts signed one by one (each URL with its own query string) are given as a
   * list of URLs, first part first: `Engine.load([part1Url, part2Url, part3Url])`. Rejects with a
   * {@link HearthError} (`NETWORK`, `INTEGRITY`, `QUOTA`, `UNSUPPORTED_MODEL`, `INVALID_MODEL`
   * (also a split model's part missing or wrong), `ABORTED`, `DEVICE_LOST` when WebGPU was
   * demanded and is missing).
   */
  static async load(modelIdOrUrl: string | readonly string[] = DEFAULT_MODEL_ID, opts: EngineLoadOptions = {}): Promise<Engine> {
    throwIfAborted(opts.signal);
    const config: LoadConfig = {
      backend: opts.backend ?? "auto",
      contextSize: opts.contextSize ?? 2048,
      evict: opts.evict ?? false,
      threads: checkThreadsOption(opts.threads),
    };
    if (opts.promptCache !== undefined && opts.promptCache !== false) {
      const pc = opts.promptCache === true ? {} : opts.promptCache;
      if (typeof pc !== "object" || pc === null) throw new HearthError("BAD_REQUEST", "promptCache must be a boolean or {maxBytes}");
      if (pc.maxBytes !== undefined && (!Number.isSafeInteger(pc.maxBytes) || pc.maxBytes < 0)) throw new HearthError("BAD_REQUEST", `promptCache.maxBytes must be a non-negative integer, got ${pc.maxBytes}`);
      config.promptCache = pc.maxBytes === undefined ? {} : { maxBytes: pc.maxBytes };
    }
    if (opts.gpuTune !== undefined) {
      if (!["auto", "force", "off"].includes(opts.gpuTune)) throw new HearthError("BAD_REQUEST", "gpuTune must be auto, force or off");
      config.gpuTune = opts.gpuTune;
    }
    if (opts.wasmUrl !== undefined) config.wasmModuleUrl = new URL(opts.wasmUrl, globalThis.location?.href).href;
    if (opts.wasmThreadsUrl !== undefined) config.wasmThreadsModuleUrl = new URL(opts.wasmThreadsUrl, globalThis.location?.href).href;
    if (!["auto", "webgpu", "cpu"].includes(config.backend)) throw new HearthError("BAD_REQUEST", `backend must be auto, webgpu or cpu`);
    if (opts.sha256 !== undefined) {
      const sums = Array.isArray(opts.sha256) ? opts.sha256 : [opts.sha256];
      if (!sums.every((h) => typeof h === "string" && /^[0-9a-fA-F]{64}$/.test(h))) throw new HearthError("BAD_REQUEST", "sha256 must be 64 hex digits (or an array of them, one per part of a split model)");
      config.sha256 = Array.isArray(opts.sha256) ? sums.map((h) => h.toLowerCase()) : (opts.sha256 as string).toLowerCase();
    }
    if (opts.modelBaseUrl !== undefined) config.modelBaseUrl = new URL(opts.modelBaseUrl, globalThis.location?.href).href;
    let engine: Engine | null = null;
    const hooks: CoreHooks = {
      onBackendChange: (c) => {
        opts.onBackendChange?.(c);
        engine?.dispatchEvent(new BackendChangeEvent(c));
      },
    };
    if (opts.onProgress) hooks.onProgress = opts.onProgress;
    if (opts.signal) hooks.signal = opts.signal;
    const absolute = (u: string) => (u.includes("/") ? new URL(u, globalThis.location?.href).href : u);
    if (typeof modelIdOrUrl !== "string" && (!Array.isArray(modelIdOrUrl) || !modelIdOrUrl.every((u) => typeof u === "string"))) {
      throw new HearthError("BAD_REQUEST", "the model is a registry id, a URL, or a list of URLs (the parts of a split model)");
    }
    const model = typeof modelIdOrUrl === "string" ? absolute(modelIdOrUrl) : modelIdOrUrl.map(absolute);
    let driver: Driver;
    if (opts.worker ?? true) {
      if (typeof Worker !== "function") throw new HearthError("BAD_REQUEST", "this context has no Worker; pass worker: false");
      driver = await WorkerDriver.load(opts.workerUrl, model, config, hooks);
    } else {
      driver = await EngineCore.load(model, config, hooks);
    }
    engine = new Engine(driver);
    return engine;
  }

  private get driver(): Driver {
    if (!this.driverRef) throw new HearthError("BAD_REQUEST", "the engine was unloaded");
    return this.driverRef;
  }

  /** The model and how it runs (backend, context size, load time…). */
  get model(): ModelInfo {
    return this.driver.info;
  }

  /** Where inference runs now. */
  get backend(): Backend {
    return this.driver.info.backend;
  }

  /** A summarizer shaped like the WICG Summarizer API. */
  summarizer(opts: SummarizerOptions = {}): Promise<HearthSummarizer> {
    return HearthSummarizer.create(this.driver, opts);
  }

  /** A Prompt API (`LanguageModel`) session. */
  languageModel(opts: LanguageModelCreateOptions = {}): Promise<HearthLanguageModel> {
    return HearthLanguageModel.create(this.driver, opts);
  }

  /** A `Writer` session (WICG Writing Assistance APIs shape). */
  writer(opts: WritingOptions = {}): Promise<HearthWriter> {
    return HearthWriter.create(this.driver, opts);
  }

  /** A `Rewriter` session (WICG Writing Assistance APIs shape). */
  rewriter(opts: WritingOptions = {}): Promise<HearthRewriter> {
    return HearthRewriter.create(this.driver, opts);
  }

  /** A raw text completion (no chat template), for base models and tests. */
  complete(prompt: string, opts: Omit<Extract<GenerateRequest, { kind: "completion" }>, "kind" | "prompt"> & { signal?: AbortSignal; onDelta?: (t: string) => void } = {}): Promise<GenerateResult> {
    const { signal, onDelta, ...sampling } = opts;
    return this.driver.generate({ kind: "completion", prompt, ...sampling }, onDelta ?? (() => undefined), signal);
  }

  /** Tokens in `text` for this model's tokenizer. */
  countTokens(text: string): Promise<number> {
    return this.driver.countTokens(text);
  }

  /** The model's chat template applied to `messages` (the exact prompt text the model sees). */
  renderChat(messages: ChatMessage[]): Promise<string> {
    return this.driver.renderChat(messages);
  }

  /**
   * Builds what constrained output needs for this model's vocabulary (the grammar engine's
   * token trie) now, instead of on the first request with `response_format`, tools or a
   * `responseConstraint` (about 1.5 s for SmolLM2's 49k tokens in wasm, more for Qwen's 151k).
   * Once per loaded model; resolves to the milliseconds spent (0 when already built).
   */
  prepareConstraints(): Promise<number> {
    return this.driver.prepareConstraints();
  }

  /** Forgets the KV cache (the next request prefills from scratch). */
  reset(): Promise<void> {
    return this.driver.reset();
  }

  /** Frees the engine (and ends its Worker). The stored weights stay. */
  async unload(): Promise<void> {
    const d = this.driverRef;
    this.driverRef = null;
    await d?.dispose();
  }
}
