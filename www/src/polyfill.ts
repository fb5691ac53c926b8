/**
 * `import "@hearth-ai/web/polyfill"`: installs `Summarizer` and `LanguageModel` globals (Chrome's
 * built-in AI shapes) backed by a local Hearth model, where the browser has none or has one that
 * reports "unavailable", so code written for Chrome's built-in AI runs in any browser with
 * WebGPU or wasm.
 *
 * ```js
 * import { configure } from "@hearth-ai/web/polyfill";
 * configure({ model: "smollm2-135m-instruct-q4_1" });   // optional; this is the default
 * const s = await Summarizer.create({ type: "tldr", monitor(m) { m.addEventListener("downloadprogress", e => console.log(e.loaded)); } });
 * console.log(await s.summarize(document.body.innerText));
 * ```
 */

import { Engine, type EngineLoadOptions } from "./engine.js";
import { HearthError } from "./errors.js";
import { HearthLanguageModel, LANGUAGE_MODEL_PARAMS, type LanguageModelCreateOptions } from "./language-model.js";
import { DEFAULT_MODEL_ID, resolveModel } from "./registry.js";
import { defaultStore } from "./store.js";
import { HearthSummarizer, type SummarizerOptions } from "./summarizer.js";

/** Chrome's availability states. */
export type Availability = "unavailable" | "downloadable" | "downloading" | "available";

/** What `monitor` receives: an EventTarget firing `downloadprogress` (`loaded` is 0…1). */
export type CreateMonitor = (m: EventTarget) => void;

/** Which model the polyfill loads, and how. */
export interface PolyfillConfig {
  /** Registry id or URL (default: the registry's default model). */
  model?: string;
  /** Engine options for the shared engine (backend, worker, contextSize, wasmUrl…). */
  engine?: Omit<EngineLoadOptions, "onProgress" | "signal">;
}

let config: PolyfillConfig = {};
let shared: Promise<Engine> | null = null;
let downloading = false;
const monitors = new Set<EventTarget>();

/** Sets the model and engine options (before the first `create()`). */
export function configure(c: PolyfillConfig): void {
  if (shared) throw new HearthError("BAD_REQUEST", "configure() must be called before the first create()");
  config = { ...c };
}

/** The engine every polyfilled session shares (loaded on first use). */
export function sharedEngine(): Promise<Engine> {
  if (!shared) {
    downloading = true;
    shared = Engine.load(config.model ?? DEFAULT_MODEL_ID, {
      ...config.engine,
      onProgress: (p) => {
        if (p.phase !== "download" && p.phase !== "cache" && p.phase !== "ready") return;
        const loaded = p.phase === "ready" ? 1 : p.total ? p.loaded / p.total : 0;
        for (const m of monitors) m.dispatchEvent(new ProgressEvent("downloadprogress", { loaded, total: 1, lengthComputable: true }));
      },
    }).finally(() => {
      downloading = false;
    });
    shared.catch(() => {
      shared = null;
    });
  }
  return shared;
}

async function availability(): Promise<Availability> {
  if (typeof WebAssembly !== "object") return "unavailable";
  if (shared && !downloading) return "available";
  if (downloading) return "downloading";
  try {
    const src = resolveModel(config.model ?? DEFAULT_MODEL_ID);
    return (await defaultStore.has(src.id)) ? "available" : "downloadable";
  } catch {
    return "unavailable";
  }
}

async function withMonitor<T>(monitor: CreateMonitor | undefined, f: (e: Engine) => Promise<T>): Promise<T> {
  const target = new EventTarget();
  if (monitor) {
    monitor(target);
    monitors.add(target);
  }
  try {
    const engine = await sharedEngine();
    target.dispatchEvent(new ProgressEvent("downloadprogress", { loaded: 1, total: 1, lengthComputable: true }));
    return await f(engine);
  } finally {
    monitors.delete(target);
  }
}

/** `Summarizer` (WICG Writing Assistance APIs) over Hearth. */
export class Summarizer {
  static availability(_opts: SummarizerOptions = {}): Promise<Availability> {
    return availability();
  }
  static create(opts: SummarizerOptions & { monitor?: CreateMonitor } = {}): Promise<HearthSummarizer> {
    const { monitor, ...rest } = opts;
    return withMonitor(monitor, (e) => e.summarizer(rest));
  }
}

/** `LanguageModel` (Chrome's Prompt API) over Hearth. */
export class LanguageModel {
  static availability(_opts: LanguageModelCreateOptions = {}): Promise<Availability> {
    return availability();
  }
  static async params(): Promise<typeof LANGUAGE_MODEL_PARAMS> {
    return LANGUAGE_MODEL_PARAMS;
  }
  static create(opts: LanguageModelCreateOptions & { monitor?: CreateMonitor } = {}): Promise<HearthLanguageModel> {
    const { monitor, ...rest } = opts;
    return withMonitor(monitor, (e) => e.languageModel(rest));
  }
}

/** Which globals the polyfill put in place. */
export interface Installed {
  Summarizer: boolean;
  LanguageModel: boolean;
}

function define(name: "Summarizer" | "LanguageModel", value: unknown): void {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

/** Installs the globals where absent (or always, with `force`); returns which it installed. */
export function install(opts: { force?: boolean } = {}): Installed {
  const g = globalThis as Record<string, unknown>;
  const done: Installed = { Summarizer: false, LanguageModel: false };
  if (opts.force || !("Summarizer" in g)) {
    define("Summarizer", Summarizer);
    done.Summarizer = true;
  }
  if (opts.force || !("LanguageModel" in g)) {
    define("LanguageModel", LanguageModel);
    done.LanguageModel = true;
  }
  return done;
}

/** The browser's own implementations the polyfill replaced (still usable), if any. */
export const native: { Summarizer?: unknown; LanguageModel?: unknown } = {};

/** A native global is kept only if it can actually run: its `availability()` is not "unavailable". */
async function nativeUsable(value: unknown): Promise<boolean> {
  const availability = (value as { availability?: () => Promise<string> } | null)?.availability;
  if (typeof availability !== "function") return false;
  try {
    const a = await Promise.race([availability.call(value), new Promise<string>((r) => setTimeout(() => r("timeout"), 2000))]);
    return a !== "unavailable";
  } catch {
    return false;
  }
}

/**
 * Installs each global where the browser has none, or has one that reports "unavailable" (e.g.
 * Chromium without the on-device model): code written for Chrome's built-in AI then runs on Hearth.
 */
export async function installWhereUnavailable(): Promise<Installed> {
  const g = globalThis as Record<string, unknown>;
  const done = install();
  for (const name of ["Summarizer", "LanguageModel"] as const) {
    if (done[name]) continue;
    if (!(await nativeUsable(g[name]))) {
      native[name] = g[name];
      define(name, name === "Summarizer" ? Summarizer : LanguageModel);
      done[name] = true;
    }
  }
  return done;
}

/** Which globals the import installed (a usable native one is left alone). */
export const installed: Installed = await installWhereUnavailable();
