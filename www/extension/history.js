// The side panel's chat history, kept inside the model's context window: before each question
// the oldest question/answer pairs are dropped until the system prompt (with the page text),
// the history and room for the answer fit. Without it the chat failed with CONTEXT_OVERFLOW
// after about seven questions.

/**
 * The newest part of `history` (alternating user/assistant messages, ending with the new
 * question) that fits `engine`'s context together with `system` and `reserve` answer tokens.
 * The new question is always kept.
 */
export async function fitHistory(engine, system, history, { reserve }) {
  const window = engine.model.n_ctx;
  const fits = async (h) => (await engine.countTokens(await engine.renderChat([{ role: "system", content: system }, ...h]))) + reserve <= window;
  let h = history.slice();
  while (h.length > 1 && !(await fits(h))) {
    // Drop a whole turn (the question and its answer) so roles keep alternating.
    h = h.slice(h[0].role === "user" && h[1]?.role === "assistant" ? 2 : 1);
  }
  return h;
}
