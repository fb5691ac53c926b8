/**
 * The map step of a long text's summary: the text's parts (by tokens, on paragraph and sentence
 * boundaries), each part's facts from the model, and how many key points each part contributes
 * when key points stream part by part.
 *
 * No part is read twice: each part's facts are kept per engine (the last {@link MEMO_ENTRIES}
 * parts, keyed by the map request's settings), so the same text summarized again (streamed, then
 * `summarize()`d, or by another summarizer of the same type, length and shared context) runs no
 * map request at all. Within one map step the parts share their
 * prompt prefix (chat template, system prompt, "Text:"), which stays in the engine's KV cache from
 * one part to the next.
 */

import type { Driver } from "./core.js";
import { mapSystemPrompt, mapUserPrompt } from "./prompts.js";
import { ItemCollector, endsSentence, scoreSentences, splitSentences, trimToSentenceEnd } from "./summary-text.js";
import type { ChatMessage, Usage } from "./types.js";

/** One model request of a summary, as reported to `onRequest` (a Hearth extension). */
export interface SummaryRequest {
  /** `map`: the facts of one part of a long text; `summary`: the pass that writes the summary. */
  step: "map" | "summary";
  /** Map step: the round (0 for the text itself), the part (0-based) and the number of parts. */
  round?: number;
  part?: number;
  parts?: number;
  /** The messages the model read (in its chat template). */
  messages: ChatMessage[];
  /**
   * The engine's token counts: `prompt_tokens` read, of which `cached_tokens` came from the KV
   * cache (not prefilled again). `null` when the summarizer ended the reply itself because the
   * requested shape was complete.
   */
  usage: Usage | null;
}

/** Settings of one map step (the same for every part of it, whatever the summary's type). */
export interface MapStep {
  sharedContext?: string;
  maxTokens: number;
  temperature: number;
  repeatPenalty: number;
  round: number;
  parts: number;
  signal?: AbortSignal;
  onRequest?: (r: SummaryRequest) => void;
}

/** Parts whose facts each engine keeps (a few long pages' worth; facts are a few hundred bytes). */
const MEMO_ENTRIES = 256;
const memo = new WeakMap<Driver, Map<string, string[]>>();

/**
 * The facts of one part (bullet lines the model wrote that share words with the part, plus the
 * part's most salient sentence with a number when the model's facts carry none of its numbers),
 * from the engine's memo when this exact part was read before with the same settings.
 */
export async function partFacts(driver: Driver, part: string, index: number, step: MapStep): Promise<string[]> {
  const system = mapSystemPrompt(step.sharedContext || undefined);
  const key = JSON.stringify([system, part, step.maxTokens, step.temperature, step.repeatPenalty]);
  let m = memo.get(driver);
  if (!m) memo.set(driver, (m = new Map()));
  const hit = m.get(key);
  if (hit) {
    m.delete(key); // most recently used last
    m.set(key, hit);
    return hit;
  }
  const messages: ChatMessage[] = [
    { role: "system", content: system },
    { role: "user", content: mapUserPrompt(part) },
  ];
  const req = { kind: "chat" as const, messages, max_tokens: step.maxTokens, temperature: step.temperature, repeat_penalty: step.repeatPenalty };
  const r = await driver.generate(req, () => undefined, step.signal);
  step.onRequest?.({ step: "map", round: step.round, part: index, parts: step.parts, messages, usage: r.usage });
  const reply = r.finish_reason === "length" ? r.text.slice(0, r.text.lastIndexOf("\n") + 1) || trimToSentenceEnd(r.text) : r.text;
  const col = new ItemCollector(12);
  for (const line of reply.split("\n")) col.push(line);
  const kept = col.items.filter((f) => sharesWords(f, part));
  const numbers = part.match(/\d[\d,.]*/g) ?? [];
  if (numbers.length && !kept.some((f) => numbers.some((x) => f.includes(x)))) {
    const anchor = salientSentences(part).find((s) => /\d/.test(s));
    if (anchor) kept.push(anchor);
  }
  if (!kept.length) kept.push(...salientSentences(part).slice(0, 2));
  m.set(key, kept);
  if (m.size > MEMO_ENTRIES) m.delete(m.keys().next().value as string);
  return kept;
}

/**
 * How many of `n` key points the text should have after each part, when key points stream part
 * by part: parts weigh by their tokens, earlier parts more (pages and news put their point first:
 * weight tokens / sqrt(1 + index)); the first part always gives at least one point, the last
 * brings the total to `n`. Non-decreasing; `targets.at(-1) === n`.
 */
export function pointsAfterEachPart(partTokens: number[], n: number): number[] {
  const w = partTokens.map((t, i) => Math.max(1, t) / Math.sqrt(1 + i));
  const total = w.reduce((a, b) => a + b, 0);
  let cum = 0;
  let prev = 0;
  return w.map((x, i) => {
    cum += x;
    let t = i === w.length - 1 ? n : Math.round((n * cum) / total);
    if (i === 0) t = Math.max(1, t);
    t = Math.min(n, Math.max(prev, t));
    prev = t;
    return t;
  });
}

/** The text's whole sentences (6–50 words), most salient first. */
export function salientSentences(text: string): string[] {
  const all = splitSentences(text);
  const scores = scoreSentences(all);
  return all
    .map((s, i) => ({ s, score: scores[i]! }))
    .filter(({ s }) => endsSentence(s) && s.split(/\s+/).length >= 6 && s.split(/\s+/).length <= 50)
    .sort((a, b) => b.score - a.score)
    .map(({ s }) => s);
}

/** Whether a fact shares at least half of its capitalised words and numbers with its source (a faithfulness filter). */
function sharesWords(fact: string, source: string): boolean {
  const keys = fact.match(/\b(?:[A-Z][\p{L}]+|\d[\d,.]*)/gu) ?? [];
  if (!keys.length) return true;
  const found = keys.filter((k) => source.includes(k.replace(/[.,]+$/, ""))).length;
  return found * 2 >= keys.length;
}

/**
 * Splits text into parts of at most `budget` tokens on paragraph and sentence boundaries, then
 * word boundaries, then characters (a single over-long word). Tokens are counted in batches
 * (one Worker round trip per level), not per piece. Returns each part with its token count.
 */
export async function splitByTokens(driver: Driver, text: string, budget: number): Promise<{ parts: string[]; tokens: number[] }> {
  const levels = [/(?<=\n\s*\n|[.!?。]\s+)(?=\S)/, /(?<=\s)(?=\S)/];
  let pieces: string[] = text.split(levels[0]!).filter((s) => s.length > 0);
  let counts = await driver.countTokensBatch(pieces);
  for (let level = 1; level <= levels.length; level++) {
    if (counts.every((n) => n <= budget)) break;
    const next: string[] = [];
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      const n = counts[i]!;
      if (n <= budget) next.push(p);
      else if (level < levels.length) next.push(...p.split(levels[level]!).filter((s) => s.length > 0));
      else {
        // One unbreakable run: cut by characters in proportion to the budget (with margin).
        const cut = Math.max(1, Math.floor((p.length * budget) / n / 2));
        for (let j = 0; j < p.length; j += cut) next.push(p.slice(j, j + cut));
      }
    }
    pieces = next;
    counts = await driver.countTokensBatch(pieces);
  }
  const parts: string[] = [];
  const tokens: number[] = [];
  let cur = "";
  let curTokens = 0;
  for (let i = 0; i < pieces.length; i++) {
    const n = counts[i]!;
    if (cur && curTokens + n > budget) {
      parts.push(cur);
      tokens.push(curTokens);
      cur = "";
      curTokens = 0;
    }
    cur += pieces[i]!;
    curTokens += n;
  }
  if (cur.trim()) {
    parts.push(cur);
    tokens.push(curTokens);
  }
  return { parts, tokens };
}
