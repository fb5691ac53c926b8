/**
 * Tool calling and structured output shared by the OpenAI shape (`chat.ts`) and the Prompt API
 * shape (`language-model.ts`): the tool prompt, the grammar that constrains a call's JSON to
 * the tool's parameter schema, the messages of a round trip, and parsing calls (whole or
 * streamed) out of the model's text.
 *
 * Wire format (the Hermes format Qwen2.5's chat template uses, and the documented generic
 * format for models whose template has none): a call is
 * `<tool_call>\n{"name": "NAME", "arguments": {…}}\n</tool_call>`, several separated by `\n`;
 * a tool's result goes back in a user turn as `<tool_response>\n…\n</tool_response>`.
 * Also accepted as one call: the call's JSON alone (`bare`, compact, under the grammar), and a
 * reply that is only a ```json block holding a call the offered tools validate (`fencedCall`).
 */

import type { Driver } from "./core.js";
import { HearthError } from "./errors.js";
import { supported, valid } from "./json-check.js";
import type { ChatMessage, OutputConstraint } from "./types.js";

/** A JSON Schema (an object). */
export type JsonSchema = Record<string, unknown>;

/** A function the model may call (OpenAI's `tools[]` entry). */
export interface ChatCompletionTool {
  type: "function";
  function: {
    name: string;
    description?: string;
    /** JSON Schema of the arguments object (default: any object). */
    parameters?: JsonSchema;
    /** Accepted; the arguments are always constrained to `parameters`. */
    strict?: boolean | null;
  };
}

/** OpenAI's `tool_choice`. */
export type ChatCompletionToolChoiceOption = "none" | "auto" | "required" | { type: "function"; function: { name: string } };

/** One call the model made (OpenAI's `message.tool_calls[]`). */
export interface ChatCompletionMessageToolCall {
  id: string;
  type: "function";
  function: { name: string; /** JSON text of the arguments object. */ arguments: string };
}

/** A call as parsed from the model's text. */
export interface ParsedCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** How the model expects tools to be described: its own template's (Hermes/Qwen2.5) or Hearth's generic prompt. */
export type ToolFormat = "hermes" | "generic";

const NAME_RE = /^[a-zA-Z0-9_-]{1,64}$/;
const OPEN = "<tool_call>\n";
const CLOSE = "\n</tool_call>";
/** JSON output options llguidance takes inside a schema: compact, Python-style separators. */
const X_GUIDANCE = { item_separator: ", ", key_separator: ": ", whitespace_flexible: false };

/** `json.dumps(v, ensure_ascii=False)`: what Hugging Face's `tojson` writes in chat templates. */
export function pyJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(pyJson).join(", ")}]`;
  return `{${Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => `${JSON.stringify(k)}: ${pyJson(x)}`)
    .join(", ")}}`;
}

/** Checks `tools`; throws `BAD_REQUEST` naming the problem. */
export function checkTools(tools: unknown): ChatCompletionTool[] {
  if (!Array.isArray(tools) || tools.length === 0) throw new HearthError("BAD_REQUEST", "tools must be a non-empty array");
  const seen = new Set<string>();
  return tools.map((t: unknown, i) => {
    const tool = t as ChatCompletionTool;
    if (!tool || tool.type !== "function" || typeof tool.function !== "object" || tool.function === null) throw new HearthError("BAD_REQUEST", `tools[${i}] must be {type: "function", function: {...}}`);
    const { name, parameters, description } = tool.function;
    if (typeof name !== "string" || !NAME_RE.test(name)) throw new HearthError("BAD_REQUEST", `tools[${i}].function.name must match ${NAME_RE.source}`);
    if (seen.has(name)) throw new HearthError("BAD_REQUEST", `tools[${i}]: the name ${name} is used twice`);
    seen.add(name);
    if (description !== undefined && typeof description !== "string") throw new HearthError("BAD_REQUEST", `tools[${i}].function.description must be a string`);
    if (parameters !== undefined && (typeof parameters !== "object" || parameters === null || Array.isArray(parameters))) throw new HearthError("BAD_REQUEST", `tools[${i}].function.parameters must be a JSON Schema object`);
    return tool;
  });
}

/**
 * The tools a `tool_choice` lets the model call (empty for `"none"`: the model still sees the
 * tools, as with OpenAI, but its reply is not constrained to calls); whether a call is required.
 */
export function applyToolChoice(tools: ChatCompletionTool[], choice: ChatCompletionToolChoiceOption | null | undefined): { offered: ChatCompletionTool[]; required: boolean } {
  if (choice == null || choice === "auto") return { offered: tools, required: false };
  if (choice === "none") return { offered: [], required: false };
  if (choice === "required") return { offered: tools, required: true };
  if (typeof choice === "object" && choice !== null && choice.type === "function" && typeof choice.function?.name === "string") {
    const t = tools.find((x) => x.function.name === choice.function.name);
    if (!t) throw new HearthError("BAD_REQUEST", `tool_choice names ${choice.function.name}, which is not in tools`);
    return { offered: [t], required: true };
  }
  throw new HearthError("BAD_REQUEST", 'tool_choice must be "none", "auto", "required" or {type: "function", function: {name}}');
}

/** The JSON Schema of one call: `{"name": NAME, "arguments": PARAMETERS}` for any offered tool. */
function callSchema(tools: ChatCompletionTool[]): JsonSchema {
  const one = (t: ChatCompletionTool): JsonSchema => ({
    type: "object",
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: "object" } },
    required: ["name", "arguments"],
    additionalProperties: false,
  });
  return tools.length === 1 ? one(tools[0]) : { anyOf: tools.map(one) };
}

/** Free text that cannot be read as a call: it may not begin with a call's `<` or `{`. */
const TEXT_RULE = "TEXT: /[^<{][\\s\\S]*/";

/**
 * The Lark grammar for a reply that may (or, when `required`, must) be tool calls, each
 * call's JSON constrained to its tool's parameters. Without `required` the reply may instead
 * be text that does not start with `<` (or JSON matching `textSchema`).
 */
export function toolGrammar(tools: ChatCompletionTool[], opts: { required: boolean; parallel: boolean; textSchema?: JsonSchema }): OutputConstraint {
  const schema = { ...callSchema(tools), "x-guidance": X_GUIDANCE };
  // Small models (Qwen2.5-Coder 0.5B) often write the call's JSON without the tags: accepted as
  // one call (`bare`) unless a JSON answer is also allowed; free text then may not begin with `{`.
  const lines = [
    `start: ${opts.required ? "calls | bare" : opts.textSchema ? "calls | answer" : "calls | bare | TEXT"}`,
    `bare: %json ${JSON.stringify(schema)}`,
    opts.parallel ? 'calls: call ("\\n" call)*' : "calls: call",
    `call: ${JSON.stringify(OPEN)} %json ${JSON.stringify(schema)} ${JSON.stringify(CLOSE)}`,
  ];
  if (!opts.required && opts.textSchema) lines.push(`answer: %json ${JSON.stringify({ ...opts.textSchema, "x-guidance": X_GUIDANCE })}`);
  else if (!opts.required) lines.push(TEXT_RULE);
  return { lark: lines.join("\n") + "\n" };
}

/** A text answer and no tool call: the reply may not begin with a call's `<` or `{`. */
export function answerGrammar(): OutputConstraint {
  return { lark: `start: TEXT\n${TEXT_RULE}\n` };
}

/** The system-prompt text that describes `tools` (Qwen2.5's template text for `hermes`). */
export function toolSystemText(format: ToolFormat, tools: ChatCompletionTool[], system: string | undefined): string {
  const list = tools.map((t) => pyJson({ type: "function", function: t.function })).join("\n");
  if (format === "hermes") {
    return (
      (system ?? "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") +
      "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
      list +
      '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    );
  }
  return (
    (system ? system + "\n\n" : "") +
    "You can call these functions (their parameters are JSON Schemas):\n<tools>\n" +
    list +
    '\n</tools>\n\nTo call a function, reply with only:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\nWhen a function result arrives in <tool_response></tool_response> tags, use it to answer. If no function is needed, answer normally.'
  );
}

/** An assistant turn that made calls, as the model wrote it. */
export function callsText(content: string | null | undefined, calls: ParsedCall[]): string {
  const body = calls.map((c) => `${OPEN}${pyJson({ name: c.name, arguments: c.arguments })}${CLOSE}`).join("\n");
  return content ? `${content}\n${body}` : body;
}

/** Tool results (consecutive ones share one user turn, as in Qwen2.5's template). */
export function toolResultsText(results: string[]): string {
  return results.map((r) => `<tool_response>\n${r}\n</tool_response>`).join("\n");
}

/** Puts the tool description into the system message (adding one first if there is none). */
export function withToolSystem(messages: ChatMessage[], format: ToolFormat, tools: ChatCompletionTool[]): ChatMessage[] {
  if (tools.length === 0) return messages;
  const [first, ...rest] = messages;
  if (first?.role === "system") return [{ role: "system", content: toolSystemText(format, tools, first.content) }, ...rest];
  return [{ role: "system", content: toolSystemText(format, tools, undefined) }, ...messages];
}

/**
 * The calls in a reply, or `null` when it is not a tool-call reply. Throws if a call is
 * malformed (cannot happen under the grammar). With the offered `tools`, a reply that is only a
 * Markdown ```json block holding one valid call (see `fencedCall`) is a call too.
 */
export function parseCalls(text: string, tools?: ChatCompletionTool[]): ParsedCall[] | null {
  if (tools && text.startsWith("`")) {
    const c = fencedCall(text, tools);
    return c ? [c] : null;
  }
  if (text.startsWith("{")) {
    let v: { name?: unknown; arguments?: unknown };
    try {
      v = JSON.parse(text) as typeof v;
    } catch {
      return null;
    }
    return typeof v.name === "string" && typeof v.arguments === "object" && v.arguments !== null ? [{ name: v.name, arguments: v.arguments as Record<string, unknown> }] : null;
  }
  if (!text.startsWith(OPEN)) return null;
  const calls: ParsedCall[] = [];
  for (const block of text.split(CLOSE)) {
    const b = block.replace(/^\n/, "");
    if (b === "") continue;
    if (!b.startsWith(OPEN)) throw new HearthError("INTERNAL", `malformed tool call: ${JSON.stringify(block)}`);
    const v = JSON.parse(b.slice(OPEN.length)) as { name: string; arguments: Record<string, unknown> };
    calls.push({ name: v.name, arguments: v.arguments });
  }
  return calls;
}

/**
 * A reply that is only a Markdown code block (```json or ```) holding `{"name": …, "arguments":
 * {…}}`, as small models (Qwen2.5-Coder 0.5B with tool_choice "auto") write calls instead of the
 * `<tool_call>` tags; the grammar cannot tell it from text, so it is checked here: it is a call
 * only when the name is an offered tool, the object has no other key, and the arguments are
 * valid for that tool's parameters (a schema `json-check.ts` cannot fully check never passes).
 * Anything else (prose around the block, other JSON) is `null`: the reply stays text.
 */
export function fencedCall(text: string, tools: ChatCompletionTool[]): ParsedCall | null {
  const m = FENCED.exec(text);
  if (!m) return null;
  let v: unknown;
  try {
    v = JSON.parse(m[1]);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const { name, arguments: args, ...rest } = v as Record<string, unknown>;
  if (Object.keys(rest).length > 0 || typeof name !== "string" || typeof args !== "object" || args === null || Array.isArray(args)) return null;
  const tool = tools.find((t) => t.function.name === name);
  if (!tool) return null;
  const schema = tool.function.parameters ?? { type: "object" };
  if (!supported(schema) || !valid(schema, args)) return null;
  return { name, arguments: args as Record<string, unknown> };
}

/** A whole reply that is one fenced block: ```json (or ```), newline, body, newline, ```. */
const FENCED = /^```(?:json)?[ \t]*\n([\s\S]*?)\n[ \t]*```\s*$/;

/**
 * Whether streamed text so far may still become a fenced call (`fencedCall`): the fence line
 * (or a prefix of it), then a JSON object not yet closed by a line with ```, then only space.
 */
function mayBeFenced(buf: string): boolean {
  const nl = buf.indexOf("\n");
  if (nl < 0) return /^(`{0,3}|```(j|js|jso|json)?[ \t]*)$/.test(buf);
  if (!/^```(?:json)?[ \t]*$/.test(buf.slice(0, nl))) return false;
  const body = buf.slice(nl + 1);
  const first = body.trimStart();
  if (first !== "" && !first.startsWith("{")) return false;
  // A JSON string cannot hold a raw newline, so the first "\n```" closes the block.
  const end = body.indexOf("\n```");
  return end < 0 || /^`*\s*$/.test(body.slice(end + 4));
}

let callCounter = 0;
/** A fresh `call_…` id. */
export function callId(): string {
  callCounter++;
  return `call_${Date.now().toString(36)}${callCounter.toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/** One streamed piece of a call, OpenAI's `delta.tool_calls[]` entry. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

/**
 * Turns streamed text into text deltas or tool-call deltas. Under the tool grammar a reply is
 * either text (its first character is not `<`) or calls; a call's arguments stream as they
 * come (compact JSON has no raw newline, so the `}` before `\n</tool_call>` closes the call).
 */
export class ToolCallStreamer {
  private buf = "";
  private mode: "undecided" | "text" | "calls" | "bare" | "fenced" = "undecided";
  /** Within calls: before a call's arguments, inside them, or before its closing tag. */
  private part: "head" | "args" | "tail" = "head";
  private index = -1;
  /** The ids given to the calls, in order. */
  readonly ids: string[] = [];

  /** `tools`: the offered tools, so a reply that is a ```json block with a valid call is a call (held back until it is decided). */
  constructor(private readonly tools?: ChatCompletionTool[]) {}

  /** Feeds generated text; returns what to emit. */
  push(text: string): { content?: string; calls?: ToolCallDelta[] } {
    if (this.mode === "text") return { content: text };
    this.buf += text;
    if (this.mode === "bare") return {};
    if (this.mode === "fenced") return mayBeFenced(this.buf) ? {} : this.toText();
    if (this.mode === "undecided") {
      if (this.tools && this.buf.startsWith("`")) {
        this.mode = "fenced";
        return mayBeFenced(this.buf) ? {} : this.toText();
      }
      if (this.buf.startsWith("{")) {
        // A call without tags: sent whole at the end.
        this.mode = "bare";
        return {};
      }
      const n = Math.min(this.buf.length, OPEN.length);
      if (this.buf.slice(0, n) !== OPEN.slice(0, n)) {
        this.mode = "text";
        const out = this.buf;
        this.buf = "";
        return { content: out };
      }
      if (this.buf.length < OPEN.length) return {};
      this.mode = "calls";
    }
    return { calls: this.drain(false) };
  }

  /** Whether the reply turned out to be tool calls. */
  get isCalls(): boolean {
    return this.mode === "calls" || ((this.mode === "bare" || this.mode === "fenced") && parseCalls(this.buf, this.tools) !== null);
  }

  /** Gives up holding back: what was held is text, and so is what follows. */
  private toText(): { content?: string } {
    this.mode = "text";
    const out = this.buf;
    this.buf = "";
    return out ? { content: out } : {};
  }

  /** Flushes held-back text at the end of the generation. */
  finish(): { content?: string; calls?: ToolCallDelta[] } {
    if (this.mode === "calls") return { calls: this.drain(true) };
    if (this.mode === "bare" || this.mode === "fenced") {
      const c = parseCalls(this.buf, this.tools)?.[0];
      if (!c) return { content: this.buf };
      const id = callId();
      this.ids.push(id);
      return { calls: [{ index: 0, id, type: "function", function: { name: c.name, arguments: "" } }, { index: 0, function: { arguments: JSON.stringify(c.arguments) } }] };
    }
    const out = this.buf;
    this.buf = "";
    return out ? { content: out } : {};
  }

  private drain(end: boolean): ToolCallDelta[] {
    const out: ToolCallDelta[] = [];
    for (;;) {
      if (this.part === "head") {
        const m = /^\n?<tool_call>\n\{"name": ("(?:[^"\\]|\\.)*"), "arguments": /.exec(this.buf);
        if (!m) return out;
        this.index++;
        const id = callId();
        this.ids.push(id);
        out.push({ index: this.index, id, type: "function", function: { name: JSON.parse(m[1]) as string, arguments: "" } });
        this.buf = this.buf.slice(m[0].length);
        this.part = "args";
      } else if (this.part === "args") {
        const nl = this.buf.indexOf("\n");
        if (nl < 0) {
          // Hold back a final `}`: it may close the call rather than the arguments.
          const keep = !end && this.buf.endsWith("}") ? this.buf.length - 1 : this.buf.length;
          if (keep > 0) out.push({ index: this.index, function: { arguments: this.buf.slice(0, keep) } });
          this.buf = this.buf.slice(keep);
          return out;
        }
        // Compact JSON has no raw newline: the call ended, and its last `}` closed the call object.
        const args = this.buf.slice(0, nl).replace(/}$/, "");
        if (args) out.push({ index: this.index, function: { arguments: args } });
        this.buf = this.buf.slice(nl + 1);
        this.part = "tail";
      } else {
        if (!this.buf.startsWith("</tool_call>")) return out;
        this.buf = this.buf.slice("</tool_call>".length);
        this.part = "head";
      }
    }
  }
}

const formats = new WeakMap<Driver, Promise<ToolFormat>>();
/**
 * Whether the loaded model has its own tool template: a vocabulary with a `<tool_call>` token
 * (Qwen2.5 and other Hermes-format models) uses that format's prompt, others the generic one.
 */
export function toolFormat(driver: Driver): Promise<ToolFormat> {
  let f = formats.get(driver);
  if (!f) {
    f = driver.countTokens("<tool_call>").then((n) => (n === 1 ? "hermes" : "generic"));
    formats.set(driver, f);
  }
  return f;
}
