/**
 * Sessions shaped like Chrome's Prompt API (`LanguageModel`): `prompt`, `promptStreaming`,
 * `append`, `clone`, `destroy`, `measureContextUsage`, `contextUsage`, `contextWindow`.
 * A session keeps its own conversation; the engine's KV cache is reused for the shared prefix.
 */

import { streamGeneration } from "./chat.js";
import type { Driver } from "./core.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import { type ChatCompletionTool, type JsonSchema, ToolCallStreamer, callsText, checkTools, parseCalls, toolFormat, toolGrammar, toolResultsText, withToolSystem } from "./tools.js";
import type { ChatMessage, OutputConstraint } from "./types.js";
import { checkSampling } from "./validate.js";

/** A tool the session may call (Prompt API): the model's call runs `execute` and the reply continues. */
export interface LanguageModelTool {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object `execute` receives. */
  inputSchema?: JsonSchema;
  /** Runs the call; the result (a string, or JSON-encoded otherwise) goes back to the model. */
  execute: (args: Record<string, unknown>) => unknown;
}

/** Most tool-call rounds in one prompt before it fails (a model calling tools in a loop). */
export const MAX_TOOL_ROUNDS = 8;

/** A Prompt API message (text only; other content types give `BAD_REQUEST`). */
export interface LanguageModelMessage {
  role: "system" | "user" | "assistant";
  content: string | Array<{ type: "text"; value: string }>;
  /** Prompt API: an assistant message to continue rather than answer. Not supported. */
  prefix?: boolean;
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
  /** The reply must match: a JSON Schema object (the reply is JSON) or a `RegExp` (no flags but `u`/`v`). */
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
  return tools.map((t) => ({ type: "function", function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.inputSchema ?? { type: "object" } } }));
}

/** Chrome's defaults, as `LanguageModel.params()` reports them. */
export const LANGUAGE_MODEL_PARAMS = { defaultTopK: 3, maxTopK: 128, defaultTemperature: 1, maxTemperature: 2 } as const;

function toMessages(input: LanguageModelPrompt, defaultRole: "user" = "user"): ChatMessage[] {
  if (typeof input === "string") return [{ role: defaultRole, content: input }];
  if (!Array.isArray(input)) throw new HearthError("BAD_REQUEST", "a prompt is a string or an array of messages");
  return input.map((m, i) => {
    if (!m || (m.role !== "system" && m.role !== "user" && m.role !== "assistant")) throw new HearthError("BAD_REQUEST", `message ${i}: role must be system, user or assistant`);
    if (m.prefix) throw new HearthError("BAD_REQUEST", `message ${i}: prefix is not supported`);
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((c) => {
          if (!c || c.type !== "text" || typeof c.value !== "string") throw new HearthError("BAD_REQUEST", `message ${i}: only text content is supported`);
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

/** One conversation with the model. Fires `contextoverflow` when old turns had to be dropped. */
export class HearthLanguageModel extends EventTarget {
  /** Tokens the session may hold (the engine's context window). */
  readonly contextWindow: number;
  readonly temperature: number;
  readonly topK: number;
  private readonly maxTokens: number;
  private readonly tools: LanguageModelTool[];
  private history: ChatMessage[];
  private usage = 0;
  private destroyed = false;
  /** Prompt API event handler property. */
  oncontextoverflow: ((e: Event) => void) | null = null;

  private constructor(private readonly driver: Driver, history: ChatMessage[], opts: { temperature: number; topK: number; maxTokens: number; tools: LanguageModelTool[] }) {
    super();
    this.tools = opts.tools;
    this.contextWindow = driver.info.n_ctx;
    this.history = history;
    this.temperature = opts.temperature;
    this.topK = opts.topK;
    this.maxTokens = opts.maxTokens;
  }

  /** Starts a session (validates `initialPrompts`). */
  static async create(driver: Driver, opts: LanguageModelCreateOptions = {}): Promise<HearthLanguageModel> {
    throwIfAborted(opts.signal);
    const history = toMessages(opts.initialPrompts ?? []);
    if (history.some((m, i) => m.role === "system" && i > 0)) throw new HearthError("BAD_REQUEST", "a system prompt must come first in initialPrompts");
    const temperature = opts.temperature ?? LANGUAGE_MODEL_PARAMS.defaultTemperature;
    const topK = opts.topK ?? LANGUAGE_MODEL_PARAMS.defaultTopK;
    checkSampling({ temperature }); // the one validation path (validate.ts): [0, 2], finite
    if (!(Number.isInteger(topK) && topK >= 1 && topK <= LANGUAGE_MODEL_PARAMS.maxTopK)) throw new HearthError("BAD_REQUEST", "topK must be an integer in [1, 128]");
    const tools = checkSessionTools(opts.tools);
    const s = new HearthLanguageModel(driver, history, { temperature, topK, maxTokens: opts.maxTokens ?? 512, tools });
    await s.measureHistory();
    if (s.usage > s.contextWindow) throw new HearthError("CONTEXT_OVERFLOW", `initialPrompts use ${s.usage} tokens; the context window is ${s.contextWindow}`);
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

  private async tokensOf(messages: ChatMessage[]): Promise<number> {
    if (messages.length === 0) return 0;
    return this.driver.countTokens(await this.driver.renderChat(messages));
  }

  private async measureHistory(): Promise<void> {
    this.usage = await this.tokensOf(this.history);
  }

  /** Tokens `input` would add to this session. */
  async measureContextUsage(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): Promise<number> {
    this.check();
    throwIfAborted(opts.signal);
    const msgs = toMessages(input);
    return (await this.tokensOf([...this.history, ...msgs])) - this.usage;
  }
  /** The older Prompt API name of {@link measureContextUsage}. */
  measureInputUsage(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): Promise<number> {
    return this.measureContextUsage(input, opts);
  }

  /** Fits `extra` into the window by dropping the oldest non-system turns; fires `contextoverflow`. */
  private async fit(extra: ChatMessage[], reserve: number): Promise<void> {
    let total = await this.tokensOf([...this.history, ...extra]);
    if (total + reserve <= this.contextWindow) return;
    let dropped = false;
    while (total + reserve > this.contextWindow) {
      const i = this.history.findIndex((m) => m.role !== "system");
      if (i < 0) break;
      this.history.splice(i, 1);
      dropped = true;
      total = await this.tokensOf([...this.history, ...extra]);
    }
    if (total + reserve > this.contextWindow) {
      throw new HearthError("CONTEXT_OVERFLOW", `the prompt needs ${total} tokens plus room to answer; the context window is ${this.contextWindow}`);
    }
    if (dropped) {
      const e = new Event("contextoverflow");
      this.oncontextoverflow?.(e);
      this.dispatchEvent(e);
    }
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
    const msgs = toMessages(input);
    const endTurn = await this.takeTurn(opts.signal);
    try {
      yield* this.replyNow(msgs, opts);
    } finally {
      endTurn();
    }
  }

  /**
   * Calls that change the conversation (prompt, promptStreaming, append) run one at a time in
   * call order, as the Prompt API queues them: each sees the turns of those before it.
   */
  private turns: Promise<void> = Promise.resolve();
  private async takeTurn(signal: AbortSignal | undefined): Promise<() => void> {
    const prev = this.turns;
    let release!: () => void;
    this.turns = new Promise<void>((r) => (release = r));
    try {
      await waitOrAbort(prev, signal);
      this.check();
    } catch (e) {
      void prev.then(release); // keep the order: the next call still waits for the previous one
      throw e;
    }
    return release;
  }

  private async *replyNow(msgs: ChatMessage[], opts: LanguageModelPromptOptions): AsyncGenerator<string, void, undefined> {
    const rc = opts.responseConstraint === undefined ? undefined : constraintOf(opts.responseConstraint);
    if (rc && !opts.omitResponseConstraintInput) {
      const last = msgs[msgs.length - 1];
      if (last) last.content = `${last.content}\n\n${rc.describe}`;
    }
    if (rc && !rc.schema && this.tools.length > 0) throw new HearthError("BAD_REQUEST", "a RegExp responseConstraint cannot be combined with tools (a JSON Schema can)");
    const reserve = Math.min(this.maxTokens, Math.floor(this.contextWindow / 4));
    await this.fit(msgs, reserve);
    let convo = [...this.history, ...msgs];
    const sampling = this.temperature === 0 ? { temperature: 0 } : { temperature: this.temperature, top_k: this.topK };
    const format = this.tools.length > 0 ? await toolFormat(this.driver) : "generic";
    const offered = asOpenAI(this.tools);
    for (let round = 0; ; round++) {
      if (round >= MAX_TOOL_ROUNDS) throw new HearthError("BAD_REQUEST", `the model kept calling tools (${MAX_TOOL_ROUNDS} rounds) without answering`);
      const messages = withToolSystem(convo, format, offered);
      const maxTokens = Math.max(1, Math.min(this.maxTokens, this.contextWindow - (await this.tokensOf(messages))));
      const constraint = offered.length > 0 ? toolGrammar(offered, { required: false, parallel: true, textSchema: rc?.schema }) : rc?.constraint;
      const streamer = new ToolCallStreamer();
      const stream = streamGeneration(opts.signal, (sig, push) => this.driver.generate({ kind: "chat", messages, max_tokens: maxTokens, ...sampling, ...(constraint ? { constraint } : {}) }, push, sig), {
        delta: (t) => t,
      });
      let reply = "";
      for await (const t of stream) {
        reply += t;
        // With tools, text streams as it comes; a tool-call reply is not shown.
        const out = offered.length > 0 ? streamer.push(t).content : t;
        if (out) yield out;
      }
      const tail = offered.length > 0 ? streamer.finish().content : undefined;
      if (tail) yield tail;
      const calls = offered.length > 0 ? parseCalls(reply) : null;
      if (!calls) {
        // Only a finished reply joins the conversation (an aborted one throws above).
        this.history = [...convo, { role: "assistant", content: reply }];
        break;
      }
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

  /** Adds messages to the conversation without asking for a reply. */
  async append(input: LanguageModelPrompt, opts: LanguageModelPromptOptions = {}): Promise<void> {
    this.check();
    throwIfAborted(opts.signal);
    const msgs = toMessages(input);
    const endTurn = await this.takeTurn(opts.signal);
    try {
      await this.fit(msgs, 0);
      this.history.push(...msgs);
      await this.measureHistory();
    } finally {
      endTurn();
    }
  }

  /** A new session with a copy of this conversation and the same settings. */
  async clone(opts: { signal?: AbortSignal } = {}): Promise<HearthLanguageModel> {
    this.check();
    throwIfAborted(opts.signal);
    const c = new HearthLanguageModel(this.driver, this.history.map((m) => ({ ...m })), { temperature: this.temperature, topK: this.topK, maxTokens: this.maxTokens, tools: this.tools });
    c.usage = this.usage;
    return c;
  }

  /** Ends the session; later calls reject with `BAD_REQUEST`. */
  destroy(): void {
    this.destroyed = true;
    this.history = [];
  }

  /** The conversation so far (a copy). */
  get messages(): ChatMessage[] {
    return this.history.map((m) => ({ ...m }));
  }
}
