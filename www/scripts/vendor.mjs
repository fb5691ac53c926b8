// `npm run build`, after tsc: copies the maintained libraries the package runs on into
// dist/vendor/ as plain ES modules, so the package needs no bundler and no import map (a browser
// cannot resolve a bare `import "hash-wasm"`). Each keeps its licence header.
// - tinyld's light build (MIT; an ES module already, 69 kB) → dist/vendor/tinyld-light.js, for
//   the polyfill's LanguageDetector; types from src/vendor/tinyld-light.d.ts.
// - hash-wasm's SHA-256 (MIT; UMD build of the one algorithm, 18 kB) → dist/vendor/hash-wasm-sha256.js:
//   evaluated with a local `module`/`exports`, so its UMD wrapper takes the CommonJS branch and
//   touches no global; the types come from src/vendor/hash-wasm-sha256.d.ts.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const WWW = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(WWW, "dist", "vendor");
fs.mkdirSync(out, { recursive: true });

const umd = fs.readFileSync(path.join(WWW, "node_modules/hash-wasm/dist/sha256.umd.min.js"), "utf8");
const { version } = JSON.parse(fs.readFileSync(path.join(WWW, "node_modules/hash-wasm/package.json"), "utf8"));
fs.writeFileSync(
  path.join(out, "hash-wasm-sha256.js"),
  `// hash-wasm ${version} (https://github.com/Daninet/hash-wasm), dist/sha256.umd.min.js, as an ES module (www/scripts/vendor.mjs).\n` +
    `const module = { exports: {} };\nconst exports = module.exports;\n` +
    `${umd}\n` +
    `export const createSHA256 = module.exports.createSHA256;\n`,
);
fs.copyFileSync(path.join(WWW, "src/vendor/hash-wasm-sha256.d.ts"), path.join(out, "hash-wasm-sha256.d.ts"));

const tinyld = JSON.parse(fs.readFileSync(path.join(WWW, "node_modules/tinyld/package.json"), "utf8")).version;
fs.writeFileSync(
  path.join(out, "tinyld-light.js"),
  `// tinyld ${tinyld} (https://github.com/komodojp/tinyld, MIT), dist/tinyld.light.browser.js (www/scripts/vendor.mjs).\n` +
    fs.readFileSync(path.join(WWW, "node_modules/tinyld/dist/tinyld.light.browser.js"), "utf8"),
);
fs.copyFileSync(path.join(WWW, "src/vendor/tinyld-light.d.ts"), path.join(out, "tinyld-light.d.ts"));
