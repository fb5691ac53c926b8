// The MV3 extension (www/extension/) loaded unpacked in headless Chromium: its toolbar action on
// a test page grants activeTab, the side panel reads the page's article text, downloads the model
// from 127.0.0.1 into the extension's own storage, summarizes and answers a question. Every
// request that would leave 127.0.0.1 goes to a recording proxy, which must see none.
// Needs `make wasm models extension`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import http from "node:http";
import { createRequire } from "node:module";
import { REPO, MODEL_FILE, MODEL_PATH, CHROMIUM_FLAGS, chromiumPath, requireFile, startTestServer, mountsWithFixtures } from "./harness.mjs";

const EXT = path.join(REPO, "www", "extension");
requireFile(path.join(EXT, "hearth", "pkg", "hearth_bg.wasm"), "make extension (after make wasm)");
requireFile(path.join(EXT, "hearth", "dist", "index.js"), "make extension");
requireFile(MODEL_PATH, "make models");
const { chromium } = createRequire(path.join(REPO, "www", "package.json"))("playwright-core");

const ARTICLE = `<!doctype html><html lang="en"><head><title>Bees and honey</title></head><body>
<nav>Home · About · Contact</nav>
<article><h1>How bees make honey</h1>
<p>Honey bees collect nectar from flowers with their long tongues and store it in a special stomach called the honey crop.</p>
<p>Back at the hive, worker bees pass the nectar from mouth to mouth. Enzymes break its sugars down, and the bees fan it with their wings until most of the water evaporates.</p>
<p>The thick honey is sealed in wax cells. A colony makes far more than it needs, which is why beekeepers can harvest some of it every summer.</p>
</article><footer>© Test page</footer></body></html>`;

/** A proxy that answers 403 to everything and records what was asked: the browser's traffic to
 *  anywhere but loopback (which Chromium never proxies) ends up here. */
function startRecordingProxy() {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(403).end();
  });
  server.on("connect", (req, socket) => {
    seen.push(`CONNECT ${req.url}`);
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ seen, port: server.address().port, close: () => new Promise((r) => server.close(r)) })));
}

const BROWSER_SERVICES_TO_LOOPBACK = [
  "--gaia-url=http://127.0.0.1:9",
  "--gcm-checkin-url=http://127.0.0.1:9/checkin",
  "--gcm-mcs-endpoint=http://127.0.0.1:9/mcs",
  "--gcm-registration-url=http://127.0.0.1:9/register",
  // Chromium's own extension-update ping (Omaha, update.googleapis.com), which it sends for
  // any installed extension after a delay — seen once the test ran slowly on a loaded machine.
  "--apps-gallery-update-url=http://127.0.0.1:9/update",
  "--component-updater=url-source=http://127.0.0.1:9/cu",
];

let dir, srv, proxy, context, profile;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-ext-"));
  fs.writeFileSync(path.join(dir, "article.html"), ARTICLE);
  srv = await startTestServer({ roots: mountsWithFixtures(dir) });
  proxy = await startRecordingProxy();
  profile = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-ext-profile-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    ignoreDefaultArgs: ["--disable-extensions"],
    args: [
      ...CHROMIUM_FLAGS,
      `--disable-extensions-except=${EXT}`,
      `--load-extension=${EXT}`,
      // Lets the test click the toolbar action through CDP (Extensions.triggerAction).
      "--enable-unsafe-extension-debugging",
      `--proxy-server=http://127.0.0.1:${proxy.port}`,
      // Chromium's own Google services (sign-in, push messaging) call home at start-up, with or
      // without any extension; point them at a closed loopback port so that anything the proxy
      // records came from the page or the extension.
      ...BROWSER_SERVICES_TO_LOOPBACK,
    ],
  });
});
after(async () => {
  await context?.close();
  await srv?.close();
  await proxy?.close();
  for (const d of [dir, profile]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

test("manifest: MV3, a side panel, no host permissions beyond activeTab/scripting/sidePanel/storage", () => {
  const m = JSON.parse(fs.readFileSync(path.join(EXT, "manifest.json"), "utf8"));
  assert.equal(m.manifest_version, 3);
  assert.deepEqual([...m.permissions].sort(), ["activeTab", "scripting", "sidePanel", "storage"]);
  assert.equal(m.host_permissions, undefined);
  assert.equal(m.optional_host_permissions, undefined);
  assert.equal(m.content_scripts, undefined);
  assert.equal(m.side_panel.default_path, "sidepanel.html");
  assert.match(m.content_security_policy.extension_pages, /script-src 'self' 'wasm-unsafe-eval'/);
});

test("side panel summarizes the page the action was clicked on and answers a question; nothing leaves 127.0.0.1", async () => {
  let worker = context.serviceWorkers().find((w) => w.url().startsWith("chrome-extension://"));
  worker ??= await context.waitForEvent("serviceworker", { timeout: 30000 });
  const extId = new URL(worker.url()).host;

  const article = await context.newPage();
  await article.goto(srv.url + "fixtures/article.html");
  // Headless Chromium has no toolbar to show the side panel in, so the same page runs in a tab.
  const panel = await context.newPage();
  const errors = [];
  const panelRequests = [];
  panel.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  panel.on("pageerror", (e) => errors.push(String(e)));
  panel.on("request", (r) => panelRequests.push(r.url()));
  await panel.goto(`chrome-extension://${extId}/sidepanel.html`);

  // Before the user clicks the icon, the extension can read no tab (no host permissions).
  const readable = await panel.evaluate(async () => {
    const tabs = await chrome.tabs.query({});
    const r = await Promise.allSettled(tabs.map((t) => chrome.scripting.executeScript({ target: { tabId: t.id }, func: () => document.title })));
    return r.filter((x) => x.status === "fulfilled").map((x) => x.value[0].result);
  });
  assert.deepEqual(readable, []);

  // The user's click on the toolbar icon: grants activeTab for the article's tab (only) and
  // opens the side panel; background.js remembers the tab for the panel.
  await article.bringToFront();
  const cdp = await context.browser().newBrowserCDPSession();
  const { targetInfos } = await cdp.send("Target.getTargets", { filter: [{ type: "tab", exclude: false }] });
  const tab = targetInfos.find((t) => t.url === article.url());
  assert.ok(tab, "the article's tab target");
  await cdp.send("Extensions.triggerAction", { id: extId, targetId: tab.targetId });
  await panel.getByText("Bees and honey").first().waitFor({ timeout: 10000 });
  await panel.click("text=Model");
  await panel.fill("#model-url", `${srv.url}models/${MODEL_FILE}`);
  await panel.click("#save-model");

  await panel.click("#summarize-button");
  await panel.waitForFunction(() => !document.querySelector("#summarize-button").disabled && document.querySelector("#summary-progress").textContent !== "", null, { timeout: 240000 });
  const summary = (await panel.textContent("#summary")).trim();
  const progress = await panel.textContent("#summary-progress");
  console.log(`# extension summary: ${JSON.stringify(summary)}`);
  assert.match(progress, /Summary of the article/, progress);
  assert.ok(summary.length > 10, `summary: ${JSON.stringify(summary)}`);
  assert.match(await panel.textContent("#page-title"), /Bees and honey/);
  assert.match(await panel.textContent("#backend-status"), /Backend: (WebGPU|CPU)/);

  await panel.fill("#chat-input", "What do bees collect from flowers?");
  await panel.press("#chat-input", "Enter");
  await panel.waitForFunction(() => !document.querySelector("#send-button").disabled && document.querySelectorAll("#messages li").length === 2, null, { timeout: 120000 });
  const answer = (await panel.textContent("#messages li.assistant")).trim();
  console.log(`# extension answer: ${JSON.stringify(answer)}`);
  assert.ok(answer.length > 0);

  // The weights came from 127.0.0.1 and are stored in the extension's origin.
  assert.ok(srv.stats.bytes[`/models/${MODEL_FILE}`] > 0, "the model was downloaded from the test server");
  const stored = await panel.evaluate(async () => (await import("./hearth/dist/index.js")).models.list());
  assert.equal(stored.length, 1);
  assert.equal(stored[0].complete, true);
  assert.deepEqual(proxy.seen, [], "requests that would have left 127.0.0.1");
  assert.deepEqual(panelRequests.filter((u) => !u.startsWith(`chrome-extension://${extId}/`) && !u.startsWith(srv.url)), []);
  assert.deepEqual(errors, []);
});
