/**
 * The one validation path of every generation request. Chat (`chat.ts`), `Engine.complete`,
 * the summarizer and the Prompt API all end in `Driver.generate`, which checks the request here
 * before anything reaches the engine; `chat.ts` maps OpenAI's names through {@link checkSampling}
 * first, so a bad value gives the same `BAD_REQUEST` message wherever it came from.
 */

import { HearthError } from "./errors.js";
import type { GenerateRequest, SamplingOptions } from "./types.js";

/** Sampling fields as callers pass them (`null`/`undefined`: the engine's default). */
export interface SamplingInput {
  max_tokens?: number | null | undefined;
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  top_k?: number | null | undefined;
  min_p?: number | null | undefined;
  repeat_penalty?: number | null | undefined;
  seed?: number | null | undefined;
  stop?: string | string[] | null | undefined;
}

/** Each numeric field's range and whether it must be an integer. */
const RANGES: Record<Exclude<keyof SamplingInput, "stop">, [number, number, boolean]> = {
  max_tokens: [1, 1 << 20, true],
  temperature: [0, 2, false],
  top_p: [0, 1, false],
  top_k: [0, 1 << 20, true],
  min_p: [0, 1, false],
  repeat_penalty: [0, 10, false],
  seed: [0, Number.MAX_SAFE_INTEGER, true],
};

/** Checks sampling fields (NaN, Infinity, out of range, non-integers → `BAD_REQUEST`); returns the set ones. */
export function checkSampling(s: SamplingInput): SamplingOptions {
  const out: SamplingOptions = {};
  for (const [name, [min, max, int]] of Object.entries(RANGES) as Array<[keyof typeof RANGES, [number, number, boolean]]>) {
    const v = s[name];
    if (v == null) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) {
      throw new HearthError("BAD_REQUEST", `${name} must be ${int ? "an integer" : "a number"} in [${min}, ${max}], got ${String(v)}`);
    }
    out[name] = v;
  }
  if (s.stop != null) {
    const stop = typeof s.stop === "string" ? [s.stop] : s.stop;
    if (!Array.isArray(stop) || stop.length > 4 || !stop.every((x) => typeof x === "string" && x.length > 0)) {
      throw new HearthError("BAD_REQUEST", "stop must be a non-empty string or up to 4 of them");
    }
    out.stop = stop;
  }
  return out;
}

/** Checks a whole request as the drivers receive it; throws `BAD_REQUEST`. Fields it does not know pass through untouched. */
export function checkGenerateRequest(req: GenerateRequest): void {
  if (typeof req !== "object" || req === null) throw new HearthError("BAD_REQUEST", "a generation request must be an object");
  if (req.kind === "chat") {
    if (!Array.isArray(req.messages) || req.messages.length === 0) throw new HearthError("BAD_REQUEST", "messages must be a non-empty array");
    req.messages.forEach((m, i) => {
      if (!m || (m.role !== "system" && m.role !== "user" && m.role !== "assistant")) throw new HearthError("BAD_REQUEST", `messages[${i}].role must be system, user or assistant`);
      if (typeof m.content !== "string") throw new HearthError("BAD_REQUEST", `messages[${i}].content must be a string`);
    });
  } else if (req.kind === "completion") {
    if (typeof req.prompt !== "string") throw new HearthError("BAD_REQUEST", "prompt must be a string");
  } else {
    throw new HearthError("BAD_REQUEST", `unknown request kind ${String((req as { kind?: unknown }).kind)}`);
  }
  const checked = checkSampling(req as SamplingInput);
  if (checked.stop) req.stop = checked.stop; // a single string becomes a list of one
}
