/**
 * A small JSON Schema checker for the keywords tool parameters use, so a tool call the model
 * wrote outside the grammar (a ```json block, see tools.ts) is accepted only when its arguments
 * are valid. It is deliberately partial: `supported` says whether every keyword of a schema is
 * one it implements, and a caller must treat an unsupported schema as "cannot tell" (never as
 * valid). Implemented: `type`, `enum`, `const`, `properties`, `required`, `additionalProperties`,
 * `minProperties`/`maxProperties`, `items` (one schema), `minItems`/`maxItems`, `uniqueItems`,
 * `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` (numbers), `multipleOf`,
 * `minLength`/`maxLength` (code points), `pattern` (ECMAScript, as JSON Schema specifies),
 * `anyOf`/`oneOf`/`allOf`/`not`; annotations (`description`, `title`, `format`, …) are ignored.
 * `$ref`, `if`/`then`, `patternProperties`, tuple `items` and the rest are unsupported.
 */

type Schema = boolean | Record<string, unknown>;

const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "format", "deprecated", "readOnly", "writeOnly", "contentEncoding", "contentMediaType"]);
const TYPES = new Set(["null", "boolean", "object", "array", "number", "integer", "string"]);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isSchema = (v: unknown): v is Schema => typeof v === "boolean" || isObj(v);
const subs = (v: unknown): v is Schema[] => Array.isArray(v) && v.length > 0 && v.every((s) => supported(s));

function regex(p: unknown): RegExp | null {
  if (typeof p !== "string") return null;
  try {
    return new RegExp(p, "u");
  } catch {
    return null;
  }
}

/** Whether this checker implements every keyword of `schema` (recursively). */
export function supported(schema: unknown): schema is Schema {
  if (typeof schema === "boolean") return true;
  if (!isObj(schema)) return false;
  for (const [k, v] of Object.entries(schema)) {
    if (ANNOTATIONS.has(k)) continue;
    const ok = (() => {
      switch (k) {
        case "type":
          return typeof v === "string" ? TYPES.has(v) : Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "string" && TYPES.has(t));
        case "enum":
          return Array.isArray(v);
        case "const":
          return true;
        case "properties":
          return isObj(v) && Object.values(v).every((s) => supported(s));
        case "required":
          return Array.isArray(v) && v.every((n) => typeof n === "string");
        case "additionalProperties":
        case "items":
        case "not":
          return isSchema(v) && supported(v);
        case "minProperties":
        case "maxProperties":
        case "minItems":
        case "maxItems":
        case "minLength":
        case "maxLength":
          return isCount(v);
        case "uniqueItems":
          return typeof v === "boolean";
        case "minimum":
        case "maximum":
        case "exclusiveMinimum":
        case "exclusiveMaximum":
          return isNum(v);
        case "multipleOf":
          return isNum(v) && v > 0;
        case "pattern":
          return regex(v) !== null;
        case "anyOf":
        case "oneOf":
        case "allOf":
          return subs(v);
        default:
          return false;
      }
    })();
    if (!ok) return false;
  }
  return true;
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case "null":
      return v === null;
    case "boolean":
      return typeof v === "boolean";
    case "object":
      return isObj(v);
    case "array":
      return Array.isArray(v);
    case "number":
      return isNum(v);
    case "integer":
      return Number.isInteger(v);
    case "string":
      return typeof v === "string";
  }
  return false;
}

/** JSON equality (object key order ignored; 1 and 1.0 are the same number, as in JSON Schema). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** Whether `v` (parsed JSON) is valid for `schema`; only meaningful when `supported(schema)`. */
export function valid(schema: Schema, v: unknown): boolean {
  if (typeof schema === "boolean") return schema;
  const s = schema;
  if (s.type !== undefined && !(Array.isArray(s.type) ? s.type : [s.type]).some((t) => typeOk(t as string, v))) return false;
  if (Array.isArray(s.enum) && !s.enum.some((e) => jsonEqual(e, v))) return false;
  if ("const" in s && !jsonEqual(s.const, v)) return false;
  if (isObj(v)) {
    const props = isObj(s.properties) ? s.properties : {};
    for (const n of (s.required as string[] | undefined) ?? []) if (!Object.hasOwn(v, n)) return false;
    for (const [k, x] of Object.entries(v)) {
      if (Object.hasOwn(props, k)) {
        if (!valid(props[k] as Schema, x)) return false;
      } else if (s.additionalProperties !== undefined && !valid(s.additionalProperties as Schema, x)) return false;
    }
    const n = Object.keys(v).length;
    if ((isCount(s.minProperties) && n < s.minProperties) || (isCount(s.maxProperties) && n > s.maxProperties)) return false;
  }
  if (Array.isArray(v)) {
    if (s.items !== undefined && !v.every((x) => valid(s.items as Schema, x))) return false;
    if ((isCount(s.minItems) && v.length < s.minItems) || (isCount(s.maxItems) && v.length > s.maxItems)) return false;
    if (s.uniqueItems === true && v.some((x, i) => v.slice(i + 1).some((y) => jsonEqual(x, y)))) return false;
  }
  if (isNum(v)) {
    if ((isNum(s.minimum) && v < s.minimum) || (isNum(s.maximum) && v > s.maximum)) return false;
    if ((isNum(s.exclusiveMinimum) && v <= s.exclusiveMinimum) || (isNum(s.exclusiveMaximum) && v >= s.exclusiveMaximum)) return false;
    if (isNum(s.multipleOf) && !Number.isInteger(v / s.multipleOf)) return false;
  }
  if (typeof v === "string") {
    const len = [...v].length;
    if ((isCount(s.minLength) && len < s.minLength) || (isCount(s.maxLength) && len > s.maxLength)) return false;
    if (s.pattern !== undefined && !regex(s.pattern)!.test(v)) return false;
  }
  if (Array.isArray(s.allOf) && !s.allOf.every((x) => valid(x as Schema, v))) return false;
  if (Array.isArray(s.anyOf) && !s.anyOf.some((x) => valid(x as Schema, v))) return false;
  if (Array.isArray(s.oneOf) && s.oneOf.filter((x) => valid(x as Schema, v)).length !== 1) return false;
  if (s.not !== undefined && valid(s.not as Schema, v)) return false;
  return true;
}
