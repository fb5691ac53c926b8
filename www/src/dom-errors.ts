/**
 * The polyfill's error and lifetime shape (Prompt API and Writing Assistance APIs): what the
 * specifications reject with, from what Hearth's own API rejects with. Code written for Chrome's
 * built-in AI checks `e.name` ("AbortError", "QuotaExceededError", …); Hearth's `HearthError.code`
 * stays on the DOMException as an extra `code` property (and the HearthError as `cause`).
 * The non-polyfill API (`Engine`, `HearthSummarizer`, `HearthLanguageModel`) keeps HearthError.
 */

import { HearthError, type HearthErrorCode } from "./errors.js";

/** DOMException names per Hearth code (`BAD_REQUEST` is a `TypeError`, as for bad IDL arguments). */
const NAMES: Record<Exclude<HearthErrorCode, "BAD_REQUEST">, string> = {
  ABORTED: "AbortError",
  QUOTA: "QuotaExceededError",
  CONTEXT_OVERFLOW: "QuotaExceededError",
  NETWORK: "NetworkError",
  INTEGRITY: "DataError",
  UNSUPPORTED_MODEL: "NotSupportedError",
  INVALID_MODEL: "DataError",
  DEVICE_LOST: "OperationError",
  INTERNAL: "UnknownError",
};

/** A DOMException (or TypeError) carrying `code` (Hearth's) and, for quota errors, `requested`/`quota`. */
export function toSpecError(e: unknown, signal?: AbortSignal): unknown {
  if (e instanceof DOMException || e instanceof TypeError || e instanceof SyntaxError || e instanceof RangeError) return e;
  const h = HearthError.from(e);
  // The spec rejects an aborted operation with the signal's reason, whatever it is.
  if (h.code === "ABORTED" && signal?.aborted) return signal.reason;
  let out: Error;
  if (h.code === "BAD_REQUEST") {
    out = h.details.domName ? new DOMException(h.message, h.details.domName) : new TypeError(h.message);
  } else {
    out = (NAMES[h.code] === "QuotaExceededError" && quotaExceededError(h)) || new DOMException(h.message, NAMES[h.code]);
  }
  Object.defineProperty(out, "code", { value: h.code, enumerable: true, configurable: true });
  Object.defineProperty(out, "cause", { value: h, configurable: true });
  if ((h.code === "QUOTA" || h.code === "CONTEXT_OVERFLOW") && !("requested" in out)) {
    const { requested, quota } = quotaNumbers(h);
    if (requested !== undefined) Object.defineProperty(out, "requested", { value: requested, enumerable: true });
    if (quota !== undefined) Object.defineProperty(out, "quota", { value: quota, enumerable: true });
  }
  return out;
}

/** `requested` and `quota` of a quota error: tokens (CONTEXT_OVERFLOW) or bytes (QUOTA). */
function quotaNumbers(h: HearthError): { requested?: number; quota?: number } {
  const d = h.details;
  const requested = d.requested ?? d.needed;
  const quota = d.quota ?? d.available;
  return { ...(requested !== undefined ? { requested } : {}), ...(quota !== undefined ? { quota } : {}) };
}

type QuotaExceededErrorCtor = new (message: string, options: { requested?: number; quota?: number }) => DOMException;

/**
 * WebIDL's `QuotaExceededError` (a DOMException subclass with `requested`/`quota`; Chromium 140+),
 * or null where the browser has none or refuses the numbers (its constructor throws a RangeError
 * when `requested` < `quota`, as a storage error's total quota can be).
 */
function quotaExceededError(h: HearthError): DOMException | null {
  const C = (globalThis as { QuotaExceededError?: unknown }).QuotaExceededError;
  if (typeof C !== "function") return null;
  try {
    return new (C as QuotaExceededErrorCtor)(h.message, quotaNumbers(h));
  } catch {
    return null;
  }
}

/** An "InvalidStateError" for a destroyed object. */
export function destroyedError(what: string): DOMException {
  return new DOMException(`this ${what} was destroyed`, "InvalidStateError");
}

/** Calls `f` with `signal` combined with the session's own (destroy) signal. */
function withSignal(args: unknown[], index: number, own: AbortSignal): { args: unknown[]; signal: AbortSignal } {
  const opts = (args[index] ?? {}) as { signal?: AbortSignal };
  if (typeof opts !== "object" || opts === null) return { args, signal: own };
  const signal = opts.signal ? AbortSignal.any([opts.signal, own]) : own;
  const copy = args.slice();
  copy[index] = { ...opts, signal };
  return { args: copy, signal };
}

/** A ReadableStream that ends with `toSpecError` of the source's error. */
function mapStream<T>(src: ReadableStream<T>, signal: AbortSignal): ReadableStream<T> {
  const reader = src.getReader();
  return new ReadableStream<T>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        controller.error(toSpecError(e, signal));
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * The session the polyfill hands out: every method rejects (or its stream errors) with the
 * spec's errors; `destroy()` aborts what is running (with an "AbortError" DOMException) and makes
 * every later call reject with "InvalidStateError". `optionsArg` says which argument of each
 * method holds its `{signal}` options.
 */
export function specSession<T extends object>(session: T, what: string, optionsArg: Record<string, number>): T {
  const destroyed = new AbortController();
  return new Proxy(session, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function" || prop === "constructor") return value;
      const method = value as (...a: unknown[]) => unknown;
      if (prop === "destroy") {
        return () => {
          if (!destroyed.signal.aborted) destroyed.abort(new DOMException(`the ${what} was destroyed`, "AbortError"));
          method.call(target);
        };
      }
      return (...raw: unknown[]) => {
        const index = optionsArg[String(prop)];
        const { args, signal } = index === undefined ? { args: raw, signal: destroyed.signal } : withSignal(raw, index, destroyed.signal);
        if (destroyed.signal.aborted) {
          const err = destroyedError(what);
          if (String(prop).endsWith("Streaming")) throw err;
          return Promise.reject(err);
        }
        let r: unknown;
        try {
          r = method.apply(target, args);
        } catch (e) {
          throw toSpecError(e, signal);
        }
        if (r instanceof ReadableStream) return mapStream(r, signal);
        if (r instanceof Promise) {
          const mapped = r.catch((e: unknown) => Promise.reject(toSpecError(e, signal)));
          // A clone is a session of its own, with the same shape.
          return prop === "clone" ? mapped.then((c) => specSession(c as T, what, optionsArg)) : mapped;
        }
        return r;
      };
    },
  });
}
