/**
 * `Writer` and `Rewriter` sessions (WICG Writing Assistance APIs) over a loaded engine: the
 * polyfill's `Writer.create()` / `Rewriter.create()` return these. A task (Writer) or a text
 * (Rewriter) plus the session's tone, format, length and shared context become one chat request;
 * `…Streaming` variants give a `ReadableStream<string>` of deltas.
 */

import { ChatCompletions } from "./chat.js";
import type { Driver } from "./core.js";
import { HearthError, throwIfAborted } from "./errors.js";

export type WriterTone = "formal" | "neutral" | "casual";
export type WriterFormat = "plain-text" | "markdown";
export type WriterLength = "short" | "medium" | "long";
export type RewriterTone = "as-is" | "more-formal" | "more-casual";
export type RewriterLength = "as-is" | "shorter" | "longer";

/** Options of `Writer.create()` / `Rewriter.create()` (languages are checked by the polyfill). */
export interface WritingOptions {
  tone?: string;
  format?: WriterFormat | "as-is";
  length?: string;
  sharedContext?: string;
  signal?: AbortSignal;
}

/** Options of one `write()` / `rewrite()`. */
export interface WriteOptions {
  context?: string;
  signal?: AbortSignal;
}

const TOKENS: Record<string, number> = { short: 128, medium: 256, long: 512, shorter: 192, "as-is": 384, longer: 512 };

const ENUMS = {
  writer: { tone: ["formal", "neutral", "casual"], format: ["plain-text", "markdown"], length: ["short", "medium", "long"] },
  rewriter: { tone: ["as-is", "more-formal", "more-casual"], format: ["as-is", "plain-text", "markdown"], length: ["as-is", "shorter", "longer"] },
} as const;

const DEFAULTS = {
  writer: { tone: "neutral", format: "markdown", length: "short" },
  rewriter: { tone: "as-is", format: "as-is", length: "as-is" },
} as const;

/** `TypeError`-shaped validation of a session's enums (the polyfill maps BAD_REQUEST to TypeError). */
export function checkWritingOptions(kind: "writer" | "rewriter", opts: WritingOptions): void {
  for (const key of ["tone", "format", "length"] as const) {
    const v = opts[key];
    if (v !== undefined && !(ENUMS[kind][key] as readonly string[]).includes(v)) {
      throw new HearthError("BAD_REQUEST", `${kind} ${key} must be one of ${ENUMS[kind][key].join(", ")}, got ${String(v)}`);
    }
  }
}

function systemPrompt(kind: "writer" | "rewriter", tone: string, format: string, length: string, shared: string): string {
  const lines =
    kind === "writer"
      ? [
          "You write text for the user's task. Reply with the text only, no preamble.",
          `Tone: ${tone}.`,
          `Length: ${length === "short" ? "one short paragraph" : length === "medium" ? "two or three paragraphs" : "several paragraphs"}.`,
        ]
      : [
          "You rewrite the user's text. Keep its meaning. Reply with the rewritten text only, no preamble.",
          tone === "as-is" ? "Keep its tone." : `Make it ${tone === "more-formal" ? "more formal" : "more casual"}.`,
          length === "as-is" ? "Keep about its length." : `Make it ${length}.`,
        ];
  if (format === "plain-text") lines.push("Use plain text, no Markdown.");
  else if (format === "markdown") lines.push("You may use Markdown.");
  if (shared) lines.push(`Background: ${shared}`);
  return lines.join("\n");
}

/** What Writer and Rewriter sessions share. */
abstract class HearthWritingSession {
  readonly tone: string;
  readonly format: string;
  readonly length: string;
  readonly sharedContext: string;
  /** Tokens a request may use (prompt included, as `measureInputUsage` counts): the context window minus the answer's room. */
  readonly inputQuota: number;
  private destroyed = false;
  private readonly chat: ChatCompletions;

  protected constructor(private readonly kind: "writer" | "rewriter", private readonly driver: Driver, opts: WritingOptions) {
    this.tone = opts.tone ?? DEFAULTS[kind].tone;
    this.format = opts.format ?? DEFAULTS[kind].format;
    this.length = opts.length ?? DEFAULTS[kind].length;
    this.sharedContext = opts.sharedContext ?? "";
    this.inputQuota = Math.max(0, driver.info.n_ctx - (TOKENS[this.length] ?? 256));
    this.chat = new ChatCompletions(() => driver);
  }

  private request(input: string, opts: WriteOptions) {
    if (this.destroyed) throw new HearthError("BAD_REQUEST", `this ${this.kind} was destroyed`);
    if (typeof input !== "string") throw new HearthError("BAD_REQUEST", `${this.kind === "writer" ? "write" : "rewrite"}() needs a string`);
    const user = opts.context ? `${input}\n\nContext: ${opts.context}` : input;
    return {
      messages: [
        { role: "system" as const, content: systemPrompt(this.kind, this.tone, this.format, this.length, this.sharedContext) },
        { role: "user" as const, content: user },
      ],
      max_tokens: TOKENS[this.length] ?? 256,
      temperature: 0.7,
      signal: opts.signal,
    };
  }

  protected async run(input: string, opts: WriteOptions): Promise<string> {
    const r = await this.chat.create({ ...this.request(input, opts), stream: false });
    return r.choices[0]?.message.content ?? "";
  }

  protected runStreaming(input: string, opts: WriteOptions): ReadableStream<string> {
    const req = this.request(input, opts);
    let it: AsyncIterator<{ choices: { delta: { content?: string | null } }[] }> | undefined;
    return new ReadableStream<string>({
      pull: async (controller) => {
        it ??= (await this.chat.create({ ...req, stream: true }))[Symbol.asyncIterator]();
        for (;;) {
          const { value, done } = await it.next();
          if (done) return controller.close();
          const d = value.choices[0]?.delta.content;
          if (d) return controller.enqueue(d);
        }
      },
      cancel: async () => {
        await it?.return?.();
      },
    });
  }

  /** Tokens the request for `input` would use (prompt included). */
  async measureInputUsage(input: string, opts: WriteOptions = {}): Promise<number> {
    throwIfAborted(opts.signal);
    const req = this.request(input, opts);
    return this.chatTokens(req.messages);
  }

  private async chatTokens(messages: { role: "system" | "user"; content: string }[]): Promise<number> {
    return this.driver.countTokens(await this.driver.renderChat(messages));
  }

  /** Ends the session (later calls fail). */
  destroy(): void {
    this.destroyed = true;
  }
}

/** `opts` of a `create()`, checked (not aborted, valid enums), or the error the spec gives. */
function checkedOptions(kind: "writer" | "rewriter", opts: WritingOptions): WritingOptions {
  throwIfAborted(opts.signal);
  checkWritingOptions(kind, opts);
  return opts;
}

/** A `Writer` session: `write(task)` / `writeStreaming(task)`. */
export class HearthWriter extends HearthWritingSession {
  declare readonly tone: WriterTone;
  declare readonly format: WriterFormat;
  declare readonly length: WriterLength;

  static async create(driver: Driver, opts: WritingOptions = {}): Promise<HearthWriter> {
    return new HearthWriter("writer", driver, checkedOptions("writer", opts));
  }
  write(task: string, opts: WriteOptions = {}): Promise<string> {
    return this.run(task, opts);
  }
  writeStreaming(task: string, opts: WriteOptions = {}): ReadableStream<string> {
    return this.runStreaming(task, opts);
  }
}

/** A `Rewriter` session: `rewrite(text)` / `rewriteStreaming(text)`. */
export class HearthRewriter extends HearthWritingSession {
  declare readonly tone: RewriterTone;
  declare readonly format: WriterFormat | "as-is";
  declare readonly length: RewriterLength;

  static async create(driver: Driver, opts: WritingOptions = {}): Promise<HearthRewriter> {
    return new HearthRewriter("rewriter", driver, checkedOptions("rewriter", opts));
  }
  rewrite(text: string, opts: WriteOptions = {}): Promise<string> {
    return this.run(text, opts);
  }
  rewriteStreaming(text: string, opts: WriteOptions = {}): ReadableStream<string> {
    return this.runStreaming(text, opts);
  }
}
