/**
 * `import "@hearth-ai/web/polyfill"`: installs `Summarizer`, `LanguageModel`, `Writer`, `Rewriter` and `LanguageDetector` globals (Chrome's
 * built-in AI shapes) backed by a local Hearth model, where the browser has none or has one that
 * reports "unavailable", so code written for Chrome's built-in AI runs in any browser with
 * WebGPU or wasm. Shaped as the specs say: `availability(options)` honours its options, `create()`
 * honours `signal` and `monitor` (a {@link CreateMonitor}), sessions reject with the specs'
 * DOMExceptions (`dom-errors.ts`; Hearth's code kept as `code`) and `destroy()` aborts them.
 *
 * ```js
 * import { configure } from "@hearth-ai/web/polyfill";
 * configure({ model: "smollm2-135m-instruct-q4_1" });   // optional; this is the default
 * const s = await Summarizer.create({ type: "tldr", monitor(m) { m.addEventListener("downloadprogress", e => console.log(e.loaded)); } });
 * console.log(await s.summarize(document.body.innerText));
 * ```
 */

import { CreateMonitor, type DownloadMonitor } from "./create-monitor.js";
import { specSession, toSpecError } from "./dom-errors.js";
import { Engine, type EngineLoadOptions } from "./engine.js";
import { HearthError } from "./errors.js";
import { HearthLanguageModel, LANGUAGE_MODEL_PARAMS, type LanguageModelCreateOptions } from "./language-model.js";
import { DEFAULT_MODEL_ID, resolveParts } from "./registry.js";
import { defaultStore } from "./store.js";
import { HearthSummarizer, type SummarizerOptions } from "./summarizer.js";
import { HearthLanguageDetector, detectableLanguages } from "./language-detector.js";
import { checkWritingOptions, type HearthRewriter, type HearthWriter, type WritingOptions } from "./writing.js";

/** Chrome's availability states. */
export type Availability = "unavailable" | "downloadable" | "downloading" | "available";

/** What `monitor` receives: a {@link CreateMonitor} firing `downloadprogress` (`loaded` is 0…1). */
export type CreateMonitorCallback = (m: DownloadMonitor) => void;
export { CreateMonitor, type DownloadMonitor };

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
/** The shared load's controller and how many `create()` calls still wait for it. */
let loadController: AbortController | null = null;
let waiters = 0;
const monitors = new Set<CreateMonitor>();

/** Sets the model and engine options (before the first `create()`). */
export function configure(c: PolyfillConfig): void {
  if (shared) throw new HearthError("BAD_REQUEST", "configure() must be called before the first create()");
  config = { ...c };
}

/** A load given up on (every `create()` waiting for it was aborted), until it has wound down. */
let stopping: Promise<void> | null = null;

/** The engine every polyfilled session shares (loaded on first use). */
export function sharedEngine(): Promise<Engine> {
  if (!shared) {
    const controller = new AbortController();
    const start = () =>
      Engine.load(config.model ?? DEFAULT_MODEL_ID, {
        ...config.engine,
        signal: controller.signal,
        onProgress: (p) => {
          // Download (or store) progress only; `loaded: 1` is reported once, when the engine is ready.
          if ((p.phase !== "download" && p.phase !== "cache") || !p.total) return;
          for (const m of monitors) m.report(Math.min(p.loaded / p.total, 0.999));
        },
      });
    const p: Promise<Engine> = (stopping ? stopping.then(start) : start()).finally(() => {
      if (shared === p) {
        downloading = false;
        loadController = null;
      }
    });
    shared = p;
    downloading = true;
    loadController = controller;
    p.catch(() => {
      if (shared === p) shared = null;
    });
  }
  return shared;
}

/** Stops the shared load (no `create()` waits for it any more); a later `create()` starts afresh. */
function stopLoad(reason: unknown): void {
  const p = shared;
  if (!p || !loadController) return;
  loadController.abort(reason);
  // An engine that finished loading just as the abort came is freed.
  stopping = p.then((e) => e.unload(), () => undefined);
  shared = null;
  downloading = false;
  loadController = null;
}

/**
 * The shared engine for one `create()`: rejects with `signal`'s reason when it fires; the load
 * itself stops when every `create()` waiting for it has been aborted.
 */
async function acquireEngine(signal: AbortSignal | undefined): Promise<Engine> {
  const loading = sharedEngine();
  if (!signal) return loading;
  if (signal.aborted) throw signal.reason;
  waiters++;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      loading,
      new Promise<never>((_, reject) => {
        onAbort = () => {
          reject(signal.reason);
          if (--waiters === 0) stopLoad(signal.reason);
          onAbort = undefined;
        };
        signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } finally {
    if (onAbort) {
      signal.removeEventListener("abort", onAbort);
      waiters--;
    }
  }
}

/** Languages the default models answer in (BCP 47 primary tag). */
const SUPPORTED_LANGUAGES = /^en(-|$)/i;

function languagesSupported(langs: unknown): boolean {
  if (langs === undefined || langs === null) return true;
  if (typeof langs === "string") return SUPPORTED_LANGUAGES.test(langs);
  if (!Array.isArray(langs)) throw new TypeError("languages must be an array of language tags");
  return langs.every((l) => typeof l === "string" && SUPPORTED_LANGUAGES.test(l));
}

/** Whether the options ask for something the polyfill cannot do (another modality, another language). */
type Kind = "summarizer" | "languageModel" | "writer" | "rewriter";
const GLOBAL_NAMES: Record<Kind, string> = { summarizer: "Summarizer", languageModel: "LanguageModel", writer: "Writer", rewriter: "Rewriter" };

function optionsSupported(kind: Kind, opts: Record<string, unknown>): boolean {
  if (kind === "writer" || kind === "rewriter") {
    try {
      checkWritingOptions(kind, opts as WritingOptions);
    } catch (e) {
      throw new TypeError((e as Error).message);
    }
    return languagesSupported(opts.expectedInputLanguages) && languagesSupported(opts.expectedContextLanguages) && languagesSupported(opts.outputLanguage);
  }
  if (kind === "summarizer") {
    for (const [name, allowed] of [["type", ["tldr", "key-points", "teaser", "headline"]], ["format", ["plain-text", "markdown"]], ["length", ["short", "medium", "long"]]] as const) {
      const v = opts[name];
      if (v !== undefined && !(allowed as readonly string[]).includes(v as string)) throw new TypeError(`The provided value '${String(v)}' is not a valid enum value of type Summarizer${name[0]!.toUpperCase()}${name.slice(1)}.`);
    }
    return languagesSupported(opts.expectedInputLanguages) && languagesSupported(opts.expectedContextLanguages) && languagesSupported(opts.outputLanguage);
  }
  for (const key of ["expectedInputs", "expectedOutputs"]) {
    const list = opts[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new TypeError(`${key} must be an array`);
    for (const x of list as { type?: unknown; languages?: unknown }[]) {
      if (!["text", "image", "audio"].includes(x?.type as string)) throw new TypeError(`The provided value '${String(x?.type)}' is not a valid enum value of type LanguageModelMessageType.`);
      if (x.type !== "text" || !languagesSupported(x.languages)) return false;
    }
  }
  return true;
}

async function availability(kind: Kind, opts: Record<string, unknown> = {}): Promise<Availability> {
  if (typeof WebAssembly !== "object") return "unavailable";
  if (!optionsSupported(kind, opts)) return "unavailable";
  if (shared && !downloading) return "available";
  if (downloading) return "downloading";
  try {
    // A split model is available when every part is stored.
    const parts = resolveParts(config.model ?? DEFAULT_MODEL_ID);
    return (await Promise.all(parts.map((p) => defaultStore.has(p.id)))).every(Boolean) ? "available" : "downloadable";
  } catch {
    return "unavailable";
  }
}

/**
 * One `create()`: refuses what `availability()` calls unavailable (NotSupportedError), reports
 * download progress to `monitor` (not when the model was already available), stops waiting when
 * `signal` fires, and returns the session with the specs' error shape.
 */
async function createSession<T extends object>(
  kind: Kind,
  opts: Record<string, unknown> & { monitor?: CreateMonitorCallback; signal?: AbortSignal },
  make: (e: Engine) => Promise<T>,
  optionsArg: Record<string, number>,
): Promise<T> {
  const { monitor, signal } = opts;
  try {
    if (signal?.aborted) throw signal.reason;
    const before = await availability(kind, opts);
    if (before === "unavailable") throw new DOMException(`the ${GLOBAL_NAMES[kind]} options are not supported by this model`, "NotSupportedError");
    const m = new CreateMonitor();
    monitor?.(m);
    const report = before !== "available";
    if (report) {
      monitors.add(m);
      m.report(0);
    }
    try {
      const engine = await acquireEngine(signal);
      if (report) m.report(1);
      return specSession(await make(engine), kind === "languageModel" ? "session" : kind, optionsArg);
    } finally {
      monitors.delete(m);
    }
  } catch (e) {
    throw toSpecError(e, signal);
  }
}

/** `Summarizer` (WICG Writing Assistance APIs) over Hearth. */
export class Summarizer {
  static async availability(opts: SummarizerOptions = {}): Promise<Availability> {
    return availability("summarizer", opts as Record<string, unknown>);
  }
  static create(opts: SummarizerOptions & { monitor?: CreateMonitorCallback } = {}): Promise<HearthSummarizer> {
    const { monitor: _monitor, ...rest } = opts;
    return createSession("summarizer", opts as Record<string, unknown>, (e) => e.summarizer(rest), { summarize: 1, summarizeStreaming: 1, measureInputUsage: 1 });
  }
}

/** `LanguageModel` (Chrome's Prompt API) over Hearth. */
export class LanguageModel {
  static async availability(opts: LanguageModelCreateOptions = {}): Promise<Availability> {
    return availability("languageModel", opts as Record<string, unknown>);
  }
  static async params(): Promise<typeof LANGUAGE_MODEL_PARAMS> {
    return LANGUAGE_MODEL_PARAMS;
  }
  static create(opts: LanguageModelCreateOptions & { monitor?: CreateMonitorCallback } = {}): Promise<HearthLanguageModel> {
    const { monitor: _monitor, ...rest } = opts;
    return createSession("languageModel", opts as Record<string, unknown>, (e) => e.languageModel(rest), {
      prompt: 1, promptStreaming: 1, append: 1, measureContextUsage: 1, measureInputUsage: 1, clone: 0,
    });
  }
}

/**
 * A Writing Assistance global (`Writer`, `Rewriter`): `availability(options)` and `create(options)`
 * as the other globals, making sessions with `make`.
 */
function writingGlobal<S extends object>(kind: "writer" | "rewriter", make: (e: Engine, opts: WritingOptions) => Promise<S>, optionsArg: Record<string, number>) {
  return class {
    static async availability(opts: WritingOptions = {}): Promise<Availability> {
      return availability(kind, opts as Record<string, unknown>);
    }
    static create(opts: WritingOptions & { monitor?: CreateMonitorCallback; signal?: AbortSignal } = {}): Promise<S> {
      const { monitor: _monitor, ...rest } = opts;
      return createSession(kind, opts as Record<string, unknown>, (e) => make(e, rest), optionsArg);
    }
  };
}

/** `Writer` (WICG Writing Assistance APIs) over Hearth. */
export const Writer = writingGlobal<HearthWriter>("writer", (e, o) => e.writer(o), { write: 1, writeStreaming: 1, measureInputUsage: 1 });

/** `Rewriter` (WICG Writing Assistance APIs) over Hearth. */
export const Rewriter = writingGlobal<HearthRewriter>("rewriter", (e, o) => e.rewriter(o), { rewrite: 1, rewriteStreaming: 1, measureInputUsage: 1 });

/** `LanguageDetector` over tinyld (no model download: always "available" for the languages it knows). */
export class LanguageDetector {
  static async availability(opts: { expectedInputLanguages?: readonly string[] } = {}): Promise<Availability> {
    const known = new Set(detectableLanguages());
    const langs = opts.expectedInputLanguages ?? [];
    if (!Array.isArray(langs)) throw new TypeError("expectedInputLanguages must be an array of language tags");
    return langs.every((l) => typeof l === "string" && known.has(l.split("-")[0]!.toLowerCase())) ? "available" : "unavailable";
  }
  static async create(opts: { expectedInputLanguages?: readonly string[]; signal?: AbortSignal; monitor?: CreateMonitorCallback } = {}): Promise<HearthLanguageDetector> {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if ((await LanguageDetector.availability(opts)) === "unavailable") throw new DOMException("an expected input language is not detectable", "NotSupportedError");
    // Nothing to download: the monitor gets no event (the model is "available").
    opts.monitor?.(new CreateMonitor());
    return specSession(new HearthLanguageDetector(opts), "language detector", { detect: 1, measureInputUsage: 1 });
  }
}

/** Which globals the polyfill put in place. */
export interface Installed {
  Summarizer: boolean;
  LanguageModel: boolean;
  Writer: boolean;
  Rewriter: boolean;
  LanguageDetector: boolean;
}

type GlobalName = keyof Installed;
const POLYFILLS: Record<GlobalName, unknown> = { Summarizer, LanguageModel, Writer, Rewriter, LanguageDetector };

function define(name: GlobalName, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

/** Installs the globals where absent (or always, with `force`); returns which it installed. */
export function install(opts: { force?: boolean } = {}): Installed {
  const g = globalThis as Record<string, unknown>;
  const done: Installed = { Summarizer: false, LanguageModel: false, Writer: false, Rewriter: false, LanguageDetector: false };
  for (const name of Object.keys(POLYFILLS) as GlobalName[]) {
    if (opts.force || !(name in g)) {
      define(name, POLYFILLS[name]);
      done[name] = true;
    }
  }
  return done;
}

/** The browser's own implementations the polyfill replaced (still usable), if any. */
export const native: Partial<Record<GlobalName, unknown>> = {};

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
  for (const name of Object.keys(POLYFILLS) as GlobalName[]) {
    if (done[name]) continue;
    if (!(await nativeUsable(g[name]))) {
      native[name] = g[name];
      define(name, POLYFILLS[name]);
      done[name] = true;
    }
  }
  return done;
}

/** Which globals the import installed (a usable native one is left alone). */
export const installed: Installed = await installWhereUnavailable();
