/**
 * The weight store: model files kept in the Origin Private File System (OPFS) in fixed-size
 * chunks, so a second visit, and every visit offline, reads the weights without the network.
 * Why OPFS and not the Cache API: `docs/store-decision.md`.
 *
 * Layout: `<root>/hearth-models/<key>/manifest.json` + `chunk-000000.bin`, `chunk-000001.bin`, …
 * A chunk file is written whole (OPFS `createWritable` commits atomically on close) before the
 * manifest that lists it; the manifest says `complete: true` only after every byte arrived and
 * the sha256 matched. So an interrupted download is resumable from its last stored chunk and is
 * never mistaken for a complete one.
 */

import { HearthError, abortError, throwIfAborted } from "./errors.js";
import type { ModelSource } from "./registry.js";
import { Sha256, sha256Hex } from "./sha256.js";

/** A load progress report, in bytes. `download`: from the network; `cache`: from the store;
 *  `upload`: all bytes handed to the engine, which is finishing its upload; `ready`: done. */
export interface LoadProgress {
  phase: "download" | "cache" | "upload" | "ready";
  loaded: number;
  total: number;
}

/** What the store keeps about one model (the manifest). */
export interface StoredModel {
  /** Registry id, or the URL for an unregistered model. */
  id: string;
  /** Where the bytes came from. */
  url: string;
  /** Total file size in bytes (0 until the server told us). */
  bytes: number;
  /** Bytes stored so far. */
  storedBytes: number;
  /** All bytes stored and verified. */
  complete: boolean;
  /** sha256 (lowercase hex): the expected one, or once complete the verified one; null if unknown. */
  sha256: string | null;
  /** Chunk size used for this model. */
  chunkSize: number;
  /** Byte length of each stored chunk, in file order (a download cut short ends its last chunk
   *  early, so lengths may vary; the next chunk starts where the previous ended). */
  chunks: number[];
  /** Validators from the server, used with `If-Range` when resuming. */
  etag: string | null;
  lastModified: string | null;
  /** `Date.now()` when first stored / last opened. */
  createdAt: number;
  lastUsed: number;
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

const MANIFEST = "manifest.json";
interface SyncAccessHandle {
  getSize(): number;
  read(buf: Uint8Array, opts: { at: number }): number;
  close(): void;
}

/**
 * The whole file through an OPFS sync access handle (dedicated Workers only, where the engine
 * runs by default): a direct file read, about twice as fast as `getFile().arrayBuffer()` for the
 * store's 8 MiB chunks. `null` where there is no such handle or it cannot be opened (another
 * context holds it): the caller falls back to the Blob read.
 */
async function syncRead(fh: FileSystemFileHandle): Promise<Uint8Array | null> {
  const create = (fh as unknown as { createSyncAccessHandle?: () => Promise<SyncAccessHandle> }).createSyncAccessHandle;
  if (typeof create !== "function") return null;
  let h: SyncAccessHandle;
  try {
    h = await create.call(fh);
  } catch {
    return null;
  }
  try {
    const buf = new Uint8Array(h.getSize());
    let at = 0;
    while (at < buf.length) {
      const n = h.read(buf.subarray(at), { at });
      if (n <= 0) return null;
      at += n;
    }
    return buf;
  } finally {
    h.close();
  }
}

/** Bytes asked of the network per BYOB read. */
const BYOB_READ = 256 * 1024;

/** A BYOB reader on `body`, or null where the browser's fetch body is not a byte stream. */
function byobReader(body: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | null {
  try {
    return body.getReader({ mode: "byob" });
  } catch {
    return null;
  }
}
const PROGRESS_STEP = 1 << 20;

function chunkName(i: number): string {
  return `chunk-${String(i).padStart(6, "0")}.bin`;
}

function isNotFound(e: unknown): boolean {
  return typeof e === "object" && e !== null && ((e as { name?: string }).name === "NotFoundError" || (e as { name?: string }).name === "TypeMismatchError");
}

function storageManager(): StorageManager {
  const s = (globalThis as { navigator?: Navigator }).navigator?.storage;
  if (!s || typeof s.getDirectory !== "function") throw new HearthError("INTERNAL", "this browser has no Origin Private File System (navigator.storage.getDirectory)");
  return s;
}

/** Model weights in browser storage. One instance per realm is enough; instances share the data. */
export class WeightStore {
  readonly dirName: string;
  readonly chunkSize: number;
  private readonly fetchFn: typeof fetch;

  constructor(opts: StoreOptions = {}) {
    this.dirName = opts.dirName ?? "hearth-models";
    this.chunkSize = opts.chunkSize ?? 8 * 1024 * 1024;
    if (this.chunkSize <= 0 || this.chunkSize % 65536 !== 0) throw new HearthError("BAD_REQUEST", "chunkSize must be a positive multiple of 64 KiB");
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  private async root(create: boolean): Promise<FileSystemDirectoryHandle | null> {
    const top = await storageManager().getDirectory();
    try {
      return await top.getDirectoryHandle(this.dirName, { create });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw HearthError.from(e);
    }
  }

  /** Directory names are a hash of the id: ids may be URLs. */
  private async key(id: string): Promise<string> {
    return (await sha256Hex(new TextEncoder().encode(id))).slice(0, 32);
  }

  private async modelDir(id: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
    const root = await this.root(create);
    if (!root) return null;
    try {
      return await root.getDirectoryHandle(await this.key(id), { create });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw HearthError.from(e);
    }
  }

  private async readManifest(dir: FileSystemDirectoryHandle): Promise<StoredModel | null> {
    try {
      const f = await (await dir.getFileHandle(MANIFEST)).getFile();
      const m = JSON.parse(await f.text()) as StoredModel;
      if (typeof m.id !== "string" || !Array.isArray(m.chunks)) return null;
      return m;
    } catch (e) {
      if (isNotFound(e) || e instanceof SyntaxError) return null;
      throw HearthError.from(e);
    }
  }

  private async writeFile(dir: FileSystemDirectoryHandle, name: string, data: Uint8Array | string): Promise<void> {
    try {
      const fh = await dir.getFileHandle(name, { create: true });
      const w = await fh.createWritable();
      await w.write(data as FileSystemWriteChunkType);
      await w.close();
    } catch (e) {
      const err = HearthError.from(e);
      if (err.code === "QUOTA") throw new HearthError("QUOTA", `storage full while writing ${name}: ${err.message}`);
      throw err;
    }
  }

  private async writeManifest(dir: FileSystemDirectoryHandle, m: StoredModel): Promise<void> {
    await this.writeFile(dir, MANIFEST, JSON.stringify(m));
  }

  /** Every model in the store (complete or partial), most recently used first. */
  async list(): Promise<StoredModel[]> {
    const root = await this.root(false);
    if (!root) return [];
    const out: StoredModel[] = [];
    for await (const [, handle] of root as unknown as AsyncIterable<[string, FileSystemHandle]>) {
      if (handle.kind !== "directory") continue;
      const m = await this.readManifest(handle as FileSystemDirectoryHandle);
      if (m) out.push(m);
    }
    return out.sort((a, b) => b.lastUsed - a.lastUsed);
  }

  /** The manifest of one model, or null. */
  async get(id: string): Promise<StoredModel | null> {
    const dir = await this.modelDir(id, false);
    return dir ? this.readManifest(dir) : null;
  }

  /** Whether the model is stored complete and verified (so it loads with no network). */
  async has(id: string): Promise<boolean> {
    const m = await this.get(id);
    return m !== null && m.complete;
  }

  /** Deletes a model's bytes and manifest; resolves true if there was anything to delete. */
  async delete(id: string): Promise<boolean> {
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

  /** The number of leading chunks whose files exist with the manifest's lengths. */
  private async validPrefix(dir: FileSystemDirectoryHandle, m: StoredModel): Promise<number> {
    for (let i = 0; i < m.chunks.length; i++) {
      try {
        const f = await (await dir.getFileHandle(chunkName(i))).getFile();
        if (f.size !== m.chunks[i]) return i;
      } catch (e) {
        if (isNotFound(e)) return i;
        throw HearthError.from(e);
      }
    }
    return m.chunks.length;
  }

  private async readChunk(dir: FileSystemDirectoryHandle, i: number): Promise<Uint8Array> {
    const fh = await dir.getFileHandle(chunkName(i));
    const sync = await syncRead(fh);
    if (sync) return sync;
    return new Uint8Array(await (await fh.getFile()).arrayBuffer());
  }

  private async removeChunksFrom(dir: FileSystemDirectoryHandle, from: number, to: number): Promise<void> {
    for (let i = from; i < to; i++) {
      try {
        await dir.removeEntry(chunkName(i));
      } catch (e) {
        if (!isNotFound(e)) throw HearthError.from(e);
      }
    }
  }

  /** Makes room for `needed` bytes: checks `navigator.storage.estimate()`, evicting LRU models
   *  (never `keepId`) when allowed. Throws `QUOTA` with the numbers otherwise. */
  async ensureSpace(needed: number, opts: { evict?: boolean; keepId?: string } = {}): Promise<void> {
    const sm = storageManager();
    if (typeof sm.estimate !== "function") return;
    let est = await sm.estimate();
    let available = (est.quota ?? Infinity) - (est.usage ?? 0);
    if (needed <= available) return;
    if (opts.evict) {
      const victims = (await this.list()).filter((m) => m.id !== opts.keepId).sort((a, b) => a.lastUsed - b.lastUsed);
      for (const v of victims) {
        await this.delete(v.id);
        est = await sm.estimate();
        available = (est.quota ?? Infinity) - (est.usage ?? 0);
        if (needed <= available) return;
      }
    }
    const mb = (n: number | undefined) => (n === undefined ? "?" : (n / 1e6).toFixed(1) + " MB");
    throw new HearthError(
      "QUOTA",
      `not enough browser storage: the model needs ${mb(needed)} more, ${mb(Math.max(0, available))} available (quota ${mb(est.quota)}, used ${mb(est.usage)})` +
        (opts.evict ? " even after evicting other models" : "; pass evict: true to let Hearth delete least-recently-used models"),
      { needed, available: Math.max(0, available), quota: est.quota ?? 0, usage: est.usage ?? 0 },
    );
  }

  /** Downloads (or resumes) a model into the store without handing the bytes to anyone. */
  async download(source: ModelSource, opts: OpenOptions = {}): Promise<StoredModel> {
    for await (const chunk of this.open(source, opts)) void chunk;
    const m = await this.get(source.id);
    if (!m) throw new HearthError("INTERNAL", "model vanished from the store after download");
    return m;
  }

  /**
   * The model's bytes as chunks in file order: from the store when stored, else from the
   * network (resuming a partial download with an HTTP Range request), storing each chunk before
   * yielding it. The sha256 is checked at the end: a mismatch deletes the model and throws
   * `INTEGRITY` (so the consumer must not trust what it got before the iteration ends).
   * Only a few chunks are alive at once, whatever the model size.
   */
  async *open(source: ModelSource, opts: OpenOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    const { signal, onProgress } = opts;
    throwIfAborted(signal);
    const release = await acquireLock(`hearth-model:${source.id}`, signal);
    try {
      yield* this.openLocked(source, opts, signal, onProgress);
    } finally {
      release();
    }
  }

  private async *openLocked(
    source: ModelSource,
    opts: OpenOptions,
    signal: AbortSignal | undefined,
    onProgress: ((p: LoadProgress) => void) | undefined,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    let dir = await this.modelDir(source.id, false);
    let m = dir ? await this.readManifest(dir) : null;
    const expected = source.sha256?.toLowerCase() ?? null;

    // A stored copy made for another URL's bytes or another expected hash is not this model.
    if (m && ((expected && m.sha256 && m.sha256 !== expected) || (source.bytes !== undefined && m.bytes && m.bytes !== source.bytes))) {
      await this.delete(source.id);
      dir = null;
      m = null;
    }

    let validChunks = 0;
    if (dir && m) {
      validChunks = await this.validPrefix(dir, m);
      if (m.complete && validChunks !== m.chunks.length) m.complete = false; // a chunk went missing
      if (validChunks < m.chunks.length) {
        await this.removeChunksFrom(dir, validChunks, m.chunks.length);
        m.chunks = m.chunks.slice(0, validChunks);
        m.storedBytes = m.chunks.reduce((a, b) => a + b, 0);
      }
    }

    // Complete: everything from the store, no network.
    if (dir && m && m.complete) {
      m.lastUsed = Date.now();
      await this.writeManifest(dir, m);
      let loaded = 0;
      for (let i = 0; i < m.chunks.length; i++) {
        throwIfAborted(signal);
        const c = await this.readChunk(dir, i);
        loaded += c.length;
        onProgress?.({ phase: "cache", loaded, total: m.bytes });
        yield c;
      }
      return;
    }
    if (opts.offline) {
      throw new HearthError("NETWORK", `model ${source.id} is not stored${m ? " completely" : ""} and the network is off`);
    }

    // Ask the network for what is missing (resuming from the stored prefix) before writing anything.
    const storedBytes = m?.storedBytes ?? 0;
    const headers: Record<string, string> = {};
    if (m && storedBytes > 0) {
      headers["Range"] = `bytes=${storedBytes}-`;
      const validator = m.etag ?? m.lastModified;
      if (validator) headers["If-Range"] = validator;
    }
    let resp: Response;
    try {
      resp = await this.fetchFn(source.url, { headers, signal: signal ?? null, cache: "no-store" });
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      throw new HearthError("NETWORK", `could not fetch ${source.url}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!resp.ok || !resp.body) {
      // 416 with a stored prefix means the server's file is shorter than what we stored: start over.
      if (resp.status === 416 && dir) await this.delete(source.id);
      throw new HearthError("NETWORK", `fetching ${source.url} failed: HTTP ${resp.status}`, { status: resp.status });
    }

    let offset = 0;
    let total = 0;
    if (resp.status === 206) {
      const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(resp.headers.get("Content-Range") ?? "");
      if (!cr || Number(cr[1]) !== storedBytes) {
        await resp.body.cancel();
        throw new HearthError("NETWORK", `server answered a Range request for ${source.url} with an unexpected Content-Range`);
      }
      offset = storedBytes;
      total = Number(cr[3]);
    } else {
      const len = resp.headers.get("Content-Length");
      total = len !== null && resp.headers.get("Content-Encoding") === null ? Number(len) : source.bytes ?? 0;
    }
    if (source.bytes !== undefined && total !== 0 && total !== source.bytes) {
      await resp.body.cancel();
      throw new HearthError("INTEGRITY", `${source.url} is ${total} bytes, expected ${source.bytes}`, { expected: String(source.bytes), actual: String(total) });
    }
    if (total === 0 && source.bytes !== undefined) total = source.bytes;

    const resuming = offset > 0 && dir !== null && m !== null;
    try {
      await this.ensureSpace(total - offset, { evict: opts.evict ?? false, keepId: source.id });
    } catch (e) {
      await resp.body.cancel().catch(() => undefined);
      throw e;
    }
    requestPersistence();

    if (!resuming) {
      if (dir) await this.delete(source.id); // a 200 to our Range request: the file changed, start over
      dir = await this.modelDir(source.id, true);
      const now = Date.now();
      m = {
        id: source.id,
        url: source.url,
        bytes: total,
        storedBytes: 0,
        complete: false,
        sha256: expected,
        chunkSize: this.chunkSize,
        chunks: [],
        etag: resp.headers.get("ETag"),
        lastModified: resp.headers.get("Last-Modified"),
        createdAt: now,
        lastUsed: now,
      };
      await this.writeManifest(dir!, m);
    }
    const d = dir!;
    const man = m!;
    man.lastUsed = Date.now();

    const hash = await Sha256.create();
    let loaded = 0;
    // The stored prefix first (hashed like the rest), then the network.
    for (let i = 0; i < man.chunks.length; i++) {
      throwIfAborted(signal);
      const c = await this.readChunk(d, i);
      hash.update(c);
      loaded += c.length;
      onProgress?.({ phase: "cache", loaded, total });
      yield c;
    }

    // With reuseBuffer, network bytes land in one reused scratch buffer through a BYOB reader
    // (Chromium's fetch bodies are byte streams), so a download leaves no per-read garbage.
    const byob = opts.reuseBuffer ? byobReader(resp.body) : null;
    let scratch = new Uint8Array(byob ? BYOB_READ : 0);
    const reader = byob ?? resp.body.getReader();
    const chunkSize = man.chunkSize;
    let buf = new Uint8Array(chunkSize);
    let fill = 0;
    let lastReport = loaded;
    const flush = async (): Promise<Uint8Array> => {
      const c = fill === chunkSize ? buf : buf.slice(0, fill);
      await this.writeFile(d, chunkName(man.chunks.length), c);
      man.chunks.push(c.length);
      man.storedBytes += c.length;
      await this.writeManifest(d, man);
      hash.update(c);
      if (!opts.reuseBuffer) buf = new Uint8Array(chunkSize);
      fill = 0;
      return c;
    };
    try {
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          if (byob) {
            r = await byob.read(scratch);
            // The read transferred the scratch buffer: take it back from the result.
            if (r.value) scratch = new Uint8Array(r.value.buffer as ArrayBuffer);
          } else {
            r = await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
          }
        } catch (e) {
          // Keep what did arrive (a short chunk) so a resume does not fetch it again.
          if (fill > 0) await flush();
          if (signal?.aborted) throw abortError(signal);
          throw new HearthError("NETWORK", `download of ${source.url} interrupted at ${loaded} of ${total} bytes: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (r.done) break;
        let v = r.value;
        while (v.length > 0) {
          const take = Math.min(chunkSize - fill, v.length);
          buf.set(v.subarray(0, take), fill);
          fill += take;
          loaded += take;
          v = v.subarray(take);
          if (fill === chunkSize) {
            const c = await flush();
            onProgress?.({ phase: "download", loaded, total });
            lastReport = loaded;
            yield c;
            throwIfAborted(signal);
          }
        }
        if (signal?.aborted) {
          if (fill > 0) await flush(); // keep the bytes that arrived; the resume starts after them
          throw abortError(signal);
        }
        if (loaded - lastReport >= PROGRESS_STEP) {
          onProgress?.({ phase: "download", loaded, total });
          lastReport = loaded;
        }
      }
      if (fill > 0) {
        const c = await flush();
        onProgress?.({ phase: "download", loaded, total });
        yield c;
      }
    } finally {
      reader.releaseLock();
    }
    if (total !== 0 && man.storedBytes !== total) {
      throw new HearthError("NETWORK", `download of ${source.url} ended at ${man.storedBytes} of ${total} bytes`);
    }
    if (total === 0) man.bytes = man.storedBytes;
    const actual = hash.hex();
    if (expected && actual !== expected) {
      await this.delete(source.id);
      throw new HearthError("INTEGRITY", `sha256 of ${source.url} is ${actual}, expected ${expected}; the downloaded bytes were deleted`, { expected, actual });
    }
    man.sha256 = actual;
    man.complete = true;
    man.lastUsed = Date.now();
    await this.writeManifest(d, man);
  }
}

/** Holds a Web Lock (so two tabs do not write one model at once); returns its release. */
async function acquireLock(name: string, signal: AbortSignal | undefined): Promise<() => void> {
  const locks = (globalThis as { navigator?: Navigator }).navigator?.locks;
  if (!locks) return () => undefined;
  return new Promise<() => void>((resolve, reject) => {
    const opts: LockOptions = signal ? { signal } : {};
    locks
      .request(name, opts, () => new Promise<void>((release) => resolve(release)))
      .catch((e: unknown) => reject(signal?.aborted ? abortError(signal) : HearthError.from(e)));
  });
}

let persistRequested = false;
/** Asks the browser to keep our storage under pressure (Window only; a no-op in workers). */
function requestPersistence(): void {
  if (persistRequested) return;
  persistRequested = true;
  const sm = (globalThis as { navigator?: Navigator }).navigator?.storage;
  if (sm && typeof sm.persist === "function") sm.persist().catch(() => undefined);
}

/** The shared default store. */
export const defaultStore: WeightStore = new WeightStore();

/** `hearth.models`: what is stored, in the shape the README documents. */
export const models = {
  /** Every stored model (complete or partial), most recently used first. */
  list: (): Promise<StoredModel[]> => defaultStore.list(),
  /** Whether the model is stored complete (loads offline). */
  has: (id: string): Promise<boolean> => defaultStore.has(id),
  /** Deletes a stored model; true if there was one. */
  delete: (id: string): Promise<boolean> => defaultStore.delete(id),
};
