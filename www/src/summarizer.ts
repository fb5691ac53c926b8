/**
 * Summaries shaped like the WICG Summarizer API (`summarize`, `summarizeStreaming`,
 * `inputQuota`, `measureInputUsage`). A text longer than the context is summarized by
 * map-reduce over chunks, not truncated.
 */

import { streamGeneration } from "./chat.js";
import type { Driver } from "./core.js";
import { HearthError, throwIfAborted } from "./errors.js";
import {
  MAX_OUTPUT_TOKENS,
  joinPartialSummaries,
  mapSystemPrompt,
  mapUserPrompt,
  summarySystemPrompt,
  summaryUserPrompt,
  type SummarizerFormat,
  type SummarizerLength,
  type SummarizerType,
} from "./prompts.js";
import type { ChatMessage, GenerateResult } from "./types.js";
import { checkSampling } from "./validate.js";

export type { SummarizerFormat, SummarizerLength, SummarizerType };

/** Options of `engine.summarizer()` (and of the `Summarizer.create()` polyfill). */
export interface SummarizerOptions {
  type?: SummarizerType;
  format?: SummarizerFormat;
  length?: SummarizerLength;
  /** Background that applies to every text this summarizer sees. */
  sharedContext?: string;
  /** Accepted for API compatibility (the model decides what it can read). */
  expectedInputLanguages?: string[];
  expectedContextLanguages?: string[];
  outputLanguage?: string;
  /** Sampling temperature (default 0: greedy, reproducible). */
  temperature?: number;
  signal?: AbortSignal;
}

/** Progress of a map-reduce summary: parts summarized so far. */
export interface SummarizeProgress {
  /** 0 for the map step over the text, 1… for further reduce rounds. */
  round: number;
  done: number;
  total: number;
}

/** Options of one `summarize()` call. */
export interface SummarizeOptions {
  /** Background for this text only. */
  context?: string;
  signal?: AbortSignal;
  /** Called as the parts of a long text are summarized (map-reduce only). */
  onChunkProgress?: (p: SummarizeProgress) => void;
}

/** A summarizer bound to an engine. */
export class HearthSummarizer {
  readonly type: SummarizerType;
  readonly format: SummarizerFormat;
  readonly length: SummarizerLength;
  readonly sharedContext: string;
  readonly expectedInputLanguages: readonly string[] | null;
  readonly expectedContextLanguages: readonly string[] | null;
  readonly outputLanguage: string | null;
  /**
   * Tokens of input one pass can take (context window − prompt − output budget). Longer inputs
   * are still summarized, by map-reduce; this is the threshold where that starts.
   */
  readonly inputQuota: number;
  private destroyed = false;

  private constructor(
    private readonly driver: Driver,
    opts: SummarizerOptions,
    private readonly overhead: { final: number; map: number },
  ) {
    this.type = opts.type ?? "key-points";
    this.format = opts.format ?? "markdown";
    this.length = opts.length ?? "short";
    this.sharedContext = opts.sharedContext ?? "";
    this.expectedInputLanguages = opts.expectedInputLanguages ?? null;
    this.expectedContextLanguages = opts.expectedContextLanguages ?? null;
    this.outputLanguage = opts.outputLanguage ?? null;
    this.temperature = opts.temperature ?? 0;
    this.inputQuota = Math.max(0, driver.info.n_ctx - overhead.final - MAX_OUTPUT_TOKENS[this.length]);
  }
  private readonly temperature: number;

  /** Validates options and measures the prompt overhead. */
  static async create(driver: Driver, opts: SummarizerOptions = {}): Promise<HearthSummarizer> {
    throwIfAborted(opts.signal);
    const pick = <T extends string>(name: string, v: T | undefined, allowed: readonly T[]) => {
      if (v !== undefined && !allowed.includes(v)) throw new HearthError("BAD_REQUEST", `${name} must be one of ${allowed.join(", ")}`);
    };
    pick("type", opts.type, ["key-points", "tldr", "teaser", "headline"]);
    pick("format", opts.format, ["markdown", "plain-text"]);
    pick("length", opts.length, ["short", "medium", "long"]);
    checkSampling({ temperature: opts.temperature }); // the one validation path (validate.ts)
    const type = opts.type ?? "key-points";
    const length = opts.length ?? "short";
    const format = opts.format ?? "markdown";
    const final = await promptTokens(driver, [
      { role: "system", content: summarySystemPrompt(type, length, format, opts.sharedContext) },
      { role: "user", content: summaryUserPrompt("") },
    ]);
    const map = await promptTokens(driver, [
      { role: "system", content: mapSystemPrompt(opts.sharedContext) },
      { role: "user", content: mapUserPrompt("", 99, 99) },
    ]);
    const s = new HearthSummarizer(driver, opts, { final, map });
    if (s.inputQuota < 32) throw new HearthError("CONTEXT_OVERFLOW", `the context window (${driver.info.n_ctx} tokens) is too small to summarize`);
    return s;
  }

  private check(): void {
    if (this.destroyed) throw new HearthError("BAD_REQUEST", "this summarizer was destroyed");
  }

  /** Tokens `input` (plus its context) uses of {@link inputQuota}. */
  async measureInputUsage(input: string, opts: { context?: string; signal?: AbortSignal } = {}): Promise<number> {
    this.check();
    throwIfAborted(opts.signal);
    const ctx = opts.context ? await this.driver.countTokens(`Context: ${opts.context}\n\n`) : 0;
    return ctx + (await this.driver.countTokens(input));
  }

  /** The whole summary. */
  async summarize(input: string, opts: SummarizeOptions = {}): Promise<string> {
    const s = this.summarizeStreaming(input, opts);
    let out = "";
    const reader = s.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) return out.trim();
      out += r.value;
    }
  }

  /** The summary as a stream of text deltas (a `ReadableStream<string>`, async-iterable in browsers). */
  summarizeStreaming(input: string, opts: SummarizeOptions = {}): ReadableStream<string> {
    let iterator: AsyncIterator<string> | null = null;
    return new ReadableStream<string>({
      start: () => {
        this.check();
        if (typeof input !== "string") throw new HearthError("BAD_REQUEST", "summarize() needs a string");
      },
      pull: async (controller) => {
        try {
          iterator ??= this.run(input, opts)[Symbol.asyncIterator]();
          const r = await iterator.next();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        } catch (e) {
          controller.error(HearthError.from(e));
        }
      },
      cancel: async () => {
        await iterator?.return?.();
      },
    });
  }

  /** Releases the summarizer (the engine stays loaded). */
  destroy(): void {
    this.destroyed = true;
  }

  private async *run(input: string, opts: SummarizeOptions): AsyncGenerator<string, void, undefined> {
    const { signal } = opts;
    throwIfAborted(signal);
    let text = input.trim();
    if (!text) return;
    const contextTokens = opts.context ? await this.driver.countTokens(`Context: ${opts.context}\n\n`) : 0;
    // Map-reduce until the text fits one pass; each round must shrink it.
    for (let round = 0; ; round++) {
      const tokens = await this.driver.countTokens(text);
      if (tokens + contextTokens <= this.inputQuota) break;
      if (round >= 4) throw new HearthError("CONTEXT_OVERFLOW", "the text did not shrink enough to fit the context after 4 rounds of summarizing its parts");
      const mapOutMax = Math.min(MAX_OUTPUT_TOKENS.medium, Math.floor(this.driver.info.n_ctx / 4));
      const budget = this.driver.info.n_ctx - this.overhead.map - mapOutMax - 8;
      const parts = await splitByTokens(this.driver, text, Math.max(32, budget));
      // Give each part an output budget such that the joined partial summaries fit one pass,
      // so one reduce round usually suffices (small models otherwise fill whatever they get).
      const mapOut = Math.max(24, Math.min(mapOutMax, Math.floor((0.85 * (this.inputQuota - contextTokens)) / parts.length) - 6));
      const summaries: string[] = [];
      opts.onChunkProgress?.({ round, done: 0, total: parts.length });
      for (let i = 0; i < parts.length; i++) {
        const r = await this.generate(
          [
            { role: "system", content: mapSystemPrompt(this.sharedContext || undefined) },
            { role: "user", content: mapUserPrompt(parts[i]!, i, parts.length) },
          ],
          mapOut,
          signal,
        );
        summaries.push(r.text.trim() || parts[i]!.slice(0, 200));
        opts.onChunkProgress?.({ round, done: i + 1, total: parts.length });
      }
      const next = joinPartialSummaries(summaries);
      if ((await this.driver.countTokens(next)) >= tokens) {
        throw new HearthError("CONTEXT_OVERFLOW", "summarizing the parts of the text did not make it shorter");
      }
      text = next;
    }
    const messages: ChatMessage[] = [
      { role: "system", content: summarySystemPrompt(this.type, this.length, this.format, this.sharedContext || undefined) },
      { role: "user", content: summaryUserPrompt(text, opts.context) },
    ];
    const stream = streamGeneration(signal, (sig, push) => this.driver.generate({ kind: "chat", messages, max_tokens: MAX_OUTPUT_TOKENS[this.length], temperature: this.temperature }, push, sig), {
      delta: (t) => t,
    });
    yield* stream;
  }

  private generate(messages: ChatMessage[], maxTokens: number, signal: AbortSignal | undefined): Promise<GenerateResult> {
    return this.driver.generate({ kind: "chat", messages, max_tokens: maxTokens, temperature: this.temperature }, () => undefined, signal);
  }
}

async function promptTokens(driver: Driver, messages: ChatMessage[]): Promise<number> {
  return driver.countTokens(await driver.renderChat(messages));
}

/**
 * Splits text into parts of at most `budget` tokens, on paragraph, then sentence, then word
 * boundaries (a single over-long word is cut by characters).
 */
export async function splitByTokens(driver: Driver, text: string, budget: number): Promise<string[]> {
  const pieces: Array<{ text: string; tokens: number }> = [];
  const addPiece = async (t: string, level: number): Promise<void> => {
    const n = await driver.countTokens(t);
    if (n <= budget) {
      pieces.push({ text: t, tokens: n });
      return;
    }
    const splitters = [/(?<=\n\s*\n)(?=\S)/, /(?<=[.!?。]\s+)(?=\S)/, /(?<=\s)(?=\S)/];
    if (level < splitters.length) {
      const sub = t.split(splitters[level]!).filter((s) => s.length > 0);
      if (sub.length > 1) {
        for (const s of sub) await addPiece(s, level + 1);
        return;
      }
      return addPiece(t, level + 1);
    }
    // One unbreakable run: cut by characters in proportion to the budget.
    const cut = Math.max(1, Math.floor((t.length * budget) / n));
    for (let i = 0; i < t.length; i += cut) await addPiece(t.slice(i, i + cut), level);
  };
  await addPiece(text, 0);
  const parts: string[] = [];
  let cur = "";
  let curTokens = 0;
  for (const p of pieces) {
    if (cur && curTokens + p.tokens > budget) {
      parts.push(cur);
      cur = "";
      curTokens = 0;
    }
    cur += p.text;
    curTokens += p.tokens;
  }
  if (cur.trim()) parts.push(cur);
  return parts;
}
