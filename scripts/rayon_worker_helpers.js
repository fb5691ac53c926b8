/*
 * The thread pool's Worker helpers of the threaded wasm build (www/pkg-mt/), written over the
 * snippet wasm-bindgen-rayon 1.3 generates (`snippets/wasm-bindgen-rayon-*\/src/
 * workerHelpers.no-bundler.js`) by scripts/build_wasm.py, after wasm-bindgen: wasm-pack.toml
 * `[bindgen.threads] snippet-overrides`.
 *
 * Why: wasm-bindgen-rayon's `no-bundler` helper fetches its own script (`import.meta.url`) into a
 * `blob:` Worker and imports the glue from a URL computed at run time (`builder.mainJS()`). No
 * bundler can follow that: webpack turns `import.meta.url` into a `file://` path, Vite's build
 * puts the helper inside the engine Worker's bundle, and Vite's dev server adds an import of
 * `/@vite/client` that a `blob:` module cannot resolve. Its bundler helper imports `'../../..'`
 * (a directory), which no browser can load without a bundler. This file uses the literal
 * patterns both understand — `new Worker(new URL("./workerHelpers.no-bundler.js",
 * import.meta.url), {type: "module"})` and `import("../../../hearth.js")` — and keeps the
 * `blob:` start only for where it is needed: a package served from another origin than the page
 * (a module Worker must be same-origin; that host must send CORS headers).
 *
 * The protocol with the wasm side is wasm-bindgen-rayon's (`startWorkers(module, memory,
 * builder)`, `wbg_rayon_start_worker(receiver)`): derived from its workerHelpers.js,
 * Copyright 2022 Google Inc., Apache License 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
 */

function waitForMsgType(target, type) {
  return new Promise((resolve) => {
    target.addEventListener("message", function onMsg({ data }) {
      if (data == null || data.type !== type) return;
      target.removeEventListener("message", onMsg);
      resolve(data);
    });
  });
}

// What a pool thread throws out of rayon's loop when the pool is stopped (src/wasm/mod.rs
// `stop_thread_pool`), and what its Worker then tells the engine's Worker before closing.
const POOL_EXIT = "hearth: thread pool stopped";
const POOL_EXITED = "hearth_pool_exited";

// In a pool Worker (this file is its entry): wait for the wasm module and memory, start the
// glue on them, then hand this thread to rayon. Elsewhere (the glue imports this file) the
// message never comes.
waitForMsgType(self, "wasm_bindgen_worker_init").then(async (data) => {
  const pkg = await import("../../../hearth.js");
  await pkg.default({ module_or_path: data.module, memory: data.memory });
  postMessage({ type: "wasm_bindgen_worker_ready" });
  try {
    pkg.wbg_rayon_start_worker(data.receiver);
  } catch (e) {
    if (e instanceof Error && e.message === POOL_EXIT) {
      // stopThreadPool (unload): this thread is done; the engine's Worker waits for the word.
      postMessage({ type: POOL_EXITED });
      close();
      return;
    }
    // Reported: the owner ends this Worker. Unreported (no channel), it stays an uncaught error.
    if (!reportTrap(pkg, data.trapChannel, e)) throw e;
  }
});

/**
 * A Rust panic on this pool thread aborts (a trap out of `wbg_rayon_start_worker`) while the
 * engine's thread waits for this thread's task, blocked inside wasm: nothing in the engine's
 * realm can run again. So the trap is reported past it, to whoever owns the engine (the page's
 * `worker-client.ts`), on the BroadcastChannel named at pool start (`wasm-instance.ts`
 * `setPoolTrapChannel`), with the panic hook's text; the owner ends the engine's Worker (this
 * pool goes with it) and re-creates it on the next request. Returns whether it was reported.
 */
function reportTrap(pkg, channel, e) {
  let panic = "";
  try {
    panic = (typeof pkg.last_panic_message === "function" && pkg.last_panic_message()) || "";
  } catch {
    panic = "";
  }
  const trap = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  if (typeof channel !== "string" || typeof BroadcastChannel === "undefined") return false;
  new BroadcastChannel(channel).postMessage({ type: "hearth_pool_trap", panic, trap });
  return true;
}

/** `rel` against this file's URL (a parameter, so bundlers leave it alone). */
function besideThisFile(rel) {
  // webpackIgnore: without it webpack makes a context module of the folder (and warns).
  return new URL(/* webpackIgnore: true */ rel, import.meta.url);
}

function startPoolWorker() {
  try {
    // The literal pattern: bundlers make this file a Worker entry and rewrite the URL.
    return new Worker(new URL("./workerHelpers.no-bundler.js", import.meta.url), { type: "module" });
  } catch (e) {
    // A cross-origin script: SecurityError. Start it from a same-origin blob: module instead.
    if (!(e instanceof DOMException && e.name === "SecurityError")) throw e;
    const script = besideThisFile("./workerHelpers.no-bundler.js").href;
    const shim = URL.createObjectURL(new Blob([`import ${JSON.stringify(script)};\n`], { type: "text/javascript" }));
    const worker = new Worker(shim, { type: "module" });
    waitForMsgType(worker, "wasm_bindgen_worker_ready").then(() => URL.revokeObjectURL(shim));
    return worker;
  }
}

// Keeps the Workers referenced (Firefox collects unreferenced Workers that share a wasm memory,
// https://bugzilla.mozilla.org/show_bug.cgi?id=1702191), and lists them for `stopWorkers`.
let _workers = [];

/**
 * Stops the pool (`stop` = the glue's `stopThreadPool`) and resolves, with how many did, once
 * every pool Worker said its thread left rayon and closed itself, or after `timeoutMs` (the
 * others then end with this realm, by force, later). Called by the engine's Worker at unload
 * (`wasm-instance.ts`): found on `globalThis[Symbol.for("hearth.stopPoolWorkers")]`, as the
 * glue does not export it.
 */
function stopWorkers(stop, timeoutMs) {
  const workers = _workers;
  _workers = [];
  let left = 0;
  const exited = Promise.all(workers.map((w) => waitForMsgType(w, POOL_EXITED).then(() => left++)));
  stop();
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)));
  return Promise.race([exited, late]).finally(() => clearTimeout(timer)).then(() => left);
}
globalThis[Symbol.for("hearth.stopPoolWorkers")] = stopWorkers;

export async function startWorkers(module, memory, builder) {
  if (builder.numThreads() === 0) throw new Error("num_threads must be > 0.");
  // Where a pool thread reports its trap (see reportTrap): set by wasm-instance.ts in this realm.
  const trapChannel = globalThis[Symbol.for("hearth.poolTrapChannel")];
  const workerInit = { type: "wasm_bindgen_worker_init", module, memory, receiver: builder.receiver(), trapChannel };
  _workers = await Promise.all(
    Array.from({ length: builder.numThreads() }, async () => {
      const worker = startPoolWorker();
      const failed = new Promise((_, reject) =>
        worker.addEventListener("error", (e) => reject(new Error(`a thread pool Worker failed to start: ${e.message || "could not load its script"}`)), { once: true }),
      );
      worker.postMessage(workerInit);
      await Promise.race([waitForMsgType(worker, "wasm_bindgen_worker_ready"), failed]);
      return worker;
    }),
  );
  builder.build();
}
