// A plain Vite app: no Hearth-specific option. HEARTH_ISOLATE=1 (the test's threaded run) serves
// the dev server cross-origin isolated, as an app that wants wasm threads would.
export default {
  server: process.env.HEARTH_ISOLATE === "1"
    ? { headers: { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" } }
    : {},
};
