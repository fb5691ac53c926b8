/**
 * One generation on a `WasmEngine`: start it, step it token by token (yielding to the event loop
 * between tokens so an abort message is seen), cancel it on abort, and time it.
 */

import { HearthError, abortError } from "./errors.js";
import type { GenerateRequest, GenerateResult, Usage } from "./types.js";
import type { WasmEngine, WasmStep } from "./wasm-api.js";
import { isTrap } from "./wasm-instance.js";
import { watchTraps } from "./wasm-engine.js";

/** A macrotask break, so Worker messages (abort) are seen between tokens. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

function stripUndefined(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * Runs `req` on `engine` to the end, streaming each token's text to `onDelta`. `fail` turns
 * what a wasm call threw into the HearthError to reject with (a trap kills the engine there).
 * Aborting `signal` cancels the generation within a token and rejects `ABORTED`.
 */
export async function runGeneration(
  engine: WasmEngine,
  req: GenerateRequest,
  onDelta: (text: string) => void,
  signal: AbortSignal,
  queuedAt: number,
  fail: (e: unknown) => HearthError,
): Promise<GenerateResult> {
  const t0 = performance.now();
  const { kind, ...body } = req;
  const json = JSON.stringify(stripUndefined(body));
  try {
    if (kind === "chat") engine.start_chat(json);
    else engine.start_completion(json);
  } catch (e) {
    throw fail(e);
  }
  let text = "";
  let firstTokenAt = 0;
  let cancelled = false;
  const onAbort = () => {
    if (!cancelled) {
      cancelled = true;
      engine.cancel();
    }
  };
  signal.addEventListener("abort", onAbort);
  // A panic inside the async step() traps outside any call of ours.
  const { trap, unwatch } = watchTraps();
  try {
    for (;;) {
      let step: WasmStep;
      try {
        step = JSON.parse(await Promise.race([engine.step(), trap])) as WasmStep;
      } catch (e) {
        if (isTrap(e)) throw fail(e);
        if (cancelled) throw abortError(signal);
        throw HearthError.from(e);
      }
      if (step.delta) {
        if (!firstTokenAt) firstTokenAt = performance.now();
        text += step.delta;
        if (!cancelled) onDelta(step.delta);
      }
      if (step.done) {
        if (step.finish_reason === "cancelled" || cancelled) throw abortError(signal);
        const usage: Usage = step.usage ?? { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0 };
        const end = performance.now();
        return {
          text,
          finish_reason: step.finish_reason === "length" ? "length" : "stop",
          usage,
          timings: { queued_ms: t0 - queuedAt, first_token_ms: (firstTokenAt || end) - t0, total_ms: end - t0 },
        };
      }
      // Let the Worker's message loop run (abort arrives as a message).
      await yieldToEventLoop();
      if (signal.aborted) onAbort();
    }
  } finally {
    unwatch();
    signal.removeEventListener("abort", onAbort);
  }
}
