// The persisted prompt cache (Engine.load({promptCache})): the second page load restores the KV
// of a system prompt from OPFS (cached_tokens > 0, the same greedy output as the load that had to
// prefill it),
// and a corrupted entry is refused by the engine, deleted and rebuilt, never used.
// Lean: the default model, CPU, 6 greedy tokens per request.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireDist, wasmBuilt, openTestPage, closeTestPage } from "./harness.mjs";

requireDist();
assert.ok(wasmBuilt(), "www/pkg is missing: run make wasm");
let t, page;
before(async () => {
  t = await openTestPage();
  page = t.page;
});
after(() => closeTestPage(t ?? {}));

const SYSTEM =
  "You are the help desk of a small public library. Answer in one short sentence. Opening hours: Monday to " +
  "Friday nine to six, Saturday ten to two, closed on Sunday. Loans last three weeks and can be renewed twice online.";

/** One load + one chat in a fresh page realm (a page load): the result and the cache's entries. */
async function chatOnce(p, { promptCache, question = "Can I renew a loan a third time?" }) {
  await p.reload();
  return p.evaluate(async ({ SYSTEM, promptCache, question }) => {
    try {
      const H = await import("/dist/index.js");
      const engine = await H.Engine.load(undefined, { backend: "cpu", promptCache });
      const r = await engine.chat.completions.create({
        messages: [{ role: "system", content: SYSTEM }, { role: "user", content: question }],
        max_tokens: 6, temperature: 0,
      });
      await engine.unload();
      return { text: r.choices[0].message.content, usage: r.usage, entries: await H.listPromptCache() };
    } catch (e) {
      return { error: `${e?.code}: ${e?.message ?? e}` };
    }
  }, { SYSTEM, promptCache, question });
}

/** Flips one byte in the middle of every stored entry (a disk that corrupted them). */
function corruptEntries(p) {
  return p.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("hearth-prompt-cache");
    let n = 0;
    for await (const [name, h] of dir) {
      if (!name.endsWith(".hkv")) continue;
      const bytes = new Uint8Array(await (await h.getFile()).arrayBuffer());
      bytes[bytes.length >> 1] ^= 0x55;
      const w = await h.createWritable();
      await w.write(bytes);
      await w.close();
      n++;
    }
    return n;
  });
}

test("prompt cache: a second page load restores the system prompt's KV; a corrupted entry is rebuilt", async () => {
  const plain = await chatOnce(page, { promptCache: false });
  assert.equal(plain.error, undefined, plain.error);
  assert.equal(plain.usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal(plain.entries.length, 0, "no entry without promptCache");

  const first = await chatOnce(page, { promptCache: true });
  assert.equal(first.error, undefined, first.error);
  assert.equal(first.usage.prompt_tokens_details.cached_tokens, 0, "nothing stored yet");
  assert.equal(first.entries.length, 1, "the system prompt's KV was stored after the request");
  assert.ok(first.entries[0].bytes > 100_000, JSON.stringify(first.entries));

  const second = await chatOnce(page, { promptCache: true, question: "Can I renew a loan a third time?" });
  assert.equal(second.error, undefined, second.error);
  const cached = second.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= 40 && cached < second.usage.prompt_tokens, `restored ${cached} of ${second.usage.prompt_tokens} prompt tokens`);
  // The miss prefilled its whole prompt at once, the hit the rest after the restored prefix: on
  // the CPU a token's result does not depend on the split (the one-token kernels equal the
  // four-token tiles bit for bit), so all three give the same greedy output.
  assert.equal(second.text, first.text, "the restored KV gives the greedy output of the run that prefilled it");
  assert.equal(first.text, plain.text, "a miss gives the output of a page without promptCache");
  console.log(`# prompt cache: ${cached} of ${second.usage.prompt_tokens} prompt tokens restored from a ${first.entries[0].bytes}-byte entry; ` +
    `output ${JSON.stringify(second.text)} (without promptCache: ${JSON.stringify(plain.text)})`);

  assert.equal(await corruptEntries(page), 1);
  const afterCorrupt = await chatOnce(page, { promptCache: true });
  assert.equal(afterCorrupt.error, undefined, afterCorrupt.error);
  assert.equal(afterCorrupt.usage.prompt_tokens_details.cached_tokens, 0, "a corrupted entry is never used");
  assert.equal(afterCorrupt.text, first.text);
  assert.equal(afterCorrupt.entries.length, 1, "…and is rebuilt");

  const rebuilt = await chatOnce(page, { promptCache: true });
  assert.equal(rebuilt.error, undefined, rebuilt.error);
  assert.equal(rebuilt.usage.prompt_tokens_details.cached_tokens, cached, "the rebuilt entry is used on the next load");
  assert.equal(rebuilt.text, first.text);
});

test("prompt cache: bad options are BAD_REQUEST; the cap evicts least recently used entries", async () => {
  const r = await page.evaluate(async () => {
    const H = await import("/dist/index.js");
    try {
      await H.Engine.load(undefined, { backend: "cpu", promptCache: { maxBytes: -1 } });
      return "loaded";
    } catch (e) {
      return e.code;
    }
  });
  assert.equal(r, "BAD_REQUEST");
  // A cap smaller than one entry: nothing is stored, and the stored entry is left alone.
  const small = await chatOnce(page, { promptCache: { maxBytes: 1000 }, question: "Is the library open on Sunday?" });
  assert.equal(small.error, undefined, small.error);
  assert.equal(small.entries.length, 1);
  // A cap of one entry: storing another prefix evicts the older one.
  const one = small.entries[0].bytes;
  const other = await page.evaluate(async ({ cap }) => {
    const H = await import("/dist/index.js");
    const engine = await H.Engine.load(undefined, { backend: "cpu", promptCache: { maxBytes: Math.floor(cap * 1.5) } });
    await engine.chat.completions.create({
      messages: [{ role: "system", content: "You are a terse assistant for a bicycle repair shop. Prices: a puncture costs eight euros, brakes twenty, a full service sixty. Open Tuesday to Saturday." }, { role: "user", content: "Price of brakes?" }],
      max_tokens: 2, temperature: 0,
    });
    await engine.unload();
    const kept = await H.listPromptCache();
    await H.clearPromptCache();
    return { kept, cleared: (await H.listPromptCache()).length };
  }, { cap: one });
  assert.equal(other.kept.length, 1, JSON.stringify(other.kept));
  assert.notEqual(other.kept[0].key, small.entries[0].key, "the older entry was evicted for the new one");
  assert.equal(other.cleared, 0, "clearPromptCache deletes every entry");
});
