/**
 * The models Hearth knows by id: a copy of `models/registry.toml` for the browser (a test keeps
 * the two in sync). A model not listed here can still be loaded by URL.
 */

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

/** The id loaded when none is given. */
export const DEFAULT_MODEL_ID = "smollm2-135m-instruct-q4_1";

/** Every model in the registry. */
export const REGISTRY: readonly RegistryModel[] = [
  {
    id: "smollm2-135m-instruct-q4_1",
    name: "SmolLM2 135M Instruct",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    bytes: 98362432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    licence: "Apache-2.0",
    architecture: "llama",
    quant: "Q4_1",
    chat: true,
  },
  {
    id: "gemma3-270m-q4_k_m",
    name: "Gemma 3 270M (base)",
    file: "gemma-3-270m-q4_k_m.gguf",
    bytes: 253113024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    licence: "Gemma Terms of Use",
    architecture: "gemma3",
    quant: "Q4_K_M",
    chat: false,
  },
  {
    id: "qwen2.5-coder-0.5b-instruct-q4_k_m",
    name: "Qwen2.5-Coder 0.5B Instruct",
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    bytes: 491400064,
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    licence: "Apache-2.0",
    architecture: "qwen2",
    quant: "Q4_K_M",
    chat: true,
  },
  {
    id: "qwen2.5-coder-1.5b-instruct-q4_k_m",
    name: "Qwen2.5-Coder 1.5B Instruct",
    file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    bytes: 1117320768,
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    licence: "Apache-2.0",
    architecture: "qwen2",
    quant: "Q4_K_M",
    chat: true,
  },
];

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
