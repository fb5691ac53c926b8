#!/usr/bin/env python3
"""`make bench`: Hearth vs its peers, side by side in one run, on this machine.

Per registry model the engine supports:
  native  — `hearth bench` (CPU) vs llama.cpp (llama-cpp-python), same thread count, same
            pseudo-random tokens: pp<N> for each --pp size and tg<N> tok/s, medians after a warm-up;
            for the registry default also `hearth bench --backend gpu` (lavapipe here), tiny.
  browser — tests/browser/bench_peers.mjs, headless Chromium: Hearth CPU-wasm single-thread and
            threaded (cross-origin isolated page) vs @wllama/wllama single- and multi-thread; short
            prompt and a ~430-token prompt; peak memory of the browser. For the registry default
            also Hearth WebGPU (SwiftShader here), tiny (--skip-webgpu: none).
Plus a memory-bandwidth measurement (numpy copy of a 512 MiB buffer) for the "fraction of the
physical limit" line: bytes read per decoded token (weights + KV) x tok/s / bandwidth.

The registry default gets the full run; the larger models a lighter one (--light-*), so the
benchmarks take ~14 min on a 2-core machine (a first `make bench` on a fresh one, installs and
builds included, 33 min: BENCHMARKS.md). The reps and token counts used are recorded per part.

Then the structured-output part (bench/structured.py: constrained vs unconstrained decode, schema
compile time in Chromium, tool-calling accuracy), written beside it as structured-<date>-<host>.*;
`--only structured` runs that part alone, `--skip-structured` leaves it out.

Writes bench/results/<date>-<host>.json (raw samples, versions, flags, CPU, load average),
bench/results/<date>-<host>.md (tables with ours/theirs ratios) and .svg (bar chart of ratios);
--out FILE.json writes elsewhere. Each part has a time cap; a part that fails or times out is
recorded as an error, not fatal. Rendering: bench/report.py.

usage: bench/run.py [--reps 5] [--threads 1,2] [--pp 128,512] [--tg 128] [--browser-reps 5] [--browser-tg 32]
                    [--tg-long 32] [--light-reps 1] [--light-tg 32] [--models ID,...]
                    [--skip-native] [--skip-browser] [--skip-gpu] [--skip-webgpu] [--out FILE.json]
                    [--only structured] [--skip-structured]
                    [--render JSON]
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

from report import markdown, svg
import structured

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


def hearth_native(hearth, model, threads, reps, pps, tg, cap, backend="cpu", extra=()):
    """`hearth bench` on one backend: {"pp128": tok/s, ..., "tg128": tok/s, "backend": "..."}."""
    out, wall = sh([hearth, "bench", "--model", model, "--backend", backend, "--reps", str(reps),
                    "--pp", ",".join(map(str, pps)), "--tg", str(tg), *extra], cap, env={"RAYON_NUM_THREADS": str(threads)})
    r = {"engine": "hearth", "threads": threads, "wall_s": wall, "stdout": out}
    for k in [f"pp{n}" for n in pps] + [f"tg{tg}"]:
        r[k] = float(re.search(rf"^{k}: ([\d.]+)", out, re.M).group(1))
        m = re.search(rf"^{k} samples: (.*)$", out, re.M)  # raw per-rep tok/s (older binaries: none)
        r[f"{k}_samples"] = [float(x) for x in m.group(1).split()] if m else None
    r["backend"] = re.search(r"backend: (.*)", out).group(1)
    return r


def hearth_gpu_profile(hearth, model, reps, pps, tg, cap):
    """`hearth bench --backend gpu --profile`: the timed rows plus the adapter (name, features,
    limits) and the per-token accounting tables (dispatches, weight bytes, encode/GPU time per op)."""
    r = hearth_native(hearth, model, 1, reps, pps, tg, cap, "gpu", ["--profile"])
    out = r["stdout"]
    for k in ("adapter", "adapter features", "adapter limits"):
        m = re.search(rf"^{k}: (.*)$", out, re.M)
        r[k.replace(" ", "_")] = m.group(1) if m else None
    # The decode matvec's launch shape per weight class (issue 21 autotune; "(default)" when untuned).
    r["matvec_shapes"] = re.findall(r"^matvec shape: (.*)$", out, re.M)
    r["profile"] = {}
    for m in re.finditer(r"^profile (\w+): .*?\n((?:  .*\n)+)", out, re.M):
        rows = {}
        for line in m.group(2).splitlines():
            f = line.split()
            if len(f) == 5 and f[0] != "op":
                rows[f[0]] = {"dispatches": float(f[1]), "weight_bytes": float(f[2]), "encode_us": float(f[3]),
                              "gpu_us": None if f[4] == "-" else float(f[4])}
        r["profile"][m.group(1)] = rows
    return r


def llama_vulkan(llama_bench, path, reps, pps, tg, cap):
    """llama.cpp's Vulkan backend (llama-bench -ngl 99) on the same Vulkan device, same prompt
    sizes and decode count; then one decode graph under GGML_VK_PERF_LOGGER to count its
    dispatches per token (one timestamp per enqueued node; a fused group counts once).
    llama.cpp skips CPU-type Vulkan devices (lavapipe) unless GGML_VK_VISIBLE_DEVICES names them,
    and then runs on the CPU without saying so in its JSON: the device is named here (VK_DEVICE,
    default 0, the one Hearth's wgpu picks on this machine) and a run that found none is an error."""
    env = {"GGML_VK_VISIBLE_DEVICES": os.environ.get("VK_DEVICE", "0")}
    cmd = [llama_bench, "-m", str(path), "-ngl", "99", "-t", "1", "-r", str(reps), "-o", "json",
           "-p", ",".join(map(str, pps)), "-n", str(tg)]
    out, wall = sh(cmd, cap, env=env)
    rows = json.loads(out)
    r = {"engine": "llama.cpp-vulkan", "wall_s": wall, "cmd": f"GGML_VK_VISIBLE_DEVICES={env['GGML_VK_VISIBLE_DEVICES']} " + " ".join(cmd)}
    for row in rows:
        k = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
        r[k] = row["avg_ts"]
        r[f"{k}_samples"] = row.get("samples_ts")
        r["backend"] = f"{row.get('backends')} {row.get('gpu_info')}"
    p = subprocess.run([llama_bench, "-m", str(path), "-ngl", "99", "-t", "1", "-r", "1", "-p", "0", "-n", "1",
                        "--no-warmup"], cwd=REPO, capture_output=True, text=True, timeout=cap,
                       env={**os.environ, **env, "GGML_VK_PERF_LOGGER": "1"})
    r["device"] = [l for l in p.stderr.splitlines() if l.startswith("ggml_vulkan:")]
    if not any(re.match(r"ggml_vulkan: \d+ = ", l) for l in r["device"]):
        raise RuntimeError(f"llama.cpp found no Vulkan device (it would have run on the CPU): {r['device']}")
    # The last "Vulkan Timings" block is the one-token decode graph.
    block = p.stderr.rsplit("Vulkan Timings:", 1)[-1] if "Vulkan Timings:" in p.stderr else ""
    ops = {m.group(1).strip(): int(m.group(2)) for m in re.finditer(r"^(.+?): (\d+) x [\d.e+-]+ us", block, re.M)}
    r["decode_dispatches"] = sum(ops.values()) if ops else None
    r["decode_ops"] = ops
    return r


def llama_native(path, threads, reps, pps, tg, cap):
    out, wall = sh([sys.executable, "bench/llama_cpp_speed.py", str(path), "--threads", str(threads),
                    "--reps", str(reps), "--pp", ",".join(map(str, pps)), "--tg", str(tg)], cap)
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall}


def browser(model, file, p, cap, configs):
    """bench_peers.mjs for `configs` with the plan `p` (reps, tg, tg_long): {wall_s, rows}."""
    out, wall = sh(["node", "tests/browser/bench_peers.mjs", "--model", model, "--file", file,
                    "--reps", str(p["reps"]), "--warmup", str(p.get("warmup", 1)), "--tg", str(p["tg"]),
                    "--tg-long", str(p["tg_long"]), "--chat", str(p.get("chat", 1)),
                    "--timeout", str(max(60, cap // min(3, len(configs)))), *configs], cap)
    return {"wall_s": wall, "rows": json.loads(out.strip().splitlines()[-1])}


def plan(a, is_default):
    """Reps and token counts of each part for one model. The registry default gets the full run;
    the others the --light-* one (larger models: every token costs 2-4x more)."""
    pps = [int(x) for x in a.pp.split(",")]
    mt_pps = [int(x) for x in a.mt_pp.split(",")]
    threads = [int(x) for x in (a.threads if is_default else a.light_threads).split(",")]
    native = {}
    for t in threads:
        if not is_default:
            native[t] = {"reps": a.light_reps, "pp_n": pps, "tg_n": a.light_tg}
        elif t == 1:
            native[t] = {"reps": a.reps, "pp_n": pps, "tg_n": a.tg}
        else:
            # More threads than idle cores: llama.cpp's spinning barrier collapses on a loaded
            # machine (minutes per run), so multi-thread runs use --mt-reps, --mt-pp, --mt-tg, --mt-cap.
            native[t] = {"reps": min(a.reps, a.mt_reps), "pp_n": mt_pps, "tg_n": a.mt_tg}
    if is_default:
        br = {"reps": a.browser_reps, "tg": a.browser_tg, "tg_long": a.tg_long, "configs": a.browser_configs.split(",")}
    else:
        br = {"reps": a.light_reps, "tg": a.light_tg, "tg_long": a.light_tg_long,
              "configs": a.light_browser_configs.split(",")}
    return {"native": native, "browser": br,
            "gpu": {"reps": 1, "pp_n": [a.gpu_pp], "tg_n": a.gpu_tg} if is_default and not a.skip_gpu else None,
            # WebGPU: one rep, no chat (its 37-token prefill alone is ~2 min on SwiftShader).
            "webgpu": {"reps": 1, "warmup": 0, "tg": a.webgpu_tg, "tg_long": 0, "chat": 0}
            if is_default and not a.skip_webgpu else None}


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


def render(path):
    res = json.loads(Path(path).read_text())
    base = Path(path).with_suffix("")
    base.with_suffix(".md").write_text(markdown(res))
    base.with_suffix(".svg").write_text(svg(res))
    print(markdown(res))
    print(f"wrote {base}.json/.md/.svg")


def bench_model(a, m, path, is_default):
    """Every part for one model; each part's failure is recorded in its place."""
    p = plan(a, is_default)
    e = {"id": m["id"], "file": m["file"], "quant": m.get("quant"), "default": is_default,
         "plan": {**p, "native": {str(t): v for t, v in p["native"].items()}}, "native": {}}
    t0 = time.time()
    e["shape"] = attempt(model_shape, a.hearth, path)
    if "weight_bytes" in e["shape"]:
        s = e["shape"]
        # Hearth's KV cache holds f32 K and V; mean context over a tg run ≈ tg / 2.
        tg = next(iter(p["native"].values()), {"tg_n": a.tg})["tg_n"]
        kv = 2 * s["n_layer"] * s["n_head_kv"] * s["head_dim"] * 4 * (tg / 2)
        e["bytes_per_token"] = s["weight_bytes"] + kv
    if not a.skip_native:
        for t, n in p["native"].items():
            print(f"{m['id']}: native, {t} thread(s), {n}…", file=sys.stderr)
            cap = a.cap if t == 1 else a.mt_cap
            e["native"][str(t)] = {
                **n,
                "hearth": attempt(hearth_native, a.hearth, m["id"], t, n["reps"], n["pp_n"], n["tg_n"], cap),
                "llama.cpp": attempt(llama_native, path, t, n["reps"], n["pp_n"], n["tg_n"], cap),
                "loadavg": loadavg()}
        if p["gpu"]:
            g = p["gpu"]
            print(f"{m['id']}: native GPU {g} (lavapipe here: software, slow)…", file=sys.stderr)
            e["native_gpu"] = {**g, "hearth": attempt(hearth_gpu_profile, a.hearth, m["id"], g["reps"], g["pp_n"], g["tg_n"],
                                                      a.gpu_cap), "loadavg": loadavg()}
            if Path(a.llama_bench).exists():
                print(f"{m['id']}: llama.cpp Vulkan (llama-bench) on the same device…", file=sys.stderr)
                e["native_gpu"]["llama.cpp-vulkan"] = attempt(llama_vulkan, a.llama_bench, path, g["reps"], g["pp_n"],
                                                              g["tg_n"], a.gpu_cap)
            else:
                e["native_gpu"]["llama.cpp-vulkan"] = {"error": f"{a.llama_bench} missing: make bench-deps-vulkan"}
            hg, lv = e["native_gpu"]["hearth"], e["native_gpu"]["llama.cpp-vulkan"]
            e["native_gpu"]["ratios"] = {k: hg[k] / lv[k] for k in hg if re.fullmatch(r"(pp|tg)\d+", k)
                                         and isinstance(lv.get(k), (int, float)) and lv[k] > 0}
    if not a.skip_browser:
        b = p["browser"]
        print(f"{m['id']}: browser {b}…", file=sys.stderr)
        e["browser"] = attempt(browser, m["id"], m["file"], b, a.browser_cap, b["configs"])
        if p["webgpu"]:
            print(f"{m['id']}: browser WebGPU {p['webgpu']} (SwiftShader here: minutes)…", file=sys.stderr)
            w = attempt(browser, m["id"], m["file"], p["webgpu"], a.webgpu_cap, ["hearth-webgpu", "wllama-webgpu"])
            rows = w.get("rows") or [{"config": "hearth-webgpu", "model": m["id"], "error": w.get("error")}]
            e["browser"].setdefault("rows", []).extend(rows)
            e["browser"]["webgpu_wall_s"] = w.get("wall_s")
            e["browser"]["webgpu_ratio"] = webgpu_ratio(rows)
        e["browser"]["loadavg"] = loadavg()
    e["wall_s"] = time.time() - t0
    return e


def webgpu_ratio(rows):
    """Hearth WebGPU / wllama WebGPU decode and prefill (median tok/s), only where wllama really
    dispatched WebGPU work (its row says `ran_on_webgpu`); otherwise why there is no ratio."""
    by = {r.get("config"): r for r in rows}
    h, w = by.get("hearth-webgpu"), by.get("wllama-webgpu")

    def ratios():
        med = lambda v: statistics.median([x for x in v or [] if isinstance(x, (int, float)) and x > 0] or [0])
        return {k: med(h.get(k)) / med(w.get(k)) for k in ("decode_tps", "prefill_tps") if med(w.get(k)) > 0}

    if not h or not w or h.get("error") or w.get("error"):
        return {"error": "a WebGPU row failed: " + "; ".join(str(r.get("error")) for r in (h, w) if r and r.get("error"))}
    if not w.get("ran_on_webgpu"):
        return {"error": f"wllama made no WebGPU dispatch ({w.get('backend')}): not a same-device peer on this adapter",
                "vs_wllama_cpu_fallback": ratios()}
    return ratios()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="native reps, default model, 1 thread")
    ap.add_argument("--browser-reps", type=int, default=5, help="browser reps, default model")
    ap.add_argument("--threads", default="1,2", help="native thread counts, comma-separated (default model)")
    ap.add_argument("--mt-reps", type=int, default=5, help="reps for thread counts > 1")
    ap.add_argument("--mt-tg", type=int, default=32, help="decode tokens for thread counts > 1")
    ap.add_argument("--mt-pp", default="128", help="prompt sizes for thread counts > 1")
    ap.add_argument("--mt-cap", type=int, default=120, help="seconds per native part, thread counts > 1")
    ap.add_argument("--pp", default="128,512", help="native prompt sizes, comma-separated")
    ap.add_argument("--tg", type=int, default=128, help="native decode tokens, default model, 1 thread")
    ap.add_argument("--browser-tg", type=int, default=32, help="browser: decode tokens after the short prompt, default model")
    ap.add_argument("--tg-long", type=int, default=32, help="browser: decode tokens after the long prompt, default model (0: none)")
    ap.add_argument("--light-reps", type=int, default=1, help="native and browser reps, non-default models")
    ap.add_argument("--light-tg", type=int, default=32, help="native and browser short-prompt decode tokens, non-default models")
    ap.add_argument("--light-tg-long", type=int, default=16, help="browser long-prompt decode tokens, non-default models")
    ap.add_argument("--light-threads", default="1", help="native thread counts, non-default models")
    ap.add_argument("--light-browser-configs", default="hearth-cpu-mt,wllama-cpu-mt",
                    help="browser configurations, non-default models (the issue's headline pair)")
    ap.add_argument("--models", default=None, help="registry ids (default: every supported one)")
    ap.add_argument("--hearth", default=str(REPO / "target/release/hearth"))
    ap.add_argument("--cap", type=int, default=600, help="seconds per native part before it is abandoned")
    ap.add_argument("--browser-cap", type=int, default=1500,
                    help="seconds per model for the browser part (each configuration: a third of it)")
    ap.add_argument("--skip-native", action="store_true")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--browser-configs", default="hearth-cpu,hearth-cpu-mt,wllama-cpu,wllama-cpu-mt",
                    help="bench_peers.mjs configurations (hearth-webgpu runs apart: see --skip-webgpu)")
    ap.add_argument("--skip-webgpu", action="store_true",
                    help="no Hearth WebGPU in the browser (default model, 1 rep, no warm-up, short prompt only; "
                         "on SwiftShader ~45 s and no speed to speak of, but it shows the path works)")
    ap.add_argument("--webgpu-tg", type=int, default=4)
    ap.add_argument("--webgpu-cap", type=int, default=240)
    ap.add_argument("--skip-gpu", action="store_true", help="no native GPU run (`hearth bench --backend gpu`)")
    ap.add_argument("--gpu-pp", type=int, default=32)
    ap.add_argument("--gpu-tg", type=int, default=8)
    ap.add_argument("--gpu-cap", type=int, default=480)
    ap.add_argument("--llama-bench", default=os.environ.get("HEARTH_LLAMA_BENCH", "/work/vkbuild/build/bin/llama-bench"),
                    help="llama-bench built with Vulkan (make bench-deps-vulkan); its row is skipped when absent")
    ap.add_argument("--out", help="result JSON path (default bench/results/<date>-<host>.json; .md/.svg beside it)")
    ap.add_argument("--render", help="re-render the Markdown and SVG of an existing JSON, run nothing")
    ap.add_argument("--only", choices=["structured"], help="run only this part (bench/structured.py with its defaults)")
    ap.add_argument("--skip-structured", action="store_true", help="no structured-output part")
    a = ap.parse_args()
    if a.render:
        return render(a.render)
    if a.only == "structured":
        return run_structured(a)
    reg = tomllib.loads((REPO / "models/registry.toml").read_text())
    now = datetime.datetime.now(datetime.timezone.utc)
    host = socket.gethostname()
    t0 = time.time()
    res = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "host": host, "cpu": cpu_model(), "nproc": os.cpu_count(),
           "loadavg_before": loadavg(), "versions": versions(a.hearth),
           "flags": {**{k: v for k, v in vars(a).items() if k not in ("render", "out")},
                     "hearth_bench": "hearth bench --model ID --reps R --pp P1,P2 --tg T (RAYON_NUM_THREADS=t)",
                     "llama_cpp": "bench/llama_cpp_speed.py (n_threads = n_threads_batch = t, n_batch max(512, P))",
                     "browser": "tests/browser/bench_peers.mjs (wllama n_ctx 2048, n_gpu_layers 0, n_threads 1 or "
                                "navigator.hardwareConcurrency for -mt; Hearth contextSize 2048)"},
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
        res["models"].append(bench_model(a, m, path, m["id"] == reg["default"]))
    res["loadavg_after"] = loadavg()
    res["wall_s"] = time.time() - t0
    out = Path(a.out) if a.out else REPO / "bench/results" / f"{now.strftime('%Y-%m-%d')}-{host}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    render(out)
    if not a.skip_structured:
        run_structured(a)


def run_structured(a):
    """bench/structured.py with its defaults (the same release CLI and models)."""
    p = argparse.ArgumentParser()
    structured.add_args(p)
    sa = p.parse_args([])
    sa.hearth = a.hearth
    if a.models:
        sa.models = a.models
    print("structured output (bench/structured.py)…", file=sys.stderr)
    return structured.run(sa)


if __name__ == "__main__":
    main()
