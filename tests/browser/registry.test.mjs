// The browser's registry (www/dist/registry.js, from www/src/registry-data.ts, which
// scripts/registry_ts.py generates from models/registry.toml on every `npm run build`) must hold
// exactly the TOML's models: this checks the generator against an independent reading of the TOML,
// and that the built package is not older than the TOML.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO, requireDist } from "./harness.mjs";

requireDist();
const { REGISTRY, DEFAULT_MODEL_ID, resolveModel, resolveParts, findModel } = await import(pathToFileURL(path.join(REPO, "www/dist/registry.js")).href);

/** The subset of TOML registry.toml uses: top-level keys and [[model]] tables of scalars (arrays skipped). */
function parseRegistry(text) {
  const out = { models: [] };
  let cur = out;
  let depth = 0;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\s+#.*$/, "").trim();
    if (depth > 0) { depth += (line.match(/\[/g) ?? []).length - (line.match(/\]/g) ?? []).length; continue; }
    if (!line || line.startsWith("#")) continue;
    if (line === "[[model]]") { cur = {}; out.models.push(cur); continue; }
    const m = /^([A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2];
    if (v.startsWith("[")) { depth = (v.match(/\[/g) ?? []).length - (v.match(/\]/g) ?? []).length; continue; }
    cur[m[1]] = v.startsWith('"') ? JSON.parse(v) : v === "true" ? true : v === "false" ? false : Number(v);
  }
  return out;
}

test("the built registry matches models/registry.toml", () => {
  const toml = parseRegistry(fs.readFileSync(path.join(REPO, "models/registry.toml"), "utf8"));
  assert.equal(DEFAULT_MODEL_ID, toml.default);
  const want = toml.models.map((m) => ({ id: m.id, name: m.name, file: m.file, bytes: m.bytes, sha256: m.sha256, licence: m.licence, architecture: m.architecture, quant: m.quant, chat: m.chat }));
  assert.deepEqual(REGISTRY.map((m) => ({ ...m })), want);
});

test("resolveModel: ids, registry files by URL, other URLs, sha256 override", () => {
  const base = { modelBaseUrl: "http://h/models/" };
  const a = resolveModel(DEFAULT_MODEL_ID, base);
  const e = findModel(DEFAULT_MODEL_ID);
  assert.deepEqual(a, { id: e.id, url: "http://h/models/" + e.file, bytes: e.bytes, sha256: e.sha256 });
  const b = resolveModel("http://x/y/" + e.file);
  assert.equal(b.id, e.id);
  assert.equal(b.url, "http://x/y/" + e.file);
  const c = resolveModel("http://x/other.gguf", { sha256: "ab".repeat(32) });
  assert.deepEqual(c, { id: "http://x/other.gguf", url: "http://x/other.gguf", sha256: "ab".repeat(32) });
  assert.equal(resolveModel(DEFAULT_MODEL_ID, { ...base, sha256: "cd".repeat(32) }).sha256, "cd".repeat(32));
  assert.equal(findModel("nope"), undefined);
});

test("resolveParts: a split model's parts from any part's URL, one sha256 per part, one file otherwise", () => {
  const h = (c) => c.repeat(64);
  const parts = resolveParts("http://x/m/q-00002-of-00003.gguf", { sha256: [h("a"), h("b"), h("c")] });
  assert.deepEqual(parts, [1, 2, 3].map((i) => ({ id: `http://x/m/q-0000${i}-of-00003.gguf`, url: `http://x/m/q-0000${i}-of-00003.gguf`, sha256: h("abc"[i - 1]), ...(i === 2 ? {} : { derived: true }) })));
  // The query string goes to every part (a token for the directory), percent-encoding kept.
  assert.deepEqual(resolveParts("http://x/m%20n/q-00001-of-00002.gguf?token=a%2Fb&x=1").map((p) => p.id), ["http://x/m%20n/q-00001-of-00002.gguf?token=a%2Fb&x=1", "http://x/m%20n/q-00002-of-00002.gguf?token=a%2Fb&x=1"]);
  // A list: each part's own URL (own signature), hashes in order; a list of one is that URL.
  const signed = [1, 2, 3].map((i) => `http://x/m/q-0000${i}-of-00003.gguf?sig=${i}`);
  assert.deepEqual(resolveParts(signed, { sha256: [h("a"), h("b"), h("c")] }), signed.map((u, i) => ({ id: u, url: u, sha256: h("abc"[i]) })));
  assert.deepEqual(resolveParts(["http://x/blob/1?s=a", "http://x/blob/2?s=b"]).map((p) => p.url), ["http://x/blob/1?s=a", "http://x/blob/2?s=b"]);
  assert.deepEqual(resolveParts(["http://x/a.gguf"]), [{ id: "http://x/a.gguf", url: "http://x/a.gguf" }]);
  assert.deepEqual(resolveParts("http://x/m/q-00001-of-00002.gguf").map((p) => p.url), ["http://x/m/q-00001-of-00002.gguf", "http://x/m/q-00002-of-00002.gguf"]);
  // One file: a name that is not a part, a one-part split, part 0, a part past the count.
  for (const u of ["http://x/a.gguf", "http://x/q-00001-of-00001.gguf", "http://x/q-00000-of-00003.gguf", "http://x/q-00004-of-00003.gguf"]) {
    assert.deepEqual(resolveParts(u), [{ id: u, url: u }]);
  }
  assert.equal(resolveParts("http://x/a.gguf", { sha256: [h("d")] })[0].sha256, h("d"));
  assert.deepEqual(resolveParts(DEFAULT_MODEL_ID, { modelBaseUrl: "http://h/models/" }), [resolveModel(DEFAULT_MODEL_ID, { modelBaseUrl: "http://h/models/" })]);
  const code = (f) => { try { f(); return null; } catch (e) { return [e.code, e.message]; } };
  assert.match(code(() => resolveParts("http://x/q-00001-of-00003.gguf", { sha256: h("a") })).join(" "), /^BAD_REQUEST .*array of 3 hashes/);
  assert.match(code(() => resolveParts("http://x/q-00001-of-00003.gguf", { sha256: [h("a")] })).join(" "), /^BAD_REQUEST .*1 hashes for a model split into 3/);
  assert.match(code(() => resolveParts("http://x/a.gguf", { sha256: [h("a"), h("b")] })).join(" "), /^BAD_REQUEST .*is one file/);
  assert.match(code(() => resolveParts([signed[1], signed[0], signed[2]])).join(" "), /^BAD_REQUEST .*is part 2 of 3 but is number 1 of a list of 3 parts/);
  assert.match(code(() => resolveParts(signed.slice(0, 2))).join(" "), /^BAD_REQUEST .*is part 1 of 3 but is number 1 of a list of 2 parts/);
  assert.match(code(() => resolveParts(["http://x/a", "http://x/a"])).join(" "), /^BAD_REQUEST .*twice/);
  assert.match(code(() => resolveParts([])).join(" "), /^BAD_REQUEST .*one URL per part/);
  assert.match(code(() => resolveParts([DEFAULT_MODEL_ID, "http://x/b"])).join(" "), /^BAD_REQUEST .*registry id/);
  assert.match(code(() => resolveParts(signed, { sha256: h("a") })).join(" "), /^BAD_REQUEST .*array of 3 hashes/);
});
