// "Summarize this page" for any document: the model runs in this browser, the text never leaves it.
import { Engine } from "../dist/index.js";
const article = document.querySelector("article") ?? document.body;
const button = Object.assign(document.createElement("button"), { type: "button", textContent: "Summarize this page" });
const out = Object.assign(document.createElement("p"), { className: "hearth-summary", ariaLive: "polite" });
let engine; // loaded on the first click: downloaded once, then from the browser's storage
button.addEventListener("click", async () => {
  button.disabled = true;
  try {
    engine ??= await Engine.load("smollm2-135m-instruct-q4_1", { onProgress: (p) => (out.textContent = `Loading the model… ${Math.round((100 * p.loaded) / p.total)}%`) });
    const summarizer = await engine.summarizer({ type: "tldr", length: "short", format: "plain-text" });
    out.textContent = "";
    for await (const text of summarizer.summarizeStreaming(article.innerText)) out.textContent += text;
  } catch (e) {
    out.textContent = `Could not summarize: ${e.message}`;
  }
  button.disabled = false;
});
article.before(button, out);
