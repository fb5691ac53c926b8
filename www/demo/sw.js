// The demo's service worker: caches the app shell (HTML, CSS, JS, the wasm engine) so the page
// opens offline. The model weights are not here: they live in Hearth's store (OPFS), which the
// engine reads without the network once a model is stored.
//
// Cache-first: a cached file is served without touching the network (offline means zero
// requests). Change VERSION (or any byte of this file) to ship a new shell: the browser installs
// the new worker, which re-downloads the list below and drops the old cache.
const VERSION = "hearth-demo-v6";

/** Files of the shell, relative to this script. `tests/browser/pwa.test.mjs` checks that the
 *  `../dist/` entries match what `make www` builds. */
const SHELL = [
  "./",
  "index.html",
  "app.js",
  "render.js",
  "vendor/marked.esm.js",
  "engine-worker.js",
  "style.css",
  "icon.svg",
  "manifest.webmanifest",
  "../pkg/hearth.js",
  "../pkg/hearth_bg.wasm",
  ...[
    "assets", "backend-choice", "backend-probe", "backend-tune", "chat", "checksum", "core", "create-monitor", "dom-errors",
    "download", "engine", "errors", "index", "json-check", "language-detector", "language-model", "opfs",
    "polyfill", "prompt-cache", "prompts", "protocol", "registry", "registry-data", "serial-queue",
    "sha256", "store", "summarizer", "summary-map", "summary-text", "token-loop", "tools", "types", "validate",
    "wasm-api", "wasm-build", "wasm-engine", "wasm-instance", "worker", "worker-client", "writing",
  ].map((m) => `../dist/${m}.js`),
  "../dist/vendor/hash-wasm-sha256.js",
  "../dist/vendor/tinyld-light.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(VERSION);
      // `reload`: fetch from the server, not the HTTP cache, so the shell is consistent.
      await cache.addAll(SHELL.map((u) => new Request(new URL(u, self.location.href), { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) if (key !== VERSION) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  // Only this origin's shell; model downloads (Range requests, 100+ MB) go to the network and
  // into Hearth's own store.
  if (request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/models/")) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(VERSION);
      const hit = await cache.match(request, { ignoreSearch: true });
      if (hit) return hit;
      const response = await fetch(request);
      if (response.ok && response.type === "basic") cache.put(request, response.clone());
      return response;
    })(),
  );
});
