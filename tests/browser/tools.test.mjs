// Tool-call parsing with canned replies (www/src/tools.ts and json-check.ts, from www/dist):
// the ```json blocks Qwen2.5-Coder 0.5B writes under tool_choice "auto" become calls only when
// they name an offered tool with valid arguments; everything else stays text, streamed or not.
// Plain Node: no browser, no model.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { REPO, requireDist } from "./harness.mjs";

requireDist();
const T = await import(pathToFileURL(path.join(REPO, "www/dist/tools.js")).href);
const J = await import(pathToFileURL(path.join(REPO, "www/dist/json-check.js")).href);
const Ajv = createRequire(path.join(REPO, "www/package.json"))("ajv");

const TOOLS = JSON.parse((await import("node:fs")).readFileSync(path.join(REPO, "bench/structured/tools.json"), "utf8")).tools;
const fence = (v, lang = "json") => "```" + lang + "\n" + JSON.stringify(v, null, 2) + "\n```";
// Verbatim replies of Qwen2.5-Coder 0.5B (tool_choice "auto", bench/results/structured-2026-12-07-vm-tools.json).
const QWEN_WEATHER = '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris",\n    "unit": "celsius"\n  }\n}\n```';
const QWEN_BAD_NAME = '```json\n{\n  "name": "VPN disconnects",\n  "arguments": {\n    "title": "VPN Disconnects",\n    "priority": "medium"\n  }\n}\n```';

/** What a streamer makes of `text` fed in pieces of `n` characters: [content, calls]. */
function stream(text, tools, n) {
  const s = new T.ToolCallStreamer(tools);
  let content = "";
  const calls = [];
  const take = (e) => {
    content += e.content ?? "";
    for (const c of e.calls ?? []) {
      if (c.id) calls.push({ name: c.function.name, arguments: "" });
      calls[c.index].arguments += c.function.arguments;
    }
  };
  for (let i = 0; i < text.length; i += n) take(s.push(text.slice(i, i + n)));
  take(s.finish());
  return { content, calls: calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) })), isCalls: s.isCalls };
}

test("a ```json block naming an offered tool with valid arguments is a call (whole and streamed in any piece size)", () => {
  assert.deepEqual(T.parseCalls(QWEN_WEATHER, TOOLS), [{ name: "get_weather", arguments: { city: "Paris", unit: "celsius" } }]);
  const plain = fence({ name: "convert_currency", arguments: { amount: 100, from: "USD", to: "EUR" } }, "");
  assert.deepEqual(T.parseCalls(plain + "\n", TOOLS), [{ name: "convert_currency", arguments: { amount: 100, from: "USD", to: "EUR" } }]);
  for (const n of [1, 2, 3, 7, 1000]) {
    const r = stream(QWEN_WEATHER, TOOLS, n);
    assert.equal(r.content, "", `piece ${n}`);
    assert.equal(r.isCalls, true);
    assert.deepEqual(r.calls, [{ name: "get_weather", arguments: { city: "Paris", unit: "celsius" } }]);
  }
});

test("text that is not a valid call stays content, whole and streamed", () => {
  const notCalls = [
    QWEN_BAD_NAME, // a name that is no tool
    fence({ name: "get_weather", arguments: { city: "Paris", unit: "kelvin" } }), // enum
    fence({ name: "get_weather", arguments: { unit: "celsius" } }), // required
    fence({ name: "get_weather", arguments: { city: "Paris", wind: true } }), // additionalProperties false
    fence({ name: "set_reminder", arguments: { text: "x", minutes: 2.5 } }), // integer
    fence({ name: "get_weather", arguments: { city: "Paris" }, id: 3 }), // another key
    fence({ name: "get_weather", arguments: '{"city": "Paris"}' }), // arguments as a string
    fence([{ name: "get_weather", arguments: { city: "Paris" } }]), // an array
    fence({ city: "Paris", unit: "celsius" }), // plain JSON data
    "Here is the call:\n" + QWEN_WEATHER, // prose before
    QWEN_WEATHER + "\nThis calls the weather tool.", // prose after
    fence({ name: "get_weather", arguments: { city: "Paris" } }, "python"),
    "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\n```", // broken JSON
    "```json\n{\"name\": \"get_weather\"", // cut short (max_tokens)
    "`code` is how you write code.",
    "The weather is fine.",
  ];
  for (const text of notCalls) {
    assert.equal(T.parseCalls(text, TOOLS), null, text);
    for (const n of [1, 5, 1000]) {
      const r = stream(text, TOOLS, n);
      assert.deepEqual([r.content, r.calls, r.isCalls], [text, [], false], `piece ${n}: ${text}`);
    }
  }
  // Without the offered tools (callers that do not pass them), a block is never a call.
  assert.equal(T.parseCalls(QWEN_WEATHER), null);
  assert.deepEqual(stream(QWEN_WEATHER, undefined, 4).content, QWEN_WEATHER);
  // A tool whose schema uses a keyword the checker does not implement never gets a fenced call.
  const refTool = [{ type: "function", function: { name: "get_weather", parameters: { $ref: "#/$defs/x", $defs: { x: { type: "object" } } } } }];
  assert.equal(T.parseCalls(QWEN_WEATHER, refTool), null);
  // No parameters: any arguments object.
  assert.deepEqual(T.parseCalls(QWEN_WEATHER, [{ type: "function", function: { name: "get_weather" } }])?.[0].name, "get_weather");
});

test("streaming: text that starts like a fence is released as soon as it cannot be a call", () => {
  const s = new T.ToolCallStreamer(TOOLS);
  assert.deepEqual(s.push("``"), {});
  assert.deepEqual(s.push("`py"), { content: "```py" });
  assert.deepEqual(s.push("thon\n"), { content: "thon\n" });
  const f = new T.ToolCallStreamer(TOOLS);
  assert.deepEqual(f.push("```json\n"), {});
  assert.deepEqual(f.push("[1, 2]"), { content: "```json\n[1, 2]" });
  const g = new T.ToolCallStreamer(TOOLS);
  assert.deepEqual(g.push('```json\n{"a": 1}\n```'), {});
  assert.deepEqual(g.push("\nDone."), { content: '```json\n{"a": 1}\n```\nDone.' });
  // The <tool_call> and bare formats are unchanged.
  assert.deepEqual(stream('<tool_call>\n{"name": "find_employee", "arguments": {"name": "Tom"}}\n</tool_call>', TOOLS, 3).calls, [{ name: "find_employee", arguments: { name: "Tom" } }]);
  assert.deepEqual(stream('{"name": "find_employee", "arguments": {"name": "Tom"}}', TOOLS, 3).calls, [{ name: "find_employee", arguments: { name: "Tom" } }]);
});

test("json-check agrees with ajv on the keywords it supports", () => {
  const ajv = new Ajv({ strict: false, logger: false });
  const cases = [
    [{ type: "object", properties: { a: { type: "integer", minimum: 1, maximum: 3 } }, required: ["a"], additionalProperties: false }, [{ a: 1 }, { a: 0 }, { a: 3.5 }, { a: 2, b: 1 }, {}, [], null]],
    [{ type: ["string", "null"], minLength: 2, maxLength: 3, pattern: "^[a-zé]+$" }, ["ab", "abcd", "a", "éé", "AB", null, 3]],
    [{ enum: ["x", 1, { k: [1] }] }, ["x", 1, 1.0, { k: [1] }, { k: [2] }, "y"]],
    [{ const: { a: [1, 2] } }, [{ a: [1, 2] }, { a: [2, 1] }]],
    [{ type: "array", items: { type: "number", exclusiveMinimum: 0, multipleOf: 0.5 }, minItems: 1, maxItems: 3, uniqueItems: true }, [[0.5, 1], [], [1, 1], [0], [1, 2, 3, 4], [1.25]]],
    [{ anyOf: [{ type: "string" }, { type: "integer" }] }, ["s", 1, 1.5, null]],
    [{ oneOf: [{ type: "number" }, { type: "integer" }] }, [1.5, 1]],
    [{ allOf: [{ minProperties: 1 }, { maxProperties: 1 }], not: { required: ["z"] } }, [{ a: 1 }, {}, { a: 1, b: 2 }, { z: 1 }]],
    [{ type: "object", additionalProperties: { type: "boolean" }, properties: { n: { type: "string", format: "email", description: "d" } } }, [{ n: "x", f: true }, { f: 1 }]],
    ...TOOLS.map((t) => [t.function.parameters, [{ city: "Oslo" }, { city: 3 }, { amount: 1, from: "A", to: "B" }, { title: "t", priority: "urgent" }, { text: "x", minutes: 0 }]]),
  ];
  for (const [schema, values] of cases) {
    assert.equal(J.supported(schema), true, JSON.stringify(schema));
    const check = ajv.compile(schema);
    for (const v of values) assert.equal(J.valid(schema, v), check(v), `${JSON.stringify(schema)} on ${JSON.stringify(v)}`);
  }
  for (const s of [{ $ref: "#" }, { if: {} }, { patternProperties: {} }, { items: [{}] }, { type: "date" }, { pattern: "(" }, { properties: { a: { dependentRequired: {} } } }, "object", null]) assert.equal(J.supported(s), false, JSON.stringify(s));
});
