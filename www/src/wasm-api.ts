/**
 * The shape of the wasm-bindgen module `make wasm` writes to `www/pkg/hearth.js` (from
 * `src/wasm/`). Hand-written; `tests/browser/wasm_api.test.mjs` checks it against the
 * generated `www/pkg/hearth.d.ts` so the two cannot drift apart, and the JSON messages below
 * are checked by shape against their Rust types (`src/wasm/protocol.rs`): `cargo test`
 * writes an example of each into `www/types-check/wasm-protocol.ts` typed as these
 * interfaces, and `tsc` (tests/browser/types.test.mjs) refuses a missing, extra or
 * differently typed field.
 *
 * Every method throws (or rejects with) a plain `{code, message}` object on failure.
 */

import type { ChatMessage, ConstraintUsage, SamplingOptions } from "./types.js";

/** The Rust engine, one model, one KV cache. */
export interface WasmEngine {
  /** Streams GGUF bytes in file order; throws INVALID_MODEL for malformed files, UNSUPPORTED_MODEL for files Hearth does not run. */
  /** Declares the file's total size before the first `feed` (tensor ranges are then checked as soon as the header is parsed). */
  set_total_size(bytes: number): void;
  feed(chunk: Uint8Array): void;
  /** Ends the current part of a split model and starts the next (`set_total_size` again before feeding it). */
  next_part(): void;
  /** Whether the header (architecture, tokenizer) has been parsed and accepted. */
  header_done(): boolean;
  /** Ends the load; returns JSON {@link WasmModelInfo}. */
  finish_load(): string;
  /** Starts a chat generation (JSON {@link WasmChatRequest}); returns the prompt token count. Reuses the KV cache for the shared prefix. */
  start_chat(request_json: string): number;
  /** Starts a raw completion (JSON {@link WasmCompletionRequest}); returns the prompt token count. */
  start_completion(request_json: string): number;
  /** Decodes one token; resolves to JSON {@link WasmStep}. */
  step(): Promise<string>;
  /** The current generation ends with finish_reason "cancelled". */
  cancel(): void;
  /** Tokens in `text` (no template, no special tokens added). */
  count_tokens(text: string): number;
  /** The chat template applied to `messages_json` (JSON {@link WasmRenderChatRequest}, with the assistant generation prompt). */
  render_chat(messages_json: string): string;
  /** Builds the vocabulary's tables for constrained decoding now (once per model); returns the ms spent (0 when already built). */
  prepare_constraints(): number;
  /** Forgets the KV cache. */
  reset(): void;
  /** Tokens of the reusable prefix of a chat (its first `n_messages` messages): the persisted prompt cache's key. */
  prompt_prefix(messages_json: string, n_messages: number): Uint32Array;
  /** Whether the KV cache holds these first tokens now. */
  holds_prefix(tokens: Uint32Array): boolean;
  /** A KV snapshot of `tokens` (held first in the cache) for the model file `model_id` (`src/engine/kv_snapshot.rs`). */
  export_prefix(tokens: Uint32Array, model_id: string): Promise<Uint8Array>;
  tune_gpu(cached_json: string, force: boolean, budget_ms: number): Promise<string>;
  /** Restores a snapshot; returns its token count. Throws BAD_REQUEST for a corrupted or mismatched one (nothing restored). */
  restore_prefix(bytes: Uint8Array, model_id: string): number;
  /** Prefills these tokens alone; returns how many the cache already held. */
  prefill_prefix(tokens: Uint32Array): number;
  /** Releases the engine's memory (wasm-bindgen). */
  free(): void;
}

/** The static side of the class. */
export interface WasmEngineClass {
  create(backend: "webgpu" | "cpu", n_ctx: number): Promise<WasmEngine>;
}

/** What `start_chat` takes (as JSON): omitted sampling fields take the engine's defaults. */
export type WasmChatRequest = { messages: ChatMessage[]; /** The reply starts with this text (Prompt API `prefix`). */ assistant_prefix?: string } & SamplingOptions;

/** What `start_completion` takes (as JSON). */
export type WasmCompletionRequest = { prompt: string } & SamplingOptions;

/** What `render_chat` takes (as JSON). */
export type WasmRenderChatRequest = ChatMessage[];

/** What `finish_load()` returns (parsed). */
export interface WasmModelInfo {
  arch: string;
  /** GGUF `general.name`; empty when the file has none. */
  name: string;
  n_ctx: number;
  n_vocab: number;
  has_chat_template: boolean;
  backend: string;
}

/** What `step()` returns (parsed). */
export interface WasmStep {
  delta: string;
  done: boolean;
  finish_reason?: "stop" | "length" | "cancelled";
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens: number; total_tokens: number; constraint?: ConstraintUsage };
}

/** What `probe_backend` answers (as JSON). */
export interface WasmProbe {
  backend: "webgpu" | "cpu";
  /** Mean milliseconds of one step. */
  ms_per_step: number;
  /** Steps timed. */
  steps: number;
  /** Bytes of weights one step reads. */
  bytes_per_step: number;
}

/** What the init function resolves to: the instance's exports (its linear memory among them). */
export interface WasmExports {
  memory: WebAssembly.Memory;
}

/** The ES module wasm-bindgen writes (`--target web`). */
export interface HearthWasmModule {
  default: (input?: { module_or_path: string | URL }) => Promise<WasmExports>;
  WasmEngine: WasmEngineClass;
  /** Threads the CPU backend computes on (call after `initThreadPool` in the threaded build). */
  cpu_threads(): number;
  /**
   * Times `products` matrix–vector products of `rows × cols` random `ty` weights plus one
   * readback, repeatedly for about `budget_ms` (`src/wasm/probe.rs`); resolves to JSON
   * {@link WasmProbe}. DEVICE_LOST without WebGPU, BAD_REQUEST for a bad shape or type.
   */
  probe_backend(backend: "webgpu" | "cpu", ty: string, rows: number, cols: number, products: number, budget_ms: number): Promise<string>;
  /** The threaded build only (`www/pkg-mt/`): starts a pool of `num_threads` Web Workers, once. */
  initThreadPool?: (num_threads: number) => Promise<void>;
  /** The threaded build only: ends the pool's threads for good (`wasm-instance.ts` `stopThreadPools`). */
  stopThreadPool?: () => void;
}
