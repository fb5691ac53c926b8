// What the side panel reads from a page: `chrome.scripting.executeScript` injects Mozilla's
// Readability (hearth/vendor/Readability.js, copied by `make extension`), then runs
// `extractPageText` (serialized: it may use nothing from this module's scope).
// tests/browser/extract.test.mjs runs it on pages with and without an <article>.

/**
 * Injected into the page after Mozilla's Readability (`hearth/vendor/Readability.js`, the
 * extractor of Firefox's Reader View): the user's selection, else the article Readability finds
 * (navigation, sidebars, footers and comments left out), one paragraph per block; pages it
 * cannot parse fall back to the visible text of `article`/`main`/`body`.
 */
export function extractPageText() {
  const selection = String(globalThis.getSelection?.() ?? "").trim();
  let text = "";
  let title = document.title;
  try {
    const article = typeof Readability === "function" ? new Readability(document.cloneNode(true)).parse() : null;
    if (article?.content) {
      // Readability hands back inert HTML: read its blocks' text without rendering it.
      const doc = new DOMParser().parseFromString(article.content, "text/html");
      const blocks = [...doc.body.querySelectorAll("h1, h2, h3, h4, h5, h6, p, li, pre, blockquote, td, th, figcaption")]
        .filter((el) => !el.parentElement?.closest("p, li, pre, blockquote, td, th, figcaption"))
        .map((el) => el.textContent.replace(/[ \t\r\n]+/g, " ").trim())
        .filter(Boolean);
      text = (blocks.length ? blocks.join("\n\n") : doc.body.textContent ?? "").trim();
      if (article.title) title = article.title;
    }
  } catch {
    // Readability failed on this page: the fallback below.
  }
  if (!text) text = ((document.querySelector("article, main, [role=main]") ?? document.body)?.innerText ?? "").trim();
  return { title, url: location.href, selection, text };
}
