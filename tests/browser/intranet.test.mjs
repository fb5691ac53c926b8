// The intranet example (www/examples/intranet.html) under a strict Content-Security-Policy:
// "Summarize this page" loads the model and streams a summary with no CSP violation and no
// console error. Needs `make wasm models www`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, MODEL_PATH, requireDist, requireFile, launchBrowser, startTestServer } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");

const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'";
let srv, browser;
before(async () => {
  srv = await startTestServer({ csp: CSP });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

test("the example's script is a plain module of under 20 lines", () => {
  const src = fs.readFileSync(path.join(REPO, "www/examples/summarize-this-page.js"), "utf8");
  assert.ok(src.trimEnd().split("\n").length < 20, "lines of script");
  const html = fs.readFileSync(path.join(REPO, "www/examples/intranet.html"), "utf8");
  assert.match(html, /<script type="module" src="summarize-this-page.js"><\/script>/);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son\w+=/i, "no inline script, style or handler");
});

test("Summarize this page works under default-src 'self'; script-src 'self' 'wasm-unsafe-eval'", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`${m.text()} (${m.location().url})`));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.addInitScript(() => {
    globalThis.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => globalThis.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const resp = await page.goto(srv.url + "examples/intranet.html");
  assert.equal(resp.headers()["content-security-policy"], CSP);

  const button = page.getByRole("button", { name: "Summarize this page" });
  await button.click();
  await page.waitForFunction(() => {
    const out = document.querySelector(".hearth-summary");
    return !document.querySelector("button").disabled && out.textContent.length > 0 && !out.textContent.startsWith("Loading");
  }, null, { timeout: 240000 });
  const summary = await page.textContent(".hearth-summary");
  console.log(`# intranet summary: ${JSON.stringify(summary)}`);
  assert.doesNotMatch(summary, /^Could not summarize/, summary);
  assert.ok(summary.trim().length > 10);
  assert.deepEqual(await page.evaluate(() => globalThis.__violations), []);
  assert.deepEqual(errors, []);

  // The policy is really enforced here: an inline script is refused and reported.
  const inline = await page.evaluate(async () => {
    document.head.append(Object.assign(document.createElement("script"), { textContent: "globalThis.__inline = 1" }));
    await new Promise((r) => setTimeout(r, 100));
    return { ran: globalThis.__inline === 1, violations: globalThis.__violations };
  });
  assert.equal(inline.ran, false);
  assert.match(inline.violations.join(), /script-src/);
  await page.close();
});
