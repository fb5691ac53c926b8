/**
 * Summaries shaped like the WICG Summarizer API (`summarize`, `summarizeStreaming`,
 * `inputQuota`, `measureInputUsage`).
 *
 * The default pipeline is written for small models: a short instruction after the text, the
 * reply forced into the requested shape as it streams (exactly N bullets for key-points; whole
 * sentences only, within the sentence budget, for tldr/teaser), a text over `inputBudget` (600
 * tokens by default) cut to its most salient sentences, and a text over twice one pass first
 * map-reduced by a map step that keeps the facts (names, numbers) of every part
 * (`summary-map.ts`: each part read once per engine). Key points of such a text stream part by
 * part, as each part's facts exist; tldr, teaser and headline need the reduce pass over all the
 * facts first. `prompts: "legacy"` runs the previous prompts and plain map-reduce unchanged, for
 * comparison (`make bench-summary`).
 */

import { streamGeneration } from "./chat.js";
import type { Driver } from "./core.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import {
  MAX_OUTPUT_TOKENS,
  SIZE_COUNT,
  legacyJoinPartialSummaries,
  legacyMapSystemPrompt,
  legacyMapUserPrompt,
  legacySummarySystemPrompt,
  legacySummaryUserPrompt,
  mapSystemPrompt,
  mapUserPrompt,
  outputTokenBudget,
  summarySystemPrompt,
  summaryUserPrompt,
  type SummarizerFormat,
  type SummarizerLength,
  type SummarizerPrompts,
  type SummarizerType,
} from "./prompts.js";
import { partFacts, pointsAfterEachPart, salientSentences, splitByTokens, type MapStep, type SummaryRequest } from "./summary-map.js";
import { ItemCollector, SentenceCollector, sourceWords, selectSalient, shapeHeadline, splitSentences, trimToSentenceEnd } from "./summary-text.js";
import type { ChatMessage, GenerateRequest, GenerateResult } from "./types.js";
import { checkSampling } from "./validate.js";

export type { SummarizerFormat, SummarizerLength, SummarizerPrompts, SummarizerType, SummaryRequest };

/** Options of `engine.summarizer()` (and of the `Summarizer.create()` polyfill). */
export interface SummarizerOptions {
  type?: SummarizerType;
  format?: SummarizerFormat;
  length?: SummarizerLength;
  /** Background that applies to every text this summarizer sees. */
  sharedContext?: string;
  /** Accepted for API compatibility (the model decides what it can read). */
  expectedInputLanguages?: readonly string[];
  expectedContextLanguages?: readonly string[];
  outputLanguage?: string;
  /** Sampling temperature (default 0: greedy, reproducible). */
  temperature?: number;
  /**
   * Hearth extension: `small-model` (default) or `legacy`, the prompts and unshaped output of
   * Hearth before its summary benchmark (kept for comparison).
   */
  prompts?: SummarizerPrompts;
  /**
   * Hearth extension: a text over this many tokens is cut to its most salient sentences before
   * the model reads it (default 600: on the registry's small models as good as reading the whole
   * page, and about twice as fast on the CPU; `Infinity`: only what does not fit one pass).
   */
  inputBudget?: number;
  signal?: AbortSignal;
}

/** Progress of a map-reduce summary: parts summarized so far. */
export interface SummarizeProgress {
  /** 0 for the map step over the text, 1… for further reduce rounds. */
  round: number;
  /** Parts finished; the last event of a round has `done === total`. */
  done: number;
  total: number;
  /**
   * Parts not read because the summary was already complete (key points of a long text stop
   * once the list is full): counted in the last event's `done`, so progress always ends at `total`.
   */
  skipped?: number;
}

/** Options of one `summarize()` call. */
export interface SummarizeOptions {
  /** Background for this text only. */
  context?: string;
  signal?: AbortSignal;
  /** Called as the parts of a long text are summarized (map-reduce only). */
  onChunkProgress?: (p: SummarizeProgress) => void;
  /**
   * Hearth extension: called after each model request of this summary (each part of a long
   * text's map step, and the pass that writes the summary) with the messages and the engine's
   * token counts (`usage.cached_tokens`: prompt tokens reused from the KV cache, not prefilled).
   * A part read before by this engine is not requested again, so it is not reported.
   */
  onRequest?: (r: SummaryRequest) => void;
}

/**
 * A text up to this many times one pass is cut to its most salient sentences (one pass); a
 * longer one is map-reduced (cutting more would drop whole topics).
 */
const SELECT_UP_TO = 2;
/** Default {@link SummarizerOptions.inputBudget} (see there; measured in BENCHMARKS.md). */
const DEFAULT_INPUT_BUDGET = 600;
/** Penalty on repeated tokens in the final pass (small models otherwise loop on one fact). */
const REPEAT_PENALTY = 1.1;

/** A summarizer bound to an engine. */
export class HearthSummarizer {
  readonly type: SummarizerType;
  readonly format: SummarizerFormat;
  readonly length: SummarizerLength;
  readonly sharedContext: string;
  readonly expectedInputLanguages: readonly string[] | null;
  readonly expectedContextLanguages: readonly string[] | null;
  readonly outputLanguage: string | null;
  /** Which prompt set this summarizer uses (Hearth extension). */
  readonly prompts: SummarizerPrompts;
  /**
   * Tokens of input one pass can take (context window − prompt − output budget). Longer inputs
   * are still summarized (salient sentences, or map-reduce); this is the threshold where that starts.
   */
  readonly inputQuota: number;
  private readonly temperature: number;
  private readonly maxOutput: number;
  private readonly inputBudget: number;
  private destroyed = false;

  private constructor(
    private readonly driver: Driver,
    opts: SummarizerOptions,
    private readonly overhead: { final: number; map: number; anyType: number },
  ) {
    this.type = opts.type ?? "key-points";
    this.format = opts.format ?? "markdown";
    this.length = opts.length ?? "short";
    this.sharedContext = opts.sharedContext ?? "";
    this.expectedInputLanguages = opts.expectedInputLanguages ?? null;
    this.expectedContextLanguages = opts.expectedContextLanguages ?? null;
    this.outputLanguage = opts.outputLanguage ?? null;
    this.temperature = opts.temperature ?? 0;
    this.prompts = opts.prompts ?? "small-model";
    this.maxOutput = this.prompts === "legacy" ? MAX_OUTPUT_TOKENS[this.length] : outputTokenBudget(this.type, this.length);
    this.inputQuota = Math.max(0, driver.info.n_ctx - overhead.final - this.maxOutput);
    this.inputBudget = opts.inputBudget ?? DEFAULT_INPUT_BUDGET;
  }

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
    pick("prompts", opts.prompts, ["small-model", "legacy"]);
    const ib = opts.inputBudget;
    if (ib !== undefined && !(ib === Infinity || (Number.isInteger(ib) && ib >= 32))) {
      throw new HearthError("BAD_REQUEST", "inputBudget must be an integer >= 32, or Infinity");
    }
    const type = opts.type ?? "key-points";
    const length = opts.length ?? "short";
    const format = opts.format ?? "markdown";
    const legacy = opts.prompts === "legacy";
    const final = await promptTokens(driver, [
      { role: "system", content: legacy ? legacySummarySystemPrompt(type, length, format, opts.sharedContext) : summarySystemPrompt(opts.sharedContext) },
      { role: "user", content: legacy ? legacySummaryUserPrompt("") : summaryUserPrompt("", type, length) },
    ]);
    const map = await promptTokens(driver, [
      { role: "system", content: legacy ? legacyMapSystemPrompt(opts.sharedContext) : mapSystemPrompt(opts.sharedContext) },
      { role: "user", content: legacy ? legacyMapUserPrompt("", 99, 99) : mapUserPrompt("") },
    ]);
    // What one pass takes whatever the type (its prompt and output budget): a text is cut the same
    // way for every type, so summaries of one text in several types share their prompt prefix.
    let anyType = 0;
    if (!legacy) {
      const types = ["key-points", "tldr", "teaser", "headline"] as const;
      const prompts = await Promise.all(types.map((t) => driver.renderChat([
        { role: "system", content: summarySystemPrompt(opts.sharedContext) },
        { role: "user", content: summaryUserPrompt("", t, length) },
      ])));
      const counts = await driver.countTokensBatch(prompts);
      anyType = Math.max(...types.map((t, i) => counts[i]! + outputTokenBudget(t, length)));
    }
    const s = new HearthSummarizer(driver, opts, { final, map, anyType });
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
          iterator ??= (this.prompts === "legacy" ? this.runLegacy(input, opts) : this.run(input, opts))[Symbol.asyncIterator]();
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

  // -------------------------------------------------------------------------------------------
  // The small-model pipeline.

  private async *run(input: string, opts: SummarizeOptions): AsyncGenerator<string, void, undefined> {
    const { signal } = opts;
    throwIfAborted(signal);
    let text = input.trim();
    if (!text) return;
    const contextTokens = opts.context ? await this.driver.countTokens(`Context: ${opts.context}\n\n`) : 0;
    // This type's pass: how much of the facts it reads (a tldr reads more than key points; using
    // the largest type's quota for all cost a tldr 3 ROUGE-Lsum points, BENCHMARKS.md #17).
    const quota = Math.max(32, this.inputQuota - contextTokens);
    const budget = Math.max(32, Math.min(this.driver.info.n_ctx - this.overhead.anyType - contextTokens, this.inputBudget));
    const n = SIZE_COUNT[this.type][this.length];
    let tokens = await this.driver.countTokens(text);
    if (tokens > SELECT_UP_TO * quota) {
      if (this.type === "key-points") {
        yield* this.keyPointsByPart(text, n, quota, opts);
        return;
      }
      text = await this.mapFacts(text, quota, opts);
      tokens = await this.driver.countTokens(text);
    }
    if (tokens > budget) text = await this.selectSentences(text, budget);
    const messages: ChatMessage[] = [
      { role: "system", content: summarySystemPrompt(this.sharedContext || undefined) },
      { role: "user", content: summaryUserPrompt(text, this.type, this.length, opts.context) },
    ];
    if (this.type === "key-points") yield* this.keyPoints(messages, n, text, opts);
    else if (this.type === "headline") yield* this.headline(messages, n, text, opts);
    else yield* this.sentences(messages, n, text, opts);
  }

  /** Emits accepted items as list lines (`- ` bullets in Markdown), newline-separated across calls. */
  private bullets(): (added: string[]) => string {
    const bullet = this.format === "markdown" ? "- " : "";
    let emitted = 0;
    return (added) => added.map((t) => `${emitted++ ? "\n" : ""}${bullet}${t}`).join("");
  }

  /**
   * Key points of a text over twice one pass, streamed part by part: the map step lists each
   * part's facts, and the points due after that part ({@link pointsAfterEachPart}: the first
   * part gives at least one) are emitted as soon as its facts exist, while the later parts are
   * read. No reduce pass reads the facts again: the points are the parts' facts, cleaned and
   * deduplicated (as the model's bullets are); a part with too few facts leaves its share to the
   * next, and if fewer than `n` survive in all, the text's most salient sentences fill the list.
   */
  private async *keyPointsByPart(text: string, n: number, quota: number, opts: SummarizeOptions): AsyncGenerator<string> {
    const items = new ItemCollector(n, sourceWords(text));
    const emit = this.bullets();
    const { parts, tokens, step } = await this.mapPlan(text, quota, 0, opts);
    const targets = pointsAfterEachPart(tokens, n);
    let spare: string[] = []; // facts of earlier parts not used yet
    opts.onChunkProgress?.({ round: 0, done: 0, total: parts.length });
    let read = 0;
    for (let i = 0; i < parts.length && !items.full; i++) {
      const facts = await partFacts(this.driver, parts[i]!, i, step);
      read = i + 1;
      opts.onChunkProgress?.({ round: 0, done: i + 1, total: parts.length });
      const before = items.items.length;
      const left: string[] = [];
      for (const f of [...facts, ...spare]) {
        if (items.items.length >= targets[i]! || !items.add(f)) left.push(f);
      }
      spare = left;
      const out = emit(items.items.slice(before));
      if (out) yield out;
    }
    if (read < parts.length) opts.onChunkProgress?.({ round: 0, done: parts.length, total: parts.length, skipped: parts.length - read });
    if (!items.full) {
      const before = items.items.length;
      for (const s of salientSentences(text)) {
        if (items.full) break;
        items.add(s);
      }
      const out = emit(items.items.slice(before));
      if (out) yield out;
    }
  }

  /** The parts of `text` for map round `round` and the settings of their map requests. */
  private async mapPlan(text: string, quota: number, round: number, opts: SummarizeOptions): Promise<{ parts: string[]; tokens: number[]; step: MapStep }> {
    const n_ctx = this.driver.info.n_ctx;
    const mapOutMax = Math.min(192, Math.floor(n_ctx / 4));
    const { parts, tokens } = await splitByTokens(this.driver, text, Math.max(32, n_ctx - this.overhead.map - mapOutMax - 8));
    const step: MapStep = {
      sharedContext: this.sharedContext,
      maxTokens: Math.max(32, Math.min(mapOutMax, Math.floor((1.5 * quota) / parts.length))),
      temperature: this.temperature,
      repeatPenalty: REPEAT_PENALTY,
      round,
      parts: parts.length,
    };
    if (opts.signal) step.signal = opts.signal;
    if (opts.onRequest) step.onRequest = opts.onRequest;
    return { parts, tokens, step };
  }

  /** Exactly `n` bullets: the model's, cleaned, then (if it wrote fewer) the text's most salient sentences. */
  private async *keyPoints(messages: ChatMessage[], n: number, source: string, opts: SummarizeOptions): AsyncGenerator<string> {
    const items = new ItemCollector(n, sourceWords(source));
    const emit = this.bullets();
    let line = "";
    const gen = this.stream(messages, opts);
    for await (const d of gen.deltas) {
      line += d;
      let nl: number;
      let out = "";
      while ((nl = line.indexOf("\n")) >= 0) {
        out += emit(items.push(line.slice(0, nl)));
        line = line.slice(nl + 1);
      }
      if (out) yield out;
      if (items.full) {
        gen.stop();
        break;
      }
    }
    const r = await gen.result;
    if (!items.full && line.trim()) {
      // A reply cut at the token budget keeps only its finished sentences.
      const last = r?.finish_reason === "length" ? trimToSentenceEnd(line) : line;
      if (last) {
        const out = emit(items.push(last));
        if (out) yield out;
      }
    }
    if (!items.full) {
      const before = items.items.length;
      for (const s of salientSentences(source)) {
        if (items.full) break;
        items.add(s);
      }
      const out = emit(items.items.slice(before));
      if (out) yield out;
    }
  }

  /** One paragraph of whole sentences, at most `n` (the model's; the most salient sentence of the text if it wrote none). */
  private async *sentences(messages: ChatMessage[], n: number, source: string, opts: SummarizeOptions): AsyncGenerator<string> {
    const col = new SentenceCollector(n, sourceWords(source));
    let emitted = 0;
    const emit = (added: string[]) => added.map((t) => `${emitted++ ? " " : ""}${t}`).join("");
    const gen = this.stream(messages, opts);
    for await (const d of gen.deltas) {
      const out = emit(col.push(d));
      if (out) yield out;
      if (col.full) {
        gen.stop();
        break;
      }
    }
    const r = await gen.result;
    if (!col.full) {
      const out = emit(col.finish(r?.finish_reason === "length"));
      if (out) yield out;
    }
    if (emitted === 0) {
      const s = salientSentences(source)[0];
      if (s) yield s;
    }
  }

  /** One line of at most `n` words. */
  private async *headline(messages: ChatMessage[], n: number, source: string, opts: SummarizeOptions): AsyncGenerator<string> {
    let reply = "";
    const gen = this.stream(messages, opts);
    for await (const d of gen.deltas) {
      reply += d;
      if (shapeHeadline(reply.slice(0, reply.lastIndexOf("\n") + 1), n)) {
        gen.stop();
        break;
      }
    }
    await gen.result;
    let h = shapeHeadline(reply, n);
    if (!h) h = shapeHeadline(salientSentences(source)[0] ?? "", n);
    if (h) yield h;
  }

  /**
   * Starts the final generation: its deltas, `stop()` to end it early once the shape is complete,
   * and its result (null when stopped early), reported to `onRequest`. A caller's abort rejects as usual.
   */
  private stream(messages: ChatMessage[], opts: SummarizeOptions): { deltas: AsyncIterable<string>; stop(): void; result: Promise<GenerateResult | null> } {
    const { signal } = opts;
    let stopped = false;
    const req: GenerateRequest = { kind: "chat", messages, max_tokens: this.maxOutput, temperature: this.temperature, repeat_penalty: REPEAT_PENALTY };
    const s = streamGeneration(signal, (sig, push) => this.driver.generate(req, push, sig), { delta: (t) => t });
    const result = s.done.then(
      (r) => r as GenerateResult | null,
      (e: unknown) => {
        if (stopped && !signal?.aborted) return null;
        throw signal?.aborted ? abortError(signal) : e;
      },
    );
    result.then((r) => opts.onRequest?.({ step: "summary", messages, usage: r?.usage ?? null })).catch(() => undefined); // the caller sees a failure through `deltas`
    return {
      deltas: s,
      stop: () => {
        stopped = true;
        s.abort();
      },
      result,
    };
  }

  /** The text cut to its most salient sentences that fit `budget` tokens (one batched count). */
  private async selectSentences(text: string, budget: number): Promise<string> {
    const sentences = splitSentences(text);
    const tokens = await this.driver.countTokensBatch(sentences);
    // Leave room for the joins between sentences.
    return selectSalient(sentences, tokens, Math.floor(budget * 0.95))
      .map((i) => sentences[i]!)
      .join(" ");
  }

  /**
   * Map step of a long text: each part → its facts ({@link partFacts}: read once per engine),
   * repeated while the result does not fit `SELECT_UP_TO` passes.
   */
  private async mapFacts(text: string, quota: number, opts: SummarizeOptions): Promise<string> {
    for (let round = 0; ; round++) {
      const tokens = await this.driver.countTokens(text);
      if (tokens <= SELECT_UP_TO * quota) return text;
      if (round >= 4) throw new HearthError("CONTEXT_OVERFLOW", "the text did not shrink enough to fit the context after 4 rounds of summarizing its parts");
      const { parts, step } = await this.mapPlan(text, quota, round, opts);
      const facts: string[] = [];
      opts.onChunkProgress?.({ round, done: 0, total: parts.length });
      for (let i = 0; i < parts.length; i++) {
        facts.push(...(await partFacts(this.driver, parts[i]!, i, step)));
        opts.onChunkProgress?.({ round, done: i + 1, total: parts.length });
      }
      const next = facts.join("\n");
      if ((await this.driver.countTokens(next)) >= tokens) {
        throw new HearthError("CONTEXT_OVERFLOW", "summarizing the parts of the text did not make it shorter");
      }
      text = next;
    }
  }

  // -------------------------------------------------------------------------------------------
  // The legacy pipeline (`prompts: "legacy"`): the prompts and plain map-reduce before issue 22.

  private async *runLegacy(input: string, opts: SummarizeOptions): AsyncGenerator<string, void, undefined> {
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
      const { parts } = await splitByTokens(this.driver, text, Math.max(32, budget));
      const mapOut = Math.max(24, Math.min(mapOutMax, Math.floor((0.85 * (this.inputQuota - contextTokens)) / parts.length) - 6));
      const summaries: string[] = [];
      opts.onChunkProgress?.({ round, done: 0, total: parts.length });
      for (let i = 0; i < parts.length; i++) {
        const messages: ChatMessage[] = [
          { role: "system", content: legacyMapSystemPrompt(this.sharedContext || undefined) },
          { role: "user", content: legacyMapUserPrompt(parts[i]!, i, parts.length) },
        ];
        const r = await this.driver.generate({ kind: "chat", messages, max_tokens: mapOut, temperature: this.temperature }, () => undefined, signal);
        summaries.push(r.text.trim() || parts[i]!.slice(0, 200));
        opts.onChunkProgress?.({ round, done: i + 1, total: parts.length });
      }
      const next = legacyJoinPartialSummaries(summaries);
      if ((await this.driver.countTokens(next)) >= tokens) {
        throw new HearthError("CONTEXT_OVERFLOW", "summarizing the parts of the text did not make it shorter");
      }
      text = next;
    }
    const messages: ChatMessage[] = [
      { role: "system", content: legacySummarySystemPrompt(this.type, this.length, this.format, this.sharedContext || undefined) },
      { role: "user", content: legacySummaryUserPrompt(text, opts.context) },
    ];
    yield* streamGeneration(signal, (sig, push) => this.driver.generate({ kind: "chat", messages, max_tokens: this.maxOutput, temperature: this.temperature }, push, sig), {
      delta: (t) => t,
    });
  }
}

async function promptTokens(driver: Driver, messages: ChatMessage[]): Promise<number> {
  return driver.countTokens(await driver.renderChat(messages));
}
