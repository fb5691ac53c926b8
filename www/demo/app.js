// The Hearth demo: pick a model, load it (network once, then the browser's store), chat and
// summarize. Plain ES module over the package in ../dist (built by `make www`).
import { Engine, REGISTRY, DEFAULT_MODEL_ID, models, probeWebGpu } from "../dist/index.js";
import { renderOutput, formatBytes } from "./render.js";

const $ = (id) => document.getElementById(id);
const LAST_MODEL_KEY = "hearth-demo-model";

/** What the page holds: the engine, the conversation, and the request in flight (if any). */
export const state = {
  engine: null,
  /** The registry entry of the loaded model. */
  entry: null,
  /** The conversation so far (user and assistant turns; the system prompt is added per request). */
  messages: [],
  /** AbortController of the load, chat or summary in progress. */
  loadAbort: null,
  chatAbort: null,
  summaryAbort: null,
};

// ---------------------------------------------------------------------------------------------
// Model picker, load, delete

async function refreshModels() {
  const select = $("model-select");
  const keep = select.value || localStorage.getItem(LAST_MODEL_KEY) || DEFAULT_MODEL_ID;
  let stored = new Map();
  try {
    stored = new Map((await models.list()).map((m) => [m.id, m]));
  } catch (e) {
    setStatus(`The model store is unavailable here: ${e.message}`);
  }
  select.replaceChildren(
    ...REGISTRY.map((m) => {
      const s = stored.get(m.id);
      const where = s?.complete ? "stored" : s ? `${Math.floor((100 * s.storedBytes) / m.bytes)}% stored` : "not stored";
      const opt = new Option(`${m.name} · ${formatBytes(m.bytes)} · ${where}`, m.id);
      opt.dataset.stored = s?.complete ? "complete" : s ? "partial" : "none";
      return opt;
    }),
  );
  select.value = REGISTRY.some((m) => m.id === keep) ? keep : DEFAULT_MODEL_ID;
  const entry = REGISTRY.find((m) => m.id === select.value);
  const s = stored.get(entry.id);
  $("model-facts").textContent =
    `${entry.architecture}, ${entry.quant}, ${formatBytes(entry.bytes)}, licence ${entry.licence}. ` +
    (entry.chat ? "Instruction-tuned (chat)." : "Base model: no chat template, it continues text.") +
    (s?.complete ? " Stored in this browser: loads offline." : s ? ` Partly stored (${formatBytes(s.storedBytes)}): the download resumes.` : " Not stored yet.");
  $("delete-button").disabled = !s || Boolean(state.loadAbort);
}

function setStatus(text) {
  $("status").textContent = text;
}

function describeBackend(backend, reason, model) {
  const name = backend === "webgpu" ? "WebGPU (GPU)" : "CPU (WebAssembly)";
  const text = `Backend: ${name}. ${reason}.`.replace(/\.\.$/, ".");
  if (backend !== "cpu" || !model) return text;
  const build = model.wasmBuild === "threads" ? `${model.threads} threads` : "1 thread";
  return `${text} ${build} (${model.threadsReason}).`;
}

async function loadModel() {
  if (state.loadAbort) return;
  const id = $("model-select").value;
  const backend = $("backend-select").value;
  const entry = REGISTRY.find((m) => m.id === id);
  localStorage.setItem(LAST_MODEL_KEY, id);
  stopAll();
  if (state.engine) {
    const old = state.engine;
    state.engine = null;
    await old.unload();
  }
  setReady(false);
  const ac = new AbortController();
  state.loadAbort = ac;
  $("load-button").disabled = true;
  $("delete-button").disabled = true;
  $("progress-box").hidden = false;
  setStatus(`Loading ${entry.name}… (Escape cancels)`);
  const speed = { t: 0, bytes: 0 };
  try {
    const engine = await Engine.load(id, {
      backend,
      signal: ac.signal,
      // A worker script inside the service worker's scope, so the offline app shell covers it.
      workerUrl: new URL("engine-worker.js", import.meta.url),
      onProgress: (p) => showProgress(p, speed),
      onBackendChange: (c) => {
        $("backend-status").textContent = describeBackend(c.to, c.reason, state.engine?.model);
      },
    });
    state.engine = engine;
    state.entry = entry;
    const m = engine.model;
    setStatus(`${entry.name} is ready: loaded ${m.fromStore ? "from this browser's storage (no download)" : "and stored for offline use"} in ${(m.loadMs / 1000).toFixed(1)} s; context ${m.n_ctx} tokens.`);
    $("backend-status").textContent = describeBackend(m.backend, m.backendReason, m);
    newChat();
    setReady(true);
  } catch (e) {
    setStatus(e.code === "ABORTED" ? "Loading cancelled; what was downloaded stays stored and the next load resumes." : `Could not load ${entry.name}: ${e.message}${e.code ? ` (${e.code})` : ""}`);
  } finally {
    state.loadAbort = null;
    $("load-button").disabled = false;
    $("progress-box").hidden = true;
    await refreshModels();
  }
}

function showProgress(p, speed) {
  const label = { download: "Downloading", cache: "Reading from storage", upload: "Starting the engine", ready: "Ready" }[p.phase];
  $("progress-label").textContent = label;
  const bar = $("load-progress");
  bar.max = p.total || 1;
  bar.value = p.loaded;
  let text = `${formatBytes(p.loaded)} of ${formatBytes(p.total)}`;
  if (p.phase === "download") {
    const now = performance.now();
    if (!speed.t) Object.assign(speed, { t: now, bytes: p.loaded });
    const secs = (now - speed.t) / 1000;
    if (secs > 0.2) text += ` · ${formatBytes((p.loaded - speed.bytes) / secs)}/s`;
  }
  $("progress-text").textContent = `${label}: ${text}`;
}

async function deleteModel() {
  const id = $("model-select").value;
  const entry = REGISTRY.find((m) => m.id === id);
  if (state.entry?.id === id && state.engine) {
    stopAll();
    const e = state.engine;
    state.engine = null;
    state.entry = null;
    setReady(false);
    await e.unload();
  }
  let status;
  try {
    await models.delete(id);
    status = `${entry.name} was deleted from this browser's storage.`;
  } catch (e) {
    status = `Could not delete ${entry.name}: ${e.message}`;
  }
  // The model facts first, then the status: whoever waits for the status sees both updated.
  await refreshModels();
  setStatus(status);
}

/** Enables chat and summarize for the loaded model, or explains why they are off. */
function setReady(ready) {
  const chat = ready && state.engine.model.has_chat_template;
  const name = state.entry?.name ?? "";
  const chatNotice = $("chat-notice");
  const sumNotice = $("summarize-notice");
  chatNotice.hidden = !ready || chat;
  sumNotice.hidden = !ready || chat;
  if (ready && !chat) {
    chatNotice.textContent = `${name} is a base model without a chat template, so it cannot chat. It continues text instead: type the beginning of a text and it writes what follows (the system prompt is not used).`;
    sumNotice.textContent = `${name} is a base model without a chat template: summaries need an instruction-tuned model. Load SmolLM2 135M Instruct to summarize.`;
  }
  $("chat-input").disabled = !ready;
  $("send-button").disabled = !ready;
  $("chat-input").placeholder = ready && !chat ? "Beginning of a text to continue (Enter runs, Escape stops)" : "Message (Enter sends, Shift+Enter new line, Escape stops)";
  $("summarize-button").disabled = !chat;
}

// ---------------------------------------------------------------------------------------------
// Chat

function addMessage(role, text) {
  const li = document.createElement("li");
  li.className = `message ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : role === "assistant" ? "Model" : "Note";
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text; // the user's own text is shown as typed, never as HTML
  li.append(who, body);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return body;
}

/** Re-renders streamed Markdown at most once per frame. */
function renderer(el, opts) {
  let pending = null;
  return {
    update(text) {
      if (pending === null) requestAnimationFrame(() => {
        renderOutput(el, pending, opts);
        pending = null;
        el.parentElement?.scrollIntoView({ block: "end" });
      });
      pending = text;
    },
    final(text) {
      pending = text; // a frame still queued renders the same final text
      renderOutput(el, text, opts);
    },
  };
}

function chatParams() {
  const num = (id, lo, hi, dflt) => {
    const v = Number($(id).value);
    return Number.isFinite(v) && $(id).value !== "" ? Math.min(hi, Math.max(lo, v)) : dflt;
  };
  return { temperature: num("temperature", 0, 2, 0.7), max_tokens: Math.round(num("max-tokens", 1, 2048, 256)) };
}

async function send() {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || state.chatAbort || !state.engine) return;
  input.value = "";
  const engine = state.engine;
  const chatMode = engine.model.has_chat_template;
  addMessage("user", text);
  const body = addMessage("assistant", "");
  body.setAttribute("aria-busy", "true");
  const view = renderer(body, { markdown: chatMode });
  const ac = new AbortController();
  state.chatAbort = ac;
  setChatBusy(true);
  const { temperature, max_tokens } = chatParams();
  const t0 = performance.now();
  let first = 0;
  let out = "";
  let usage = null;
  let finish = null;
  const onText = (d) => {
    if (!first) first = performance.now();
    out += d;
    view.update(out);
  };
  try {
    if (chatMode) {
      const system = $("system-prompt").value.trim();
      state.messages.push({ role: "user", content: text });
      const messages = system ? [{ role: "system", content: system }, ...state.messages] : [...state.messages];
      const stream = await engine.chat.completions.create({ messages, stream: true, temperature, max_tokens, signal: ac.signal });
      for await (const chunk of stream) {
        const d = chunk.choices[0]?.delta?.content;
        if (d) onText(d);
        if (chunk.usage) {
          usage = chunk.usage;
          finish = chunk.choices[0].finish_reason;
        }
      }
    } else {
      const r = await engine.complete(text, { temperature, max_tokens, signal: ac.signal, onDelta: onText });
      usage = { completion_tokens: r.usage.completion_tokens, prompt_tokens: r.usage.prompt_tokens, prompt_tokens_details: { cached_tokens: r.usage.cached_tokens } };
      finish = r.finish_reason;
    }
    view.final(out);
    if (chatMode) state.messages.push({ role: "assistant", content: out });
    const end = performance.now();
    const n = usage?.completion_tokens ?? 0;
    const rate = n > 1 && first ? ((n - 1) / ((end - first) / 1000)).toFixed(1) : "–";
    $("chat-stats").textContent =
      `${n} tokens · ${rate} tok/s · first token after ${first ? Math.round(first - t0) : "–"} ms · ` +
      `${usage?.prompt_tokens ?? 0} prompt tokens (${usage?.prompt_tokens_details?.cached_tokens ?? 0} reused)` +
      (finish === "length" ? " · reached max tokens" : "");
  } catch (e) {
    view.final(out);
    if (e.code === "ABORTED") {
      // Keep the partial answer in the conversation, so the next turn follows on from it.
      if (chatMode) state.messages.push({ role: "assistant", content: out });
      const note = document.createElement("p");
      note.className = "stopped";
      note.textContent = "(stopped)";
      body.append(note);
      $("chat-stats").textContent = "Stopped.";
    } else {
      if (chatMode && state.messages.at(-1)?.role === "user") state.messages.pop();
      body.textContent = `Error: ${e.message}${e.code ? ` (${e.code})` : ""}`;
      body.parentElement.classList.add("error");
    }
  } finally {
    body.removeAttribute("aria-busy");
    state.chatAbort = null;
    setChatBusy(false);
    input.focus();
  }
}

function setChatBusy(busy) {
  $("send-button").disabled = busy || !state.engine;
  $("stop-button").disabled = !busy;
}

function newChat() {
  state.chatAbort?.abort();
  state.messages = [];
  $("messages").replaceChildren();
  $("chat-stats").textContent = "";
  state.engine?.reset().catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// Summarize

/** Plain text of an HTML document (parsed inertly: nothing in it runs or loads). */
function htmlToText(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  doc.querySelectorAll("script, style, noscript, template, nav, footer").forEach((el) => el.remove());
  doc.querySelectorAll("br").forEach((el) => el.replaceWith("\n"));
  doc.querySelectorAll("p, div, li, h1, h2, h3, h4, h5, h6, tr, pre, blockquote, section, article").forEach((el) => el.append("\n\n"));
  return (doc.body?.textContent ?? "").replace(/[ \t]+/g, " ").replace(/\n\s*\n\s*/g, "\n\n").trim();
}

async function openFile(file) {
  const text = await file.text();
  const isHtml = /\.html?$/i.test(file.name) || file.type === "text/html";
  $("doc-input").value = isHtml ? htmlToText(text) : text;
  $("summarize-progress").textContent = `Opened ${file.name} (${formatBytes(file.size)}).`;
}

async function summarize() {
  const text = $("doc-input").value.trim();
  const progress = $("summarize-progress");
  if (!state.engine || state.summaryAbort) return;
  if (!text) {
    progress.textContent = "Paste a text or open a file first.";
    return;
  }
  const opts = { type: $("sum-type").value, length: $("sum-length").value, format: $("sum-format").value };
  const out = $("summary");
  const view = renderer(out, { markdown: opts.format === "markdown" });
  const ac = new AbortController();
  state.summaryAbort = ac;
  $("summarize-button").disabled = true;
  $("summarize-stop").disabled = false;
  out.replaceChildren();
  out.setAttribute("aria-busy", "true");
  const t0 = performance.now();
  let summary = "";
  let summarizer = null;
  try {
    summarizer = await state.engine.summarizer({ ...opts, signal: ac.signal });
    const tokens = await summarizer.measureInputUsage(text);
    const long = tokens > summarizer.inputQuota;
    progress.textContent = `${tokens} tokens` + (long ? `, more than one pass takes (${summarizer.inputQuota}): summarizing it in parts first.` : ".");
    const onChunkProgress = (p) => {
      progress.textContent = `${tokens} tokens, in parts: ${p.round === 0 ? "" : `reduce round ${p.round}, `}part ${p.done} of ${p.total} summarized.`;
    };
    for await (const d of summarizer.summarizeStreaming(text, { signal: ac.signal, onChunkProgress })) {
      summary += d;
      view.update(summary);
    }
    view.final(summary.trim());
    progress.textContent = `Summarized ${tokens} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s${long ? " (in parts)" : ""}.`;
  } catch (e) {
    view.final(summary);
    progress.textContent = e.code === "ABORTED" ? "Stopped." : `Could not summarize: ${e.message}${e.code ? ` (${e.code})` : ""}`;
  } finally {
    summarizer?.destroy();
    out.removeAttribute("aria-busy");
    state.summaryAbort = null;
    $("summarize-button").disabled = !state.engine?.model.has_chat_template;
    $("summarize-stop").disabled = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring: tabs, keyboard, drag and drop, service worker

function stopAll() {
  state.chatAbort?.abort();
  state.summaryAbort?.abort();
}

function selectTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
}

function wire() {
  $("model-select").addEventListener("change", refreshModels);
  $("load-button").addEventListener("click", loadModel);
  $("delete-button").addEventListener("click", deleteModel);
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("stop-button").addEventListener("click", () => state.chatAbort?.abort());
  $("new-chat-button").addEventListener("click", newChat);
  $("summarize-button").addEventListener("click", summarize);
  $("summarize-stop").addEventListener("click", () => state.summaryAbort?.abort());
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (state.chatAbort || state.summaryAbort) stopAll();
    else state.loadAbort?.abort();
  });
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const t of tabs) {
    t.addEventListener("click", () => selectTab(t));
    t.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(t) + step + tabs.length) % tabs.length];
      selectTab(next);
      next.focus();
    });
  }
  const doc = $("doc-input");
  doc.addEventListener("dragover", (e) => {
    e.preventDefault();
    doc.classList.add("dragging");
  });
  doc.addEventListener("dragleave", () => doc.classList.remove("dragging"));
  doc.addEventListener("drop", (e) => {
    doc.classList.remove("dragging");
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    e.preventDefault();
    openFile(file);
  });
  $("doc-file").addEventListener("change", (e) => {
    const file = e.target.files?.[0];
    if (file) openFile(file);
  });
}

async function start() {
  wire();
  await refreshModels();
  const probe = await probeWebGpu();
  $("backend-status").textContent = probe.ok && !probe.software ? "WebGPU: an adapter is available; Auto tries it first." : `${probe.reason}; Auto runs on the CPU (WebAssembly).`;
  if ("serviceWorker" in navigator && !navigator.serviceWorker.controller) {
    // The app shell (HTML, JS, wasm) works offline; the weights are in the model store. Once a
    // worker controls the page, the browser's own update check on navigation keeps it fresh.
    navigator.serviceWorker.register("sw.js").catch((e) => {
      $("backend-status").textContent += ` (Offline app shell unavailable: ${e.message})`;
    });
  }
}

start();
