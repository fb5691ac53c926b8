// The polyfill's session types against @types/dom-chromium-ai (www/types-check/chromium-ai.ts
// says what is checked and which stated differences are left out). Needs `make www`.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { REPO, requireDist, requireFile } from "./harness.mjs";

requireDist();
const TSC = path.join(REPO, "www/node_modules/typescript/bin/tsc");
requireFile(TSC, "make www (npm ci in www/)");
requireFile(path.join(REPO, "www/node_modules/@types/dom-chromium-ai/index.d.ts"), "make www (npm ci in www/)");

test("the polyfill's globals and the LanguageModel, Summarizer, Writer, Rewriter and LanguageDetector sessions type-check against @types/dom-chromium-ai", () => {
  const r = spawnSync(process.execPath, [TSC, "-p", path.join(REPO, "www/types-check/tsconfig.json")], { encoding: "utf8" });
  assert.equal(r.status, 0, `tsc -p www/types-check:\n${r.stdout}${r.stderr}`);
});
