/**
 * Hearth: private small language models in the browser.
 *
 * ```js
 * import { Engine } from "@hearth-ai/web";
 * const engine = await Engine.load("smollm2-135m-instruct-q4_1", { onProgress: console.log });
 * const r = await engine.chat.completions.create({ messages: [{ role: "user", content: "Hi" }] });
 * ```
 */

export { Engine, BackendChangeEvent, type EngineLoadOptions } from "./engine.js";
export { HearthError, type HearthErrorCode, type HearthErrorDetails } from "./errors.js";
export {
  ChatCompletions,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionCreateParams,
  type ChatCompletionMessageParam,
  type ChatCompletionStream,
  type CompletionUsage,
  type ChatCompletionMessage,
  type ChatCompletionMessageToolCall,
  type ChatCompletionTool,
  type ChatCompletionToolChoiceOption,
  type FinishReason,
  type ResponseFormat,
} from "./chat.js";
export { type ToolCallDelta, type JsonSchema } from "./tools.js";
export {
  HearthSummarizer,
  type SummarizerOptions,
  type SummarizeOptions,
  type SummarizeProgress,
  type SummaryRequest,
  type SummarizerType,
  type SummarizerFormat,
  type SummarizerLength,
  type SummarizerPrompts,
} from "./summarizer.js";
export {
  HearthLanguageModel,
  LANGUAGE_MODEL_PARAMS,
  type LanguageModelMessage,
  type LanguageModelPrompt,
  type LanguageModelCreateOptions,
  type LanguageModelPromptOptions,
  type LanguageModelTool,
} from "./language-model.js";
export { HearthWriter, HearthRewriter, type WritingOptions, type WriteOptions } from "./writing.js";
export { WeightStore, models, defaultStore, type LoadProgress, type StoredModel, type OpenOptions, type StoreOptions } from "./store.js";
export { REGISTRY, DEFAULT_MODEL_ID, findModel, resolveModel, resolveParts, type RegistryModel, type ModelSource } from "./registry.js";
export { Sha256, sha256Hex, type Sha256State } from "./sha256.js";
export { probeWebGpu } from "./core.js";
export { listPromptCache, clearPromptCache } from "./prompt-cache.js";
export type {
  Backend,
  BackendChange,
  BackendPreference,
  ChatMessage,
  GenerateResult,
  GpuTuneInfo,
  GpuTuneMode,
  ModelInfo,
  OutputConstraint,
  PromptCacheOptions,
  SamplingOptions,
  Usage,
} from "./types.js";
