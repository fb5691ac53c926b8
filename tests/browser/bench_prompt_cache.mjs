// Chat time to first token with a ~1,000-token system prompt on a later page load, with and
// without the persisted prompt cache (issue 17). Not a test: no assertions, prints a table row.
//   node tests/browser/bench_prompt_cache.mjs [MODEL_ID] [REPS]
// Each rep is a page reload (a fresh realm: a new Worker and wasm instance), a warm load from
// the store and one chat (max_tokens 1). "cache" loads after an entry was stored once; "no cache"
// loads without promptCache. Runs alternate, medians reported; the default (baseline) build.
import { launchBrowser, startTestServer, openPage } from "./harness.mjs";

const [model = "smollm2-135m-instruct-q4_1", reps = "3"] = process.argv.slice(2);
const RULES = [
  "Employees accrue two days of paid leave per month of service, up to a maximum of thirty days carried into the next year.",
  "Requests for leave longer than five consecutive days must be submitted to the line manager at least four weeks in advance.",
  "Sick leave requires a medical certificate from the third day of absence onwards, sent to the human resources office.",
  "Remote work is allowed up to three days per week, provided the team's core hours from ten to three are respected.",
  "Travel expenses are reimbursed within thirty days on presentation of original receipts and an approved travel request.",
  "The office is closed on public holidays; staff required to work on those days receive a compensatory day off.",
  "Training budgets of up to one thousand two hundred euros per year can be used for courses related to the employee's role.",
  "Equipment such as laptops and phones remains company property and must be returned on the last working day.",
];
let SYSTEM = "You are the HR assistant of a mid-sized company. Answer briefly, citing the rule you rely on.\n";
for (let i = 0; SYSTEM.length < 4800; i++) SYSTEM += `Rule ${i + 1}. ${RULES[i % RULES.length]}\n`;

const srv = await startTestServer();
const b = await launchBrowser();
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
try {
  const page = await openPage(b.context, srv);
  const run = async (promptCache) => {
    await page.reload();
    return page.evaluate(async ({ SYSTEM, promptCache, model }) => {
      const H = await import("/dist/index.js");
      const e = await H.Engine.load(model, { backend: "cpu", promptCache });
      const t0 = performance.now();
      const r = await e.chat.completions.create({ messages: [{ role: "system", content: SYSTEM }, { role: "user", content: "How many remote days are allowed?" }], max_tokens: 1, temperature: 0 });
      const ttft = performance.now() - t0;
      await e.unload();
      return { ttft, prompt: r.usage.prompt_tokens, cached: r.usage.prompt_tokens_details.cached_tokens, entries: await H.listPromptCache() };
    }, { SYSTEM, promptCache, model });
  };
  const store = await run(true);
  const out = { cache: [], none: [] };
  let last;
  for (let i = 0; i < Number(reps); i++) {
    out.none.push((await run(false)).ttft);
    last = await run(true);
    out.cache.push(last.ttft);
  }
  const bytes = store.entries[0]?.bytes ?? 0;
  console.log(`| ${model} | ${last.prompt} | ${last.cached} | ${(bytes / 2 ** 20).toFixed(1)} | ${median(out.none).toFixed(0)} | ${median(out.cache).toFixed(0)} | ${(median(out.none) / median(out.cache)).toFixed(1)}x |`);
  console.log(`# runs (ms): no cache ${out.none.map((x) => x.toFixed(0)).join(", ")}; cache ${out.cache.map((x) => x.toFixed(0)).join(", ")}; first load (stores the entry) ${store.ttft.toFixed(0)}`);
} finally {
  await b.close();
  await srv.close();
}
process.exit(0);
