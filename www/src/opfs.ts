/**
 * The store's files in the Origin Private File System: one directory per model holding
 * `manifest.json`, `chunk-NNNNNN.bin` files and `last-used.json`. Every function here releases
 * what it opens (writables, sync access handles) before it returns or throws.
 */

import { xxh32 } from "./checksum.js";
import { HearthError } from "./errors.js";

/** What the store keeps about one model (the manifest). */
export interface StoredModel {
  /** Manifest format (2: chunks carry checksums, resumes need a strong validator). */
  version: number;
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
  /** XXH32 of each stored chunk (same order as `chunks`), checked on every read. */
  sums: number[];
  /** Validators from the server. */
  etag: string | null;
  lastModified: string | null;
  /** The strong validator a resume sends as `If-Range` (a strong ETag, or a Last-Modified the
   *  server's Date showed to be strong); null: a partial download cannot resume, it restarts. */
  validator: string | null;
  /** `Date.now()` when first stored / last opened. */
  createdAt: number;
  lastUsed: number;
}

export const MANIFEST = "manifest.json";
/** Written (best effort) on each open of a complete model, so the manifest itself is not. */
const LAST_USED = "last-used.json";

export function chunkName(i: number): string {
  return `chunk-${String(i).padStart(6, "0")}.bin`;
}

export function isNotFound(e: unknown): boolean {
  const name = typeof e === "object" && e !== null ? (e as { name?: string }).name : undefined;
  return name === "NotFoundError" || name === "TypeMismatchError";
}

export function storageManager(): StorageManager {
  const s = (globalThis as { navigator?: Navigator }).navigator?.storage;
  if (!s || typeof s.getDirectory !== "function") throw new HearthError("INTERNAL", "this browser has no Origin Private File System (navigator.storage.getDirectory)");
  return s;
}

/** A child directory, or null when it does not exist and `create` is false. */
export async function subdir(parent: FileSystemDirectoryHandle, name: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
  try {
    return await parent.getDirectoryHandle(name, { create });
  } catch (e) {
    if (isNotFound(e)) return null;
    throw HearthError.from(e);
  }
}

/** Writes a whole file (OPFS commits a writable atomically on close; an error aborts it). */
export async function writeFile(dir: FileSystemDirectoryHandle, name: string, data: Uint8Array | string): Promise<void> {
  let w: FileSystemWritableFileStream | null = null;
  try {
    const fh = await dir.getFileHandle(name, { create: true });
    w = await fh.createWritable();
    await w.write(data as FileSystemWriteChunkType);
    const done = w;
    w = null;
    await done.close();
  } catch (e) {
    // An unclosed writable keeps the file's lock (and its swap file) until it is collected.
    await w?.abort().catch(() => undefined);
    const err = HearthError.from(e);
    if (err.code === "QUOTA") throw new HearthError("QUOTA", `storage full while writing ${name}: ${err.message}`);
    throw err;
  }
}

export async function readManifest(dir: FileSystemDirectoryHandle): Promise<StoredModel | null> {
  let m: StoredModel;
  try {
    const f = await (await dir.getFileHandle(MANIFEST)).getFile();
    m = JSON.parse(await f.text()) as StoredModel;
  } catch (e) {
    if (isNotFound(e) || e instanceof SyntaxError) return null;
    throw HearthError.from(e);
  }
  if (typeof m !== "object" || m === null || typeof m.id !== "string" || !Array.isArray(m.chunks)) return null;
  try {
    const used = JSON.parse(await (await (await dir.getFileHandle(LAST_USED)).getFile()).text()) as unknown;
    if (typeof used === "number" && used > m.lastUsed) m.lastUsed = used;
  } catch {
    // No (readable) last-used file: the manifest's time stands.
  }
  return m;
}

export function writeManifest(dir: FileSystemDirectoryHandle, m: StoredModel): Promise<void> {
  return writeFile(dir, MANIFEST, JSON.stringify(m));
}

/** Records a use without touching the manifest; a failure (a full disk) is ignored. */
export async function touchLastUsed(dir: FileSystemDirectoryHandle, now: number): Promise<void> {
  await writeFile(dir, LAST_USED, JSON.stringify(now)).catch(() => undefined);
}

interface SyncAccessHandle {
  getSize(): number;
  read(buf: Uint8Array, opts: { at: number }): number;
  close(): void;
}

/**
 * The whole file through an OPFS sync access handle (dedicated Workers only, where the engine
 * runs by default): a direct file read, about twice as fast as `getFile().arrayBuffer()` for the
 * store's 8 MiB chunks. `null` where there is no such handle or it cannot be opened (another
 * context holds it): the caller falls back to the Blob read. The handle is always closed.
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

/** Chunk `i` if its file exists with the manifest's length and checksum, else null (missing or corrupt). */
export async function readChunk(dir: FileSystemDirectoryHandle, m: StoredModel, i: number): Promise<Uint8Array | null> {
  let c: Uint8Array;
  try {
    const fh = await dir.getFileHandle(chunkName(i));
    c = (await syncRead(fh)) ?? new Uint8Array(await (await fh.getFile()).arrayBuffer());
  } catch (e) {
    if (isNotFound(e)) return null;
    throw HearthError.from(e);
  }
  if (c.length !== m.chunks[i] || xxh32(c) !== m.sums[i]) return null;
  return c;
}

/** The number of leading chunks whose files exist with the manifest's lengths (sizes only). */
export async function sizedPrefix(dir: FileSystemDirectoryHandle, m: StoredModel): Promise<number> {
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

/** Deletes chunk files `from`..`to-1` (missing ones are fine). */
export async function removeChunks(dir: FileSystemDirectoryHandle, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    try {
      await dir.removeEntry(chunkName(i));
    } catch (e) {
      if (!isNotFound(e)) throw HearthError.from(e);
    }
  }
}

/** Where the engine keeps its small JSON answers (the backend probe's, the GPU tune's), beside the models. */
const ANSWERS_DIR = "hearth-models";

/**
 * One of the engine's small JSON files in `hearth-models/` (`backend-probe.json`,
 * `gpu-tune.json`), parsed; `null` when there is no OPFS, no such file, or it does not parse
 * (the caller computes its answer again and rewrites the file).
 */
export async function readAnswers(name: string): Promise<unknown> {
  try {
    const dir = await subdir(await storageManager().getDirectory(), ANSWERS_DIR, false);
    if (!dir) return null;
    return JSON.parse(await (await (await dir.getFileHandle(name)).getFile()).text()) as unknown;
  } catch {
    return null;
  }
}

/** Writes one of those files; a failure (no OPFS, quota) only means it is computed again next time. */
export async function writeAnswers(name: string, value: unknown): Promise<void> {
  try {
    const dir = await subdir(await storageManager().getDirectory(), ANSWERS_DIR, true);
    if (dir) await writeFile(dir, name, JSON.stringify(value));
  } catch {
    // nothing kept: the answer is computed again on the next load
  }
}
