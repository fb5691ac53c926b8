/**
 * Sessions shaped like Chrome's Prompt API (`LanguageModel`): `prompt`, `promptStreaming`,
 * `append`, `clone`, `destroy`, `measureContextUsage`, `contextUsage`, `contextWindow`, the
 * `contextoverflow` event (and the older names: `inputUsage`, `inputQuota`,
 * `measureInputUsage`, `quotaoverflow`). A session keeps its own conversation; the engine's KV
 * cache is reused for the shared prefix.
 *
 * Context overflow as the explainer describes it: the oldest turns (a prompt with its reply, or
 * one append) are dropped one at a time until the new input fits, the initial prompts (and a
 * system prompt given to the first call) never; when even that cannot make room the call
 * fails with `CONTEXT_OVERFLOW` (`requested`, `quota`) and nothing is dropped.
 */

import { streamGeneration } from "./chat.js";
import type { Driver } from "./core.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import { type ChatCompletionTool, type JsonSchema, ToolCallStreamer, answerGrammar, callsText, checkTools, parseCalls, toolFormat, toolGrammar, toolResultsText, withToolSystem } from "./tools.js";
import type { ChatMessage, OutputConstraint } from "./types.js";
import { checkSampling } from "./validate.js";

/** A tool the session may call (Prompt API): the model's call runs `execute` and the reply continues. */
export interface LanguageModelTool {
  name: string;
  description?: string;
  /** JSON Schema (an object) of the arguments object `execute` receives. */
  inputSchema?: object;
  /** Runs the call; the result (a string, or JSON-encoded otherwise) goes back to the model. */
  execute: (args: Record<string, unknown>) => unknown;
}

/** Most tool-call rounds in one prompt before it fails (a model calling tools in a loop). */
export const MAX_TOOL_ROUNDS = 8;

/** A Prompt API message (text only; other content types give `BAD_REQUEST`). */
export interface LanguageModelMessage {
  role: "system" | "user" | "assistant";
  /**
   * A string, or content parts: only `{type: "text", value: string}` parts are supported (an
   * image or audio part fails with `BAD_REQUEST`; a "NotSupportedError" DOMException in the polyfill).
   */
  content: string | Array<LanguageModelMessageContent>;
  /**
   * Prompt API response prefix: on the last message of a `prompt()` input, role "assistant",
   * the reply starts with this text and the model continues it (the reply returned, and
   * streamed, is the continuation; the conversation keeps prefix + continuation). Anywhere
   * else it fails (`BAD_REQUEST`; a "SyntaxError" DOMException in the polyfill).
   */
  prefix?: boolean;
}

/** One content part of a message (the Prompt API's `LanguageModelMessageContent`). */
export interface LanguageModelMessageContent {
  type: "text" | "image" | "audio";
  value: unknown;
}

/** What `prompt()`, `append()` and `measureContextUsage()` take. */
export type LanguageModelPrompt = string | LanguageModelMessage[];

/** Options of `engine.languageModel()` (and of the `LanguageModel.create()` polyfill). */
export interface LanguageModelCreateOptions {
  /** The conversation so far; at most one system message, first. */
  initialPrompts?: LanguageModelMessage[];
  /** Default 1 (Chrome's default); 0 is greedy. */
  temperature?: number;
  /** Default 3 (Chrome's default). */
  topK?: number;
  /** Most tokens per response (Hearth extension; default 512). */
  maxTokens?: number;
  /** Functions the model may call while answering; their `execute` runs and the answer continues. */
  tools?: LanguageModelTool[];
  signal?: AbortSignal;
}

/** Options of one prompt. */
export interface LanguageModelPromptOptions {
  signal?: AbortSignal;
  /**
   * The reply must match: a JSON Schema object (the reply is JSON) or a `RegExp` (no flags but
   * `u`/`v`). A reply the token budget cuts before it matches fails (`BAD_REQUEST`; a
   * "SyntaxError" DOMException in the polyfill), as the explainer says for a reply that cannot match.
   */
  responseConstraint?: JsonSchema | RegExp;
  /** Don't tell the model about the constraint in the prompt (by default it is appended to the input). */
  omitResponseConstraintInput?: boolean;
}

/** The engine constraint, and the text that describes it to the model. Throws `BAD_REQUEST`. */
function constraintOf(c: JsonSchema | RegExp): { constraint: OutputConstraint; schema?: JsonSchema; describe: string } {
  if (c instanceof RegExp) {
    if (/[^uv]/.test(c.flags)) throw new HearthError("BAD_REQUEST", `responseConstraint: the RegExp flags "${c.flags}" are not supported (only u and v)`);
    return { constraint: { regex: c.source }, describe: `Respond with text that matches this regular expression: /${c.source}/` };
  }
  if (typeof c !== "object" || c === null || Array.isArray(c)) throw new HearthError("BAD_REQUEST", "responseConstraint must be a JSON Schema object or a RegExp");
  return { constraint: { json_schema: c }, schema: c, describe: `Respond with JSON that matches this JSON Schema:\n${JSON.stringify(c)}` };
}

/** The Prompt API tools as the OpenAI-shaped tools the grammar is built from. Throws `BAD_REQUEST`. */
function checkSessionTools(tools: LanguageModelTool[] | undefined): LanguageModelTool[] {
  if (tools === undefined) return [];
  if (!Array.isArray(tools)) throw new HearthError("BAD_REQUEST", "tools must be an array");
  tools.forEach((t, i) => {
    if (!t || typeof t.execute !== "function") throw new HearthError("BAD_REQUEST", `tools[${i}].execute must be a function`);
  });
  checkTools(asOpenAI(tools));
  return tools;
}

function asOpenAI(tools: LanguageModelTool[]): ChatCompletionTool[] {
  return tools.map((t) => ({ type: "function", function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: (t.inputSchema as JsonSchema | undefined) ?? { type: "object" } } }));
}

/** Chrome's defaults, as `LanguageModel.params()` reports them. */
export const LANGUAGE_MODEL_PARAMS = { defaultTopK: 3, maxTopK: 128, defaultTemperature: 1, maxTemperature: 2 } as const;

/** The messages of a prompt; `prefix` is allowed (on the last, assistant message) only where `allowPrefix`. */
function toMessages(input: LanguageModelPrompt, allowPrefix = false): ChatMessage[] {
  if (typeof input === "string") return [{ role: "user", content: input }];
  if (!Array.isArray(input)) throw new HearthError("BAD_REQUEST", "a prompt is a string or an array of messages");
  // The spec's "validate and canonicalize a prompt": an empty list is one empty user message.
  if (input.length === 0) return [{ role: "user", content: "" }];
  return input.map((m, i) => {
    if (!m || (m.role !== "system" && m.role !== "user" && m.role !== "assistant")) throw new HearthError("BAD_REQUEST", `message ${i}: role must be system, user or assistant`);
    if (m.prefix && !(allowPrefix && i === input.length - 1 && m.role === "assistant")) {
      throw new HearthError("BAD_REQUEST", `message ${i}: prefix is only allowed on the last message of a prompt, an assistant one`, { domName: "SyntaxError" });
    }
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((c) => {
          if (c && (c.type === "image" || c.type === "audio")) throw new HearthError("BAD_REQUEST", `message ${i}: ${c.type} content is not supported (text only)`, { domName: "NotSupportedError" });
          if (!c || c.type !== "text" || typeof c.value !== "string") throw new HearthError("BAD_REQUEST", `message ${i}: a content part is {type: "text", value: string}`);
          return c.value;
        })
        .join("");
    } else throw new HearthError("BAD_REQUEST", `message ${i}: content must be a string or text parts`);
    return { role: m.role, content };
  });
}

/** Resolves when `p` settles, or rejects `ABORTED` when `signal` fires first. */
function waitOrAbort(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  throwIfAborted(signal);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

/** The `contextoverflow` event, and `quotaoverflow` (its older name) for code written against it. */
const OVERFLOW_EVENTS = ["contextoverflow", "quotaoverflow"] as const;

/**
 * One conversation with the model. Fires `contextoverflow` (and `quotaoverflow`) when old turns
 * had to be dropped to make room.
 */
export class HearthLanguageModel extends EventTarget {
  /** Tokens the session may hold (the engine's context window). */
  readonly contextWindow: number;
  readonly temperature: number;
  readonly topK: number;
  private readonly maxTokens: number;
  private readonly tools: LanguageModelTool[];
  /** The initial prompts, and a system prompt given to the first append/prompt: never dropped. */
  private initial: ChatMessage[];
  /** The rest, one entry per turn (a prompt with its tool rounds and reply, or one append): dropped oldest first. */
  private turns: ChatMessage[][] = [];
  private usage = 0;
  private destroyed = false;
  /** Prompt API event handler attribute: old turns were dropped to make room. */
  oncontextoverflow: ((e: Event) => void) | null = null;
  /** The older name of {@link oncontextoverflow} (fires for the same overflow). */
  onquotaoverflow: ((e: Event) => void) | null = null;

  private constructor(private readonly driver: Driver, initial: ChatMessage[], opts: { temperature: number; topK: number; maxTokens: number; tools: LanguageModelTool[] }) {
    super();
    this.tools = opts.tools;
    this.contextWindow = driver.info.n_ctx;
    this.initial = initial;
    this.temperature = opts.temperature;
    this.topK = opts.topK;
    this.maxTokens = opts.maxTokens;
    this.addEventListener("contextoverflow", (e) => this.oncontextoverflow?.call(this, e));
    this.addEventListener("quotaoverflow", (e) => this.onquotaoverflow?.call(this, e));
  }

  /** Starts a session (validates `initialPrompts`; more than the window holds is `CONTEXT_OVERFLOW`). */
  static async create(driver: Driver, opts: LanguageModelCreateOptions = {}): Promise<HearthLanguageModel> {
    throwIfAborted(opts.signal);
    const initial = opts.initialPrompts === undefined || (Array.isArray(opts.initialPrompts) && opts.initialPrompts.length === 0) ? [] : toMessages(opts.initialPrompts);
    checkSystemFirst(initial, 0);
    const temperature = opts.temperature ?? LANGUAGE_MODEL_PARAMS.defaultTemperature;
    const topK = opts.topK ?? LANGUAGE_MODEL_PARAMS.defaultTopK;
    checkSampling({ temperature }); // the one validation path (validate.ts): [0, 2], finite
    if (!(Number.isInteger(topK) && topK >= 1 && topK <= LANGUAGE_MODEL_PARAMS.maxTopK)) throw new HearthError("BAD_REQUEST", "topK must be an integer in [1, 128]");
    const tools = checkSessionTools(opts.tools);
    const s = new HearthLanguageModel(driver, initial, { temperature, topK, maxTokens: opts.maxTokens ?? 512, tools });
    await s.measureHistory();
    if (s.usage > s.contextWindow) {
      throw new HearthError("CONTEXT_OVERFLOW", `initialPrompts use ${s.usage} tokens; the context window is ${s.contextWindow}`, { requested: s.usage, quota: s.contextWindow });
    }
    return s;
  }

  /** Tokens the conversation uses now. */
  get contextUsage(): number {
    return this.usage;
  }
  /** The older Prompt API name of {@link contextUsage}. */
  get inputUsage(): number {
    return this.usage;
  }
  /** The older Prompt API name of {@link contextWindow}. */
  get inputQuota(): number {
    return this.contextWindow;
  }

  private check(): void {
    if (this.destroyed) throw new HearthError("BAD_REQUEST", "this session was destroyed");
  }

  /** The conversation the model sees: the kept initial prompts, then the turns. */
  private get history(): ChatMessage[] {
    return [...this.initial, ...this.turns.flat()];
  }

  private async tokensOf(messages: ChatMessage[]): Promise<number> {
    if (messages.length === 0) return 0;
    return this.driver.countTokens(await this.driver.renderChat(messages));
  }

  private async measureHistory(): Promise<void> {
    this.usage = await this.tokensOf(this.history);
  }

  /**
   * A call's messages, checked against the conversation: a system prompt only as the very first
   * message of the session (it then joins the kept initial prompts). Returns the rest.
   */
  private admitSystem(msgs: ChatMessage[]): ChatMessage[] {
    const empty = this.initial.length === 0 && this.turns.length === 0;
    checkSystemFirst(msgs, empty ? 0 : -1);
    if (empty && msgs[0]?.role === "system") {
      this.initial = [msgs[0]];
      return msgs.slice(1);
    }
    return msgs;
  }

  /** Tokens `input` would add to this session (with `responseConstraint`, its description too, as `prompt()` sends it). */
  async measureContextUsage(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): Promise<number> {
    this.check();
    throwIfAborted(opts.signal);
    const msgs = toMessages(input, true);
    checkConstraintOptions(opts);
    if (opts.responseConstraint !== undefined && !opts.omitResponseConstraintInput) describeConstraint(msgs, constraintOf(opts.responseConstraint).describe);
    return (await this.tokensOf([...this.history, ...msgs])) - this.usage;
  }
  /** The older Prompt API name of {@link measureContextUsage}. */
  measureInputUsage(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): Promise<number> {
    return this.measureContextUsage(input, opts);
  }

  /**
   * Makes room for `extra` (plus `reserve` tokens to answer) by dropping the oldest turns, one
   * at a time, never the initial prompts; fires `contextoverflow` and `quotaoverflow` if it
   * dropped any. If even dropping every turn would not make room, throws `CONTEXT_OVERFLOW`
   * and drops nothing.
   */
  private async fit(extra: ChatMessage[], reserve: number): Promise<void> {
    const needs = async (turns: ChatMessage[][]) => (await this.tokensOf([...this.initial, ...turns.flat(), ...extra])) + reserve;
    const total = await needs(this.turns);
    if (total <= this.contextWindow) return;
    if (this.turns.length === 0 || (await needs([])) > this.contextWindow) {
      const requested = total - this.usage;
      throw new HearthError(
        "CONTEXT_OVERFLOW",
        `the input needs ${requested} tokens (with ${reserve} to answer); ${this.contextWindow - this.usage} of the context window's ${this.contextWindow} are left, and dropping old turns cannot make room`,
        { requested, quota: this.contextWindow - this.usage },
      );
    }
    let dropped = 1;
    while ((await needs(this.turns.slice(dropped))) > this.contextWindow) dropped++;
    this.turns = this.turns.slice(dropped);
    await this.measureHistory();
    for (const type of OVERFLOW_EVENTS) this.dispatchEvent(new Event(type));
  }

  /** The model's reply to `input`; both join the conversation. */
  async prompt(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): Promise<string> {
    let out = "";
    for await (const t of this.streamReply(input, opts)) out += t;
    return out;
  }

  /** The reply as a stream of text deltas (a `ReadableStream<string>`, async-iterable in browsers). */
  promptStreaming(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): ReadableStream<string> {
    let it: AsyncIterator<string> | null = null;
    return new ReadableStream<string>({
      start: () => this.check(),
      pull: async (controller) => {
        try {
          it ??= this.streamReply(input, opts)[Symbol.asyncIterator]();
          const r = await it.next();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        } catch (e) {
          controller.error(HearthError.from(e));
        }
      },
      cancel: async () => {
        await it?.return?.();
      },
    });
  }

  private async *streamReply(input: LanguageModelPrompt, opts: LanguageModelPromptOptions): AsyncGenerator<string, void, undefined> {
    this.check();
    throwIfAborted(opts.signal);
    const msgs = toMessages(input, true);
    checkConstraintOptions(opts);
    const prefix = Array.isArray(input) && input.at(-1)?.prefix ? msgs.pop()!.content : undefined;
    if (prefix !== undefined && this.tools.length > 0) throw new HearthError("BAD_REQUEST", "a response prefix cannot be combined with tools", { domName: "NotSupportedError" });
    const endTurn = await this.takeTurn(opts.signal);
    try {
      yield* this.replyNow(this.admitSystem(msgs), prefix, opts);
    } finally {
      endTurn();
    }
  }

  /**
   * Calls that change the conversation (prompt, promptStreaming, append) run one at a time in
   * call order, as the Prompt API queues them: each sees the turns of those before it.
   */
  private queue: Promise<void> = Promise.resolve();
  private async takeTurn(signal: AbortSignal | undefined): Promise<() => void> {
    const prev = this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((r) => (release = r));
    try {
      await waitOrAbort(prev, signal);
      this.check();
    } catch (e) {
      void prev.then(release); // keep the order: the next call still waits for the previous one
      throw e;
    }
    return release;
  }

  private async *replyNow(msgs: ChatMessage[], prefix: string | undefined, opts: LanguageModelPromptOptions): AsyncGenerator<string, void, undefined> {
    const rc = opts.responseConstraint === undefined ? undefined : constraintOf(opts.responseConstraint);
    if (rc && !opts.omitResponseConstraintInput) describeConstraint(msgs, rc.describe);
    if (rc && !rc.schema && this.tools.length > 0) throw new HearthError("BAD_REQUEST", "a RegExp responseConstraint cannot be combined with tools (a JSON Schema can)");
    const reserve = Math.min(this.maxTokens, Math.floor(this.contextWindow / 4));
    await this.fit(prefix === undefined ? msgs : [...msgs, { role: "assistant", content: prefix }], reserve);
    const before = this.history;
    let convo = [...before, ...msgs];
    const sampling = this.temperature === 0 ? { temperature: 0 } : { temperature: this.temperature, top_k: this.topK };
    const format = this.tools.length > 0 ? await toolFormat(this.driver) : "generic";
    const offered = asOpenAI(this.tools);
    // Calls already executed in this prompt. A round that only repeats them (same tool, same
    // arguments: the model has their results) is a loop: it is not executed, and the next round
    // must answer in text (small models, e.g. Qwen2.5-Coder 0.5B, can call the same tool again and again).
    const executed = new Set<string>();
    let answerOnly = false;
    for (let round = 0; ; round++) {
      if (round >= MAX_TOOL_ROUNDS) throw new HearthError("BAD_REQUEST", `the model kept calling tools (${MAX_TOOL_ROUNDS} rounds) without answering`);
      const callable = answerOnly ? [] : offered;
      const messages = withToolSystem(convo, format, offered);
      const maxTokens = Math.max(1, Math.min(this.maxTokens, this.contextWindow - (await this.tokensOf(messages)) - (prefix ? await this.driver.countTokens(prefix) : 0)));
      const constraint = callable.length > 0 ? toolGrammar(callable, { required: false, parallel: true, textSchema: rc?.schema }) : answerOnly ? (rc?.constraint ?? answerGrammar()) : rc?.constraint;
      const streamer = new ToolCallStreamer(callable);
      const request = { kind: "chat" as const, messages, max_tokens: maxTokens, ...sampling, ...(constraint ? { constraint } : {}), ...(prefix ? { assistant_prefix: prefix } : {}) };
      const stream = streamGeneration(opts.signal, (sig, push) => this.driver.generate(request, push, sig), { delta: (t) => t });
      let reply = "";
      for await (const t of stream) {
        reply += t;
        // With tools, text streams as it comes; a tool-call reply is not shown.
        const out = callable.length > 0 ? streamer.push(t).content : t;
        if (out) yield out;
      }
      const tail = callable.length > 0 ? streamer.finish().content : undefined;
      if (tail) yield tail;
      if (rc && (await stream.done).finish_reason === "length") {
        // An unfinished match is not a reply that matches: the explainer's SyntaxError.
        throw new HearthError("BAD_REQUEST", `the reply did not complete the responseConstraint within ${maxTokens} tokens`, { domName: "SyntaxError" });
      }
      const calls = callable.length > 0 ? parseCalls(reply, callable) : null;
      if (!calls) {
        // Only a finished reply joins the conversation (an aborted one throws above), as one turn.
        this.turns.push([...convo.slice(before.length), { role: "assistant", content: (prefix ?? "") + reply }]);
        break;
      }
      const keys = calls.map((c) => `${c.name}\u0000${JSON.stringify(c.arguments)}`);
      if (keys.every((k) => executed.has(k))) {
        answerOnly = true;
        continue;
      }
      keys.forEach((k) => executed.add(k));
      const results: string[] = [];
      for (const call of calls) {
        const tool = this.tools.find((t) => t.name === call.name);
        if (!tool) throw new HearthError("INTERNAL", `the model called ${call.name}, which is not a tool`);
        throwIfAborted(opts.signal);
        const r: unknown = await tool.execute(call.arguments);
        results.push(typeof r === "string" ? r : JSON.stringify(r) ?? "null");
      }
      convo = [...convo, { role: "assistant", content: callsText("", calls) }, { role: "user", content: toolResultsText(results) }];
    }
    await this.measureHistory();
  }

  /** Adds messages to the conversation (as one turn) without asking for a reply. */
  async append(input: LanguageModelPrompt, opts: LanguageModelAppendOptions = {}): Promise<undefined> {
    this.check();
    throwIfAborted(opts.signal);
    const msgs = toMessages(input);
    const endTurn = await this.takeTurn(opts.signal);
    try {
      const rest = this.admitSystem(msgs);
      await this.fit(rest, 0);
      if (rest.length > 0) this.turns.push(rest);
      await this.measureHistory();
    } finally {
      endTurn();
    }
    return undefined;
  }

  /** A new session with a copy of this conversation and the same settings. */
  async clone(opts: { signal?: AbortSignal } = {}): Promise<HearthLanguageModel> {
    this.check();
    throwIfAborted(opts.signal);
    const c = new HearthLanguageModel(this.driver, this.initial.map((m) => ({ ...m })), { temperature: this.temperature, topK: this.topK, maxTokens: this.maxTokens, tools: this.tools });
    c.turns = this.turns.map((t) => t.map((m) => ({ ...m })));
    c.usage = this.usage;
    return c;
  }

  /** Ends the session; later calls reject with `BAD_REQUEST`. */
  destroy(): undefined {
    this.destroyed = true;
    this.initial = [];
    this.turns = [];
    return undefined;
  }

  /** The conversation so far (a copy). */
  get messages(): ChatMessage[] {
    return this.history.map((m) => ({ ...m }));
  }
}

/** Options of `append()`. */
export interface LanguageModelAppendOptions {
  signal?: AbortSignal;
}

/** A system message only at `at` (-1: nowhere), as the Prompt API requires (else `BAD_REQUEST`, a TypeError in the polyfill). */
function checkSystemFirst(msgs: ChatMessage[], at: number): void {
  const i = msgs.findIndex((m, k) => m.role === "system" && k !== at);
  if (i >= 0) throw new HearthError("BAD_REQUEST", `message ${i}: a system prompt must be the first message of the session`);
}

/** `omitResponseConstraintInput` without a `responseConstraint` is a TypeError in the Prompt API. */
function checkConstraintOptions(opts: LanguageModelPromptOptions): void {
  if (opts.omitResponseConstraintInput && opts.responseConstraint === undefined) throw new HearthError("BAD_REQUEST", "omitResponseConstraintInput needs a responseConstraint");
}

/** Appends the constraint's description to the last message of the input (it is sent to the model). */
function describeConstraint(msgs: ChatMessage[], describe: string): void {
  const last = msgs[msgs.length - 1];
  if (last) msgs[msgs.length - 1] = { ...last, content: `${last.content}\n\n${describe}` };
}
