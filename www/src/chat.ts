/** `engine.chat.completions.create`: OpenAI's Chat Completions shape over a {@link Driver}. */

import type { Driver } from "./core.js";
import { HearthError, abortError } from "./errors.js";
import {
  type ChatCompletionMessageToolCall,
  type ChatCompletionTool,
  type ChatCompletionToolChoiceOption,
  type JsonSchema,
  type ParsedCall,
  type ToolCallDelta,
  type ToolFormat,
  ToolCallStreamer,
  applyToolChoice,
  callId,
  callsText,
  checkTools,
  parseCalls,
  toolFormat,
  toolGrammar,
  toolResultsText,
  withToolSystem,
} from "./tools.js";
import type { ChatMessage, GenerateResult, OutputConstraint, SamplingOptions } from "./types.js";
import { checkSampling } from "./validate.js";

export type { ChatCompletionMessageToolCall, ChatCompletionTool, ChatCompletionToolChoiceOption };

type TextContent = string | Array<{ type: "text"; text: string }>;

/** A message as OpenAI's API accepts it (string content, or text parts). */
export type ChatCompletionMessageParam =
  | { role: "system" | "developer" | "user"; content: TextContent; name?: string }
  /** An earlier assistant turn; `tool_calls` when it called tools. */
  | { role: "assistant"; content?: TextContent | null; name?: string; tool_calls?: ChatCompletionMessageToolCall[] }
  /** A tool's result, answering the call `tool_call_id`. */
  | { role: "tool"; content: TextContent; tool_call_id: string };

/** OpenAI's `response_format`: free text, any JSON object, or JSON matching a schema. */
export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name: string; description?: string; schema?: JsonSchema; strict?: boolean | null } };

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
  /** Constrains the reply to JSON (any object, or matching `json_schema.schema`). */
  response_format?: ResponseFormat | null;
  /** Functions the model may call; each call's arguments are constrained to its `parameters`. */
  tools?: ChatCompletionTool[] | null;
  /** Default `"auto"` when tools are given. */
  tool_choice?: ChatCompletionToolChoiceOption | null;
  /** Default true: the model may make several calls in one reply. */
  parallel_tool_calls?: boolean | null;
  /**
   * Hearth extension, with `Engine.load({promptCache})`: how many leading messages form the
   * prompt prefix whose KV cache is persisted across page loads (default: the leading system
   * messages; 0: none). Reused tokens show in `usage.prompt_tokens_details.cached_tokens`.
   */
  cache_prefix?: number | null;
}

/** The assistant's reply message. */
export interface ChatCompletionMessage {
  role: "assistant";
  /** The text, or null when the model called tools. */
  content: string | null;
  refusal: null;
  tool_calls?: ChatCompletionMessageToolCall[];
}

/** Why a choice ended. */
export type FinishReason = "stop" | "length" | "tool_calls";

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
    message: ChatCompletionMessage;
    finish_reason: FinishReason;
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
    delta: { role?: "assistant"; content?: string; tool_calls?: ToolCallDelta[] };
    finish_reason: FinishReason | null;
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

function textOf(content: unknown, where: string): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content) && content.every((c: { type?: unknown; text?: unknown }) => c && c.type === "text" && typeof c.text === "string")) return content.map((c: { text: string }) => c.text).join("");
  throw new HearthError("BAD_REQUEST", `${where} must be a string or text parts`);
}

/** The arguments of an earlier call (a JSON object's text). */
function callOf(c: ChatCompletionMessageToolCall, where: string): ParsedCall {
  if (!c || c.type !== "function" || typeof c.function?.name !== "string" || typeof c.function.arguments !== "string") throw new HearthError("BAD_REQUEST", `${where} must be {id, type: "function", function: {name, arguments}}`);
  let args: unknown;
  try {
    args = JSON.parse(c.function.arguments);
  } catch {
    throw new HearthError("BAD_REQUEST", `${where}.function.arguments is not JSON`);
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) throw new HearthError("BAD_REQUEST", `${where}.function.arguments must be a JSON object`);
  return { name: c.function.name, arguments: args as Record<string, unknown> };
}

/** The conversation as the engine takes it: assistant calls and tool results in the tool format's text. */
function toEngineMessages(p: ChatCompletionCreateParams): ChatMessage[] {
  const out: ChatMessage[] = [];
  const results: string[] = [];
  const flush = () => {
    if (results.length) out.push({ role: "user", content: toolResultsText(results.splice(0)) });
  };
  p.messages.forEach((m, i) => {
    const role = m?.role === "developer" ? "system" : m?.role;
    if (role === "tool") {
      if (typeof (m as { tool_call_id?: unknown }).tool_call_id !== "string") throw new HearthError("BAD_REQUEST", `messages[${i}].tool_call_id must be a string`);
      results.push(textOf(m.content, `messages[${i}].content`));
      return;
    }
    flush();
    if (role === "assistant") {
      const a = m as Extract<ChatCompletionMessageParam, { role: "assistant" }>;
      const content = a.content == null ? "" : textOf(a.content, `messages[${i}].content`);
      if (a.tool_calls != null) {
        if (!Array.isArray(a.tool_calls)) throw new HearthError("BAD_REQUEST", `messages[${i}].tool_calls must be an array`);
        out.push({ role, content: callsText(content, a.tool_calls.map((c, j) => callOf(c, `messages[${i}].tool_calls[${j}]`))) });
      } else out.push({ role, content });
      return;
    }
    if (role !== "system" && role !== "user") throw new HearthError("BAD_REQUEST", `messages[${i}].role must be system, developer, user, assistant or tool`);
    out.push({ role, content: textOf(m.content, `messages[${i}].content`) });
  });
  flush();
  return out;
}

/** The schema `response_format` asks for, or undefined for free text. Throws `BAD_REQUEST`. */
function responseSchema(f: ResponseFormat | null | undefined): JsonSchema | undefined {
  if (f == null || f.type === "text") return undefined;
  if (f.type === "json_object") return { type: "object" };
  if (f.type === "json_schema") {
    const js = f.json_schema;
    if (!js || typeof js.name !== "string" || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name)) throw new HearthError("BAD_REQUEST", "response_format.json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$");
    if (js.schema === undefined) return { type: "object" };
    if (typeof js.schema !== "object" || js.schema === null || Array.isArray(js.schema)) throw new HearthError("BAD_REQUEST", "response_format.json_schema.schema must be a JSON Schema object");
    return js.schema;
  }
  throw new HearthError("BAD_REQUEST", 'response_format.type must be "text", "json_object" or "json_schema"');
}

/** What a request needs beyond the engine's: whether the reply may be tool calls. */
export interface ToolPlan {
  /** Tools the model may call (empty: none). */
  offered: ChatCompletionTool[];
}

/**
 * Checks a request and maps it to the engine's. Throws `BAD_REQUEST`. `format` is how the
 * loaded model describes tools (see {@link toolFormat}); it only matters when tools are offered.
 */
export function toEngineRequest(p: ChatCompletionCreateParams, format: ToolFormat = "generic"): { messages: ChatMessage[] } & SamplingOptions & { plan: ToolPlan } {
  if (typeof p !== "object" || p === null) throw new HearthError("BAD_REQUEST", "create() needs a request object");
  if (!Array.isArray(p.messages) || p.messages.length === 0) throw new HearthError("BAD_REQUEST", "messages must be a non-empty array");
  if (p.n != null && p.n !== 1) throw new HearthError("BAD_REQUEST", "only n = 1 is supported");
  const schema = responseSchema(p.response_format);
  const tools = p.tools == null ? [] : checkTools(p.tools);
  if (p.tool_choice != null && tools.length === 0 && p.tool_choice !== "none") throw new HearthError("BAD_REQUEST", "tool_choice needs tools");
  if (p.parallel_tool_calls != null && typeof p.parallel_tool_calls !== "boolean") throw new HearthError("BAD_REQUEST", "parallel_tool_calls must be a boolean");
  const { offered, required } = applyToolChoice(tools, p.tool_choice);
  let constraint: OutputConstraint | undefined;
  if (offered.length > 0) constraint = toolGrammar(offered, { required, parallel: p.parallel_tool_calls ?? true, textSchema: schema });
  else if (schema) constraint = { json_schema: schema };
  const messages = withToolSystem(toEngineMessages(p), format, tools);
  const out: { messages: ChatMessage[] } & SamplingOptions & { plan: ToolPlan } = { messages, plan: { offered } };
  if (constraint) out.constraint = constraint;
  if (p.cache_prefix != null) {
    if (!Number.isSafeInteger(p.cache_prefix) || p.cache_prefix < 0) throw new HearthError("BAD_REQUEST", `cache_prefix must be a non-negative integer, got ${p.cache_prefix}`);
    (out as { cache_prefix?: number }).cache_prefix = p.cache_prefix;
  }
  // The sampling fields go through the one validation path of every entry point (validate.ts).
  Object.assign(out, checkSampling({
    max_tokens: p.max_completion_tokens ?? p.max_tokens,
    temperature: p.temperature,
    top_p: p.top_p,
    top_k: p.top_k,
    min_p: p.min_p,
    repeat_penalty: p.repeat_penalty,
    seed: p.seed,
    stop: p.stop,
  }));
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
    toEngineRequest(params); // checks the request before anything else
    const driver = this.driver();
    const format = params.tools?.length ? await toolFormat(driver) : "generic";
    const { plan, ...req } = toEngineRequest(params, format);
    const model = driver.info.id;
    const id = completionId();
    const created = Math.floor(Date.now() / 1000);
    if (!params.stream) {
      const r = await driver.generate({ kind: "chat", ...req }, () => undefined, params.signal);
      const calls = plan.offered.length > 0 && r.finish_reason === "stop" ? parseCalls(r.text, plan.offered) : null;
      const message: ChatCompletionMessage = calls
        ? { role: "assistant", content: null, refusal: null, tool_calls: calls.map((c) => ({ id: callId(), type: "function", function: { name: c.name, arguments: JSON.stringify(c.arguments) } })) }
        : { role: "assistant", content: r.text, refusal: null };
      return { id, object: "chat.completion", created, model, choices: [{ index: 0, message, finish_reason: calls ? "tool_calls" : r.finish_reason, logprobs: null }], usage: usageOf(r) };
    }
    const chunk = (delta: ChatCompletionChunk["choices"][0]["delta"], finish: FinishReason | null = null): ChatCompletionChunk => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    const toChunk = (e: { content?: string; calls?: ToolCallDelta[] }): ChatCompletionChunk | undefined =>
      e.calls?.length ? chunk({ tool_calls: e.calls }) : e.content ? chunk({ content: e.content }) : undefined;
    if (plan.offered.length === 0) {
      return streamGeneration<ChatCompletionChunk>(params.signal, (signal, push) => driver.generate({ kind: "chat", ...req }, push, signal), {
        first: () => chunk({ role: "assistant", content: "" }),
        delta: (content) => chunk({ content }),
        last: (r) => ({ ...chunk({}, r.finish_reason), usage: usageOf(r) }),
      });
    }
    // Tools: deltas become content or tool_calls chunks (a reply is one or the other).
    const streamer = new ToolCallStreamer(plan.offered);
    return streamGeneration<ChatCompletionChunk>(params.signal, (signal, push) => driver.generate({ kind: "chat", ...req }, push, signal), {
      first: () => chunk({ role: "assistant", content: "" }),
      delta: (text) => toChunk(streamer.push(text)),
      last: (r) => {
        const tail = toChunk(streamer.finish());
        const finish: FinishReason = streamer.isCalls && r.finish_reason === "stop" ? "tool_calls" : r.finish_reason;
        return [...(tail ? [tail] : []), { ...chunk({}, finish), usage: usageOf(r) }];
      },
    });
  }
}

/** How a generation's events become stream items. */
export interface StreamShape<T> {
  first?: () => T;
  /** The item for a text delta (none when undefined). */
  delta: (text: string) => T | undefined;
  /** The final items. */
  last?: (r: GenerateResult) => T | T[] | undefined;
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
    const item = shape.delta(text);
    if (item !== undefined) items.push(item);
    notify();
  }).then(
    (r) => {
      const last = shape.last?.(r);
      if (Array.isArray(last)) items.push(...last);
      else if (last !== undefined) items.push(last);
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
