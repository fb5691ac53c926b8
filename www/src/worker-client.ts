/** The page side of the engine Worker: a {@link Driver} that forwards to `worker.ts`. */

import { startEngineWorker } from "./assets.js";
import type { CoreHooks, Driver } from "./core.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import type { FromWorker, ToWorker } from "./protocol.js";
import type { ChatMessage, GenerateRequest, GenerateResult, LoadConfig, ModelInfo } from "./types.js";
import { checkGenerateRequest } from "./validate.js";
import { poolTrapError } from "./wasm-instance.js";
import { resolveParts } from "./registry.js";
import { defaultStore } from "./store.js";

type Pending = {
  resolve: (v: FromWorker & { type: "result" }) => void;
  reject: (e: HearthError) => void;
  onProgress?: CoreHooks["onProgress"];
  onDelta?: (text: string) => void;
};

// Distributes ToWorker over its union members so object literals type-check.
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Tells the Workers of this page's engines apart on their pool trap channels. */
let channelSeq = 0;

/**
 * An engine living in a dedicated module Worker. When the engine traps (a Rust panic) or the
 * Worker dies, the Worker is terminated and a new one loads the model again (from the store)
 * on the next request. A panic on a thread of the threaded build's pool leaves the Worker
 * blocked (its engine thread waits for that thread's task): the pool reports it on a
 * BroadcastChannel this side listens to (`wasm-instance.ts` `setPoolTrapChannel`), which ends the
 * Worker at once and rejects what was pending with INTERNAL and the panic's text.
 */
export class WorkerDriver implements Driver {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private terminated = false;
  /** The Worker's engine crashed: the next request starts a new Worker first. */
  private dead = false;
  private respawning: Promise<void> | null = null;
  private worker: Worker;
  /** The current Worker's pool trap channel (null where BroadcastChannel does not exist). */
  private trapChannel: BroadcastChannel | null = null;
  private trapChannelName: string | undefined;
  /** A load request is pending (the first load, or a respawn's). */
  private loading = 0;
  info!: ModelInfo;

  private constructor(
    private readonly workerUrl: string | URL | undefined,
    private readonly model: string | readonly string[],
    private readonly config: LoadConfig,
    private readonly hooks: CoreHooks,
  ) {
    this.worker = this.spawn();
  }

  private spawn(): Worker {
    const worker = startEngineWorker(this.workerUrl);
    this.listenForPoolTraps(worker);
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      if (worker === this.worker) this.onMessage(e.data);
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      if (worker !== this.worker) return;
      this.dead = true;
      this.failAll(new HearthError("INTERNAL", `engine worker failed: ${e.message || "could not start (check the worker URL and its MIME type)"}`));
    };
    worker.onmessageerror = () => {
      if (worker === this.worker) this.failAll(new HearthError("INTERNAL", "engine worker sent an unreadable message"));
    };
    return worker;
  }

  /** A channel for `worker`'s thread pool to report a trap on (its name goes with the load). */
  private listenForPoolTraps(worker: Worker): void {
    this.trapChannel?.close();
    this.trapChannel = null;
    this.trapChannelName = undefined;
    if (typeof BroadcastChannel === "undefined") return;
    const rand = Math.random().toString(36).slice(2);
    const name = `hearth-pool-trap:${Date.now().toString(36)}:${rand}:${++channelSeq}`;
    const channel = new BroadcastChannel(name);
    channel.onmessage = (e: MessageEvent) => {
      const err = poolTrapError(e.data);
      if (!err || worker !== this.worker || this.terminated) return;
      this.crashed(err);
    };
    this.trapChannel = channel;
    this.trapChannelName = name;
  }

  /**
   * The Worker's engine is stuck for good (a pool thread trapped): end it now (its pool goes
   * with it), reject what was pending, and re-create it on the next request.
   */
  private crashed(err: HearthError): void {
    this.dead = true;
    this.worker.terminate();
    this.trapChannel?.close();
    this.trapChannel = null;
    if (this.loading === 0) {
      this.failAll(err);
      return;
    }
    // A crash while loading: the file is not kept as good (as the Worker does for a trap on
    // its own thread), deleted before the load rejects. The delete waits for the model's Web
    // Lock, which the ended Worker's load held until now.
    void this.forgetModel().finally(() => this.failAll(err));
  }

  private async forgetModel(): Promise<void> {
    try {
      const opts: { sha256?: string | string[]; modelBaseUrl?: string } = {};
      if (this.config.sha256 !== undefined) opts.sha256 = this.config.sha256;
      if (this.config.modelBaseUrl !== undefined) opts.modelBaseUrl = this.config.modelBaseUrl;
      for (const part of resolveParts(this.model, opts)) await defaultStore.delete(part.id);
    } catch {
      // Best effort: the store may be unavailable here (no OPFS in this realm).
    }
  }

  /** A load request (see {@link loading}). */
  private async loadRequest(extra: { signal?: AbortSignal | undefined; onProgress?: CoreHooks["onProgress"] } = {}): Promise<ModelInfo> {
    this.loading++;
    try {
      const r = await this.request({ type: "load", model: this.model, config: this.config, poolTrapChannel: this.trapChannelName }, extra);
      return r.value as ModelInfo;
    } finally {
      this.loading--;
    }
  }

  /** Starts the Worker and loads the model in it. Whatever fails, the Worker is terminated before this rejects. */
  static async load(workerUrl: string | URL | undefined, model: string | readonly string[], config: LoadConfig, hooks: CoreHooks): Promise<WorkerDriver> {
    throwIfAborted(hooks.signal);
    const d = new WorkerDriver(workerUrl, model, config, hooks);
    try {
      d.info = await d.loadRequest({ signal: hooks.signal, onProgress: hooks.onProgress });
      return d;
    } catch (e) {
      d.terminate(HearthError.from(e));
      throw e;
    }
  }

  /** A new Worker with the model loaded again (from the store), replacing a crashed one. */
  private async respawn(): Promise<void> {
    this.worker.terminate();
    this.worker = this.spawn();
    this.dead = false;
    this.info = await this.loadRequest();
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === "backendchange") {
      this.info = msg.info;
      this.hooks.onBackendChange?.(msg.change);
      return;
    }
    if (msg.type === "crashed") {
      this.dead = true;
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
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }

  /** Sends a request, first replacing a crashed Worker. */
  private async call(
    body: Without<ToWorker, "id">,
    extra: { signal?: AbortSignal | undefined; onDelta?: (t: string) => void } = {},
  ): Promise<FromWorker & { type: "result" }> {
    if (this.terminated) throw new HearthError("BAD_REQUEST", "the engine was unloaded");
    if (this.dead) {
      this.respawning ??= this.respawn().finally(() => (this.respawning = null));
      await this.respawning;
    }
    return this.request(body, extra);
  }

  private request(
    body: Without<ToWorker, "id">,
    extra: { signal?: AbortSignal | undefined; onProgress?: CoreHooks["onProgress"]; onDelta?: (t: string) => void } = {},
  ): Promise<FromWorker & { type: "result" }> {
    if (this.terminated) return Promise.reject(new HearthError("BAD_REQUEST", "the engine was unloaded"));
    const id = this.nextId++;
    const { signal } = extra;
    const worker = this.worker;
    return new Promise((resolve, reject) => {
      const onAbort = () => worker.postMessage({ id: this.nextId++, type: "abort", target: id } satisfies ToWorker);
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
      worker.postMessage({ ...body, id } as ToWorker);
      if (signal?.aborted) onAbort();
    });
  }

  async generate(req: GenerateRequest, onDelta: (text: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
    throwIfAborted(signal);
    checkGenerateRequest(req);
    return (await this.call({ type: "generate", request: req }, { signal, onDelta })).value as GenerateResult;
  }

  async countTokens(text: string): Promise<number> {
    return (await this.call({ type: "countTokens", text })).value as number;
  }

  async countTokensBatch(texts: string[]): Promise<number[]> {
    return (await this.call({ type: "countTokensBatch", texts })).value as number[];
  }

  async renderChat(messages: ChatMessage[]): Promise<string> {
    return (await this.call({ type: "renderChat", messages })).value as string;
  }

  async prepareConstraints(): Promise<number> {
    return (await this.call({ type: "prepareConstraints" })).value as number;
  }

  async reset(): Promise<void> {
    await this.call({ type: "reset" });
  }

  /**
   * Ends the Worker (its memory, its engine, any lock or file it held go with it): a generation
   * running now rejects with `ABORTED` at once, whatever it was doing. The Worker is first asked
   * to free its engine and stop its thread pool ({@link askToStop}), so that its memory goes as
   * soon as it is terminated.
   */
  async dispose(): Promise<void> {
    if (this.terminated) return;
    const worker = this.worker;
    const stopped = this.dead || this.loading > 0 ? Promise.resolve() : askToStop(worker, this.nextId++);
    this.terminated = true;
    this.trapChannel?.close();
    this.trapChannel = null;
    this.failAll(new HearthError("ABORTED", "the engine was unloaded"));
    await stopped;
    worker.terminate();
  }

  private terminate(reason: HearthError): void {
    this.terminated = true;
    this.worker.terminate();
    this.trapChannel?.close();
    this.trapChannel = null;
    this.failAll(reason.code === "ABORTED" ? reason : new HearthError("BAD_REQUEST", "the engine was unloaded"));
  }
}

/** How long `unload()` waits for the Worker to stop its engine before terminating it anyway. */
const UNLOAD_WAIT_MS = 1000;

/**
 * Asks `worker` to free its engine and stop its thread pool (`worker.ts` "dispose"); resolves on
 * its answer, or after {@link UNLOAD_WAIT_MS} (a long step that does not yield). In the threaded
 * build this is what makes the memory go at once on `terminate()`: a pool Worker still blocked
 * in rayon's wait counts as running script, and Chromium ends such a Worker by force only 2 s
 * after `terminate()`, the shared memory resident until then (`wasm-instance.ts` `stopThreadPools`).
 */
function askToStop(worker: Worker, id: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      worker.removeEventListener("message", onMessage);
      resolve();
    };
    const onMessage = (e: MessageEvent<FromWorker>) => {
      if (e.data?.id === id && (e.data.type === "result" || e.data.type === "error")) done();
    };
    const timer = setTimeout(done, UNLOAD_WAIT_MS);
    worker.addEventListener("message", onMessage);
    worker.postMessage({ id, type: "dispose" } satisfies ToWorker);
  });
}
