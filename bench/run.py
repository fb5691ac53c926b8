#!/usr/bin/env python3
"""`make bench`: Hearth vs its peers, side by side in one run, on this machine.

Per registry model the engine supports:
  native  — `hearth bench` (CPU) vs llama.cpp (llama-cpp-python), same thread count, same
            pseudo-random tokens: pp<N> and tg<N> tok/s, medians after a warm-up.
  browser — tests/browser/bench_peers.mjs: Hearth CPU-wasm (1 thread; the wasm has no threads yet)
            and WebGPU (SwiftShader here) vs @wllama/wllama single-thread, headless Chromium.
Plus a memory-bandwidth measurement (numpy copy of a 512 MiB buffer) for the "fraction of the
physical limit" line: bytes read per decoded token (weights + KV) x tok/s / bandwidth.

Writes bench/results/<date>-<host>.json (raw samples, versions, flags, CPU, load average),
bench/results/<date>-<host>.md (tables with ours/theirs ratios) and .svg (bar chart of ratios).
Each part has a time cap; a part that fails or times out is recorded as an error, not fatal.

usage: bench/run.py [--reps 5] [--threads 1,2] [--pp 128] [--tg 128] [--models ID,...]
                    [--skip-native] [--skip-browser] [--render JSON]
"""
import argparse
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUPPORTED_ARCHS = {"llama", "gemma3", "qwen2"}  # what src/model/ implements (model::build dispatch) and `hearth bench` accepts


def sh(cmd, timeout, env=None):
    t = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return p.stdout, time.time() - t


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def loadavg():
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def mem_bandwidth(reps=7, mib=512):
    """Single-thread copy bandwidth, bytes moved (read + write) per second, numpy."""
    import numpy as np
    src = np.ones(mib << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # warm-up, faults the pages in
    s = []
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(dst, src)
        s.append(2 * src.nbytes / (time.perf_counter() - t))
    return {"method": f"numpy.copyto of {mib} MiB, 1 thread, bytes read + written / s",
            "samples_Bps": s, "median_Bps": statistics.median(s)}


def model_shape(hearth, path):
    """Weight bytes (sum of the tensor table) and the KV geometry, from `hearth inspect`."""
    out, _ = sh([hearth, "inspect", str(path)], 120)
    weights = sum(int(m.group(1)) for m in re.finditer(r"^\s+\S+\s+\w+\s+\[[^\]]*\]\s+(\d+)$", out, re.M))
    cfg = {k: int(re.search(rf"\b{k}: (\d+)", out).group(1)) for k in ("n_layer", "n_head_kv", "head_dim")}
    return {"weight_bytes": weights, **cfg}


def hearth_native(hearth, model, threads, reps, pp, tg, cap):
    out, wall = sh([hearth, "bench", "--model", model, "--reps", str(reps), "--pp", str(pp), "--tg", str(tg)],
                   cap, env={"RAYON_NUM_THREADS": str(threads)})
    r = {"engine": "hearth", "threads": threads, "wall_s": wall, "stdout": out}
    r[f"pp{pp}"] = float(re.search(rf"pp{pp}: ([\d.]+)", out).group(1))
    r[f"tg{tg}"] = float(re.search(rf"tg{tg}: ([\d.]+)", out).group(1))
    r["backend"] = re.search(r"backend: (.*)", out).group(1)
    return r


def llama_native(path, threads, reps, pp, tg, cap):
    out, wall = sh([sys.executable, "bench/llama_cpp_speed.py", str(path), "--threads", str(threads),
                    "--reps", str(reps), "--pp", str(pp), "--tg", str(tg)], cap)
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall}


def browser(model, file, reps, tg, cap, configs):
    out, wall = sh(["node", "tests/browser/bench_peers.mjs", "--model", model, "--file", file,
                    "--reps", str(reps), "--tg", str(tg), "--timeout", str(cap // 3), *configs], cap)
    return {"wall_s": wall, "rows": json.loads(out.strip().splitlines()[-1])}


def attempt(fn, *a):
    try:
        return fn(*a)
    except Exception as e:  # recorded, not fatal: one part must not sink the run
        print(f"  error: {e}", file=sys.stderr)
        return {"error": str(e)[:500]}


def versions(hearth):
    v = {"python": platform.python_version()}
    for name, cmd in {"hearth": [hearth, "--version"], "node": ["node", "--version"],
                      "rustc": ["rustc", "--version"]}.items():
        try:
            v[name] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            v[name] = None
    try:
        import llama_cpp
        v["llama-cpp-python"] = llama_cpp.__version__
    except Exception:
        v["llama-cpp-python"] = None
    try:
        v["@wllama/wllama"] = json.loads((REPO / "www/node_modules/@wllama/wllama/package.json").read_text())["version"]
    except Exception:
        v["@wllama/wllama"] = None
    v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return v


# ---------------------------------------------------------------- rendering (JSON → Markdown, SVG)

def med(v):
    return statistics.median(v) if isinstance(v, list) and v else v


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def fmt(v, d=1):
    return f"{v:.{d}f}" if isinstance(v, (int, float)) else "—"


def ratios(res):
    """[(label, ratio ours/theirs, higher_is_better)] for the chart and the table."""
    out = []
    pp, tg = res["flags"]["pp"], res["flags"]["tg"]
    for m in res["models"]:
        for t, n in m.get("native", {}).items():
            h, l = n.get("hearth", {}), n.get("llama.cpp", {})
            for k in (f"pp{n['pp_n']}", f"tg{n['tg_n']}"):
                out.append((f"{m['id'].split('-')[0]} native {k} {t}T", ratio(h.get(k), l.get(k)), True))
        rows = {r["config"]: r for r in m.get("browser", {}).get("rows", []) if "error" not in r}
        w = rows.get("wllama-cpu")
        for c in ("hearth-cpu", "hearth-webgpu"):
            if c in rows and w:
                out.append((f"{m['id'].split('-')[0]} {c} decode", ratio(med(rows[c]["decode_tps"]), med(w["decode_tps"])), True))
                out.append((f"{m['id'].split('-')[0]} {c} warm load", ratio(med(w["warm_ms"]), med(rows[c]["warm_ms"])), True))
    return out


def svg(res):
    rs = [(l, r) for l, r, _ in ratios(res) if r is not None]
    W, row, left, right = 820, 24, 330, 60
    H = 60 + row * len(rs) + 30
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
    p.append(f'<text x="{left}" y="{yb + 28}" font-size="11">warm load ratio = peer time / our time. Dashed: targets 0.8× (native decode), 1.5× (browser decode).</text>')
    p.append("</svg>")
    return "\n".join(p) + "\n"


def markdown(res):
    pp, tg = res["flags"]["pp"], res["flags"]["tg"]
    L = [f"Host `{res['host']}`, {res['cpu']}, {res['nproc']} cores, load average before/after "
         f"{res['loadavg_before']} / {res['loadavg_after']}; {res['date']}; reps {res['flags']['reps']} "
         f"(median after one warm-up). Memory bandwidth (1-thread copy): {res['membw']['median_Bps'] / 1e9:.2f} GB/s.", ""]
    L += ["### Native CPU: Hearth vs llama.cpp (tok/s, medians)", "",
          "| model | threads | reps | test | Hearth pp | llama.cpp pp | ratio | test | Hearth tg | llama.cpp tg | ratio | Hearth decode, % of bandwidth limit |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in res["models"]:
        for t, n in m.get("native", {}).items():
            h, l = n.get("hearth", {}), n.get("llama.cpp", {})
            pp, tg = n["pp_n"], n["tg_n"]
            frac = None
            if isinstance(h.get(f"tg{tg}"), float) and m.get("shape"):
                frac = h[f"tg{tg}"] * m["bytes_per_token"] / res["membw"]["median_Bps"]
            err = "; ".join(f"{k}: {v['error'][:80]}" for k, v in n.items() if isinstance(v, dict) and "error" in v)
            L.append(f"| {m['id']} | {t} | {n['reps']} | pp{pp} | {fmt(h.get(f'pp{pp}'))} | {fmt(l.get(f'pp{pp}'))} | {fmt(ratio(h.get(f'pp{pp}'), l.get(f'pp{pp}')), 2)}× "
                     f"| tg{tg} | {fmt(h.get(f'tg{tg}'))} | {fmt(l.get(f'tg{tg}'))} | {fmt(ratio(h.get(f'tg{tg}'), l.get(f'tg{tg}')), 2)}× "
                     f"| {fmt(100 * frac if frac else None)} %{' ' + err if err else ''} |")
    L += ["", "### Browser (headless Chromium, 1 thread): Hearth vs wllama (medians)", "",
          "| model | config | backend | cold load ms | warm load ms | TTFT ms | prefill tok/s | decode tok/s | decode ratio | warm-load ratio |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for m in res["models"]:
        rows = m.get("browser", {}).get("rows", [])
        if "error" in m.get("browser", {}):
            L.append(f"| {m['id']} | error: {m['browser']['error'][:120]} | | | | | | | | |")
        w = next((r for r in rows if r["config"] == "wllama-cpu" and "error" not in r), None)
        for r in rows:
            if "error" in r:
                L.append(f"| {m['id']} | {r['config']} | error: {r['error'][:120]} | | | | | | | |")
                continue
            dr = ratio(med(r["decode_tps"]), med(w["decode_tps"])) if w else None
            wr = ratio(med(w["warm_ms"]), med(r["warm_ms"])) if w else None
            L.append(f"| {m['id']} | {r['config']} | {r['backend']} | {fmt(r['cold_ms'], 0)} | {fmt(med(r['warm_ms']), 0)} "
                     f"| {fmt(med(r['ttft_ms']), 0)} | {fmt(med(r['prefill_tps']))} | {fmt(med(r['decode_tps']))} "
                     f"| {fmt(dr, 2)}× | {fmt(wr, 2)}× |")
    L += ["", "Ratios are ours / theirs for tok/s and theirs / ours for load times: > 1 means Hearth is ahead."]
    if res.get("skipped"):
        L += ["", "Skipped: " + "; ".join(res["skipped"])]
    return "\n".join(L) + "\n"


def render(path):
    res = json.loads(Path(path).read_text())
    base = Path(path).with_suffix("")
    base.with_suffix(".md").write_text(markdown(res))
    base.with_suffix(".svg").write_text(svg(res))
    print(markdown(res))
    print(f"wrote {base}.json/.md/.svg")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--browser-reps", type=int, default=None, help="default: --reps")
    ap.add_argument("--threads", default="1,2", help="native thread counts, comma-separated")
    ap.add_argument("--mt-reps", type=int, default=2, help="reps for thread counts > 1")
    ap.add_argument("--mt-tg", type=int, default=32, help="decode tokens for thread counts > 1")
    ap.add_argument("--pp", type=int, default=128)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--models", default=None, help="registry ids (default: every supported one)")
    ap.add_argument("--hearth", default=str(REPO / "target/release/hearth"))
    ap.add_argument("--cap", type=int, default=600, help="seconds per part before it is abandoned")
    ap.add_argument("--skip-native", action="store_true")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--browser-configs", default="hearth-cpu,wllama-cpu",
                    help="bench_peers.mjs configurations (hearth-webgpu on SwiftShader is very slow)")
    ap.add_argument("--render", help="re-render the Markdown and SVG of an existing JSON, run nothing")
    a = ap.parse_args()
    if a.render:
        return render(a.render)
    reg = tomllib.loads((REPO / "models/registry.toml").read_text())
    now = datetime.datetime.now(datetime.timezone.utc)
    host = socket.gethostname()
    res = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "host": host, "cpu": cpu_model(), "nproc": os.cpu_count(),
           "loadavg_before": loadavg(), "versions": versions(a.hearth),
           "flags": {"reps": a.reps, "browser_reps": a.browser_reps or a.reps, "threads": a.threads, "pp": a.pp,
                     "tg": a.tg, "mt_reps": a.mt_reps, "mt_tg": a.mt_tg, "cap_s": a.cap, "hearth_bench": "hearth bench --model ID --reps R --pp P --tg T (RAYON_NUM_THREADS=t)",
                     "llama_cpp": "bench/llama_cpp_speed.py (n_threads = n_threads_batch = t, n_batch 512)",
                     "browser": "tests/browser/bench_peers.mjs (wllama n_threads 1, n_gpu_layers 0)",
                     "browser_configs": a.browser_configs},
           "models": [], "skipped": []}
    print("memory bandwidth…", file=sys.stderr)
    res["membw"] = mem_bandwidth()
    want = a.models.split(",") if a.models else None
    for m in reg["model"]:
        if want and m["id"] not in want:
            continue
        path = REPO / "models/cache" / m["file"]
        if m.get("architecture") not in SUPPORTED_ARCHS:
            res["skipped"].append(f"{m['id']} (architecture {m.get('architecture')} not supported by the engine)")
            continue
        if not path.exists():
            res["skipped"].append(f"{m['id']} (not in models/cache: python3 models/fetch.py {m['id']})")
            continue
        e = {"id": m["id"], "file": m["file"], "quant": m.get("quant"), "native": {}}
        e["shape"] = attempt(model_shape, a.hearth, path)
        if "weight_bytes" in e["shape"]:
            s = e["shape"]
            # Hearth's KV cache holds f32 K and V; mean context over a tg run ≈ tg / 2.
            kv = 2 * s["n_layer"] * s["n_head_kv"] * s["head_dim"] * 4 * (a.tg / 2)
            e["bytes_per_token"] = s["weight_bytes"] + kv
        if not a.skip_native:
            for t in [int(x) for x in a.threads.split(",")]:
                print(f"{m['id']}: native, {t} thread(s)…", file=sys.stderr)
                # More threads than idle cores: llama.cpp's spinning barrier collapses on a loaded
                # machine (minutes per run), so multi-thread runs use --mt-reps and --mt-tg.
                reps, tg = (a.reps, a.tg) if t == 1 else (min(a.reps, a.mt_reps), a.mt_tg)
                e["native"][str(t)] = {
                    "reps": reps, "pp_n": a.pp, "tg_n": tg,
                    "hearth": attempt(hearth_native, a.hearth, m["id"], t, reps, a.pp, tg, a.cap),
                    "llama.cpp": attempt(llama_native, path, t, reps, a.pp, tg, a.cap),
                    "loadavg": loadavg()}
        if not a.skip_browser:
            print(f"{m['id']}: browser…", file=sys.stderr)
            e["browser"] = attempt(browser, m["id"], m["file"], a.browser_reps or a.reps, a.tg, 3 * a.cap,
                                   a.browser_configs.split(","))
        res["models"].append(e)
    res["loadavg_after"] = loadavg()
    out = REPO / "bench/results" / f"{now.strftime('%Y-%m-%d')}-{host}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    render(out)


if __name__ == "__main__":
    main()
