// The consumer app every project under tests/consumers/ builds (copied in as its entry module):
// what a web developer writes after `npm install @hearth-ai/web`. Loads the default model on the
// CPU, chats once and streams the start of a summary, then leaves the outcome in
// `window.hearthResult` for the test. `?models=URL` is where the model file is served
// (the test's model server); `?threads=false` forces the single-thread build.
import { Engine } from "@hearth-ai/web";

const q = new URLSearchParams(location.search);
const TEXT =
  "The lighthouse on the northern cape was built in 1871 to guide fishing boats past the reef. " +
  "Its keeper, Ada, climbed the 120 steps every evening to light the lamp, and in the great storm of " +
  "1893 she kept it burning for three nights while the harbour's boats sheltered behind the point.";

async function run() {
  const opts = { backend: "cpu" };
  if (q.get("models")) opts.modelBaseUrl = q.get("models");
  if (q.get("threads") === "false") opts.threads = false;
  const engine = await Engine.load(undefined, opts);
  const chat = await engine.chat.completions.create({
    messages: [{ role: "user", content: "What is 2+2?" }],
    temperature: 0,
    max_tokens: 8,
  });
  const summarizer = await engine.summarizer({ type: "tldr", length: "short" });
  let summary = "";
  let chunks = 0;
  const reader = summarizer.summarizeStreaming(TEXT).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    summary += value;
    if (++chunks >= 12) {
      await reader.cancel();
      break;
    }
  }
  const model = engine.model;
  await engine.unload();
  return {
    isolated: globalThis.crossOriginIsolated === true,
    model: { id: model.id, backend: model.backend, wasmBuild: model.wasmBuild, threads: model.threads, threadsReason: model.threadsReason },
    chat: chat.choices[0].message.content,
    chatTokens: chat.usage.completion_tokens,
    summary,
  };
}

run().then(
  (r) => {
    window.hearthResult = { ok: true, ...r };
  },
  (e) => {
    window.hearthResult = { ok: false, code: e?.code, message: String(e?.message ?? e) };
  },
);
