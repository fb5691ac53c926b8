/**
 * Every prompt the Summarizer uses, in one place: per type, length and format (the WICG
 * Writing Assistance APIs' definitions of each), plus the map step of map-reduce.
 */

/** WICG Summarizer `type`. */
export type SummarizerType = "key-points" | "tldr" | "teaser" | "headline";
/** WICG Summarizer `format`. */
export type SummarizerFormat = "markdown" | "plain-text";
/** WICG Summarizer `length`. */
export type SummarizerLength = "short" | "medium" | "long";

// The spec's sizes: key-points 3/5/7 bullets, tldr/teaser 1/3/5 sentences, headline 12/17/22 words.
const SIZE: Record<SummarizerType, Record<SummarizerLength, string>> = {
  "key-points": { short: "exactly 3 bullet points", medium: "exactly 5 bullet points", long: "exactly 7 bullet points" },
  tldr: { short: "one sentence", medium: "three sentences", long: "five sentences" },
  teaser: { short: "one sentence", medium: "three sentences", long: "five sentences" },
  headline: { short: "at most 12 words", medium: "at most 17 words", long: "at most 22 words" },
};

const WHAT: Record<SummarizerType, string> = {
  "key-points": "the key points of the text",
  tldr: "a short overview of the text (a TL;DR)",
  teaser: "a teaser that makes the reader want to read the text, without giving away its conclusion",
  headline: "a headline for the text, one line",
};

/** Output token budget per length (the longest allowed summary plus slack). */
export const MAX_OUTPUT_TOKENS: Record<SummarizerLength, number> = { short: 96, medium: 192, long: 320 };

/** The system prompt of a final summary. */
export function summarySystemPrompt(type: SummarizerType, length: SummarizerLength, format: SummarizerFormat, sharedContext?: string): string {
  const style =
    type === "key-points"
      ? format === "markdown"
        ? "Write each point as a Markdown bullet starting with \"- \"."
        : "Write each point on its own line, without Markdown."
      : format === "markdown"
        ? "You may use Markdown."
        : "Write plain text without any Markdown.";
  let s = `You summarize texts. Write ${WHAT[type]} in ${SIZE[type][length]}. ${style} Reply with the summary only.`;
  if (sharedContext) s += `\nContext: ${sharedContext}`;
  return s;
}

/** The user message of a summary: the text and the per-call context. */
export function summaryUserPrompt(text: string, context?: string): string {
  return context ? `Context: ${context}\n\nText:\n${text}` : `Text:\n${text}`;
}

/** The system prompt of the map step (one part of a long text → its main points). */
export function mapSystemPrompt(sharedContext?: string): string {
  let s = "You summarize one part of a longer text. List its main facts and points as short plain-text lines. Reply with the list only.";
  if (sharedContext) s += `\nContext: ${sharedContext}`;
  return s;
}

/** The user message of the map step. */
export function mapUserPrompt(part: string, index: number, count: number): string {
  return `Part ${index + 1} of ${count}:\n${part}`;
}

/** Joins the map step's outputs into the text the next step summarizes. */
export function joinPartialSummaries(parts: string[]): string {
  return parts.map((p, i) => `Part ${i + 1}:\n${p.trim()}`).join("\n\n");
}
