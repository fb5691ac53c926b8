/** The page side of the engine Worker: a {@link Driver} that forwards to `worker.ts`. */

import type { CoreHooks, Driver } from "./core.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import type { FromWorker, ToWorker } from "./protocol.js";
import type { ChatMessage, GenerateRequest, GenerateResult, LoadConfig, ModelInfo } from "./types.js";

type Pending = {
  resolve: (v: FromWorker & { type: "result" }) => void;
  reject: (e: HearthError) => void;
  onProgress?: CoreHooks["onProgress"];
  onDelta?: (text: string) => void;
};

// Distributes ToWorker over its union members so object literals type-check.
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** An engine living in a dedicated module Worker. */
export class WorkerDriver implements Driver {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private terminated = false;
  info!: ModelInfo;

  private constructor(private readonly worker: Worker, private readonly hooks: CoreHooks) {
    worker.onmessage = (e: MessageEvent<FromWorker>) => this.onMessage(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.failAll(new HearthError("INTERNAL", `engine worker failed: ${e.message || "could not start (check the worker URL and its MIME type)"}`));
    };
    worker.onmessageerror = () => this.failAll(new HearthError("INTERNAL", "engine worker sent an unreadable message"));
  }

  /** Starts the Worker and loads the model in it. */
  static async load(workerUrl: URL, model: string, config: LoadConfig, hooks: CoreHooks): Promise<WorkerDriver> {
    throwIfAborted(hooks.signal);
    const d = new WorkerDriver(new Worker(workerUrl, { type: "module", name: "hearth-engine" }), hooks);
    try {
      const r = await d.request({ type: "load", model, config }, { signal: hooks.signal, onProgress: hooks.onProgress });
      d.info = r.value as ModelInfo;
      return d;
    } catch (e) {
      d.terminate();
      throw e;
    }
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === "backendchange") {
      this.info = msg.info;
      this.hooks.onBackendChange?.(msg.change);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    switch (msg.type) {
      case "progress":
        p.onProgress?.(msg.progress);
        return;
      case "delta":
        p.onDelta?.(msg.text);
        return;
      case "result":
        this.pending.delete(msg.id);
        p.resolve(msg);
        return;
      case "error":
        this.pending.delete(msg.id);
        p.reject(HearthError.from(msg.error));
        return;
    }
  }

  private failAll(e: HearthError): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private request(
    body: Without<ToWorker, "id">,
    extra: { signal?: AbortSignal | undefined; onProgress?: CoreHooks["onProgress"]; onDelta?: (t: string) => void } = {},
  ): Promise<FromWorker & { type: "result" }> {
    if (this.terminated) return Promise.reject(new HearthError("BAD_REQUEST", "the engine was unloaded"));
    const id = this.nextId++;
    const { signal } = extra;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.worker.postMessage({ id: this.nextId++, type: "abort", target: id } satisfies ToWorker);
      const p: Pending = {
        resolve: (v) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          // The worker reports aborts as ABORTED already; keep the caller's reason if it was a HearthError.
          reject(e.code === "ABORTED" && signal?.aborted ? abortError(signal) : e);
        },
      };
      if (extra.onProgress) p.onProgress = extra.onProgress;
      if (extra.onDelta) p.onDelta = extra.onDelta;
      this.pending.set(id, p);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.worker.postMessage({ ...body, id } as ToWorker);
      if (signal?.aborted) onAbort();
    });
  }

  async generate(req: GenerateRequest, onDelta: (text: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
    throwIfAborted(signal);
    return (await this.request({ type: "generate", request: req }, { signal, onDelta })).value as GenerateResult;
  }

  async countTokens(text: string): Promise<number> {
    return (await this.request({ type: "countTokens", text })).value as number;
  }

  async countTokensBatch(texts: string[]): Promise<number[]> {
    return (await this.request({ type: "countTokensBatch", texts })).value as number[];
  }

  async renderChat(messages: ChatMessage[]): Promise<string> {
    return (await this.request({ type: "renderChat", messages })).value as string;
  }

  async reset(): Promise<void> {
    await this.request({ type: "reset" });
  }

  async dispose(): Promise<void> {
    if (this.terminated) return;
    try {
      await this.request({ type: "dispose" });
    } finally {
      this.terminate();
    }
  }

  private terminate(): void {
    this.terminated = true;
    this.worker.terminate();
    this.failAll(new HearthError("BAD_REQUEST", "the engine was unloaded"));
  }
}
