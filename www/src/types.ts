/** Types shared by the engine core, the Worker protocol and the public API. */

import type { LoadProgress } from "./store.js";

/** Where inference runs. */
export type Backend = "webgpu" | "cpu";
/** What the caller asks for: `auto` = the faster of WebGPU and the CPU on this device (measured once per adapter). */
export type BackendPreference = "auto" | Backend;

/** A chat message as the engine takes it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Sampling and length controls (omitted fields take the engine's defaults). */
export interface SamplingOptions {
  /** Most new tokens to generate. */
  max_tokens?: number;
  /** 0 = greedy. */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  /** Penalty on recently generated tokens (1 = none). */
  repeat_penalty?: number;
  /** Makes sampling reproducible. */
  seed?: number;
  /** Generation stops before any of these strings (at most 4). */
  stop?: string[];
  /** The output must match this (constrained decoding); see {@link OutputConstraint}. */
  constraint?: OutputConstraint;
}

/**
 * What constrained decoding holds the output to: a JSON Schema (compact JSON with `", "` and
 * `": "` separators), a regular expression (Rust `regex` syntax, whole output), or a Lark
 * grammar (llguidance's dialect). An invalid or unsupported one fails with `BAD_REQUEST` before
 * any token; one the model cannot finish within `max_tokens` ends with `finish_reason: "length"`.
 */
export type OutputConstraint = { json_schema: Record<string, unknown> } | { regex: string } | { lark: string };

/** One generation request: a chat, or a raw completion of a prompt. */
export type GenerateRequest =
  | ({
      kind: "chat";
      messages: ChatMessage[];
      /**
       * How many leading messages form the prompt's reusable prefix for the persisted prompt
       * cache (`Engine.load({promptCache})`); default: the leading system messages.
       * 0: do not use the persisted cache for this request.
       */
      cache_prefix?: number;
      /** The reply starts with this text; the model continues it (Prompt API `prefix`). */
      assistant_prefix?: string;
    } & SamplingOptions)
  | ({ kind: "completion"; prompt: string } & SamplingOptions);

/** Token accounting of one generation. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  /** Prompt tokens whose KV cache entries were reused from the previous request. */
  cached_tokens: number;
  /** A constrained request only: where the grammar's time went (engine `ConstraintUsage`; ms from `performance.now()`). */
  constraint?: ConstraintUsage;
}

/** The grammar's share of a constrained request (for benchmarks). */
export interface ConstraintUsage {
  /** Building the vocabulary's token trie: the first constrained request of an engine only (else 0). */
  vocab_ms: number;
  /** Compiling this request's constraint (before the prefill). */
  compile_ms: number;
  /** Grammar time while generating (checking the argmax, masks, advancing, forced tokens). */
  grammar_ms: number;
  /** Full-vocabulary masks computed (greedy: only when the argmax is not allowed). */
  masks: number;
  /** Time of those masks (part of `grammar_ms`). */
  mask_ms: number;
  /** Tokens the grammar forced (fed without sampling; part of `completion_tokens`). */
  forced_tokens: number;
}

/** The outcome of one generation. */
export interface GenerateResult {
  text: string;
  finish_reason: "stop" | "length";
  usage: Usage;
  /** Milliseconds from the request's start to its first token, and for the whole request. */
  timings: { queued_ms: number; first_token_ms: number; total_ms: number };
}

/** What a loaded engine knows about its model. */
export interface ModelInfo {
  /** Registry id, or the URL of an unregistered model. */
  id: string;
  url: string;
  /** GGUF `general.architecture`. */
  arch: string;
  /** GGUF `general.name`. */
  name: string;
  /** The context window the engine was created with, in tokens. */
  n_ctx: number;
  n_vocab: number;
  has_chat_template: boolean;
  /** Where inference runs now. */
  backend: Backend;
  /** Why this backend (e.g. "WebGPU unavailable: no adapter"). */
  backendReason: string;
  /** The wasm build the engine runs on: `threads` (a Worker pool, relaxed SIMD) or `baseline`. */
  wasmBuild: "baseline" | "threads";
  /** Threads the engine computes on (1 on WebGPU and in the baseline build). */
  threads: number;
  /** Why this build and thread count (e.g. "single thread: the page is not cross-origin isolated…"). */
  threadsReason: string;
  /** File size in bytes. */
  bytes: number;
  /** Whether the load read the weights from the store (no network). */
  fromStore: boolean;
  /** Milliseconds the load took. */
  loadMs: number;
  /** Size of the wasm linear memory after the load. It never shrinks, so this is the load's
   *  peak; shared by every engine in the same realm (Worker or page). */
  wasmMemoryBytes: number;
  /** WebGPU only: the decode matvec's launch shapes on this adapter (`Engine.load({gpuTune})`). */
  gpuTune?: GpuTuneInfo;
}

/** `Engine.load({gpuTune})`: tune the WebGPU matvec on a hardware adapter (`auto`, the
 *  default), also on a software one (`force`), or never (`off`: the built-in shapes). */
export type GpuTuneMode = "auto" | "force" | "off";

/** What the WebGPU autotune used (`www/src/backend-tune.ts`). */
export interface GpuTuneInfo {
  mode: GpuTuneMode;
  /** Per weight class (block format, row length): threads per workgroup and per row, whether
   *  that differs from the built-in shape, and the measured speed-up over it (1 when not). */
  shapes: { format: string; cols: number; wg: number; tpr: number; tuned: boolean; speedup: number }[];
  /** Every shape came from the store (nothing was timed on this load). */
  cached: boolean;
  /** Milliseconds the tune took in the engine (compiles and uploads included). */
  ms: number;
  /** Why nothing was tuned (a software adapter, `off`, or an error). */
  skipped?: string;
}

/** Fired when the engine moves to another backend (GPU device lost → CPU). */
export interface BackendChange {
  from: Backend;
  to: Backend;
  reason: string;
}

/** Options of a load, minus the callbacks (these travel to the Worker). */
/** Options of the persisted prompt cache (`Engine.load({promptCache})`, `prompt-cache.ts`). */
export interface PromptCacheOptions {
  /** Cap on all stored prefixes together, in bytes (default 256 MiB); least recently used go first. */
  maxBytes?: number;
}

export interface LoadConfig {
  backend: BackendPreference;
  /** Persist the KV cache of prompt prefixes across page loads (off when absent). */
  promptCache?: PromptCacheOptions;
  /** The WebGPU matvec autotune (default `auto`). */
  gpuTune?: GpuTuneMode;
  /** Context window in tokens (default 2048; capped by the model's). */
  contextSize: number;
  /** Lowercase hex: the file's, or one per part of a split model. */
  sha256?: string | string[];
  evict: boolean;
  /** `auto`: the threaded build where it can run; `false`: single thread; a number: that many threads. */
  threads: number | false | "auto";
  /** URL of the baseline build's `hearth.js` (absolute) when overridden; default: the package's `pkg/` (`assets.ts`). */
  wasmModuleUrl?: string;
  /** URL of the threaded build's `hearth.js` (absolute) when overridden; default: the package's `pkg-mt/`. */
  wasmThreadsModuleUrl?: string;
  /** Base URL of registry model files. */
  modelBaseUrl?: string;
}

export type { LoadProgress };
