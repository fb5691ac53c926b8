/**
 * Text handling of the Summarizer that needs no model: sentence splitting, salient-sentence
 * selection (extractive scoring), and the parsing that forces a model's reply into the requested
 * shape (bullets, whole sentences, a headline).
 */

/** Words before a period that do not end a sentence. */
const ABBREVIATIONS = new Set(
  "mr mrs ms dr prof st jr sr vs etc inc ltd co corp gen gov sen rep lt col capt sgt no nos fig jan feb mar apr jun jul aug sep sept oct nov dec mt ft approx dept est vol rev hon"
    .split(" "),
);

/** {@link overlap} from which a line repeats an earlier one. */
const REPEAT = 0.7;

/** Words of one bullet: longer ones keep their leading whole sentences up to this. */
const MAX_ITEM_WORDS = 40;

const TERMINAL = /[.!?…](?:["'”’)\]]*)$/;

/** Whether `s` ends like a finished sentence (terminal punctuation, maybe closing quotes). */
export function endsSentence(s: string): boolean {
  return TERMINAL.test(s.trimEnd());
}

/**
 * Splits text into sentences: after `.`, `!`, `?` or `…` (plus closing quotes) followed by
 * whitespace and not after a common abbreviation, an initial or a lowercase continuation; and at
 * line breaks. Each sentence is trimmed; empty ones are dropped.
 */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\n+/)) {
    let start = 0;
    const re = /[.!?…]+["'”’)\]]*(\s+)/g;
    for (let m = re.exec(line); m; m = re.exec(line)) {
      const end = m.index + m[0].length - m[1]!.length;
      const next = line[m.index + m[0].length] ?? "";
      if (/^[a-z]/.test(next) || (m[0][0] === "." && !isBoundary(line.slice(start, m.index)))) continue; // "U.S. officials", '"Wow!" she said'
      const s = line.slice(start, end).trim();
      if (s) out.push(s);
      start = m.index + m[0].length;
    }
    const rest = line.slice(start).trim();
    if (rest) out.push(rest);
  }
  return out;
}

function isBoundary(before: string): boolean {
  const word = /([A-Za-z.]+)$/.exec(before)?.[1] ?? "";
  if (/^[A-Z]$/.test(word)) return false; // an initial: "J. Smith"
  if (/^(?:[A-Za-z]\.)+[A-Za-z]$/.test(word)) return false; // "U.S", "e.g"
  return !ABBREVIATIONS.has(word.toLowerCase());
}

const STOPWORDS = new Set(
  ("a an the and or but if of to in on at by for with from as is are was were be been being it its this that these those he she they them his her their " +
    "we you i me my our your not no so than then there here who whom which what when where why how all any some can could would should will may might " +
    "must do does did has have had after before also said says about into over up down out more most very just one two new")
    .split(" "),
);

/** Lowercase content words of `s` (stop words and one-letter words dropped). */
export function contentWords(s: string): string[] {
  return (s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => w.length > 1 && !STOPWORDS.has(w));
}

/** Crude stem for matching a summary's words against its source ("apologised" ~ "apologized"). */
const stem = (w: string) => w.slice(0, 5);

/**
 * The content-word stems of a source text, for {@link supported}: a summary line whose words
 * mostly do not occur in the source ("This is a short summary of the main point.") is dropped.
 */
export function sourceWords(text: string): Set<string> {
  return new Set(contentWords(text).map(stem));
}

/** Whether at least `share` of `line`'s content words occur in the source. */
export function supported(line: string, source: Set<string> | null, share = 0.4): boolean {
  if (!source) return true;
  const ws = contentWords(line);
  if (!ws.length) return false;
  return ws.filter((w) => source.has(stem(w))).length >= share * ws.length;
}

/** At most `maxWords` words of whole sentences (always the first sentence, however long). */
export function capWords(text: string, maxWords: number): string {
  const sentences = splitSentences(text);
  let out = sentences[0] ?? "";
  let n = out.split(" ").length;
  for (const s of sentences.slice(1)) {
    n += s.split(" ").length;
    if (n > maxWords) break;
    out += ` ${s}`;
  }
  return out;
}

/**
 * How much of the shorter text's content words the other one has, in [0, 1] (the overlap
 * coefficient): a line that restates part of an earlier, longer line counts as a repeat.
 */
export function overlap(a: string, b: string): number {
  const A = new Set(contentWords(a));
  const B = new Set(contentWords(b));
  if (!A.size || !B.size) return 0;
  let n = 0;
  for (const w of A) if (B.has(w)) n++;
  return n / Math.min(A.size, B.size);
}

/**
 * Salience of each sentence in [0, ~2]: how central its words are to the whole text (mean log
 * frequency of its content words in the text, scaled to the best sentence), plus a position prior
 * (pages and news put their point first), plus a little for numbers and names. Very short and
 * very long sentences score lower.
 */
export function scoreSentences(sentences: string[]): number[] {
  const tf = new Map<string, number>();
  const words = sentences.map((s) => contentWords(s));
  for (const ws of words) for (const w of new Set(ws)) tf.set(w, (tf.get(w) ?? 0) + 1);
  const central = words.map((ws) => {
    const uniq = [...new Set(ws)];
    if (!uniq.length) return 0;
    let sum = 0;
    for (const w of uniq) sum += Math.log(tf.get(w) ?? 1);
    return sum / Math.sqrt(uniq.length + 4);
  });
  const top = Math.max(1e-9, ...central);
  return sentences.map((s, i) => {
    const n = s.split(/\s+/).length;
    const lengthFactor = n < 6 ? 0.4 : n > 60 ? 0.6 : 1;
    const facts = /\d/.test(s) ? 0.1 : 0;
    const names = /\s[A-Z][a-z]+/.test(s) ? 0.05 : 0;
    return lengthFactor * (central[i]! / top + 0.8 / Math.sqrt(1 + i) + facts + names);
  });
}

/**
 * The most salient sentences whose token counts (`tokens[i]` for `sentences[i]`) fit `budget`,
 * in their original order. Always keeps at least the best one.
 */
export function selectSalient(sentences: string[], tokens: number[], budget: number): number[] {
  const scores = scoreSentences(sentences);
  const order = sentences.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const keep: number[] = [];
  let used = 0;
  for (const i of order) {
    const t = (tokens[i] ?? 0) + 1;
    if (keep.length && used + t > budget) continue;
    keep.push(i);
    used += t;
  }
  return keep.sort((a, b) => a - b);
}

const PREAMBLE = /^(?:sure|okay|ok|certainly|here(?:'s| is| are)|below|the (?:key|main|most important)|key (?:points|facts)|main points|important facts|summary|in summary|to summarize|tl;?dr|facts|bullet|headline|title)\b/i;

/** Strips list markers, emphasis and labels from one line of model output. */
export function cleanLine(line: string): string {
  return line
    .replace(/^\s*(?:[-*•·–—+]|\d{1,2}[.)]|\(\d{1,2}\)|#{1,6})\s*/, "")
    .replace(/\*\*|__|`/g, "")
    .replace(/^(?:key )?(?:point|fact|bullet)\s*\d*\s*:\s*/i, "")
    .replace(/\s+/g, " ")
    .trim();
}

/** Whether a cleaned line is a preamble or heading ("Here are the key points:"), not content. */
export function isPreamble(line: string): boolean {
  if (/:$/.test(line)) return true;
  return PREAMBLE.test(line) && line.split(" ").length < 14 && !/\d/.test(line);
}

/** Ends `s` with a period when it has no terminal punctuation (it ended at a line break). */
export function closeSentence(s: string): string {
  // "hepatitis A ." (news corpora put a space before punctuation) → "hepatitis A."
  const t = s.trim().replace(/\s+([.,;:!?])/g, "$1").replace(/[,;:–—-]+$/, "").trim();
  return endsSentence(t) ? t : `${t}.`;
}

/**
 * The finished part of a reply that was cut off (by the token budget): everything up to its
 * last sentence end, or "" when no sentence finished.
 */
export function trimToSentenceEnd(text: string): string {
  const sentences = splitSentences(text);
  while (sentences.length && !endsSentence(sentences.at(-1)!)) sentences.pop();
  return sentences.join(" ");
}

/**
 * Collects the items of a bullet list as a model writes them: `push()` complete lines,
 * `items` holds the accepted ones (cleaned, closed, deduplicated; preambles and fragments
 * skipped; a long multi-sentence line becomes one item per sentence).
 */
export class ItemCollector {
  readonly items: string[] = [];
  /** `source`: the content words of the summarized text (see {@link sourceWords}); null: no check. */
  constructor(
    private readonly max: number,
    private readonly source: Set<string> | null = null,
  ) {}

  get full(): boolean {
    return this.items.length >= this.max;
  }

  /** Adds one complete line of output; returns the items it added. */
  push(line: string): string[] {
    const c = cleanLine(line);
    if (!c || isPreamble(c)) return [];
    const sentences = splitSentences(c);
    const parts = sentences.length > 1 && c.split(" ").length > 30 ? sentences : [c];
    const added: string[] = [];
    for (const p of parts) if (this.add(p)) added.push(this.items.at(-1)!);
    return added;
  }

  /** Adds an item unless it is a fragment, a duplicate, unsupported by the source, or the list is full. */
  add(text: string): boolean {
    if (this.full) return false;
    const t = closeSentence(capWords(text, MAX_ITEM_WORDS));
    if (t.split(" ").length < 3 || !supported(t, this.source)) return false;
    if (this.items.some((x) => overlap(x, t) >= REPEAT)) return false;
    this.items.push(t);
    return true;
  }
}

/**
 * Collects whole sentences of a one-paragraph reply: `push()` text as it streams, `take()`
 * returns the sentences finished since the last call (a sentence is finished once text follows
 * its end). Preamble lines, list markers and duplicates are skipped.
 */
export class SentenceCollector {
  readonly sentences: string[] = [];
  private buf = "";
  /** `source`: as for {@link ItemCollector}. */
  constructor(
    private readonly max: number,
    private readonly source: Set<string> | null = null,
  ) {}

  get full(): boolean {
    return this.sentences.length >= this.max;
  }

  /** Adds streamed text; returns the sentences it finished. */
  push(delta: string): string[] {
    this.buf += delta;
    const parts = splitSentences(this.buf);
    // The last piece may still grow, unless the buffer ends with a line break after it.
    const open = /\n\s*$/.test(this.buf) ? 0 : 1;
    const done = parts.slice(0, Math.max(0, parts.length - open));
    if (!done.length) return [];
    const last = done.at(-1)!;
    this.buf = this.buf.slice(this.buf.lastIndexOf(last) + last.length);
    return done.flatMap((s) => this.accept(s, true));
  }

  /** The end of the reply: `cut` when it stopped at the token budget (an open sentence is dropped). */
  finish(cut: boolean): string[] {
    const rest = this.buf.trim();
    this.buf = "";
    if (!rest) return [];
    if (cut) {
      const whole = trimToSentenceEnd(rest);
      return whole ? splitSentences(whole).flatMap((s) => this.accept(s, false)) : [];
    }
    return splitSentences(rest).flatMap((s) => this.accept(s, true));
  }

  private accept(s: string, close: boolean): string[] {
    if (this.full) return [];
    const c = cleanLine(s);
    if (!c || isPreamble(c) || c.split(" ").length < 3 || !supported(c, this.source)) return [];
    if (!close && !endsSentence(c)) return [];
    const t = closeSentence(c);
    if (this.sentences.some((x) => overlap(x, t) >= REPEAT)) return [];
    this.sentences.push(t);
    return [t];
  }
}

/** A headline from a reply: its first content line, without markers or quotes, at most `maxWords` words. */
export function shapeHeadline(reply: string, maxWords: number): string {
  for (const line of reply.split("\n")) {
    let c = cleanLine(line).replace(/^(?:headline|title)\s*:\s*/i, "");
    if (!c || /:$/.test(c)) continue;
    c = c.replace(/^["'“‘]+|["'”’]+$/g, "").trim();
    const words = c.split(" ");
    if (words.length > maxWords) c = words.slice(0, maxWords).join(" ");
    return c.replace(/[.,;:–—-]+$/, "").trim();
  }
  return "";
}
