/**
 * How `WeightStore.open` gets a model's bytes, with the model's Web Lock held: repair the
 * manifest against the files, read the stored chunks (each checked against its XXH32), then ask
 * the network for what is missing (a `Range` request with a strong `If-Range` validator, or the
 * whole file), check the quota, write and hash each chunk, and verify the sha256 at the end.
 *
 * Invariants: nothing half-written is ever treated as complete (a chunk is listed in the
 * manifest only after its file was written whole; `complete` only after the sha256 matched); no
 * byte from the store reaches the consumer unless its chunk's checksum matched; every exit
 * (error, abort, the consumer stopping) cancels the response body and releases the reader.
 */

import { xxh32 } from "./checksum.js";
import { HearthError, abortError, throwIfAborted } from "./errors.js";
import {
  chunkName,
  readChunk,
  readManifest,
  removeChunks,
  sizedPrefix,
  touchLastUsed,
  writeFile,
  writeManifest,
  type StoredModel,
} from "./opfs.js";
import type { ModelSource } from "./registry.js";
import { Sha256 } from "./sha256.js";
import type { LoadProgress, OpenOptions } from "./store.js";

/** What the download needs from its store. */
export interface StoreAccess {
  readonly chunkSize: number;
  readonly fetchFn: typeof fetch;
  modelDir(id: string, create: boolean): Promise<FileSystemDirectoryHandle | null>;
  /** Deletes the model's directory (the caller holds its lock). */
  removeModel(id: string): Promise<void>;
  ensureSpace(needed: number, opts: { evict?: boolean; keepId?: string }): Promise<void>;
}

/** Bytes asked of the network per BYOB read. */
const BYOB_READ = 256 * 1024;
const PROGRESS_STEP = 1 << 20;
/** Manifest format: chunks carry checksums and resumes a strong validator. Older ones restart. */
const FORMAT = 2;

/** The model's manifest and directory after dropping what the files no longer back. */
interface Stored {
  dir: FileSystemDirectoryHandle;
  m: StoredModel;
}

/**
 * Reads the manifest and makes it agree with the files: a manifest of an older format, or made
 * for another expected sha256 / size, is deleted; chunks whose files are missing or have the
 * wrong size are dropped with everything after them.
 */
async function repairStored(store: StoreAccess, source: ModelSource, expected: string | null): Promise<Stored | null> {
  const dir = await store.modelDir(source.id, false);
  if (!dir) return null;
  const m = await readManifest(dir);
  const stale =
    !m ||
    m.version !== FORMAT ||
    !Array.isArray(m.sums) ||
    m.sums.length !== m.chunks.length ||
    (expected !== null && m.sha256 !== null && m.sha256 !== expected) ||
    (source.bytes !== undefined && m.bytes !== 0 && m.bytes !== source.bytes);
  if (stale) {
    await store.removeModel(source.id);
    return null;
  }
  const valid = await sizedPrefix(dir, m);
  if (valid < m.chunks.length) await truncate(dir, m, valid);
  return { dir, m };
}

/** Drops chunks `from`.. (files and manifest entries); the model is no longer complete. */
async function truncate(dir: FileSystemDirectoryHandle, m: StoredModel, from: number): Promise<void> {
  const to = m.chunks.length;
  // The manifest first: a crash between the two leaves extra files, never a listed missing chunk.
  m.chunks = m.chunks.slice(0, from);
  m.sums = m.sums.slice(0, from);
  m.storedBytes = m.chunks.reduce((a, b) => a + b, 0);
  m.complete = false;
  await writeManifest(dir, m);
  await removeChunks(dir, from, to);
}

/** A strong validator for `If-Range` (RFC 9110 §13.1.5): a strong ETag, or a Last-Modified at least a second before the response's Date. */
function strongValidator(resp: Response): string | null {
  const etag = resp.headers.get("ETag");
  if (etag && !etag.startsWith("W/")) return etag;
  const lm = resp.headers.get("Last-Modified");
  const date = resp.headers.get("Date");
  if (lm && date && Date.parse(date) - Date.parse(lm) >= 1000) return lm;
  return null;
}

/** The network's answer for the bytes from `offset` (0: the whole file). */
interface Fetched {
  resp: Response;
  body: ReadableStream<Uint8Array>;
  offset: number;
  total: number;
}

async function request(store: StoreAccess, source: ModelSource, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<Response> {
  try {
    return await store.fetchFn(source.url, { headers, signal: signal ?? null, cache: "no-store" });
  } catch (e) {
    if (signal?.aborted) throw abortError(signal);
    throw new HearthError("NETWORK", `could not fetch ${source.url}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function httpError(source: ModelSource, resp: Response): HearthError {
  return new HearthError("NETWORK", `fetching ${source.url} failed: HTTP ${resp.status}`, { status: resp.status });
}

/**
 * Asks for the bytes after the stored prefix: a resume only with a strong validator, and its 206
 * accepted only when it starts at the prefix and its total is the stored total. Anything else
 * (no validator, a 200, a 416, another total) gives the whole file (`offset` 0).
 */
async function fetchRest(store: StoreAccess, source: ModelSource, m: StoredModel | null, signal: AbortSignal | undefined): Promise<Fetched> {
  const stored = m?.storedBytes ?? 0;
  if (m && stored > 0 && m.validator) {
    const resp = await request(store, source, { Range: `bytes=${stored}-`, "If-Range": m.validator }, signal);
    if (resp.status === 206 && resp.body) {
      const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(resp.headers.get("Content-Range") ?? "");
      const total = cr ? Number(cr[3]) : -1;
      if (cr && Number(cr[1]) === stored && (m.bytes === 0 || total === m.bytes)) return { resp, body: resp.body, offset: stored, total };
      await resp.body.cancel().catch(() => undefined);
    } else if (resp.ok && resp.body && resp.status === 200) {
      return { resp, body: resp.body, offset: 0, total: lengthOf(resp, source) }; // the file changed: the whole file came
    } else {
      await resp.body?.cancel().catch(() => undefined);
      if (resp.status !== 416) throw httpError(source, resp);
    }
  }
  const resp = await request(store, source, {}, signal);
  if (!resp.ok || !resp.body || resp.status !== 200) {
    await resp.body?.cancel().catch(() => undefined);
    throw httpError(source, resp);
  }
  return { resp, body: resp.body, offset: 0, total: lengthOf(resp, source) };
}

function lengthOf(resp: Response, source: ModelSource): number {
  const len = resp.headers.get("Content-Length");
  return len !== null && resp.headers.get("Content-Encoding") === null ? Number(len) : source.bytes ?? 0;
}

/** A fresh manifest for a download from byte 0. */
function newManifest(store: StoreAccess, source: ModelSource, resp: Response, total: number, expected: string | null): StoredModel {
  const now = Date.now();
  return {
    version: FORMAT,
    id: source.id,
    url: source.url,
    bytes: total,
    storedBytes: 0,
    complete: false,
    sha256: expected,
    chunkSize: store.chunkSize,
    chunks: [],
    sums: [],
    etag: resp.headers.get("ETag"),
    lastModified: resp.headers.get("Last-Modified"),
    validator: strongValidator(resp),
    createdAt: now,
    lastUsed: now,
  };
}

/** Hands bytes to the consumer once each: a source that restarts below what was already yielded yields only the rest. */
class Emitter {
  yielded = 0;
  /** The part of `c` (which starts at file offset `start`) not yet handed out, or null. */
  take(c: Uint8Array, start: number): Uint8Array | null {
    const end = start + c.length;
    if (end <= this.yielded) return null;
    const part = start >= this.yielded ? c : c.subarray(this.yielded - start);
    this.yielded = end;
    return part;
  }
}

/** Reads a BYOB or default reader into one result; BYOB reads land in a reused scratch buffer. */
class BodyReader {
  private readonly byob: ReadableStreamBYOBReader | null;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
  private scratch: Uint8Array;
  private done = false;

  constructor(body: ReadableStream<Uint8Array>, reuse: boolean) {
    let byob: ReadableStreamBYOBReader | null = null;
    if (reuse) {
      try {
        byob = body.getReader({ mode: "byob" });
      } catch {
        byob = null; // not a byte stream in this browser
      }
    }
    this.byob = byob;
    this.reader = byob ?? body.getReader();
    this.scratch = new Uint8Array(byob ? BYOB_READ : 0);
  }

  async read(): Promise<Uint8Array | null> {
    let r: ReadableStreamReadResult<Uint8Array>;
    if (this.byob) {
      r = await this.byob.read(this.scratch);
      // The read transferred the scratch buffer: take it back from the result.
      if (r.value) this.scratch = new Uint8Array(r.value.buffer as ArrayBuffer);
    } else {
      r = await (this.reader as ReadableStreamDefaultReader<Uint8Array>).read();
    }
    if (r.done) {
      this.done = true;
      return null;
    }
    return r.value;
  }

  /** Cancels the body unless it was read to the end (the connection stops), then releases the reader. */
  async close(): Promise<void> {
    if (!this.done) await this.reader.cancel().catch(() => undefined);
    this.reader.releaseLock();
  }
}

/** Collects network bytes into chunks; each full chunk is written, listed, summed and hashed. */
class ChunkWriter {
  private buf: Uint8Array;
  fill = 0;
  constructor(
    private readonly dir: FileSystemDirectoryHandle,
    private readonly m: StoredModel,
    private readonly hash: Sha256,
    private readonly reuse: boolean,
  ) {
    this.buf = new Uint8Array(m.chunkSize);
  }

  /** Copies from `v` until the chunk is full; returns the bytes taken. */
  add(v: Uint8Array): number {
    const take = Math.min(this.m.chunkSize - this.fill, v.length);
    this.buf.set(v.subarray(0, take), this.fill);
    this.fill += take;
    return take;
  }

  get full(): boolean {
    return this.fill === this.m.chunkSize;
  }

  /** Writes the chunk's file, then the manifest that lists it (with its checksum); returns it. */
  async flush(): Promise<Uint8Array> {
    const c = this.fill === this.buf.length ? this.buf : this.buf.slice(0, this.fill);
    const sum = xxh32(c);
    await writeFile(this.dir, chunkName(this.m.chunks.length), c);
    this.m.chunks.push(c.length);
    this.m.sums.push(sum);
    this.m.storedBytes += c.length;
    await writeManifest(this.dir, this.m);
    this.hash.update(c);
    if (!this.reuse) this.buf = new Uint8Array(this.m.chunkSize);
    this.fill = 0;
    return c;
  }
}

/**
 * The model's bytes as chunks in file order (see `WeightStore.open`). The caller holds the
 * model's Web Lock for the whole iteration.
 */
export async function* openModel(store: StoreAccess, source: ModelSource, opts: OpenOptions): AsyncGenerator<Uint8Array, void, undefined> {
  const { signal, onProgress } = opts;
  let expected = source.sha256?.toLowerCase() ?? null;
  let stored = await repairStored(store, source, expected);
  const out = new Emitter();

  // Complete: everything from the store, each chunk checked; no network, no manifest write.
  if (stored?.m.complete) {
    const { dir, m } = stored;
    let loaded = 0;
    let bad = -1;
    for (let i = 0; i < m.chunks.length; i++) {
      throwIfAborted(signal);
      const c = await readChunk(dir, m, i);
      if (!c) {
        bad = i;
        break;
      }
      loaded += c.length;
      onProgress?.({ phase: "cache", loaded, total: m.bytes });
      const part = out.take(c, loaded - c.length);
      if (part) yield part;
    }
    if (bad < 0) {
      await touchLastUsed(dir, Date.now());
      return;
    }
    // A chunk does not match its checksum: drop it and everything after it, then resume. The
    // bytes handed out so far were verified; the rest must hash to the sha256 verified before.
    expected ??= m.sha256;
    await truncate(dir, m, bad);
  }
  if (opts.offline) {
    throw new HearthError("NETWORK", `model ${source.id} is not stored${stored ? " completely" : ""} and the network is off`);
  }

  // The stored prefix of a partial download: each chunk checked (a bad one is dropped with
  // everything after it), hashed and handed out; then the network is asked for the rest.
  let hash = await Sha256.create();
  let loaded = 0;
  if (stored) {
    const { dir, m } = stored;
    for (let i = 0; i < m.chunks.length; i++) {
      throwIfAborted(signal);
      const c = await readChunk(dir, m, i);
      if (!c) {
        await truncate(dir, m, i);
        break;
      }
      hash.update(c);
      loaded += c.length;
      onProgress?.({ phase: "cache", loaded, total: m.bytes });
      const part = out.take(c, loaded - c.length);
      if (part) yield part;
    }
  }

  const net = await fetchRest(store, source, stored?.m ?? null, signal);
  let body: BodyReader | null = null;
  try {
    if (source.bytes !== undefined && net.total !== 0 && net.total !== source.bytes) {
      throw new HearthError("INTEGRITY", `${source.url} is ${net.total} bytes, expected ${source.bytes}`, { expected: String(source.bytes), actual: String(net.total) });
    }
    const total = net.total === 0 && source.bytes !== undefined ? source.bytes : net.total;
    if (net.offset === 0) {
      // Not a resume: the stale partial goes before the quota check, so its bytes do not count.
      if (stored) await store.removeModel(source.id);
      stored = null;
      hash = await Sha256.create();
      loaded = 0;
    }
    await store.ensureSpace(total - net.offset, { evict: opts.evict ?? false, keepId: source.id });
    requestPersistence();
    if (!stored) {
      const dir = (await store.modelDir(source.id, true))!;
      const m = newManifest(store, source, net.resp, total, expected);
      await writeManifest(dir, m);
      stored = { dir, m };
    }
    const { dir, m } = stored;

    body = new BodyReader(net.body, opts.reuseBuffer ?? false);
    const chunks = new ChunkWriter(dir, m, hash, opts.reuseBuffer ?? false);
    let lastReport = loaded;
    const emit = async (): Promise<Uint8Array | null> => {
      const c = await chunks.flush();
      onProgress?.({ phase: "download", loaded, total });
      lastReport = loaded;
      return out.take(c, m.storedBytes - c.length);
    };
    for (;;) {
      let v: Uint8Array | null;
      try {
        v = await body.read();
      } catch (e) {
        // Keep what did arrive (a short chunk) so a resume does not fetch it again.
        if (chunks.fill > 0) await chunks.flush();
        if (signal?.aborted) throw abortError(signal);
        throw new HearthError("NETWORK", `download of ${source.url} interrupted at ${loaded} of ${total} bytes: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (v === null) break;
      while (v.length > 0) {
        const took = chunks.add(v);
        loaded += took;
        v = v.subarray(took);
        if (chunks.full) {
          const part = await emit();
          if (part) yield part;
          throwIfAborted(signal);
        }
      }
      if (signal?.aborted) {
        if (chunks.fill > 0) await chunks.flush(); // keep the bytes that arrived; the resume starts after them
        throw abortError(signal);
      }
      if (loaded - lastReport >= PROGRESS_STEP) {
        onProgress?.({ phase: "download", loaded, total });
        lastReport = loaded;
      }
    }
    if (chunks.fill > 0) {
      const part = await emit();
      if (part) yield part;
    }
    if (total !== 0 && m.storedBytes !== total) {
      throw new HearthError("NETWORK", `download of ${source.url} ended at ${m.storedBytes} of ${total} bytes`);
    }
    if (total === 0) m.bytes = m.storedBytes;
    const actual = hash.hex();
    if (expected && actual !== expected) {
      await store.removeModel(source.id);
      throw new HearthError("INTEGRITY", `sha256 of ${source.url} is ${actual}, expected ${expected}; the downloaded bytes were deleted`, { expected, actual });
    }
    m.sha256 = actual;
    m.complete = true;
    m.lastUsed = Date.now();
    await writeManifest(dir, m);
  } finally {
    // Every exit, the consumer stopping early included: stop the download, free the reader.
    if (body) await body.close();
    else await net.body.cancel().catch(() => undefined);
  }
}

let persistRequested = false;
/** Asks the browser to keep our storage under pressure (Window only; a no-op in workers). */
function requestPersistence(): void {
  if (persistRequested) return;
  persistRequested = true;
  const sm = (globalThis as { navigator?: Navigator }).navigator?.storage;
  if (sm && typeof sm.persist === "function") sm.persist().catch(() => undefined);
}
