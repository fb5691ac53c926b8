"""Rendering of a `make bench` result (bench/run.py's JSON) as Markdown tables and an SVG chart of
the ours / theirs ratios. Tolerates older result files (a single pp size, no long-prompt, memory
or multi-thread browser figures): what a file lacks shows as "—"."""
import statistics

# Hearth browser configuration → the wllama configuration it is compared with.
PEER = {"hearth-cpu": "wllama-cpu", "hearth-cpu-mt": "wllama-cpu-mt", "hearth-webgpu": "wllama-cpu"}


def peer_of(config, rows):
    """The row a configuration is compared with: Hearth WebGPU against wllama's WebGPU row when
    wllama really dispatched WebGPU work (`ran_on_webgpu`), else against wllama's CPU row."""
    w = rows.get("wllama-webgpu")
    if config == "hearth-webgpu" and w and w.get("ran_on_webgpu"):
        return "wllama-webgpu"
    return PEER.get(config, "")
HEADLINE_TARGET = 1.5  # issue 7: Hearth's best CPU-wasm decode vs wllama multi-thread
NATIVE_DECODE_TARGET = 0.8
WARM_TO_TOKEN_TARGET_MS = 1000  # warm load from the store + first token of a chat, default model


def med(v):
    if isinstance(v, list):
        v = [x for x in v if isinstance(x, (int, float))]
        return statistics.median(v) if v else None
    return v


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def fmt(v, d=1):
    return f"{v:.{d}f}" if isinstance(v, (int, float)) else "—"


def times(r):
    """A ratio as "1.23×", or "—"."""
    return f"{r:.2f}×" if isinstance(r, (int, float)) else "—"


def short(model_id):
    return model_id.split("-")[0]


def pp_sizes(n):
    """The pp sizes of a native entry: a list since pp512 joined, one int in older files."""
    p = n.get("pp_n", [])
    return p if isinstance(p, list) else [p]


def browser_rows(m):
    """{config: row} of the model's browser rows that did not fail."""
    return {r["config"]: r for r in m.get("browser", {}).get("rows", []) if "error" not in r}


def gpu_label(backend):
    if not backend:
        return "GPU"
    return "GPU: lavapipe (software)" if ("llvmpipe" in backend or "lavapipe" in backend) else f"GPU: {backend}"


def ratios(res):
    """[(label, ratio ours/theirs, target or None, in_chart)] for the chart and the table.
    Speeds are ours / theirs; load time and memory are theirs / ours: > 1 means Hearth is ahead."""
    out = []
    for m in res["models"]:
        s = short(m["id"])
        for t, n in m.get("native", {}).items():
            h, l = n.get("hearth", {}), n.get("llama.cpp", {})
            for k in [f"pp{p}" for p in pp_sizes(n)] + [f"tg{n['tg_n']}"]:
                target = NATIVE_DECODE_TARGET if k.startswith("tg") else None
                out.append((f"{s} native {k} {t}T", ratio(h.get(k), l.get(k)), target, True))
        rows = browser_rows(m)
        for ours in PEER:
            theirs = peer_of(ours, rows)
            o, w = rows.get(ours), rows.get(theirs)
            if not (o and w):
                continue
            pair = f"{s} {ours} vs {theirs}"
            out.append((f"{pair}: decode", ratio(med(o.get("decode_tps")), med(w.get("decode_tps"))), None, True))
            if ours == "hearth-webgpu":
                continue  # a tiny short-prompt run on SwiftShader: nothing else is comparable
            out.append((f"{pair}: long prefill", ratio(med(o.get("long_prefill_tps")), med(w.get("long_prefill_tps"))), None, True))
            out.append((f"{pair}: long decode", ratio(med(o.get("long_decode_tps")), med(w.get("long_decode_tps"))), None, True))
            out.append((f"{pair}: warm load", ratio(med(w.get("warm_ms")), med(o.get("warm_ms"))), None, False))
            out.append((f"{pair}: peak memory", ratio(w.get("peak_over_baseline_mib"), o.get("peak_over_baseline_mib")), None, True))
        best = [med(rows[c].get("decode_tps")) for c in ("hearth-cpu", "hearth-cpu-mt") if c in rows]
        best = [b for b in best if b is not None]
        if best and "wllama-cpu-mt" in rows:
            out.append((f"{s} best Hearth CPU-wasm decode vs wllama-cpu-mt", ratio(max(best), med(rows["wllama-cpu-mt"].get("decode_tps"))),
                        HEADLINE_TARGET, True))
    return out


def svg(res):
    rs = [(l, r) for l, r, _, chart in ratios(res) if r is not None and chart]
    W, row, left, right = 900, 24, 400, 60
    H = 60 + row * len(rs) + 44
    xmax = min(max([2.0] + [r for _, r in rs]) * 1.05, 3.2)  # larger ratios are clipped (labelled)
    x = lambda v: left + (W - left - right) * min(v, xmax) / xmax
    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">Hearth / peer (higher is better; 1 = parity) — {res["host"]}, {res["date"]}</text>']
    for i, (label, r) in enumerate(rs):
        y = 40 + i * row
        col = "#2a7" if r >= 1 else ("#e90" if r >= 0.8 else "#d33")
        p.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{label}</text>')
        p.append(f'<rect x="{left}" y="{y + 3}" width="{x(r) - left:.1f}" height="{row - 6}" fill="{col}"/>')
        p.append(f'<text x="{x(r) + 4:.1f}" y="{y + 15}">{r:.2f}×{" ▶" if r > xmax else ""}</text>')
    yb = 40 + row * len(rs)
    for v, dash in ((1.0, ""), (0.8, ' stroke-dasharray="4 3"'), (1.5, ' stroke-dasharray="4 3"')):
        p.append(f'<line x1="{x(v):.1f}" y1="34" x2="{x(v):.1f}" y2="{yb}" stroke="#333"{dash}/>')
        p.append(f'<text x="{x(v):.1f}" y="{yb + 14}" text-anchor="middle">{v}×</text>')
    p.append(f'<text x="10" y="{yb + 30}" font-size="11">Speed ratio = our tok/s / peer tok/s; memory ratio = peer peak / our peak '
             '(RSS over the blank-page baseline).</text>')
    p.append(f'<text x="10" y="{yb + 44}" font-size="11">Dashed: targets 0.8× (native decode vs llama.cpp), '
             '1.5× (best browser CPU-wasm decode vs wllama multi-thread).</text>')
    p.append("</svg>")
    return "\n".join(p) + "\n"


def native_table(res):
    L = ["### Native: Hearth vs llama.cpp (tok/s, medians)", "",
         "| model | threads | reps | test | Hearth | llama.cpp | ratio | Hearth decode, % of bandwidth limit |",
         "|---|---|---|---|---|---|---|---|"]
    bw = res.get("membw", {}).get("median_Bps")
    for m in res["models"]:
        for t, n in m.get("native", {}).items():
            h, l = n.get("hearth", {}), n.get("llama.cpp", {})
            err = "; ".join(f"{k}: {v['error'][:100]}" for k, v in n.items() if isinstance(v, dict) and "error" in v)
            tests = [f"pp{p}" for p in pp_sizes(n)] + [f"tg{n['tg_n']}"]
            for i, k in enumerate(tests):
                frac = None
                if k.startswith("tg") and isinstance(h.get(k), (int, float)) and m.get("bytes_per_token") and bw:
                    frac = h[k] * m["bytes_per_token"] / bw
                note = f" {err}" if err and i == len(tests) - 1 else ""
                L.append(f"| {m['id']} | {t} | {n['reps']} | {k} | {fmt(h.get(k))} | {fmt(l.get(k))} "
                         f"| {times(ratio(h.get(k), l.get(k)))} | {fmt(100 * frac) + ' %' if frac else ''}{note} |")
        g = m.get("native_gpu")
        if g:
            h = g.get("hearth", {})
            label = gpu_label(h.get("backend"))
            if "error" in h:
                L.append(f"| {m['id']} | {label} | {g['reps']} | — | error: {h['error'][:160]} | | | |")
            for k in [f"pp{p}" for p in pp_sizes(g)] + [f"tg{g['tg_n']}"]:
                if "error" not in h:
                    L.append(f"| {m['id']} | {label} | {g['reps']} | {k} | {fmt(h.get(k))} | — | — | |")
    return L


def backend_of(r):
    b = r.get("backend", "—")
    if r.get("wasm_build") and b == "cpu":  # Hearth CPU: the wasm build that ran and its thread count
        t = r.get("threads", 1)
        b += f" ({r['wasm_build']} build, {t} thread{'s' if t != 1 else ''})"
    return b


def browser_table(res):
    L = ["### Browser (headless Chromium): Hearth vs wllama (medians)", "",
         "| model | config | backend | reps | tokens (short / long) | cold load ms | warm load ms | TTFT ms | prefill tok/s "
         "| decode tok/s | long prompt tok | long prefill tok/s | long decode tok/s | peak RSS over baseline MiB | decode ratio |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in res["models"]:
        b = m.get("browser", {})
        if "error" in b:
            L.append(f"| {m['id']} | error: {b['error'][:160]} |" + " |" * 13)
        rows = b.get("rows", [])
        ok = browser_rows(m)
        for r in rows:
            if "error" in r:
                L.append(f"| {m['id']} | {r['config']} | error: {r['error'][:160]} |" + " |" * 12)
                continue
            peer = ok.get(peer_of(r["config"], ok))
            dr = ratio(med(r.get("decode_tps")), med(peer.get("decode_tps"))) if peer else None
            long_tok = med(r.get("long_prompt_tokens"))
            toks = f"{r.get('tg', '—')} / {r.get('tg_long', 0) or '—'}"
            L.append(f"| {m['id']} | {r['config']} | {backend_of(r)} | {r.get('reps', '—')} | {toks} | {fmt(r.get('cold_ms'), 0)} "
                     f"| {fmt(med(r.get('warm_ms')), 0)} | {fmt(med(r.get('ttft_ms')), 0)} | {fmt(med(r.get('prefill_tps')))} "
                     f"| {fmt(med(r.get('decode_tps')))} | {fmt(long_tok, 0)} | {fmt(med(r.get('long_prefill_tps')))} "
                     f"| {fmt(med(r.get('long_decode_tps')))} | {fmt(r.get('peak_over_baseline_mib'), 0)} | {fmt(dr, 2)}{'×' if dr else ''} |")
    return L


def warm_to_token(res):
    """Issue 7's third target: warm load (from the store) + first token of a chat ≤ 1 s (Hearth rows)."""
    rows = [(m["id"], r) for m in res["models"] for r in m.get("browser", {}).get("rows", [])
            if "error" not in r and r.get("warm_to_chat_token_ms")]
    if not rows:
        return []
    L = ["", f"### Warm load → first chat token (target ≤ {WARM_TO_TOKEN_TARGET_MS} ms on the default model)", "",
         "| model | config | warm load ms | chat TTFT ms | sum ms (median of per-rep sums) | target |", "|---|---|---|---|---|---|"]
    for mid, r in rows:
        total = med(r["warm_to_chat_token_ms"])
        mark = "✓" if isinstance(total, (int, float)) and total <= WARM_TO_TOKEN_TARGET_MS else "✗"
        L.append(f"| {mid} | {r['config']} | {fmt(med(r.get('warm_ms')), 0)} | {fmt(med(r.get('chat_ttft_ms')), 0)} "
                 f"| {fmt(total, 0)} | {mark} |")
    return L


def markdown(res):
    f = res["flags"]
    bw = res.get("membw", {}).get("median_Bps")
    L = [f"Host `{res['host']}`, {res['cpu']}, {res['nproc']} cores, load average before/after "
         f"{res['loadavg_before']} / {res.get('loadavg_after')}; {res['date']}; native reps {f['reps']} "
         f"(median after one warm-up; per model in the tables)."
         + (f" Memory bandwidth (1-thread copy): {bw / 1e9:.2f} GB/s." if bw else ""), ""]
    if res.get("wall_s"):
        per = ", ".join(f"{m['id']} {m['wall_s'] / 60:.1f}" for m in res["models"] if m.get("wall_s"))
        L += [f"Wall time {res['wall_s'] / 60:.1f} min ({per} min).", ""]
    L += native_table(res)
    L += [""] + browser_table(res)
    L += ["", "Browser: prefill = prompt tokens / time to first token; decode = tokens after the first / time after the "
          "first. Short prompt: a few tokens (TTFT is mostly overhead); long prompt: a fixed ~430-token English text. "
          "Memory: total RSS of the Chromium instance (all its processes), sampled every 50 ms, peak minus the "
          "blank-page baseline. *-mt: cross-origin isolated page, one thread per logical core.", ""]
    L += ["### Ratios (ours / theirs for tok/s; theirs / ours for load time and memory: > 1 means Hearth is ahead)", "",
          "| comparison | ratio | target |", "|---|---|---|"]
    for label, r, target, _ in ratios(res):
        mark = "" if target is None or r is None else (" ✓" if r >= target else " ✗")
        L.append(f"| {label} | {times(r)} | {fmt(target, 1) + '×' + mark if target else ''} |")
    L += warm_to_token(res)
    if res.get("skipped"):
        L += ["", "Skipped: " + "; ".join(res["skipped"])]
    return "\n".join(L) + "\n"
