/** The messages between the page (`worker-client.ts`) and the engine Worker (`worker.ts`). */

import type { HearthErrorCode, HearthErrorDetails } from "./errors.js";
import type { LoadProgress } from "./store.js";
import type { BackendChange, ChatMessage, GenerateRequest, GenerateResult, LoadConfig, ModelInfo } from "./types.js";

/** Page → Worker. Every request has an `id`; its replies carry the same `id`. */
export type ToWorker =
  /** `poolTrapChannel`: the BroadcastChannel the threaded build's pool reports a trap on (`worker-client.ts`). */
  | { id: number; type: "load"; model: string | readonly string[]; config: LoadConfig; poolTrapChannel?: string | undefined }
  | { id: number; type: "generate"; request: GenerateRequest }
  | { id: number; type: "countTokens"; text: string }
  | { id: number; type: "countTokensBatch"; texts: string[] }
  | { id: number; type: "renderChat"; messages: ChatMessage[] }
  | { id: number; type: "prepareConstraints" }
  | { id: number; type: "reset" }
  /** Frees the engine and stops the thread pool; the result: how many pool Workers closed. */
  | { id: number; type: "dispose" }
  /** Aborts the request `target` (a load or a generate). */
  | { id: number; type: "abort"; target: number };

/** A HearthError flattened for structured clone. */
export interface WireError {
  code: HearthErrorCode;
  message: string;
  details: HearthErrorDetails;
}

/** Worker → page. */
export type FromWorker =
  | { id: number; type: "progress"; progress: LoadProgress }
  | { id: number; type: "delta"; text: string }
  | { id: number; type: "result"; value: ModelInfo | GenerateResult | number | number[] | string | null }
  | { id: number; type: "error"; error: WireError }
  /** Not tied to a request (id 0). */
  | { id: 0; type: "backendchange"; change: BackendChange; info: ModelInfo }
  /** The engine trapped (a Rust panic): the page terminates this Worker and starts a new one. */
  | { id: 0; type: "crashed"; message: string };
