#!/usr/bin/env python3
"""Structured output benchmarks (issue 18), part of `make bench` and runnable alone.

  native  — `hearth bench --prompt P --json-schema F|--regex R` per case of
            bench/structured/schemas.json: greedy constrained decoding vs the same tokens
            unconstrained (tok/s, medians over --reps after a warm-up), grammar ms per token,
            ms per full-vocabulary mask, compile ms. Both runs in one process, back to back.
  browser — tests/browser/bench_structured.mjs compile: headless Chromium, baseline wasm build,
            CPU, one thread: compile ms of each schema (first, then again), the token trie
            (once per engine), and constrained vs unconstrained decode tok/s of one completion.
  tools   — tests/browser/bench_structured.mjs tools: the 20 prompts of bench/structured/tools.json
            (5 tools, tool_choice "auto" and "required", parallel_tool_calls false, greedy, 48 tokens) per registry model in models/cache: right tool,
            arguments valid for its schema, arguments equal to the expected ones.

usage: bench/structured.py [--only native,browser,tools] [--models ID,...] [--reps 5] [--tg 256]
                           [--browser-reps 3] [--browser-tg 64] [--hearth target/release/hearth]
                           [--out FILE.json]
Writes bench/results/structured-<date>-<host>.{json,md}; prints the Markdown.
The machine is shared: absolute speeds are noisy; the ratios compare runs made back to back.
"""
import argparse
import datetime
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = json.loads((REPO / "bench/structured/schemas.json").read_text())["cases"]
SUPPORTED_ARCHS = {"llama", "gemma3", "qwen2"}


def registry():
    reg = tomllib.loads((REPO / "models/registry.toml").read_text())
    models = [m for m in reg["model"] if m.get("architecture") in SUPPORTED_ARCHS and (REPO / "models/cache" / m["file"]).exists()]
    models.sort(key=lambda m: m["id"] != reg["default"])  # the default first
    return reg["default"], models


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def native_case(hearth, model, case, reps, tg, cap):
    """One `hearth bench` constrained run; the figures it prints."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        if "json_schema" in case:
            json.dump(case["json_schema"], f)
            flag = ["--json-schema", f.name]
        else:
            flag = ["--regex", case["regex"]]
    cmd = [hearth, "bench", "--model", model, "--prompt", case["prompt"], *flag, "--reps", str(reps), "--tg", str(tg)]
    t = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=cap, env={**os.environ, "RAYON_NUM_THREADS": "1"})
    os.unlink(f.name)
    if p.returncode != 0:
        raise RuntimeError(f"hearth bench exited {p.returncode}: {p.stderr.strip()[-400:]}")
    out = p.stdout
    num = lambda k: float(re.search(rf"^{k}: ([\d.]+)", out, re.M).group(1))
    samples = lambda k: [float(x) for x in re.search(rf"^{k} samples: (.*)$", out, re.M).group(1).split()]
    m = re.search(r"^output tokens: (\d+) \((\d+) forced, (\d+) masks\), finish (\w+)", out, re.M)
    mask = re.search(r"^per mask: ([\d.]+) ms", out, re.M)
    r = {"case": case["name"], "constrained_tps": num("constrained"), "unconstrained_tps": num("unconstrained"),
         "constrained_samples": samples("constrained"), "unconstrained_samples": samples("unconstrained"),
         "grammar_ms_per_token": float(re.search(r"^grammar per token: ([\d.]+)", out, re.M).group(1)),
         "mask_ms": float(mask.group(1)) if mask else None, "compile_ms": float(re.search(r"^compile: ([\d.]+)", out, re.M).group(1)),
         "vocab_ms": float(re.search(r"^vocab .*: ([\d.]+) ms", out, re.M).group(1)),
         "tokens": int(m.group(1)), "forced": int(m.group(2)), "masks": int(m.group(3)), "finish": m.group(4),
         "output": re.search(r"^output: (.*)$", out, re.M).group(1), "wall_s": time.time() - t}
    r["ratio"] = r["constrained_tps"] / r["unconstrained_tps"]
    return r


def browser(mode, model, args, cap):
    cmd = ["node", "tests/browser/bench_structured.mjs", mode, "--model", model, *args, "--timeout", str(cap)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=cap + 60)
    if p.returncode != 0:
        raise RuntimeError(f"bench_structured.mjs {mode} exited {p.returncode}: {p.stderr.strip()[-600:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def attempt(fn, *a):
    try:
        return fn(*a)
    except Exception as e:  # recorded, not fatal
        print(f"  error: {e}", file=sys.stderr)
        return {"error": str(e)[:600]}


def fmt(x, spec=".1f"):
    return "–" if x is None else format(x, spec)


def markdown(res):
    L = [f"## Structured output ({res['date']}, {res['host']}, {res['nproc']} cores, load {res['loadavg_before'][0]:.1f})", ""]
    if "native" in res:
        L += ["### Constrained vs unconstrained decode, native CLI (`hearth bench --json-schema/--regex`)", "",
              f"Greedy, 1 thread, CPU; the same tokens both ways (the constrained output, then those tokens fed back one per step "
              f"as unconstrained greedy decoding runs); medians of {res['flags']['reps']} reps after a warm-up, back to back in one process. "
              "tok/s counts every output token after the prompt's prefill (the constrained run feeds forced tokens in batches: part of what is measured).", "",
              "| model | case | tokens (forced) | constrained tok/s | unconstrained tok/s | ratio | grammar ms/token | ms/mask (masks) | compile ms |",
              "|---|---|---|---|---|---|---|---|---|"]
        for model, rows in res["native"].items():
            for r in rows:
                if "error" in r:
                    L.append(f"| {model} | {r.get('case', '?')} | error: {r['error'][:120]} |||||||")
                    continue
                L.append(f"| {model} | {r['case']} | {r['tokens']} ({r['forced']}) | {r['constrained_tps']:.1f} | {r['unconstrained_tps']:.1f} | "
                         f"**{r['ratio']:.2f}x** | {r['grammar_ms_per_token']:.3f} | {fmt(r['mask_ms'], '.3f')} ({r['masks']}) | {r['compile_ms']:.2f} |")
        L.append("")
    if "browser" in res:
        b = res["browser"]
        L += ["### In Chromium (baseline wasm build, CPU, 1 thread): schema compile time and decode", ""]
        if "error" in b:
            L += [f"error: {b['error']}", ""]
        else:
            L += [f"Model {b['model']}; the engine's own timings (`usage.constraint`, performance.now()). Token trie (first constrained request of an engine): "
                  f"**{fmt(b['rows'][0]['vocab_ms'])} ms**; built ahead by `engine.prepareConstraints()` on a second engine: {fmt(b.get('prepare_ms'))} ms, "
                  f"after which its first constrained request spent {fmt(b.get('vocab_ms_after_prepare'))} ms on it. First compile = the schema's first request (warm-up); again = median of {b['reps']} later requests. "
                  f"Decode: greedy completion of the case's prompt, constrained (K tokens, at most {b['tg']}) then unconstrained with max_tokens K, "
                  "back to back; (K-1) / (time after the first token).", "",
                  "| case | compile ms first | compile ms again | K (unconstrained) | constrained tok/s | unconstrained tok/s | ratio | grammar ms/token |",
                  "|---|---|---|---|---|---|---|---|"]
            for r in b["rows"]:
                c, u = med(r["constrained_tps"]), med(r["unconstrained_tps"])
                L.append(f"| {r['name']} | {r['first_compile_ms']:.1f} | {fmt(med(r['compile_ms']))} | {fmt(med(r['tokens']), '.0f')} ({fmt(med(r['unconstrained_tokens']), '.0f')}) | "
                         f"{fmt(c)} | {fmt(u)} | **{fmt(c / u if c and u else None, '.2f')}x** | {fmt(med(r['grammar_ms_per_token']), '.3f')} |")
            L.append("")
    if "tools" in res:
        L += ["### Tool-calling accuracy (OpenAI shape, 20 prompts, 5 tools, greedy, Chromium, baseline wasm build)", "",
              "Right tool: the expected function was called. Valid args: the call's arguments validate against that tool's JSON Schema (ajv). "
              "Args match: the expected arguments (strings case-insensitive). tool_choice \"auto\": the model decides whether to call; "
              "\"required\": a call is forced (the grammar allows only calls). parallel_tool_calls false, max_tokens "
              f"{res['flags']['tool_tokens']}. A model whose GGUF has no chat template cannot take tools (error row). bench/structured/tools.json.", "",
              "| model (tool_choice) | tool format | right tool | valid args | args match | no call | seconds |", "|---|---|---|---|---|---|---|"]
        for model, t in res["tools"].items():
            if "error" in t:
                L.append(f"| {model} | error: {t['error'][:160]} ||||||")
                continue
            n = t["n"]
            L.append(f"| {model} | {t.get('format', '?')} | {t['right_tool']}/{n} | {t['valid_args']}/{n} | {t['args_match']}/{n} | {t['no_call']} | {t['seconds']:.0f} |")
        L.append("")
    return "\n".join(L)


def tool_format(model_id):
    """Which tool prompt the model gets (tools.ts): Qwen's own `<tool_call>` template, else Hearth's generic one."""
    return "qwen <tool_call>" if "qwen" in model_id else "generic"


def run(a):
    default, models = registry()
    want = a.models.split(",") if a.models else None
    models = [m for m in models if not want or m["id"] in want]
    parts = a.only.split(",")
    now = datetime.datetime.now(datetime.timezone.utc)
    res = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "host": socket.gethostname(), "nproc": os.cpu_count(),
           "loadavg_before": [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]],
           "flags": {k: v for k, v in vars(a).items() if k != "out"}}
    if "native" in parts:
        res["native"] = {}
        for m in models if a.native_all else [m for m in models if m["id"] == default]:
            res["native"][m["id"]] = []
            for c in CASES:
                print(f"structured native: {m['id']} {c['name']}…", file=sys.stderr)
                res["native"][m["id"]].append({"case": c["name"], **attempt(native_case, a.hearth, m["id"], c, a.reps, a.tg, a.cap)})
    if "browser" in parts:
        print(f"structured browser: {default} compile + decode…", file=sys.stderr)
        res["browser"] = attempt(browser, "compile", default, ["--reps", str(a.browser_reps), "--tg", str(a.browser_tg)], a.browser_cap)
    if "tools" in parts:
        res["tools"] = {}
        for m in models:
            for choice in a.tool_choice.split(","):
                print(f"structured tools: {m['id']} tool_choice {choice} (20 prompts)…", file=sys.stderr)
                t = attempt(browser, "tools", m["id"], ["--max-tokens", str(a.tool_tokens), "--tool-choice", choice], a.browser_cap)
                res["tools"][f"{m['id']} ({choice})"] = {**t, "format": tool_format(m["id"]), "tool_choice": choice}
    res["loadavg_after"] = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    out = Path(a.out) if a.out else REPO / "bench/results" / f"structured-{now.strftime('%Y-%m-%d')}-{res['host']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    md = markdown(res)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    print(f"wrote {out} and .md", file=sys.stderr)
    return res


def add_args(ap):
    ap.add_argument("--only", default="native,browser,tools", help="parts, comma-separated: native, browser, tools")
    ap.add_argument("--models", default=None, help="registry ids (default: every supported one in models/cache)")
    ap.add_argument("--native-all", action="store_true", help="native part for every model (default: the registry default only)")
    ap.add_argument("--reps", type=int, default=5, help="native reps per case")
    ap.add_argument("--tg", type=int, default=256, help="native max tokens of a constrained output")
    ap.add_argument("--cap", type=int, default=600, help="seconds per native case")
    ap.add_argument("--browser-reps", type=int, default=3)
    ap.add_argument("--browser-tg", type=int, default=64)
    ap.add_argument("--browser-cap", type=int, default=1500, help="seconds per browser run")
    ap.add_argument("--tool-tokens", type=int, default=48, help="max_tokens per tool-calling prompt")
    ap.add_argument("--tool-choice", default="auto,required", help="tool_choice values, comma-separated")
    ap.add_argument("--hearth", default=str(REPO / "target/release/hearth"))
    ap.add_argument("--out", help="result JSON (default bench/results/structured-<date>-<host>.json; .md beside it)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(ap)
    run(ap.parse_args())
