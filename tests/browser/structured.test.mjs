// Structured output and tool calling in headless Chromium (wasm CPU backend): OpenAI
// `response_format` (json_object, json_schema) validated with ajv; tools through the OpenAI
// shape (whole and streamed `delta.tool_calls`, `finish_reason: "tool_calls"`, the `role: "tool"`
// round trip) on SmolLM2 (Hearth's generic tool prompt) and Qwen2.5-Coder 0.5B (its own Hermes
// `<tool_call>` format); the Prompt API's `responseConstraint` and `tools` with `execute`.
// Needs `make wasm`, `make www` and `make models-test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { createRequire } from "node:module";
import { REPO, requireDist, requireFile, openTestPage, closeTestPage } from "./harness.mjs";

const require = createRequire(path.join(REPO, "www/package.json"));
const Ajv = require("ajv");
const ajv = new Ajv({ strict: false });

const QWEN = "qwen2.5-coder-0.5b-instruct-q4_k_m";
requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(path.join(REPO, "models/cache", `${QWEN}.gguf`), "make models-test");

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city.",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 20 }, unit: { enum: ["celsius", "fahrenheit"] } }, required: ["city", "unit"], additionalProperties: false },
  },
};
const TIME = {
  type: "function",
  function: { name: "get_time", description: "The current time in a time zone.", parameters: { type: "object", properties: { zone: { type: "string", maxLength: 20 } }, required: ["zone"], additionalProperties: false } },
};

let srv, browser, page;
before(async () => {
  ({ srv, browser, page } = await openTestPage());
});
after(async () => {
  await closeTestPage({ browser, srv });
});

/** Runs `body(engine, H)` in the page against a loaded engine (CPU), returning its result or `{error}`. */
async function withEngine(id, body, arg) {
  return page.evaluate(
    async ({ id, src, arg }) => {
      const H = await import("/dist/index.js");
      globalThis.__engines ??= {};
      try {
        const engine = (globalThis.__engines[id] ??= await H.Engine.load(id, { backend: "cpu", contextSize: 1024 }));
        // eslint-disable-next-line no-new-func
        return await new Function("engine", "H", "arg", `return (async () => { ${src} })();`)(engine, H, arg);
      } catch (e) {
        return { error: { code: e?.code ?? "THROWN", message: String(e?.message ?? e) } };
      }
    },
    { id, src: body, arg },
  );
}

const SCHEMAS = [
  { type: "object", properties: { name: { type: "string", maxLength: 10 }, age: { type: "integer", minimum: 0, maximum: 120 } }, required: ["name", "age"], additionalProperties: false },
  { type: "object", properties: { priority: { enum: ["low", "medium", "high"] }, tags: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 3 } }, required: ["priority", "tags"], additionalProperties: false },
  { type: "object", properties: { code: { type: "string", pattern: "^[A-Z]{2}[0-9]{3}$" }, ok: { type: "boolean" }, value: { anyOf: [{ type: "integer", minimum: 0, maximum: 9 }, { type: "null" }] } }, required: ["code", "ok", "value"], additionalProperties: false },
];

test("engine.prepareConstraints builds the vocabulary's token trie once: the first constrained request then spends nothing on it", async () => {
  const r = await withEngine(
    "smollm2-135m-instruct-q4_1",
    `
    const first = await engine.prepareConstraints();
    const again = await engine.prepareConstraints();
    const c = await engine.complete("A JSON record:", { constraint: { json_schema: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] } }, max_tokens: 8, temperature: 0 });
    return { first, again, usage: c.usage.constraint, text: c.text };
    `,
  );
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  console.log(`# prepareConstraints: ${r.first.toFixed(0)} ms, then ${r.again} ms; first constrained request: vocab_ms ${r.usage.vocab_ms}, compile_ms ${r.usage.compile_ms.toFixed(1)}`);
  assert.ok(r.first > 0, "the first call built the trie");
  assert.equal(r.again, 0);
  assert.equal(r.usage.vocab_ms, 0);
  assert.ok(r.text.startsWith('{"a": '), r.text);
});

test("OpenAI response_format: json_schema outputs validate with ajv (greedy and t=0.8), json_object parses, bad schemas are BAD_REQUEST", async () => {
  const r = await withEngine(
    "smollm2-135m-instruct-q4_1",
    `
    const out = [];
    for (const schema of arg.schemas) for (const temperature of [0, 0.8]) {
      const t = performance.now();
      const c = await engine.chat.completions.create({ messages: [{ role: "user", content: "Give an example record as JSON." }], temperature, seed: 3, max_tokens: 64,
        response_format: { type: "json_schema", json_schema: { name: "record", schema, strict: true } } });
      out.push({ text: c.choices[0].message.content, finish: c.choices[0].finish_reason, ms: performance.now() - t });
    }
    const obj = await engine.chat.completions.create({ messages: [{ role: "user", content: "A JSON object about a cat." }], temperature: 0, max_tokens: 48, response_format: { type: "json_object" } });
    const errs = [];
    for (const rf of [{ type: "json_schema", json_schema: { name: "x", schema: { type: "objekt" } } }, { type: "json_schema", json_schema: { name: "bad name!", schema: {} } }, { type: "xml" }]) {
      try { await engine.chat.completions.create({ messages: [{ role: "user", content: "hi" }], max_tokens: 4, response_format: rf }); errs.push("no error"); }
      catch (e) { errs.push(e.code + ": " + e.message); }
    }
    const after = await engine.chat.completions.create({ messages: [{ role: "user", content: "Say hi." }], temperature: 0, max_tokens: 4 });
    return { out, obj: { text: obj.choices[0].message.content, finish: obj.choices[0].finish_reason }, errs, after: after.choices[0].message.content };
    `,
    { schemas: SCHEMAS },
  );
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  r.out.forEach((o, i) => {
    const schema = SCHEMAS[Math.floor(i / 2)];
    assert.equal(o.finish, "stop", o.text);
    const v = JSON.parse(o.text);
    assert.ok(ajv.validate(schema, v), `${o.text}: ${ajv.errorsText()}`);
  });
  console.log(`# json_schema outputs: ${r.out.map((o) => o.text).join(" | ")}`);
  if (r.obj.finish === "stop") assert.equal(typeof JSON.parse(r.obj.text), "object");
  else assert.ok(r.obj.text.startsWith("{"), r.obj.text);
  assert.match(r.errs[0], /^BAD_REQUEST: .*objekt/);
  assert.match(r.errs[1], /^BAD_REQUEST: .*name/);
  assert.match(r.errs[2], /^BAD_REQUEST: .*response_format.type/);
  assert.ok(r.after.length > 0, "the engine answers after the errors");
  assert.deepEqual(page.errors, []);
});

test("OpenAI tools on SmolLM2 (generic prompt): required call, streamed delta.tool_calls, role:tool round trip", async () => {
  const r = await withEngine(
    "smollm2-135m-instruct-q4_1",
    `
    const tools = arg.tools;
    const messages = [{ role: "user", content: "What is the weather in Paris, in celsius?" }];
    const c = await engine.chat.completions.create({ messages, tools, tool_choice: "required", parallel_tool_calls: false, temperature: 0, max_tokens: 96 });
    const chunks = [];
    const stream = await engine.chat.completions.create({ messages, tools, tool_choice: { type: "function", function: { name: "get_weather" } }, parallel_tool_calls: false, temperature: 0.8, seed: 5, max_tokens: 96, stream: true });
    for await (const ch of stream) chunks.push(ch);
    const call = c.choices[0].message.tool_calls?.[0];
    const round = call ? await engine.chat.completions.create({ messages: [...messages, c.choices[0].message, { role: "tool", tool_call_id: call.id, content: '{"temperature": 21, "sky": "clear"}' }], tools, tool_choice: "none", temperature: 0, max_tokens: 24 }) : null;
    return { c, chunks, round };
    `,
    { tools: [WEATHER, TIME] },
  );
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const choice = r.c.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  assert.ok(choice.message.tool_calls.length >= 1);
  for (const tc of choice.message.tool_calls) {
    assert.equal(tc.type, "function");
    assert.match(tc.id, /^call_/);
    const tool = [WEATHER, TIME].find((t) => t.function.name === tc.function.name);
    assert.ok(tool, tc.function.name);
    assert.ok(ajv.validate(tool.function.parameters, JSON.parse(tc.function.arguments)), `${tc.function.arguments}: ${ajv.errorsText()}`);
  }
  // Streamed: role first, then tool_calls deltas (id + name first, then argument pieces), finish "tool_calls" with usage.
  const { chunks } = r;
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const deltas = chunks.flatMap((ch) => ch.choices[0].delta.tool_calls ?? []);
  assert.ok(deltas.length >= 2, JSON.stringify(chunks));
  assert.equal(deltas[0].index, 0);
  assert.match(deltas[0].id, /^call_/);
  assert.equal(deltas[0].function.name, "get_weather");
  assert.ok(chunks.every((ch) => !ch.choices[0].delta.content), "no content in a tool-call reply");
  const args = deltas.filter((d) => d.index === 0).map((d) => d.function.arguments).join("");
  assert.ok(ajv.validate(WEATHER.function.parameters, JSON.parse(args)), `${args}: ${ajv.errorsText()}`);
  const last = chunks[chunks.length - 1];
  assert.equal(last.choices[0].finish_reason, "tool_calls");
  assert.ok(last.usage.completion_tokens > 0);
  // The round trip: the tool's result goes back and the model answers in text.
  assert.ok(r.round, "a call to answer");
  assert.equal(r.round.choices[0].message.tool_calls, undefined);
  assert.equal(typeof r.round.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.round.choices[0].finish_reason));
  console.log(`# SmolLM2 calls: ${JSON.stringify(choice.message.tool_calls.map((t) => t.function))}; after the tool: ${JSON.stringify(r.round.choices[0].message.content)}`);
  assert.deepEqual(page.errors, []);
});

test("OpenAI tools on Qwen2.5-Coder 0.5B: the model's own <tool_call> format in the prompt, a call with valid arguments, auto round trip", async () => {
  const r = await withEngine(
    QWEN,
    `
    const tools = arg.tools;
    const messages = [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "What's the weather like in Tokyo right now? Use celsius." }];
    const c = await engine.chat.completions.create({ messages, tools, temperature: 0, max_tokens: 48 });
    const call = c.choices[0].message.tool_calls?.[0];
    const next = [...messages, c.choices[0].message];
    if (call) next.push({ role: "tool", tool_call_id: call.id, content: '{"temperature": 18, "sky": "rain"}' });
    const round = call ? await engine.chat.completions.create({ messages: next, tools, temperature: 0, max_tokens: 32 }) : null;
    return { c, round };
    `,
    { tools: [WEATHER, TIME] },
  );
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const choice = r.c.choices[0];
  assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(choice.message));
  const tc = choice.message.tool_calls[0];
  assert.equal(tc.function.name, "get_weather");
  const args = JSON.parse(tc.function.arguments);
  assert.ok(ajv.validate(WEATHER.function.parameters, args), ajv.errorsText());
  assert.match(args.city, /tokyo/i);
  // After the tool's result (auto: text or another call, both valid shapes).
  const m = r.round.choices[0];
  if (m.finish_reason === "tool_calls") assert.ok(m.message.tool_calls.length >= 1);
  else assert.ok(m.message.content.length > 0);
  console.log(`# Qwen call: ${JSON.stringify(tc.function)}; after the tool (${m.finish_reason}): ${JSON.stringify(m.message.content ?? m.message.tool_calls)}`);
  assert.deepEqual(page.errors, []);
});

test("Prompt API: responseConstraint (JSON Schema, RegExp), omitResponseConstraintInput, tools with execute, clear errors", async () => {
  const schema = SCHEMAS[0];
  const r = await withEngine(
    QWEN,
    `
    const s = await engine.languageModel({ temperature: 0 });
    const json = await s.prompt("Describe a person as JSON.", { responseConstraint: arg.schema });
    const usageWith = s.contextUsage;
    const s2 = await engine.languageModel({ temperature: 0 });
    const re = await s2.prompt("Is the sky blue? Answer yes or no.", { responseConstraint: /(yes|no)/, omitResponseConstraintInput: true });
    let streamed = "";
    for await (const d of s2.promptStreaming("And grass?", { responseConstraint: /(yes|no)/ })) streamed += d;
    const calls = [];
    const withTools = await engine.languageModel({ temperature: 0, initialPrompts: [{ role: "system", content: "You are a helpful assistant." }], tools: [{
      name: "get_weather", description: "Get the current weather in a city.", inputSchema: arg.weather,
      async execute(a) { calls.push(a); return JSON.stringify({ temperature: 18, sky: "rain" }); } }] });
    const answer = await withTools.prompt("What's the weather like in Tokyo right now? Use celsius.");
    const errs = [];
    for (const [o, p] of [[{}, { responseConstraint: /yes/i }], [{}, { responseConstraint: 42 }], [{ tools: [{ name: "x" }] }, {}], [{ tools: [{ name: "bad name", execute() {} }] }, {}]]) {
      try { const t = await engine.languageModel(o); await t.prompt("hi", p); errs.push("no error"); } catch (e) { errs.push(e.code + ": " + e.message); }
    }
    return { json, re, streamed, calls, answer, errs, history: withTools.messages.length, usageWith };
    `,
    { schema, weather: WEATHER.function.parameters },
  );
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(ajv.validate(schema, JSON.parse(r.json)), `${r.json}: ${ajv.errorsText()}`);
  assert.match(r.re, /^(yes|no)$/);
  assert.match(r.streamed, /^(yes|no)$/);
  assert.ok(r.calls.length >= 1, "execute was called");
  assert.equal(new Set(r.calls.map((c) => JSON.stringify(c))).size, r.calls.length, "an identical call is never executed twice in one prompt");
  assert.ok(ajv.validate(WEATHER.function.parameters, r.calls[0]), ajv.errorsText());
  assert.equal(typeof r.answer, "string");
  assert.ok(!r.answer.startsWith("<tool_call>"), r.answer);
  assert.match(r.errs[0], /^BAD_REQUEST: .*flags/);
  assert.match(r.errs[1], /^BAD_REQUEST: .*responseConstraint/);
  assert.match(r.errs[2], /^BAD_REQUEST: .*execute/);
  assert.match(r.errs[3], /^BAD_REQUEST: .*name/);
  console.log(`# Prompt API: ${r.json} | ${r.re} | ${r.streamed} | execute(${JSON.stringify(r.calls)}) -> ${JSON.stringify(r.answer)}`);
  assert.deepEqual(page.errors, []);
});
