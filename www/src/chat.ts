/** `engine.chat.completions.create`: OpenAI's Chat Completions shape over a {@link Driver}. */

import type { Driver } from "./core.js";
import { HearthError, abortError } from "./errors.js";
import type { ChatMessage, GenerateResult, SamplingOptions } from "./types.js";
import { checkSampling } from "./validate.js";

/** A message as OpenAI's API accepts it (string content, or text parts). */
export interface ChatCompletionMessageParam {
  role: "system" | "developer" | "user" | "assistant";
  content: string | Array<{ type: "text"; text: string }>;
  name?: string;
}

/** The request of {@link ChatCompletions.create}. Fields Hearth ignores are listed in the README. */
export interface ChatCompletionCreateParams {
  messages: ChatCompletionMessageParam[];
  /** Accepted for compatibility; the loaded model answers whatever is named. */
  model?: string;
  stream?: boolean | null;
  max_tokens?: number | null;
  /** OpenAI's newer name for `max_tokens`. */
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  /** Hearth extensions (llama.cpp-style sampling): `top_k`, `min_p`, `repeat_penalty`. */
  top_k?: number | null;
  min_p?: number | null;
  repeat_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  /** Only 1 is supported. */
  n?: number | null;
  /** Aborts the request: it rejects (or the stream throws) `ABORTED`. */
  signal?: AbortSignal;
}

/** Token usage, OpenAI-shaped. */
export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** A whole completion (`stream` false). */
export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: "assistant"; content: string; refusal: null };
    finish_reason: "stop" | "length";
    logprobs: null;
  }>;
  usage: CompletionUsage;
}

/** One streamed chunk (`stream: true`); the last has `finish_reason` and `usage`. */
export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: "assistant"; content?: string };
    finish_reason: "stop" | "length" | null;
    logprobs: null;
  }>;
  usage?: CompletionUsage;
}

/** The streamed response: an async iterable of chunks, with `abort()` like OpenAI's `Stream.controller`. */
export interface ChatCompletionStream extends AsyncIterable<ChatCompletionChunk> {
  /** Stops the generation; the iteration ends with `ABORTED`. */
  abort(): void;
}

let counter = 0;
function completionId(): string {
  counter++;
  return `chatcmpl-hearth-${Date.now().toString(36)}-${counter}`;
}

/** Checks a request and maps it to the engine's. Throws `BAD_REQUEST`. */
export function toEngineRequest(p: ChatCompletionCreateParams): { messages: ChatMessage[] } & SamplingOptions {
  if (typeof p !== "object" || p === null) throw new HearthError("BAD_REQUEST", "create() needs a request object");
  if (!Array.isArray(p.messages) || p.messages.length === 0) throw new HearthError("BAD_REQUEST", "messages must be a non-empty array");
  if (p.n != null && p.n !== 1) throw new HearthError("BAD_REQUEST", "only n = 1 is supported");
  const messages: ChatMessage[] = p.messages.map((m, i) => {
    const role = m?.role === "developer" ? "system" : m?.role;
    if (role !== "system" && role !== "user" && role !== "assistant") throw new HearthError("BAD_REQUEST", `messages[${i}].role must be system, developer, user or assistant`);
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else if (Array.isArray(m.content) && m.content.every((c) => c && c.type === "text" && typeof c.text === "string")) content = m.content.map((c) => c.text).join("");
    else throw new HearthError("BAD_REQUEST", `messages[${i}].content must be a string or text parts`);
    return { role, content };
  });
  // The sampling fields go through the one validation path of every entry point (validate.ts).
  const sampling = checkSampling({
    max_tokens: p.max_completion_tokens ?? p.max_tokens,
    temperature: p.temperature,
    top_p: p.top_p,
    top_k: p.top_k,
    min_p: p.min_p,
    repeat_penalty: p.repeat_penalty,
    seed: p.seed,
    stop: p.stop,
  });
  const out: { messages: ChatMessage[] } & SamplingOptions = { messages, ...sampling };
  return out;
}

function usageOf(r: GenerateResult): CompletionUsage {
  return {
    prompt_tokens: r.usage.prompt_tokens,
    completion_tokens: r.usage.completion_tokens,
    total_tokens: r.usage.prompt_tokens + r.usage.completion_tokens,
    prompt_tokens_details: { cached_tokens: r.usage.cached_tokens },
  };
}

/** `engine.chat.completions`. */
export class ChatCompletions {
  constructor(private readonly driver: () => Driver) {}

  /** A whole completion. */
  create(params: ChatCompletionCreateParams & { stream?: false | null }): Promise<ChatCompletion>;
  /** A stream of chunks. */
  create(params: ChatCompletionCreateParams & { stream: true }): Promise<ChatCompletionStream>;
  create(params: ChatCompletionCreateParams): Promise<ChatCompletion | ChatCompletionStream>;
  async create(params: ChatCompletionCreateParams): Promise<ChatCompletion | ChatCompletionStream> {
    const req = toEngineRequest(params);
    const driver = this.driver();
    const model = driver.info.id;
    const id = completionId();
    const created = Math.floor(Date.now() / 1000);
    if (!params.stream) {
      const r = await driver.generate({ kind: "chat", ...req }, () => undefined, params.signal);
      return {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: r.text, refusal: null }, finish_reason: r.finish_reason, logprobs: null }],
        usage: usageOf(r),
      };
    }
    return streamGeneration<ChatCompletionChunk>(params.signal, (signal, push) => driver.generate({ kind: "chat", ...req }, push, signal), {
      first: () => ({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null, logprobs: null }] }),
      delta: (content) => ({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta: { content }, finish_reason: null, logprobs: null }] }),
      last: (r) => ({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta: {}, finish_reason: r.finish_reason, logprobs: null }], usage: usageOf(r) }),
    });
  }
}

/** How a generation's events become stream items. */
export interface StreamShape<T> {
  first?: () => T;
  delta: (text: string) => T;
  last?: (r: GenerateResult) => T | undefined;
}

/**
 * Starts a generation now and exposes its deltas as an async iterable (buffered, so a slow
 * consumer loses nothing). Leaving the loop early (`break`) or `abort()` cancels the generation.
 */
export function streamGeneration<T>(
  outer: AbortSignal | undefined,
  run: (signal: AbortSignal, push: (text: string) => void) => Promise<GenerateResult>,
  shape: StreamShape<T>,
): AsyncIterable<T> & { abort(): void; done: Promise<GenerateResult> } {
  const ac = new AbortController();
  const onOuter = () => ac.abort(outer?.reason);
  if (outer?.aborted) ac.abort(outer.reason);
  else outer?.addEventListener("abort", onOuter, { once: true });
  const items: T[] = [];
  if (shape.first) items.push(shape.first());
  let finished = false;
  let failure: HearthError | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  ac.signal.addEventListener("abort", notify, { once: true });
  const done = run(ac.signal, (text) => {
    items.push(shape.delta(text));
    notify();
  }).then(
    (r) => {
      const last = shape.last?.(r);
      if (last !== undefined) items.push(last);
      finished = true;
      notify();
      return r;
    },
    (e: unknown) => {
      failure = ac.signal.aborted ? abortError(outer?.aborted ? outer : ac.signal) : HearthError.from(e);
      finished = true;
      notify();
      throw failure;
    },
  );
  done.catch(() => undefined).finally(() => outer?.removeEventListener("abort", onOuter));
  return {
    abort: () => ac.abort(new HearthError("ABORTED", "stream aborted")),
    done,
    [Symbol.asyncIterator](): AsyncIterator<T> {
      return {
        next: async (): Promise<IteratorResult<T>> => {
          for (;;) {
            // Once aborted, stop at once (like OpenAI's SDK) unless the generation had already finished.
            if (ac.signal.aborted && !(finished && !failure)) throw abortError(outer?.aborted ? outer : ac.signal);
            if (items.length > 0) return { value: items.shift() as T, done: false };
            if (failure) throw failure;
            if (finished) return { value: undefined, done: true };
            await new Promise<void>((r) => (wake = r));
          }
        },
        return: async (): Promise<IteratorResult<T>> => {
          if (!finished) ac.abort(new HearthError("ABORTED", "stream closed by the consumer"));
          await done.catch(() => undefined);
          return { value: undefined, done: true };
        },
      };
    },
  };
}
