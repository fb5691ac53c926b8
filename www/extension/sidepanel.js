// Hearth's side panel: reads the tab the user clicked the toolbar icon on (activeTab +
// scripting, nothing else), summarizes its selection or article text, and answers questions
// about it. The engine runs here, in a Worker of this extension page; the weights are stored in
// the extension's own origin (OPFS) after the first download.
import { Engine } from "./hearth/dist/index.js";
import { renderOutput, formatBytes } from "./hearth/render.js";
import { fitHistory } from "./history.js";
import { extractPageText } from "./extract.js";

/** Where the weights come from until the user sets another URL: `make demo`'s server. */
const DEFAULT_MODEL_URL = "http://127.0.0.1:8080/models/SmolLM2-135M-Instruct.Q4_1.gguf";
/** Characters of the page given to the chat (about 1,000 tokens: fits the 2,048-token context). */
const CHAT_PAGE_CHARS = 4000;
/** Most tokens of one answer (also the room kept free in the context for it). */
const ANSWER_TOKENS = 120;

const $ = (id) => document.getElementById(id);
let engine = null; // Promise<Engine>
let engineUrl = "";
let page = null; // {tabId, title, url, text, fromSelection}
let history = [];
let busy = null; // AbortController of the running request

async function modelUrl() {
  const { modelUrl } = await chrome.storage.local.get("modelUrl");
  return modelUrl || DEFAULT_MODEL_URL;
}

/** The engine for the configured model, loaded once (from the store after the first time). */
async function getEngine() {
  const url = await modelUrl();
  if (engine && engineUrl === url) return engine;
  engine?.then((e) => e.unload()).catch(() => undefined);
  engineUrl = url;
  const bar = $("load-progress");
  bar.hidden = false;
  $("status").textContent = "Loading the model…";
  engine = Engine.load(url, {
    onProgress: (p) => {
      bar.max = p.total || 1;
      bar.value = p.loaded;
      const what = { download: "Downloading the model (once)", cache: "Reading the model from storage", upload: "Starting the engine", ready: "Ready" }[p.phase];
      $("status").textContent = `${what}: ${formatBytes(p.loaded)} of ${formatBytes(p.total)}`;
    },
    onBackendChange: (c) => ($("backend-status").textContent = `Backend: ${c.to}. ${c.reason}`),
  }).then(
    (e) => {
      bar.hidden = true;
      $("status").textContent = `Model ready (${e.model.fromStore ? "from storage" : "downloaded and stored"}, ${(e.model.loadMs / 1000).toFixed(1)} s).`;
      $("backend-status").textContent = `Backend: ${e.backend === "webgpu" ? "WebGPU" : "CPU (WebAssembly)"}. ${e.model.backendReason}.`;
      return e;
    },
    (err) => {
      bar.hidden = true;
      engine = null;
      throw new Error(`Could not load the model from ${url}: ${err.message}`);
    },
  );
  return engine;
}

/** The tab the toolbar icon was clicked on (remembered by background.js), else the active tab. */
async function targetTab() {
  const { targetTab } = await chrome.storage.session.get("targetTab");
  if (targetTab) {
    try {
      return await chrome.tabs.get(targetTab.id);
    } catch {
      // closed since
    }
  }
  const [tab] = await chrome.tabs.query({ active: true, lastFocusedWindow: true });
  return tab;
}

async function readPage() {
  const tab = await targetTab();
  if (!tab?.id) throw new Error("No page to read: open a page and click the Hearth toolbar icon.");
  let result;
  try {
    await chrome.scripting.executeScript({ target: { tabId: tab.id }, files: ["hearth/vendor/Readability.js"] });
    [{ result }] = await chrome.scripting.executeScript({ target: { tabId: tab.id }, func: extractPageText });
  } catch (e) {
    throw new Error(`Hearth may not read this tab (${e.message}). Click the Hearth toolbar icon while the page is open: that grants access to that one tab.`);
  }
  if (page?.tabId !== tab.id || page?.url !== result.url) history = [];
  page = { tabId: tab.id, title: result.title, url: result.url, text: result.selection || result.text, fromSelection: Boolean(result.selection) };
  $("page-title").textContent = `${page.fromSelection ? "Selection on" : "Article:"} “${page.title || page.url}” (${page.text.length} characters)`;
  if (!page.text) throw new Error("This page has no text to read.");
  return page;
}

function setBusy(ac) {
  busy = ac;
  $("stop-button").disabled = !ac;
  $("summarize-button").disabled = Boolean(ac);
  $("send-button").disabled = Boolean(ac);
}

async function summarize() {
  if (busy) return;
  const ac = new AbortController();
  setBusy(ac);
  const out = $("summary");
  const progress = $("summary-progress");
  out.replaceChildren();
  let text = "";
  try {
    const p = await readPage();
    const e = await getEngine();
    const s = await e.summarizer({ type: $("sum-type").value, length: "short", format: "markdown", sharedContext: `A web page titled "${p.title}"` });
    progress.textContent = "Summarizing…";
    const onChunkProgress = (c) => (progress.textContent = `Long page: part ${c.done} of ${c.total} summarized…`);
    for await (const d of s.summarizeStreaming(p.text, { signal: ac.signal, onChunkProgress })) {
      text += d;
      renderOutput(out, text);
    }
    s.destroy();
    progress.textContent = `Summary of the ${p.fromSelection ? "selection" : "article"}:`;
  } catch (e) {
    progress.textContent = e.code === "ABORTED" ? "Stopped." : e.message;
  } finally {
    setBusy(null);
  }
}

async function ask() {
  const input = $("chat-input");
  const question = input.value.trim();
  if (!question || busy) return;
  input.value = "";
  const ac = new AbortController();
  setBusy(ac);
  const li = (cls, text) => {
    const el = document.createElement("li");
    el.className = cls;
    el.textContent = text;
    $("messages").append(el);
    return el;
  };
  li("user", question);
  const answer = li("assistant", "");
  let text = "";
  try {
    const p = page ?? (await readPage());
    const e = await getEngine();
    const system = `You answer questions about a web page. Be brief and use only the page.\n\nTitle: ${p.title}\n\n${p.text.slice(0, CHAT_PAGE_CHARS)}`;
    history.push({ role: "user", content: question });
    history = await fitHistory(e, system, history, { reserve: ANSWER_TOKENS });
    const stream = await e.chat.completions.create({ messages: [{ role: "system", content: system }, ...history], stream: true, max_tokens: ANSWER_TOKENS, temperature: 0.3, repeat_penalty: 1.15, signal: ac.signal });
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? "";
      renderOutput(answer, text);
    }
    history.push({ role: "assistant", content: text });
  } catch (e) {
    if (e.code === "ABORTED") history.push({ role: "assistant", content: text });
    else {
      if (history.at(-1)?.role === "user") history.pop();
      answer.textContent = e.message;
    }
  } finally {
    setBusy(null);
    input.focus();
  }
}

async function start() {
  $("model-url").value = await modelUrl();
  $("save-model").addEventListener("click", async () => {
    await chrome.storage.local.set({ modelUrl: $("model-url").value.trim() });
    $("status").textContent = "Saved; the next request loads that model.";
  });
  $("summarize-button").addEventListener("click", summarize);
  $("stop-button").addEventListener("click", () => busy?.abort());
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ask();
  });
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ask();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") busy?.abort();
  });
  chrome.storage.session.onChanged.addListener((changes) => {
    if (!changes.targetTab) return;
    page = null;
    history = [];
    $("messages").replaceChildren();
    $("page-title").textContent = `Page: “${changes.targetTab.newValue?.title ?? ""}” (click Summarize)`;
  });
  const tab = await targetTab();
  if (tab?.title) $("page-title").textContent = `Page: “${tab.title}” (click Summarize)`;
}

start();
