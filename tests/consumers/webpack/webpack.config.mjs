// A plain webpack 5 production build: no Hearth-specific option (webpack finds the engine Worker,
// the wasm glue and the .wasm files through the package's `new URL(…, import.meta.url)` patterns).
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export default {
  mode: "production",
  entry: "./src/main.js",
  output: { path: path.join(here, "dist"), clean: true },
  // The engine's .wasm is a few MB: webpack's 244 KiB size hint is not the point here.
  performance: { hints: false },
};
