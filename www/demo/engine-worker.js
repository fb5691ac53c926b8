// The engine Worker, started from the demo's own folder so that it (and the wasm it imports) is
// inside the service worker's scope and therefore available offline.
import "../dist/worker.js";
