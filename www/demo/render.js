// Model output → DOM. Model text is untrusted: it is turned into Markdown HTML with every
// character of the text escaped, and that HTML then goes through an allow-list sanitizer before
// it reaches the page (two independent guards: a bug in either one alone does not execute code).
// Used by the demo (chat and summaries) and the extension side panel.

import { Marked } from "./vendor/marked.esm.js";

/** Tags the sanitizer keeps; any other element is replaced by its text content. */
const ALLOWED_TAGS = new Set([
  "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li",
  "h1", "h2", "h3", "h4", "h5", "h6", "a", "del",
  "table", "thead", "tbody", "tr", "th", "td",
]);
/** Elements dropped with everything inside them (their text is not content). */
const DROPPED_TAGS = new Set(["script", "style", "template", "iframe", "object", "embed", "noscript", "svg", "math"]);
/** Attributes kept per tag; every other attribute (and every `on*`) is removed. */
const ALLOWED_ATTRS = { a: new Set(["href", "title"]), ol: new Set(["start"]), code: new Set(["class"]), th: new Set(["align"]), td: new Set(["align"]) };
const SAFE_URL = /^(https?:|mailto:|#|\/(?!\/)|\.\.?\/)/i;

/** Escapes text for use in HTML (element content and quoted attributes). */
export function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Whether a link target is safe to keep: http(s), mailto, fragment or relative; never `javascript:`. */
export function isSafeUrl(url) {
  // Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
  const u = url.replace(/[\u0000-\u0020\u007f-\u009f]/g, "");
  return SAFE_URL.test(u) || !/^[a-z][a-z0-9+.-]*:/i.test(u);
}

/**
 * Parses `html` inertly (DOMParser: no script runs, no image loads) and returns a
 * DocumentFragment holding only allow-listed tags and attributes.
 */
export function sanitize(html) {
  const doc = new DOMParser().parseFromString(`<!doctype html><body>${html}`, "text/html");
  const out = document.createDocumentFragment();
  for (const node of [...doc.body.childNodes]) appendClean(out, node);
  return out;
}

function appendClean(parent, node) {
  if (node.nodeType === Node.TEXT_NODE) {
    parent.append(document.createTextNode(node.data));
    return;
  }
  if (node.nodeType !== Node.ELEMENT_NODE) return; // comments, processing instructions
  const tag = node.localName;
  if (DROPPED_TAGS.has(tag)) return;
  if (!ALLOWED_TAGS.has(tag)) {
    for (const child of [...node.childNodes]) appendClean(parent, child);
    return;
  }
  const el = document.createElement(tag);
  const allowed = ALLOWED_ATTRS[tag];
  for (const { name, value } of [...node.attributes]) {
    if (!allowed?.has(name) || name.startsWith("on")) continue;
    if (name === "href" && !isSafeUrl(value)) continue;
    if (name === "class" && !/^language-[\w-]+$/.test(value)) continue;
    if (name === "align" && !/^(left|center|right)$/.test(value)) continue;
    el.setAttribute(name, value);
  }
  if (tag === "a") {
    el.setAttribute("rel", "noopener noreferrer nofollow");
    el.setAttribute("target", "_blank");
  }
  for (const child of [...node.childNodes]) appendClean(el, child);
  parent.append(el);
}

/**
 * The Markdown parser: marked (CommonMark + GitHub-flavoured: tables, nested lists, fenced
 * code, strikethrough), vendored into `vendor/` by `make www` from www/node_modules (the demo and
 * the extension load no bundler and no third-party origin). Raw HTML in model output is shown
 * as text, never parsed: the `html` renderer escapes it, before the sanitizer sees anything.
 */
const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html: (token) => escapeHtml(token.text),
  },
});

/** Markdown (model output) to HTML: marked, with raw HTML escaped; "•" bullets read as lists. */
export function markdownToHtml(md) {
  return marked.parse(md.replace(/^(\s*)•\s+/gm, "$1- ")).trim();
}

/** Renders model output into `el`: Markdown through the sanitizer, or plain text. */
export function renderOutput(el, text, { markdown = true } = {}) {
  if (!markdown) {
    el.textContent = text;
    return;
  }
  el.replaceChildren(sanitize(markdownToHtml(text)));
}

/** "98.4 MB", "512 kB": decimal units, like the registry sizes. */
export function formatBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}
