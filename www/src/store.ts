/**
 * The weight store: model files kept in the Origin Private File System (OPFS) in fixed-size
 * chunks, so a second visit, and every visit offline, reads the weights without the network.
 * Why OPFS and not the Cache API: `docs/store-decision.md`.
 *
 * Layout: `<root>/hearth-models/<key>/manifest.json` + `chunk-000000.bin`, `chunk-000001.bin`, …
 * (`opfs.ts`). A chunk file is written whole (OPFS `createWritable` commits atomically on close)
 * before the manifest that lists it with its XXH32 checksum; the manifest says `complete: true`
 * only after every byte arrived and the sha256 matched. So an interrupted download is resumable
 * from its last stored chunk and is never mistaken for a complete one, and a chunk damaged on
 * disk is noticed when read and fetched again. The download itself: `download.ts`.
 *
 * Locking: every operation on one model's bytes (open, delete, eviction) holds the model's Web
 * Lock `hearth-model:<id>`, shared by every tab and Worker of the origin.
 */

import { openModel, type StoreAccess } from "./download.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import { isNotFound, readManifest, storageManager, subdir, type StoredModel } from "./opfs.js";
import type { ModelSource } from "./registry.js";
import { sha256Hex } from "./sha256.js";

export type { StoredModel };

/** A load progress report, in bytes. `download`: from the network; `cache`: from the store;
 *  `upload`: all bytes handed to the engine, which is finishing its upload; `ready`: done. */
export interface LoadProgress {
  phase: "download" | "cache" | "upload" | "ready";
  /** Over all parts of a split model. */
  loaded: number;
  /** Over all parts of a split model (a part whose size is not known yet counts 0). */
  total: number;
  /** A split model: the part being read now, 1-based, of {@link parts}. Absent for one file. */
  part?: number;
  parts?: number;
}

/** Options of {@link WeightStore.open}. */
export interface OpenOptions {
  /** Called as bytes come from the network (`download`) or the store (`cache`). */
  onProgress?: (p: LoadProgress) => void;
  /** Aborts the download/read with `ABORTED`; stored chunks stay for a later resume. */
  signal?: AbortSignal;
  /** Delete least-recently-used models when storage is short (default false: `QUOTA` error). */
  evict?: boolean;
  /** Never touch the network: `NETWORK` error unless the model is stored complete. */
  offline?: boolean;
  /**
   * Download into one reused chunk buffer: each yielded chunk is valid only until the next
   * iteration (the engine's loader copies it into wasm at once). Without it every 8 MiB chunk
   * is a fresh buffer, and the garbage of a whole download can pile up before a GC runs.
   */
  reuseBuffer?: boolean;
}

/** Options of the {@link WeightStore} constructor. */
export interface StoreOptions {
  /** Directory under the OPFS root (default `hearth-models`). */
  dirName?: string;
  /** Chunk size in bytes for new downloads (default 8 MiB; a multiple of 64 KiB). */
  chunkSize?: number;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
}

/** The name of a model's Web Lock. */
export function lockName(id: string): string {
  return `hearth-model:${id}`;
}

/** Model weights in browser storage. One instance per realm is enough; instances share the data. */
export class WeightStore {
  readonly dirName: string;
  readonly chunkSize: number;
  private readonly access: StoreAccess;

  constructor(opts: StoreOptions = {}) {
    this.dirName = opts.dirName ?? "hearth-models";
    this.chunkSize = opts.chunkSize ?? 8 * 1024 * 1024;
    if (this.chunkSize <= 0 || this.chunkSize % 65536 !== 0) throw new HearthError("BAD_REQUEST", "chunkSize must be a positive multiple of 64 KiB");
    const fetchFn: typeof fetch = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.access = {
      chunkSize: this.chunkSize,
      fetchFn,
      modelDir: (id, create) => this.modelDir(id, create),
      removeModel: async (id) => void (await this.removeModel(id)),
      ensureSpace: (needed, o) => this.ensureSpace(needed, o),
    };
  }

  private async root(create: boolean): Promise<FileSystemDirectoryHandle | null> {
    return subdir(await storageManager().getDirectory(), this.dirName, create);
  }

  /** Directory names are a hash of the id: ids may be URLs. */
  private async key(id: string): Promise<string> {
    return (await sha256Hex(new TextEncoder().encode(id))).slice(0, 32);
  }

  private async modelDir(id: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
    const root = await this.root(create);
    return root ? subdir(root, await this.key(id), create) : null;
  }

  /** Every model in the store (complete or partial), most recently used first. */
  async list(): Promise<StoredModel[]> {
    const root = await this.root(false);
    if (!root) return [];
    const out: StoredModel[] = [];
    for await (const [, handle] of root as unknown as AsyncIterable<[string, FileSystemHandle]>) {
      if (handle.kind !== "directory") continue;
      const m = await readManifest(handle as FileSystemDirectoryHandle);
      if (m) out.push(m);
    }
    return out.sort((a, b) => b.lastUsed - a.lastUsed);
  }

  /** The manifest of one model, or null. */
  async get(id: string): Promise<StoredModel | null> {
    const dir = await this.modelDir(id, false);
    return dir ? readManifest(dir) : null;
  }

  /** Whether the model is stored complete and verified (so it loads with no network). */
  async has(id: string): Promise<boolean> {
    const m = await this.get(id);
    return m !== null && m.complete;
  }

  /**
   * Deletes a model's bytes and manifest; resolves true if there was anything to delete. Waits
   * for the model's lock: a model another tab is reading is deleted once that read ends.
   */
  async delete(id: string): Promise<boolean> {
    return withLock(lockName(id), () => this.removeModel(id));
  }

  /** Deletes the model's directory; the caller holds its lock. */
  private async removeModel(id: string): Promise<boolean> {
    const root = await this.root(false);
    if (!root) return false;
    try {
      await root.removeEntry(await this.key(id), { recursive: true });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw HearthError.from(e);
    }
  }

  /** Bytes stored for all models. */
  async usage(): Promise<number> {
    return (await this.list()).reduce((s, m) => s + m.storedBytes, 0);
  }

  /**
   * Makes room for `needed` bytes: checks `navigator.storage.estimate()`, evicting LRU models
   * (never `keepId`, never one whose lock another reader holds) when allowed. Throws `QUOTA`
   * with the numbers otherwise.
   */
  async ensureSpace(needed: number, opts: { evict?: boolean; keepId?: string } = {}): Promise<void> {
    const sm = storageManager();
    if (typeof sm.estimate !== "function") return;
    let est = await sm.estimate();
    let available = (est.quota ?? Infinity) - (est.usage ?? 0);
    if (needed <= available) return;
    if (opts.evict) {
      const victims = (await this.list()).filter((m) => m.id !== opts.keepId).sort((a, b) => a.lastUsed - b.lastUsed);
      for (const v of victims) {
        const removed = await withLockIfFree(lockName(v.id), () => this.removeModel(v.id));
        if (!removed) continue; // in use (or already gone)
        est = await sm.estimate();
        available = (est.quota ?? Infinity) - (est.usage ?? 0);
        if (needed <= available) return;
      }
    }
    const mb = (n: number | undefined) => (n === undefined ? "?" : (n / 1e6).toFixed(1) + " MB");
    throw new HearthError(
      "QUOTA",
      `not enough browser storage: the model needs ${mb(needed)} more, ${mb(Math.max(0, available))} available (quota ${mb(est.quota)}, used ${mb(est.usage)})` +
        (opts.evict ? " even after evicting the other models nobody is using" : "; pass evict: true to let Hearth delete least-recently-used models"),
      { needed, available: Math.max(0, available), quota: est.quota ?? 0, usage: est.usage ?? 0 },
    );
  }

  /**
   * The file's size in bytes before reading it: the stored size, else the expected one, else the
   * server's `Content-Length` (a HEAD request); null when none says. For the progress of a model
   * split into parts, whose later parts' sizes are not known before they are fetched.
   */
  async size(source: ModelSource, signal?: AbortSignal): Promise<number | null> {
    const stored = (await this.get(source.id))?.bytes;
    if (stored) return stored;
    if (source.bytes !== undefined) return source.bytes;
    try {
      const resp = await this.access.fetchFn(source.url, { method: "HEAD", signal: signal ?? null, cache: "no-store" });
      const n = Number(resp.headers.get("Content-Length") ?? NaN);
      return resp.ok && Number.isSafeInteger(n) && n >= 0 ? n : null;
    } catch {
      // The download's GET reports what is wrong with the URL.
      return null;
    }
  }

  /** Downloads (or resumes) a model into the store without handing the bytes to anyone. */
  async download(source: ModelSource, opts: OpenOptions = {}): Promise<StoredModel> {
    for await (const chunk of this.open(source, opts)) void chunk;
    const m = await this.get(source.id);
    if (!m) throw new HearthError("INTERNAL", "model vanished from the store after download");
    return m;
  }

  /**
   * The model's bytes as chunks in file order: from the store when stored (each chunk checked
   * against its checksum; a damaged one and those after it are fetched again), else from the
   * network (resuming a partial download with an HTTP Range request when the server gives a
   * strong validator), storing each chunk before yielding it. The sha256 is checked at the end:
   * a mismatch deletes the model and throws `INTEGRITY` (so the consumer must not trust what it
   * got before the iteration ends). Only a few chunks are alive at once, whatever the model
   * size. Holds the model's Web Lock until the iteration ends, however it ends.
   */
  async *open(source: ModelSource, opts: OpenOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    throwIfAborted(opts.signal);
    const release = await acquireLock(lockName(source.id), opts.signal);
    try {
      yield* openModel(this.access, source, opts);
    } finally {
      release();
    }
  }
}

function lockManager(): LockManager | null {
  return (globalThis as { navigator?: Navigator }).navigator?.locks ?? null;
}

/** Holds a Web Lock (so two tabs do not write one model at once); returns its release. */
async function acquireLock(name: string, signal: AbortSignal | undefined): Promise<() => void> {
  const locks = lockManager();
  if (!locks) return () => undefined;
  return new Promise<() => void>((resolve, reject) => {
    const opts: LockOptions = signal ? { signal } : {};
    locks
      .request(name, opts, () => new Promise<void>((release) => resolve(release)))
      .catch((e: unknown) => reject(signal?.aborted ? abortError(signal) : HearthError.from(e)));
  });
}

/** Runs `fn` holding the lock (waiting for it). */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = lockManager();
  if (!locks) return fn();
  return locks.request(name, () => fn()) as Promise<T>;
}

/** Runs `fn` holding the lock if nobody holds it; resolves false without running it otherwise. */
async function withLockIfFree(name: string, fn: () => Promise<boolean>): Promise<boolean> {
  const locks = lockManager();
  if (!locks) return fn();
  return locks.request(name, { ifAvailable: true }, (lock) => (lock ? fn() : false)) as Promise<boolean>;
}

/** The shared default store. */
export const defaultStore: WeightStore = new WeightStore();

/** `hearth.models`: what is stored, in the shape the README documents. */
export const models = {
  /** Every stored model (complete or partial), most recently used first. */
  list: (): Promise<StoredModel[]> => defaultStore.list(),
  /** Whether the model is stored complete (loads offline). */
  has: (id: string): Promise<boolean> => defaultStore.has(id),
  /** Deletes a stored model (waiting for a tab that is reading it); true if there was one. */
  delete: (id: string): Promise<boolean> => defaultStore.delete(id),
};
