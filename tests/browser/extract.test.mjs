// The extension's page text (www/extension/extract.js after Mozilla's Readability, as the side
// panel injects them): a page whose article is not in <article>/<main> gives the article's
// paragraphs, not its navigation, sidebar or comments; the user's selection wins; a page
// Readability finds no article in falls back to the visible text. Needs `make extension`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO, requireFile, launchBrowser, startTestServer, mountsWithFixtures } from "./harness.mjs";

requireFile(path.join(REPO, "www/extension/hearth/vendor/Readability.js"), "make extension");

const PARAS = [
  "Honey bees collect nectar from flowers with their long tongues and store it in a special stomach called the honey crop, which can hold almost their own weight.",
  "Back at the hive, worker bees pass the nectar from mouth to mouth. Enzymes break its sugars down, and the bees fan it with their wings until most of the water evaporates.",
  "The thick honey is sealed in wax cells. A colony makes far more than it needs, which is why beekeepers can harvest some of it every summer without harming the bees.",
  "A strong colony can make more than twenty-five kilograms of surplus honey in a good year, depending on the weather, the flowers nearby and the health of the queen.",
];
const BLOG = `<!doctype html><html lang="en"><head><title>How bees make honey | The Garden Blog</title></head><body>
<div class="header"><a href="/">The Garden Blog</a> <a href="/about">About</a> <a href="/shop">Shop our seeds</a> <a href="/login">Log in</a></div>
<div class="layout"><div class="sidebar"><h3>Popular posts</h3><ul><li><a href="/p/1">Ten tomato tips</a></li><li><a href="/p/2">Composting 101</a></li><li><a href="/p/3">Pruning roses</a></li></ul><p>Subscribe to our newsletter for weekly deals!</p></div>
<div class="content"><h1>How bees make honey</h1>${PARAS.map((p) => `<p>${p}</p>`).join("\n")}</div>
<div class="comments"><h3>Comments</h3><p>Great post! Check out my site for cheap watches.</p></div></div>
<div class="footer">© The Garden Blog · Privacy · Cookies</div></body></html>`;
const NAV_ONLY = `<!doctype html><html><head><title>Links</title></head><body><a href="/a">Alpha</a> <a href="/b">Beta</a></body></html>`;

let dir, srv, browser;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-extract-"));
  fs.writeFileSync(path.join(dir, "blog.html"), BLOG);
  fs.writeFileSync(path.join(dir, "links.html"), NAV_ONLY);
  srv = await startTestServer({ roots: mountsWithFixtures(dir) });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await srv?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens a fixture, injects Readability and runs the extractor as the side panel would. */
async function extract(file, { select } = {}) {
  const page = await browser.context.newPage();
  try {
    await page.goto(srv.url + "fixtures/" + file);
    await page.addScriptTag({ url: "/extension/hearth/vendor/Readability.js" });
    return await page.evaluate(async (select) => {
      if (select) {
        const p = [...document.querySelectorAll("p")].find((e) => e.textContent.includes(select));
        getSelection().selectAllChildren(p);
      }
      const { extractPageText } = await import("/extension/extract.js");
      return extractPageText();
    }, select ?? null);
  } finally {
    await page.close();
  }
}

test("a blog page without <article>: the article's paragraphs, none of the navigation, sidebar, comments or footer", async () => {
  const r = await extract("blog.html");
  assert.equal(r.selection, "");
  assert.deepEqual(r.text.split("\n\n").filter((b) => b.startsWith("Honey") || b.startsWith("Back") || b.startsWith("The thick") || b.startsWith("A strong")), PARAS);
  for (const noise of ["Shop our seeds", "Popular posts", "newsletter", "cheap watches", "Privacy"]) assert.doesNotMatch(r.text, new RegExp(noise), noise);
});

test("the user's selection is returned as well; a page with no article falls back to its visible text", async () => {
  const sel = await extract("blog.html", { select: "Enzymes" });
  assert.equal(sel.selection, PARAS[1]);
  const links = await extract("links.html");
  assert.equal(links.text, "Alpha Beta");
});
