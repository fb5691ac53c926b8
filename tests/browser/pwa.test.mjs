// The demo as an offline PWA: a first visit online installs the service worker (app shell) and
// stores the model; then the browser context goes offline, the page reloads, opens, loads the
// model from storage and answers a chat — with zero network requests.
// Needs `make wasm www models`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, MODEL_PATH, requireDist, requireFile, launchBrowser, startTestServer, resetServerStats } from "./harness.mjs";

requireDist();
requireFile(path.join(REPO, "www/pkg/hearth_bg.wasm"), "make wasm");
requireFile(MODEL_PATH, "make models");
const GOLDEN = JSON.parse(fs.readFileSync(path.join(REPO, "tests/goldens/smollm2.json"), "utf8"));
const G2 = GOLDEN.prompts.find((p) => p.name === "chat_2plus2");

let srv, browser;
before(async () => {
  srv = await startTestServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

test("the service worker's shell lists every module `make www` builds, and the manifest is valid", () => {
  const sw = fs.readFileSync(path.join(REPO, "www/demo/sw.js"), "utf8");
  const listed = /\.\.\.\[([\s\S]*?)\]\.map\(\(m\) => `\.\.\/dist\/\$\{m\}\.js`\)/.exec(sw)[1].match(/"([\w-]+)"/g).map((s) => s.slice(1, -1) + ".js");
  const built = fs.readdirSync(path.join(REPO, "www/dist")).filter((f) => f.endsWith(".js"));
  assert.deepEqual(listed.sort(), built.sort());
  for (const f of ["index.html", "app.js", "render.js", "engine-worker.js", "style.css", "icon.svg", "manifest.webmanifest"]) {
    assert.ok(sw.includes(`"${f}"`), `${f} is in the shell`);
    assert.ok(fs.existsSync(path.join(REPO, "www/demo", f)), f);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO, "www/demo/manifest.webmanifest"), "utf8"));
  assert.equal(manifest.display, "standalone");
  assert.equal(manifest.start_url, "./");
  assert.ok(manifest.icons.length > 0);
});

test("offline: reload opens the app from the service worker, loads the model from storage and chats; no request from the page, its Worker or the service worker reaches the network", async () => {
  const { context } = browser;
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`${m.text()} (${m.location().url})`));
  page.on("pageerror", (e) => errors.push(String(e)));

  // First visit, online: the service worker installs and takes control; the model is stored.
  await page.goto(srv.url + "demo/");
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30000 });
  await page.selectOption("#backend-select", "cpu");
  await page.click("#load-button");
  await page.waitForFunction(() => /is ready/.test(document.querySelector("#status").textContent), null, { timeout: 120000 });
  assert.match(await page.textContent("#status"), /stored for offline use/);

  // Offline from here on: every request the browser makes is recorded.
  await context.setOffline(true);
  resetServerStats(srv);
  const requests = [];
  const failed = [];
  const onRequest = (r) => requests.push(r);
  const onFailed = (r) => failed.push(`${r.url()} ${r.failure()?.errorText}`);
  context.on("request", onRequest);
  context.on("requestfailed", onFailed);

  await page.reload();
  await page.waitForFunction(() => document.querySelector("#model-select").options.length > 0);
  assert.match(await page.textContent("#model-facts"), /Stored in this browser: loads offline/);
  await page.selectOption("#backend-select", "cpu");
  await page.click("#load-button");
  await page.waitForFunction(() => /is ready|Could not/.test(document.querySelector("#status").textContent), null, { timeout: 120000 });
  assert.match(await page.textContent("#status"), /loaded from this browser's storage \(no download\)/);
  await page.click("details summary");
  await page.fill("#temperature", "0");
  await page.fill("#max-tokens", "32");
  await page.fill("#chat-input", "What is 2+2?");
  await page.press("#chat-input", "Enter");
  await page.waitForFunction(() => document.querySelector("#stop-button").disabled && document.querySelector("#chat-stats").textContent, null, { timeout: 120000 });
  const answer = await page.evaluate(() => document.querySelector(".message.assistant .body").textContent);
  assert.equal(answer, G2.text);
  context.off("request", onRequest);
  context.off("requestfailed", onFailed);

  const network = [];
  for (const r of requests) {
    const resp = await r.response();
    if (!resp?.fromServiceWorker()) network.push(r.url());
  }
  console.log(`# offline: ${requests.length} requests, all answered by the service worker; server saw ${JSON.stringify(srv.stats.log.map((l) => l.path))}`);
  assert.ok(requests.some((r) => r.url().endsWith("/pkg/hearth_bg.wasm")), "the wasm came from the service worker's cache");
  assert.deepEqual(network, [], "requests not answered by the service worker");
  assert.deepEqual(failed, []);
  // What reached the server: nothing from the page, its Worker or the service worker. The only
  // request Chromium may still send is its own update check of the service worker script on
  // navigation (made by the browser process, which Playwright's offline emulation does not
  // cover; on a really offline machine it fails and the cached worker stays in charge).
  const reached = srv.stats.log.filter((l) => !(l.path === "/demo/sw.js" && l.method === "GET"));
  assert.deepEqual(reached, [], "requests that reached the server while offline");
  assert.deepEqual(errors, []);
  await context.setOffline(false);
  await page.close();
});
