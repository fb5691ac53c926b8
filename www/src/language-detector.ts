/**
 * `LanguageDetector` sessions (WICG Writing Assistance APIs' language detection) for the
 * polyfill: no language model needed; the detection is tinyld's (maintained n-gram detector, MIT,
 * its 69 kB "light" build vendored into dist/vendor/ by the build: 24 languages).
 */

import { HearthError, throwIfAborted } from "./errors.js";
import { detectAll, supportedLanguages, toISO2 } from "./vendor/tinyld-light.js";

/** One candidate language: BCP 47 primary tag and a confidence in [0, 1]. */
export interface LanguageDetectionResult {
  detectedLanguage: string;
  confidence: number;
}

/** The languages the detector knows (ISO 639-1). */
export function detectableLanguages(): string[] {
  return supportedLanguages.map((l) => toISO2(l));
}

/** A language detector (`detect`, `measureInputUsage`, `inputQuota`, `destroy`). */
export class HearthLanguageDetector {
  readonly expectedInputLanguages: readonly string[] | null;
  readonly inputQuota = Number.POSITIVE_INFINITY;
  private destroyed = false;

  constructor(opts: { expectedInputLanguages?: readonly string[] } = {}) {
    this.expectedInputLanguages = opts.expectedInputLanguages ? Object.freeze([...opts.expectedInputLanguages]) : null;
  }

  /**
   * Candidates, most likely first, confidences summing to 1 (each language's share of tinyld's
   * scores); the last is `und` (undetermined): confidence 1 for text with no detectable
   * language, else 0 (tinyld's scores are relative: they leave no mass for "none of these").
   */
  async detect(input: string, opts: { signal?: AbortSignal } = {}): Promise<LanguageDetectionResult[]> {
    throwIfAborted(opts.signal);
    if (this.destroyed) throw new HearthError("BAD_REQUEST", "this language detector was destroyed");
    if (typeof input !== "string") throw new HearthError("BAD_REQUEST", "detect() needs a string");
    const raw = detectAll(input).filter((r) => r.accuracy > 0);
    const total = raw.reduce((s, r) => s + r.accuracy, 0);
    const out = raw.map((r) => ({ detectedLanguage: r.lang, confidence: r.accuracy / total }));
    out.push({ detectedLanguage: "und", confidence: out.length ? 0 : 1 });
    return out;
  }

  /** What `input` uses of `inputQuota` (characters; the quota is unlimited). */
  async measureInputUsage(input: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    throwIfAborted(opts.signal);
    return String(input).length;
  }

  /** Ends the detector (later calls fail). */
  destroy(): void {
    this.destroyed = true;
  }
}
