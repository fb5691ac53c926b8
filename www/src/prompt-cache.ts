/**
 * The persisted prompt cache: the KV cache of a prompt's reusable prefix (a long system prompt,
 * the summarizer's instructions, a Prompt API session's `initialPrompts`) kept in the Origin
 * Private File System next to the weights, so a later page load restores it in milliseconds
 * instead of prefilling it again.
 *
 * Layout: `<root>/hearth-prompt-cache/<key>.hkv` (one engine snapshot each, the format of
 * `src/engine/kv_snapshot.rs`: header + tokens + f32 K/V + XXH3 checksum) and `index.json`
 * (size and last use of each entry, for the LRU). `<key>` is the SHA-256 of everything that
 * changes the KV bytes: the model file's sha256, the backend and wasm build, the context size,
 * the snapshot format version, and the prefix tokens themselves. The engine checks the model,
 * backend, hyper-parameters, context, length and checksum again on restore, so an entry that is
 * corrupted, truncated or written by another model or build is refused, deleted and rebuilt,
 * never used.
 *
 * Entries are written whole (an OPFS writable commits atomically on close); the total is capped
 * (`maxBytes`, default 256 MiB) by deleting least-recently-used entries first. Writes and
 * evictions hold the Web Lock `hearth-prompt-cache`, shared by every tab of the origin.
 */

import { HearthError } from "./errors.js";
import { isNotFound, storageManager, subdir, writeFile } from "./opfs.js";
import { sha256Hex } from "./sha256.js";
import type { ChatMessage, GenerateRequest, PromptCacheOptions } from "./types.js";
import type { WasmEngine } from "./wasm-api.js";

/** Snapshot format version of the engine (`kv_snapshot::VERSION`); part of every key. */
const SNAPSHOT_VERSION = 1;
/** Directory under the OPFS root. */
export const PROMPT_CACHE_DIR = "hearth-prompt-cache";
const INDEX = "index.json";
const LOCK = "hearth-prompt-cache";
/** Default cap on all entries together. */
export const DEFAULT_PROMPT_CACHE_BYTES = 256 * 1024 * 1024;
/** Prefixes shorter than this are prefilled faster than a file is read: never stored. */
export const MIN_PREFIX_TOKENS = 16;

interface IndexEntry {
  bytes: number;
  lastUsed: number;
}
type Index = Record<string, IndexEntry>;

/** What {@link PromptCache.prepare} found for one request. */
export interface PreparedPrefix {
  /** The prefix's tokens (what the engine holds first after the request). */
  tokens: Uint32Array;
  key: string;
  /** `restored`: read from the store; `held`: already in the KV cache; `missing`: to be stored after the request. */
  state: "restored" | "held" | "missing";
  /** Prefix tokens this request prefilled before its generation started (a miss): the
   *  generation counts them as reused, but the request computed them. */
  prefilled: number;
}

/** Where the engine's KV snapshots are kept, for one model on one backend and build. */
export class PromptCache {
  readonly maxBytes: number;

  /**
   * @param modelSha256 the model file's sha256 (lowercase hex): the snapshot's model id.
   * @param variant the backend, wasm build and context size (`cpu|threads|2048`): part of the key.
   */
  /** Whether the backend's results are independent of how a prompt is split into batches (the
   *  CPU backend, `cpu|…` variants): then a miss needs no separate prefill of its prefix. */
  readonly splitExact: boolean;

  constructor(
    readonly modelSha256: string,
    readonly variant: string,
    opts: PromptCacheOptions = {},
    readonly dirName: string = PROMPT_CACHE_DIR,
  ) {
    this.splitExact = variant.split("|")[0] === "cpu";
    const max = opts.maxBytes ?? DEFAULT_PROMPT_CACHE_BYTES;
    if (!Number.isSafeInteger(max) || max < 0) throw new HearthError("BAD_REQUEST", `promptCache.maxBytes must be a non-negative integer, got ${max}`);
    this.maxBytes = max;
  }

  private async dir(create: boolean): Promise<FileSystemDirectoryHandle | null> {
    return subdir(await storageManager().getDirectory(), this.dirName, create);
  }

  /** The entry key of a prefix. */
  async key(tokens: Uint32Array): Promise<string> {
    const head = new TextEncoder().encode(`hearth-kv|${SNAPSHOT_VERSION}|${this.modelSha256}|${this.variant}|`);
    const body = new Uint8Array(head.length + tokens.byteLength);
    body.set(head);
    body.set(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength), head.length);
    return (await sha256Hex(body)).slice(0, 40);
  }

  /**
   * Before a chat request: finds the prefix of `messages` (its first `nMessages`), and unless the
   * KV cache holds it already, restores it from the store. A stored entry the engine refuses
   * (corrupted, truncated, another model or build) is deleted: the request then prefills the
   * prefix and {@link PromptCache.store} writes it again. Null when there is nothing worth caching.
   */
  async prepare(engine: WasmEngine, messages: ChatMessage[], nMessages: number): Promise<PreparedPrefix | null> {
    if (nMessages <= 0) return null;
    const tokens = engine.prompt_prefix(JSON.stringify(messages), nMessages);
    if (tokens.length < MIN_PREFIX_TOKENS) return null;
    const key = await this.key(tokens);
    if (engine.holds_prefix(tokens)) return { tokens, key, state: "held", prefilled: 0 };
    const bytes = await this.read(key);
    if (bytes) {
      try {
        engine.restore_prefix(bytes, this.modelSha256);
        await this.touch(key, bytes.length);
        return { tokens, key, state: "restored", prefilled: 0 };
      } catch (e) {
        // A trap is not a refusal: let the caller's trap handling see it.
        if (e instanceof WebAssembly.RuntimeError) throw e;
        await this.remove(key);
      }
    }
    // On the CPU a token's result does not depend on how the prompt is split into batches (the
    // wasm one-token kernels equal the four-token tiles bit for bit, `simd_wasm_rows.rs`), so
    // the request prefills its whole prompt at once and its output equals a hit's. On WebGPU
    // the batched and one-token kernels may round differently: there the prefix is computed
    // alone first, in the batches a later restore gives, so that a near-tie greedy token
    // cannot differ between a miss and a hit.
    if (this.splitExact) return { tokens, key, state: "missing", prefilled: 0 };
    const held = engine.prefill_prefix(tokens);
    return { tokens, key, state: "missing", prefilled: tokens.length - held };
  }

  /** After the request: stores the prefix's snapshot when it was missing (best effort: a full disk only skips it). */
  async store(engine: WasmEngine, p: PreparedPrefix): Promise<void> {
    if (p.state !== "missing" || !engine.holds_prefix(p.tokens)) return;
    const bytes = await engine.export_prefix(p.tokens, this.modelSha256);
    if (bytes.length > this.maxBytes) return;
    await withLock(async () => {
      const dir = await this.dir(true);
      if (!dir) return;
      const index = await readIndex(dir);
      await this.evict(dir, index, this.maxBytes - bytes.length);
      try {
        await writeFile(dir, fileName(p.key), bytes);
      } catch (e) {
        if (HearthError.from(e).code === "QUOTA") return;
        throw e;
      }
      index[p.key] = { bytes: bytes.length, lastUsed: Date.now() };
      await writeFile(dir, INDEX, JSON.stringify(index)).catch(() => undefined);
    });
  }

  /** Deletes least-recently-used entries until at most `budget` bytes remain (files the index
   *  lost track of count as least recently used). */
  private async evict(dir: FileSystemDirectoryHandle, index: Index, budget: number): Promise<void> {
    for await (const [name, h] of dir as unknown as AsyncIterable<[string, FileSystemHandle]>) {
      const key = name.endsWith(".hkv") ? name.slice(0, -4) : null;
      if (h.kind !== "file" || key === null || key in index) continue;
      index[key] = { bytes: (await (h as FileSystemFileHandle).getFile()).size, lastUsed: 0 };
    }
    const entries = Object.entries(index).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let total = entries.reduce((s, [, e]) => s + e.bytes, 0);
    for (const [k, e] of entries) {
      if (total <= budget) break;
      await removeFile(dir, fileName(k));
      delete index[k];
      total -= e.bytes;
    }
  }

  private async read(key: string): Promise<Uint8Array | null> {
    const dir = await this.dir(false);
    if (!dir) return null;
    try {
      const f = await (await dir.getFileHandle(fileName(key))).getFile();
      return new Uint8Array(await f.arrayBuffer());
    } catch (e) {
      if (isNotFound(e)) return null;
      throw HearthError.from(e);
    }
  }

  private async touch(key: string, bytes: number): Promise<void> {
    await withLock(async () => {
      const dir = await this.dir(false);
      if (!dir) return;
      const index = await readIndex(dir);
      index[key] = { bytes, lastUsed: Date.now() };
      await writeFile(dir, INDEX, JSON.stringify(index)).catch(() => undefined);
    });
  }

  /** Deletes one entry (a refused one). */
  async remove(key: string): Promise<void> {
    await withLock(async () => {
      const dir = await this.dir(false);
      if (!dir) return;
      await removeFile(dir, fileName(key));
      const index = await readIndex(dir);
      if (key in index) {
        delete index[key];
        await writeFile(dir, INDEX, JSON.stringify(index)).catch(() => undefined);
      }
    });
  }
}

/** How many leading messages of a chat request form its reusable prefix: the request's own
 *  `cache_prefix`, else its leading system messages. */
export function prefixMessageCount(req: Extract<GenerateRequest, { kind: "chat" }>): number {
  if (req.cache_prefix !== undefined) return Math.max(0, Math.min(req.cache_prefix, req.messages.length - 1));
  let n = 0;
  while (n < req.messages.length - 1 && req.messages[n]?.role === "system") n++;
  return n;
}

/** Every stored prompt-cache entry: `{key, bytes, lastUsed}`, most recently used first. */
export async function listPromptCache(dirName: string = PROMPT_CACHE_DIR): Promise<Array<{ key: string } & IndexEntry>> {
  const dir = await subdir(await storageManager().getDirectory(), dirName, false);
  if (!dir) return [];
  const index = await readIndex(dir);
  return Object.entries(index)
    .map(([key, e]) => ({ key, ...e }))
    .sort((a, b) => b.lastUsed - a.lastUsed);
}

/** Deletes every stored prompt-cache entry (all models). */
export async function clearPromptCache(dirName: string = PROMPT_CACHE_DIR): Promise<void> {
  await withLock(async () => {
    try {
      await (await storageManager().getDirectory()).removeEntry(dirName, { recursive: true });
    } catch (e) {
      if (!isNotFound(e)) throw HearthError.from(e);
    }
  });
}

function fileName(key: string): string {
  return `${key}.hkv`;
}

async function readIndex(dir: FileSystemDirectoryHandle): Promise<Index> {
  try {
    const v = JSON.parse(await (await (await dir.getFileHandle(INDEX)).getFile()).text()) as unknown;
    if (typeof v !== "object" || v === null) return {};
    const out: Index = {};
    for (const [k, e] of Object.entries(v as Record<string, unknown>)) {
      const x = e as Partial<IndexEntry>;
      if (/^[0-9a-f]{40}$/.test(k) && typeof x?.bytes === "number" && typeof x.lastUsed === "number") out[k] = { bytes: x.bytes, lastUsed: x.lastUsed };
    }
    return out;
  } catch {
    // Missing or unreadable: entries not listed are simply never evicted before being rewritten.
    return {};
  }
}

async function removeFile(dir: FileSystemDirectoryHandle, name: string): Promise<void> {
  try {
    await dir.removeEntry(name);
  } catch (e) {
    if (!isNotFound(e)) throw HearthError.from(e);
  }
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis as { navigator?: Navigator }).navigator?.locks;
  if (!locks) return fn();
  return locks.request(LOCK, () => fn()) as Promise<T>;
}
