// Model output → DOM. Model text is untrusted: it is turned into Markdown HTML with every
// character of the text escaped, and that HTML then goes through an allow-list sanitizer before
// it reaches the page (two independent guards: a bug in either one alone does not execute code).
// Used by the demo (chat and summaries) and the extension side panel.

/** Tags the sanitizer keeps; any other element is replaced by its text content. */
const ALLOWED_TAGS = new Set([
  "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li",
  "h1", "h2", "h3", "h4", "h5", "h6", "a", "del",
]);
/** Elements dropped with everything inside them (their text is not content). */
const DROPPED_TAGS = new Set(["script", "style", "template", "iframe", "object", "embed", "noscript", "svg", "math"]);
/** Attributes kept per tag; every other attribute (and every `on*`) is removed. */
const ALLOWED_ATTRS = { a: new Set(["href", "title"]), ol: new Set(["start"]), code: new Set(["class"]) };
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
    el.setAttribute(name, value);
  }
  if (tag === "a") {
    el.setAttribute("rel", "noopener noreferrer nofollow");
    el.setAttribute("target", "_blank");
  }
  for (const child of [...node.childNodes]) appendClean(el, child);
  parent.append(el);
}

/** Inline Markdown (on already-escaped text): code, bold, italic, strike, links. */
function inline(escaped) {
  const codes = [];
  let s = escaped.replace(/`([^`\n]+)`/g, (_, c) => `\u0000${codes.push(c) - 1}\u0000`);
  s = s
    .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
    .replace(/__([^_\n]+)__/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>")
    .replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~([^~\n]+)~~/g, "<del>$1</del>")
    .replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (_, text, href) => `<a href="${href}">${text}</a>`);
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

/**
 * A small Markdown subset to HTML: paragraphs, ATX headings, bullet and numbered lists, fenced
 * code, block quotes, rules, and the inline forms above. Raw HTML in the input stays text.
 */
export function markdownToHtml(md) {
  const lines = md.replace(/\r\n?/g, "\n").split("\n");
  const html = [];
  let para = [];
  let list = null; // {tag, items: []}
  const flushPara = () => {
    if (para.length) html.push(`<p>${para.map((l) => inline(escapeHtml(l))).join("<br>")}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) html.push(`<${list.tag}${list.start > 1 ? ` start="${list.start}"` : ""}>${list.items.map((i) => `<li>${inline(escapeHtml(i))}</li>`).join("")}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)\s*([\w-]*)/.exec(line);
    if (fence) {
      flushPara();
      flushList();
      const body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
      const cls = fence[2] ? ` class="language-${fence[2]}"` : "";
      html.push(`<pre><code${cls}>${escapeHtml(body.join("\n"))}</code></pre>`);
      continue;
    }
    let m;
    if (!line.trim()) {
      flushPara();
      flushList();
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      flushPara();
      flushList();
      html.push(`<h${m[1].length}>${inline(escapeHtml(m[2]))}</h${m[1].length}>`);
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flushPara();
      flushList();
      html.push("<hr>");
    } else if ((m = /^\s*[-*+•]\s+(.*)$/.exec(line)) || (m = /^\s*(\d+)[.)]\s+(.*)$/.exec(line))) {
      flushPara();
      const tag = m.length === 3 ? "ol" : "ul";
      if (list && list.tag !== tag) flushList();
      list ??= { tag, items: [], start: tag === "ol" ? Number(m[1]) : 1 };
      list.items.push(m[m.length - 1]);
    } else if ((m = /^\s*>\s?(.*)$/.exec(line))) {
      flushPara();
      flushList();
      html.push(`<blockquote>${inline(escapeHtml(m[1]))}</blockquote>`);
    } else if (list && /^\s{2,}\S/.test(line)) {
      list.items[list.items.length - 1] += " " + line.trim();
    } else {
      flushList();
      para.push(line);
    }
  }
  flushPara();
  flushList();
  return html.join("\n");
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
