/**
 * The models Hearth knows by id: `models/registry.toml`, which `npm run build` turns into
 * `registry-data.ts` (scripts/registry_ts.py) before compiling. A model not listed there can
 * still be loaded by URL.
 */

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
