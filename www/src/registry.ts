/**
 * The models Hearth knows by id: `models/registry.toml`, which `npm run build` turns into
 * `registry-data.ts` (scripts/registry_ts.py) before compiling. A model not listed there can
 * still be loaded by URL.
 */

import { HearthError } from "./errors.js";
import { REGISTRY } from "./registry-data.js";
export { DEFAULT_MODEL_ID, REGISTRY } from "./registry-data.js";

/** One registry entry. */
export interface RegistryModel {
  /** Stable id, e.g. `"smollm2-135m-instruct-q4_1"`. */
  id: string;
  /** Human name. */
  name: string;
  /** File name; the default URL is `/models/<file>` on the page's origin. */
  file: string;
  /** Exact size in bytes. */
  bytes: number;
  /** sha256 of the file, lowercase hex. */
  sha256: string;
  /** SPDX licence id of the weights. */
  licence: string;
  /** GGUF `general.architecture`. */
  architecture: string;
  /** Quantization of the bulk of the weights. */
  quant: string;
  /** Whether the model is instruction-tuned with a chat template. */
  chat: boolean;
}

/** The registry entry with this id, or undefined. */
export function findModel(id: string): RegistryModel | undefined {
  return REGISTRY.find((m) => m.id === id);
}

/** What the store and the loader need to know about a model to fetch and check it. */
export interface ModelSource {
  /** Key in the store: the registry id, or the absolute URL for an unregistered model. */
  id: string;
  /** Absolute URL of the GGUF file. */
  url: string;
  /** Expected size in bytes, when known. */
  bytes?: number;
  /** Expected sha256 (lowercase hex), when known. */
  sha256?: string;
  /** A part of a split model whose URL was derived from another part's (its number changed). */
  derived?: true;
}

/** Options of {@link resolveModel}. */
export interface ResolveOptions {
  /** Overrides the registry's sha256 (or supplies one for a URL). */
  sha256?: string;
  /** Where registry files are served from; default `/models/` on the current origin. */
  modelBaseUrl?: string;
}

function baseHref(): string {
  const loc = (globalThis as { location?: { href: string } }).location;
  return loc?.href ?? "http://localhost/";
}

/**
 * Turns a registry id or a URL into a {@link ModelSource}. A URL whose file name is a registry
 * file gets that entry's id, size and sha256.
 */
export function resolveModel(modelIdOrUrl: string, opts: ResolveOptions = {}): ModelSource {
  const entry = findModel(modelIdOrUrl);
  if (entry) {
    const base = new URL(opts.modelBaseUrl ?? "/models/", baseHref());
    return { id: entry.id, url: new URL(entry.file, base).href, bytes: entry.bytes, sha256: opts.sha256 ?? entry.sha256 };
  }
  const url = new URL(modelIdOrUrl, baseHref());
  const file = decodeURIComponent(url.pathname.split("/").pop() ?? "");
  const byFile = REGISTRY.find((m) => m.file === file);
  if (byFile && url.search === "") {
    return { id: byFile.id, url: url.href, bytes: byFile.bytes, sha256: opts.sha256 ?? byFile.sha256 };
  }
  const src: ModelSource = { id: url.href, url: url.href };
  if (opts.sha256) src.sha256 = opts.sha256;
  return src;
}

/** `<prefix>-NNNNN-of-MMMMM.gguf`: a part of a model split by llama.cpp's `gguf-split`. */
const PART_NAME = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

/**
 * The files of a model, in load order. A URL whose file name is a part of a split model
 * (`model-00002-of-00003.gguf`, any of the parts) gives every part, first to last, from the same
 * directory, each with the given URL's query string (a shared token such as `?download=1` or
 * `?token=…`); each part is stored on its own (its URL is its id). Parts whose URLs differ in
 * more than their number (each signed on its own: `…-00002-of-00003.gguf?sig=…`) are given as a
 * list of URLs, first part first: the engine checks each part's `split.no` as it loads.
 * Any other model is one file. `sha256` is one hash for a model in one file and an array of one
 * hash per part for a split one (`BAD_REQUEST` otherwise).
 */
export function resolveParts(model: string | readonly string[], opts: Omit<ResolveOptions, "sha256"> & { sha256?: string | string[] } = {}): ModelSource[] {
  if (typeof model !== "string") return resolveList(model, opts.sha256);
  const { sha256, ...rest } = opts;
  const one = resolveModel(model, typeof sha256 === "string" ? { ...rest, sha256 } : rest);
  const url = new URL(one.url);
  const m = PART_NAME.exec(url.pathname);
  const count = m ? Number(m[3]) : 1;
  const no = m ? Number(m[2]) : 1;
  if (!m || count < 2 || no < 1 || no > count || findModel(model)) {
    if (Array.isArray(sha256)) {
      if (sha256.length !== 1) throw new HearthError("BAD_REQUEST", `sha256 has ${sha256.length} hashes but ${one.url} is one file (a model split into parts takes one hash per part)`);
      one.sha256 = sha256[0] as string;
    }
    return [one];
  }
  checkPartHashes(sha256, count, one.url);
  const width = m[3]!.length;
  return Array.from({ length: count }, (_, i) => {
    const part = new URL(url.href);
    part.pathname = `${m[1]}-${String(i + 1).padStart(width, "0")}-of-${m[3]}.gguf`;
    const src: ModelSource = { id: part.href, url: part.href };
    if (i + 1 !== no) src.derived = true;
    if (sha256) src.sha256 = sha256[i] as string;
    return src;
  });
}

function checkPartHashes(sha256: string | string[] | undefined, count: number, what: string): void {
  if (typeof sha256 === "string") {
    throw new HearthError("BAD_REQUEST", `${what} is part of a model split into ${count} files: pass sha256 as an array of ${count} hashes, one per part`);
  }
  if (sha256 && sha256.length !== count) {
    throw new HearthError("BAD_REQUEST", `sha256 has ${sha256.length} hashes for a model split into ${count} files`);
  }
}

/**
 * A list of part URLs (absolute, or relative to the page), first part first. Each is stored
 * under its own URL. A file name in gguf-split's form must name its place in the list
 * (`BAD_REQUEST` before any download); other names are checked by the engine from each part's
 * `split.no` as it loads.
 */
function resolveList(urls: readonly string[], sha256: string | string[] | undefined): ModelSource[] {
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === "string" && u !== "")) {
    throw new HearthError("BAD_REQUEST", "a model given as a list takes one URL per part, at least one, first part first");
  }
  if (urls.length === 1) return resolveParts(urls[0] as string, sha256 === undefined ? {} : { sha256 });
  checkPartHashes(sha256, urls.length, `the list of ${urls.length} URLs`);
  const seen = new Set<string>();
  return urls.map((u, i) => {
    if (findModel(u)) throw new HearthError("BAD_REQUEST", `${u} is a registry id: a list of parts takes URLs`);
    const url = new URL(u, baseHref());
    if (seen.has(url.href)) throw new HearthError("BAD_REQUEST", `${url.href} is in the list of parts twice`);
    seen.add(url.href);
    const m = PART_NAME.exec(url.pathname);
    if (m && (Number(m[2]) !== i + 1 || Number(m[3]) !== urls.length)) {
      throw new HearthError("BAD_REQUEST", `${url.href} is part ${Number(m[2])} of ${Number(m[3])} but is number ${i + 1} of a list of ${urls.length} parts`);
    }
    const src: ModelSource = { id: url.href, url: url.href };
    if (sha256) src.sha256 = sha256[i] as string;
    return src;
  });
}
