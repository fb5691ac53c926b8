/**
 * Every prompt the Summarizer uses, in one place: per type, length and format (the WICG
 * Writing Assistance APIs' definitions of each), plus the map step of map-reduce.
 *
 * Two sets: the default one, written for small models (a short instruction placed after the
 * text, where a 135M model still attends to it, one explicit shape per request), and the
 * original `legacy` set, kept runnable so `make bench-summary` can compare the two.
 */

/** WICG Summarizer `type`. */
export type SummarizerType = "key-points" | "tldr" | "teaser" | "headline";
/** WICG Summarizer `format`. */
export type SummarizerFormat = "markdown" | "plain-text";
/** WICG Summarizer `length`. */
export type SummarizerLength = "short" | "medium" | "long";
/** Which prompt set (and output handling) a summarizer uses: see the README. */
export type SummarizerPrompts = "small-model" | "legacy";

/** The spec's sizes: key-points 3/5/7 bullets, tldr/teaser 1/3/5 sentences, headline 12/17/22 words. */
export const SIZE_COUNT: Record<SummarizerType, Record<SummarizerLength, number>> = {
  "key-points": { short: 3, medium: 5, long: 7 },
  tldr: { short: 1, medium: 3, long: 5 },
  teaser: { short: 1, medium: 3, long: 5 },
  headline: { short: 12, medium: 17, long: 22 },
};

/** Output token budget of the legacy prompts per length (the longest allowed summary plus slack). */
export const MAX_OUTPUT_TOKENS: Record<SummarizerLength, number> = { short: 96, medium: 192, long: 320 };

/**
 * Output token budget of the small-model prompts: enough for the requested number of bullets or
 * sentences (small models write 15–35 tokens per bullet) plus a preamble line. Generation stops
 * earlier, as soon as the requested shape is complete.
 */
export function outputTokenBudget(type: SummarizerType, length: SummarizerLength): number {
  const n = SIZE_COUNT[type][length];
  switch (type) {
    case "key-points":
      return 24 + 40 * n;
    case "tldr":
    case "teaser":
      return 24 + 56 * n;
    case "headline":
      return 16 + 2 * n;
  }
}

const NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven"];

/**
 * The system prompt of a final summary (small-model set). The same for every type, and the text
 * comes before the instruction, so summaries of one text in several types share their prompt
 * prefix: the engine reuses its KV cache and reads the text once.
 */
export function summarySystemPrompt(sharedContext?: string): string {
  let s = "You write short, factual summaries. You only use facts from the text.";
  if (sharedContext) s += `\nContext: ${sharedContext}`;
  return s;
}

/** The instruction placed after the text (small-model set). */
export function summaryInstruction(type: SummarizerType, length: SummarizerLength): string {
  const n = SIZE_COUNT[type][length];
  const count = NUMBER_WORDS[n] ?? String(n);
  switch (type) {
    case "key-points":
      return `Write the ${count} most important facts from the text above as a bullet list. Each bullet is one short sentence with names and numbers from the text. Start each bullet with "- ".`;
    case "tldr":
      return n === 1
        ? "Summarize the text above in one sentence. Say who did what, and include key names and numbers."
        : `Summarize the text above in ${count} sentences. Include key names and numbers.`;
    case "teaser":
      return n === 1
        ? "Write one sentence that makes a reader curious about the text above, without giving away its ending."
        : `Write ${count} sentences that make a reader curious about the text above, without giving away its ending.`;
    case "headline":
      return `Write a headline of at most ${n} words for the text above.`;
  }
}

/** The user message of a summary (small-model set): the text, then the instruction. */
export function summaryUserPrompt(text: string, type: SummarizerType, length: SummarizerLength, context?: string): string {
  const ctx = context ? `Context: ${context}\n\n` : "";
  return `${ctx}Text:\n${text}\n\n${summaryInstruction(type, length)}`;
}

/** The system prompt of the map step (small-model set). */
export function mapSystemPrompt(sharedContext?: string): string {
  let s = "You list facts from a text. You copy names, numbers and dates exactly.";
  if (sharedContext) s += `\nContext: ${sharedContext}`;
  return s;
}

/** The user message of the map step (small-model set): keep the facts of this part. */
export function mapUserPrompt(part: string): string {
  return `Text:\n${part}\n\nList the most important facts from the text above, with their names, numbers and dates. One fact per line, each line starting with "- ".`;
}

// ---------------------------------------------------------------------------------------------
// The legacy set (before issue 22): `prompts: "legacy"`.

const LEGACY_SIZE: Record<SummarizerType, Record<SummarizerLength, string>> = {
  "key-points": { short: "exactly 3 bullet points", medium: "exactly 5 bullet points", long: "exactly 7 bullet points" },
  tldr: { short: "one sentence", medium: "three sentences", long: "five sentences" },
  teaser: { short: "one sentence", medium: "three sentences", long: "five sentences" },
  headline: { short: "at most 12 words", medium: "at most 17 words", long: "at most 22 words" },
};

const LEGACY_WHAT: Record<SummarizerType, string> = {
  "key-points": "the key points of the text",
  tldr: "a short overview of the text (a TL;DR)",
  teaser: "a teaser that makes the reader want to read the text, without giving away its conclusion",
  headline: "a headline for the text, one line",
};

/** The legacy system prompt of a final summary. */
export function legacySummarySystemPrompt(type: SummarizerType, length: SummarizerLength, format: SummarizerFormat, sharedContext?: string): string {
  const style =
    type === "key-points"
      ? format === "markdown"
        ? "Write each point as a Markdown bullet starting with \"- \"."
        : "Write each point on its own line, without Markdown."
      : format === "markdown"
        ? "You may use Markdown."
        : "Write plain text without any Markdown.";
  let s = `You summarize texts. Write ${LEGACY_WHAT[type]} in ${LEGACY_SIZE[type][length]}. ${style} Reply with the summary only.`;
  if (sharedContext) s += `\nContext: ${sharedContext}`;
  return s;
}

/** The legacy user message of a summary: the text and the per-call context. */
export function legacySummaryUserPrompt(text: string, context?: string): string {
  return context ? `Context: ${context}\n\nText:\n${text}` : `Text:\n${text}`;
}

/** The legacy system prompt of the map step (one part of a long text → its main points). */
export function legacyMapSystemPrompt(sharedContext?: string): string {
  let s = "You summarize one part of a longer text. List its main facts and points as short plain-text lines. Reply with the list only.";
  if (sharedContext) s += `\nContext: ${sharedContext}`;
  return s;
}

/** The legacy user message of the map step. */
export function legacyMapUserPrompt(part: string, index: number, count: number): string {
  return `Part ${index + 1} of ${count}:\n${part}`;
}

/** Joins the legacy map step's outputs into the text the next step summarizes. */
export function legacyJoinPartialSummaries(parts: string[]): string {
  return parts.map((p, i) => `Part ${i + 1}:\n${p.trim()}`).join("\n\n");
}
