/** The engine's request queue: one wasm call sequence at a time. */

import { abortError, throwIfAborted } from "./errors.js";

/** Runs tasks one after another; a task whose signal fires while it waits never starts. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const prev = this.tail;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (!signal) return;
      onAbort = () => reject(abortError(signal));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    const result = prev.then(() => {
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      throwIfAborted(signal);
      return task();
    });
    this.tail = result.catch(() => undefined);
    // A waiting request rejects as soon as it is aborted; the queue still skips it in turn.
    return signal ? Promise.race([result, aborted]) : result;
  }
}
