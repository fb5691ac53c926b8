#!/usr/bin/env python3
"""`make bench-summary`: summary quality of the real Summarizer API on a JSONL file of
{id, article, highlights}, for each registry chat model present in models/cache/.

Runs tests/browser/bench_summary.mjs (headless Chromium, www/dist over the wasm engine) once per
model, then scores every output and writes bench/results/summary-<date>.json (top-level
`outputs`: {id, model, type, summary, ttft_ms, total_ms, ...}; `scores`) and a Markdown table
(bench/results/summary-<date>.md, also printed).

Scores, per model, prompt set and type (means over the articles):
- ROUGE-1/2/Lsum F-measure x100 against the highlights: Google's `rouge-score` package, stemming
  on; for Lsum every summary sentence (and bullet) is one line, the highlights keep their lines.
- Lead-3: the article's first three sentences (split after . ! ? and closing quotes), same scorer.
- format: key-points = every non-empty line is a list item ("- ", "* ", "+ ", "1. ") and there
  are exactly as many as the length asks for (3/5/7); tldr = one paragraph (no blank line, no
  list item or heading) of 1 to 1/3/5 sentences.
- length: key-points = the requested number of items, each at most 2 sentences and 45 words;
  tldr = at most 1/3/5 sentences and 40 words per sentence.
- cut: share of summaries whose last character is not sentence-final punctuation (mid-sentence).
- copied: share of the summary's sentences (bullets) found word for word in the article.
- faithful: share of the summary's numbers and capitalised words (not first in a sentence or
  bullet; "I" and a few sentence words skipped) that occur in the article. A heuristic stand-in
  for named entities; summaries with none are left out of the mean.
"""
import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SENTENCE_SPLIT = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'’”]))\s+")
ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
SIZES = {"key-points": {"short": 3, "medium": 5, "long": 7}, "tldr": {"short": 1, "medium": 3, "long": 5}}
SKIP_CAPS = {"I", "The", "A", "An", "This", "That", "It", "He", "She", "They", "We", "In", "On", "At", "But", "And", "Mr", "Mrs", "Ms", "Dr"}


def sentences(text):
    """Naive split (as for Lead-3): after . ! ? and closing quotes."""
    return [s for s in SENTENCE_SPLIT.split(text.strip()) if s.strip()]


NOT_AN_END = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Gov|Sen|Rep|No|vs|U\.S|U\.K)|\b[A-Z])\.$")


def count_sentences(text):
    """Sentences for the obedience checks: the naive split, re-joined after abbreviations and initials."""
    out = []
    for s in sentences(text):
        if out and NOT_AN_END.search(out[-1]):
            out[-1] += " " + s
        else:
            out.append(s)
    return len(out), out


def summary_lines(summary):
    """The summary as one sentence per line (list markers removed) for ROUGE-Lsum."""
    out = []
    for line in summary.splitlines():
        line = ITEM.sub("", line).strip().strip("#").strip()
        out.extend(sentences(line))
    return "\n".join(out)


def lead3(article):
    return "\n".join(sentences(article)[:3])


def format_ok(summary, type_, length):
    n = SIZES[type_][length]
    lines = [l for l in summary.splitlines() if l.strip()]
    if type_ == "key-points":
        return len(lines) == n and all(ITEM.match(l) for l in lines)
    if "\n\n" in summary.strip() or any(ITEM.match(l) or l.lstrip().startswith("#") for l in lines):
        return False
    return 1 <= count_sentences(" ".join(lines))[0] <= n


def length_ok(summary, type_, length):
    n = SIZES[type_][length]
    lines = [l for l in summary.splitlines() if l.strip()]
    if type_ == "key-points":
        items = [ITEM.sub("", l) for l in lines]
        return len(items) == n and all(count_sentences(i)[0] <= 2 and len(i.split()) <= 45 for i in items)
    s = count_sentences(" ".join(lines))[1]
    return 1 <= len(s) <= n and all(len(x.split()) <= 40 for x in s)


def cut_mid_sentence(summary):
    return not re.search(r"[.!?…][\"'’”)\]]*$", summary.strip())


def faithful(summary, article):
    """Share of the summary's numbers and non-initial capitalised words found in the article (None: none)."""
    keys = []
    for line in summary.splitlines():
        line = ITEM.sub("", line).strip()
        for s in sentences(line):
            words = re.findall(r"[\w’'.,$%-]+", s)
            for i, w in enumerate(words):
                w = w.strip(".,'’")
                if re.fullmatch(r"[$]?\d[\d,.]*%?", w):
                    keys.append(w.strip("$%").replace(",", ""))
                elif i > 0 and re.fullmatch(r"[A-Z][\w’'-]+", w) and w not in SKIP_CAPS:
                    keys.append(w.split("’")[0].split("'")[0])
    if not keys:
        return None
    art = article.replace(",", "")
    found = sum(1 for k in keys if re.search(r"(?<![\w])" + re.escape(k) + r"(?![\d])", art))
    return found / len(keys)


def norm(s):
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


def copied(summary, article):
    """Share of the summary's items/sentences that are word for word in the article (how extractive it is:
    small models copy, and the Summarizer fills a short list with the text's salient sentences)."""
    parts = [p for p in summary_lines(summary).splitlines() if len(p.split()) >= 4]
    if not parts:
        return None
    art = norm(article)
    return sum(1 for p in parts if norm(p) in art) / len(parts)


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def chat_models_present():
    reg = tomllib.loads((REPO / "models/registry.toml").read_text())
    return [m["id"] for m in reg["model"] if m.get("chat") and (REPO / "models/cache" / m["file"]).exists()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cnndm-dev-60.jsonl", help="JSONL of {id, article, highlights} (relative to the repository)")
    ap.add_argument("--models", default="", help="registry ids, comma-separated (default: every chat model in models/cache)")
    ap.add_argument("--types", default="key-points,tldr")
    ap.add_argument("--length", default="short", choices=["short", "medium", "long"])
    ap.add_argument("--prompts", default="small-model,legacy", help="prompt sets to run: small-model, legacy (the prompts before issue 22)")
    ap.add_argument("--limit", type=int, default=0, help="first N articles only (0: all)")
    ap.add_argument("--legacy-limit", type=int, default=0, help="the legacy prompts on the first N articles only (0: all); "
                    "the other prompt sets are then also scored on those N, for a like-for-like row")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: the single-thread wasm build)")
    ap.add_argument("--legacy-every", type=int, default=1, help="the legacy prompts on every K-th article only (a spread sample; "
                    "the other prompt sets are then also scored on those, for a like-for-like row)")
    ap.add_argument("--input-budget", type=int, default=0, help="the summarizer's inputBudget option (0: its default)")
    ap.add_argument("--context-size", type=int, default=0, help="the engine's contextSize (0: its default, 2048; 512 map-reduces most news articles)")
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    ap.add_argument("--rescore", default=None, help="score an existing result JSON again instead of running")
    args = ap.parse_args()

    data_path = (REPO / args.data).resolve()
    records = [json.loads(l) for l in data_path.read_text().splitlines() if l.strip()]
    if args.limit:
        records = records[: args.limit]
    by_id = {str(r["id"]): r for r in records}
    for i, r in enumerate(records):
        if not isinstance(r.get("article"), str) or not isinstance(r.get("highlights"), str):
            sys.exit(f"{data_path}:{i + 1}: needs string article and highlights")

    from rouge_score import rouge_scorer  # after the data check: a bad file fails fast

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)

    def rouge(ref, pred):
        s = scorer.score(ref, pred)
        return {k: 100 * v.fmeasure for k, v in s.items()}

    if args.rescore:
        prev = json.loads(Path(args.rescore).read_text())
        outputs, runs = prev["outputs"], prev.get("runs", {})
        stamp = Path(args.rescore).stem.removeprefix("summary-")
    else:
        models = [m for m in args.models.split(",") if m] or chat_models_present()
        if not models:
            sys.exit("no registry chat model in models/cache: run make models")
        outputs, runs = [], {}
        stamp = datetime.date.today().isoformat() + (f"-{args.tag}" if args.tag else "")
        tmp = REPO / "bench/results" / f".summary-raw-{stamp}.json"
        for m in models:
            cmd = ["node", str(REPO / "tests/browser/bench_summary.mjs"), "--model", m, "--data", str(data_path), "--out", str(tmp),
                   "--types", args.types, "--length", args.length, "--prompts", args.prompts, "--threads", str(args.threads)]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            if args.input_budget:
                cmd += ["--input-budget", str(args.input_budget)]
            if args.context_size:
                cmd += ["--context-size", str(args.context_size)]
            if args.legacy_every > 1:
                cmd += ["--legacy-every", str(args.legacy_every)]
            if args.legacy_limit:
                cmd += ["--legacy-limit", str(args.legacy_limit)]
            print(f"bench-summary: {m} on {len(records)} articles ({args.types}; {args.prompts})", file=sys.stderr)
            rc = subprocess.run(cmd).returncode
            raw = json.loads(tmp.read_text())
            tmp.unlink()
            runs[m] = {"info": raw["info"], "error": raw["error"], "wall_s": raw["wall_s"], "rc": rc}
            outputs.extend(raw["outputs"])

    # Lead-3 on exactly the articles summarized (all of them unless a run failed part-way).
    done_ids = {str(o["id"]) for o in outputs}
    records = [r for r in records if str(r["id"]) in done_ids] or records
    lead = [rouge(r["highlights"], lead3(r["article"])) for r in records]
    lead_by_id = {str(r["id"]): x for r, x in zip(records, lead)}
    scores = {"lead-3": {k: mean([x[k] for x in lead]) for k in ["rouge1", "rouge2", "rougeLsum"]} | {"n": len(lead)}}
    groups = {}
    for o in outputs:
        rec = by_id.get(str(o["id"]))
        if rec is None:
            continue
        r = rouge(rec["highlights"], summary_lines(o["summary"]))
        length = o.get("length", args.length)
        o["scores"] = {
            **r,
            "format_ok": format_ok(o["summary"], o["type"], length),
            "length_ok": length_ok(o["summary"], o["type"], length),
            "cut": cut_mid_sentence(o["summary"]),
            "faithful": faithful(o["summary"], rec["article"]),
            "copied": copied(o["summary"], rec["article"]),
            "words": len(o["summary"].split()),
        }
        groups.setdefault((o["model"], o.get("prompts", "small-model"), o["type"]), []).append(o)
    # Like-for-like rows: a prompt set run on fewer articles (--legacy-limit) against the others on the same ones.
    for (m, p, t), os_ in list(groups.items()):
        ids = {o["id"] for o in os_}
        for (m2, p2, t2), os2 in list(groups.items()):
            if (m2, t2) == (m, t) and p2 != p and "(" not in p2 and ids < {o["id"] for o in os2}:
                groups[(m, f"{p2} (same {len(ids)})", t)] = [o for o in os2 if o["id"] in ids]
    for (m, p, t), os_ in groups.items():
        sc = [o["scores"] for o in os_]
        scores[f"{m}/{p}/{t}"] = {
            "n": len(os_),
            "rouge1": mean([s["rouge1"] for s in sc]),
            "rouge2": mean([s["rouge2"] for s in sc]),
            "rougeLsum": mean([s["rougeLsum"] for s in sc]),
            "format": mean([float(s["format_ok"]) for s in sc]),
            "length": mean([float(s["length_ok"]) for s in sc]),
            "cut": mean([float(s["cut"]) for s in sc]),
            "faithful": mean([s["faithful"] for s in sc]),
            "copied": mean([s["copied"] for s in sc]),
            "lead3_rougeLsum_same_articles": mean([lead_by_id[str(o["id"])]["rougeLsum"] for o in os_ if str(o["id"]) in lead_by_id]),
            "words": mean([s["words"] for s in sc]),
            "ttft_ms_median": statistics.median(o["ttft_ms"] for o in os_),
            "total_ms_median": statistics.median(o["total_ms"] for o in os_),
        }

    out_dir = REPO / "bench/results"
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "data": str(args.data), "articles": len(records),
              "length": args.length, "runs": runs, "scores": scores, "outputs": outputs}
    (out_dir / f"summary-{stamp}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    md = table(scores, len(records), args.data)
    (out_dir / f"summary-{stamp}.md").write_text(md)
    print(md)
    print(f"bench-summary: wrote bench/results/summary-{stamp}.json and .md", file=sys.stderr)
    if any(r.get("error") for r in runs.values()):
        sys.exit(1)


def table(scores, n, data):
    pct = lambda x: "–" if x is None else f"{100 * x:.0f} %"
    num = lambda x: "–" if x is None else f"{x:.1f}"
    rows = [f"{n} articles of `{data}`, length `short`; ROUGE F x100 (rouge-score, stemming); format/length obedience, "
            "cut = ends mid-sentence, faithful = share of the summary's numbers and capitalised words found in the article, "
            "copied = share of its sentences found word for word in the article.\n",
            "| model | prompts | type | articles | R-1 | R-2 | R-Lsum | Lead-3 R-Lsum, same articles | format | length | cut | faithful | copied | words | TTFT (median) | total (median) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    l3 = scores["lead-3"]
    rows.append(f"| Lead-3 (extractive baseline) | – | – | {l3['n']} | {num(l3['rouge1'])} | {num(l3['rouge2'])} | {num(l3['rougeLsum'])} | {num(l3['rougeLsum'])} | – | – | – | 100 % | 100 % | – | – | – |")
    for key, s in sorted((k, v) for k, v in scores.items() if k != "lead-3"):
        m, p, t = key.split("/")
        rows.append(f"| {m} | {p} | {t} | {s['n']} | {num(s['rouge1'])} | {num(s['rouge2'])} | {num(s['rougeLsum'])} | {num(s['lead3_rougeLsum_same_articles'])} | {pct(s['format'])} | {pct(s['length'])} | "
                    f"{pct(s['cut'])} | {pct(s['faithful'])} | {pct(s['copied'])} | {s['words']:.0f} | {s['ttft_ms_median'] / 1000:.1f} s | {s['total_ms_median'] / 1000:.1f} s |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
