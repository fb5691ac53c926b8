/**
 * The stable error codes every Hearth API rejects with (the same set the wasm engine throws).
 * `INVALID_MODEL`: the file is malformed (bad GGUF bytes, a hyper-parameter that breaks a rule
 * or disagrees with the tensors, tensors past the end of the file, a chat template that does
 * not parse or exceeds its limits on an ordinary conversation); the message names the key, its
 * value and the rule. `UNSUPPORTED_MODEL`: a well-formed file Hearth does not run (GGUF version,
 * architecture, tokenizer or tensor type).
 */
export type HearthErrorCode =
  | "UNSUPPORTED_MODEL"
  | "INVALID_MODEL"
  | "INTEGRITY"
  | "QUOTA"
  | "NETWORK"
  | "ABORTED"
  | "CONTEXT_OVERFLOW"
  | "DEVICE_LOST"
  | "BAD_REQUEST"
  | "INTERNAL";

const CODES: ReadonlySet<string> = new Set<HearthErrorCode>([
  "UNSUPPORTED_MODEL",
  "INVALID_MODEL",
  "INTEGRITY",
  "QUOTA",
  "NETWORK",
  "ABORTED",
  "CONTEXT_OVERFLOW",
  "DEVICE_LOST",
  "BAD_REQUEST",
  "INTERNAL",
]);

/** Extra facts some errors carry (e.g. the storage numbers of a `QUOTA` error). */
export interface HearthErrorDetails {
  /** `QUOTA`: bytes the model still needs. */
  needed?: number;
  /** `QUOTA`: bytes the origin may still use (`quota - usage`). */
  available?: number;
  /** `QUOTA`: `navigator.storage.estimate().quota`. */
  quota?: number;
  /** `QUOTA`: `navigator.storage.estimate().usage`. */
  usage?: number;
  /** `INTEGRITY`: the expected sha256. */
  expected?: string;
  /** `INTEGRITY`: the sha256 of the bytes received. */
  actual?: string;
  /** `NETWORK`: the HTTP status, when there was one. */
  status?: number;
  /** `CONTEXT_OVERFLOW`: tokens the input needs (with `quota`: the tokens the session had left). */
  requested?: number;
  /**
   * `BAD_REQUEST`: the DOMException name the specs give this case where it is not a TypeError
   * (e.g. "SyntaxError" for a misplaced Prompt API `prefix`); the polyfill rejects with it.
   */
  domName?: "SyntaxError" | "NotSupportedError";
}

/** The one error type of the Hearth API: a stable `code` and a human `message`. */
export class HearthError extends Error {
  /** Stable machine-readable code; branch on this, not on the message. */
  readonly code: HearthErrorCode;
  /** Structured facts about the failure, when there are any. */
  readonly details: HearthErrorDetails;

  constructor(code: HearthErrorCode, message: string, details: HearthErrorDetails = {}) {
    super(message);
    this.name = "HearthError";
    this.code = code;
    this.details = details;
  }

  /** A plain object that survives `postMessage` (structured clone drops the class). */
  toJSON(): { code: HearthErrorCode; message: string; details: HearthErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }

  /** Turns anything thrown (wasm `{code, message}`, DOMException, Error, string) into a HearthError. */
  static from(e: unknown, fallback: HearthErrorCode = "INTERNAL"): HearthError {
    if (e instanceof HearthError) return e;
    if (typeof e === "object" && e !== null) {
      const o = e as { code?: unknown; message?: unknown; name?: unknown; details?: unknown };
      if (typeof o.code === "string" && CODES.has(o.code)) {
        const details = typeof o.details === "object" && o.details !== null ? (o.details as HearthErrorDetails) : {};
        return new HearthError(o.code as HearthErrorCode, String(o.message ?? o.code), details);
      }
      if (o.name === "AbortError") return new HearthError("ABORTED", String(o.message ?? "aborted"));
      if (o.name === "QuotaExceededError") return new HearthError("QUOTA", String(o.message ?? "storage quota exceeded"));
      if (typeof o.message === "string") return new HearthError(fallback, o.message);
    }
    return new HearthError(fallback, String(e));
  }
}

/** Throws `ABORTED` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** The HearthError for an aborted signal (keeps a HearthError reason as is). */
export function abortError(signal: AbortSignal | undefined): HearthError {
  const r: unknown = signal?.reason;
  if (r instanceof HearthError) return r;
  return new HearthError("ABORTED", r instanceof Error && r.message ? `aborted: ${r.message}` : "aborted");
}
