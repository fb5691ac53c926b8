#!/usr/bin/env python3
"""llama.cpp's speed on a GGUF through llama-cpp-python (the same build the goldens use):
pp<N> (one batch of N prompt tokens, for each N of --pp) and tg<N> (N single-token decode
steps), median of --reps after a warm-up, with the same pseudo-random tokens as `hearth bench`.

usage: bench/llama_cpp_speed.py MODEL.gguf [--threads 2] [--reps 5] [--pp 128,512] [--tg 128]
Prints JSON: {"pp128": tok/s, "pp512": tok/s, "tg128": tok/s, "pp128_samples": [...], ...}.
"""
import argparse
import json
import statistics
import time

import llama_cpp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pp", default="128", help="prompt sizes, comma-separated")
    ap.add_argument("--tg", type=int, default=128)
    a = ap.parse_args()
    pps = [int(x) for x in a.pp.split(",")]
    n_pp = max(pps)
    # n_batch covers the largest prompt, so each pp<N> is one batch as in llama-bench.
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=max(1024, n_pp + a.tg + 8), n_batch=max(512, n_pp),
                          n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    n_vocab = llm.n_vocab()
    toks = [(i * 2654435761) % n_vocab for i in range(max(n_pp, a.tg + 1))]
    pp = {n: [] for n in pps}
    tg = []
    for rep in range(a.reps + 1):
        pp_s = {}
        for n in pps:
            llm.reset()
            t = time.perf_counter()
            llm.eval(toks[:n])
            pp_s[n] = time.perf_counter() - t
        llm.reset()
        llm.eval(toks[:1])
        t = time.perf_counter()
        for k in range(1, a.tg + 1):
            llm.eval(toks[k:k + 1])
        tg_s = time.perf_counter() - t
        if rep > 0:  # rep 0 is the warm-up
            for n in pps:
                pp[n].append(n / pp_s[n])
            tg.append(a.tg / tg_s)
    out = {"engine": "llama.cpp", "version": llama_cpp.__version__, "threads": a.threads}
    for n in pps:
        out[f"pp{n}"] = statistics.median(pp[n])
        out[f"pp{n}_samples"] = pp[n]
    out[f"tg{a.tg}"] = statistics.median(tg)
    out["tg_samples"] = tg
    if len(pps) == 1:
        out["pp_samples"] = pp[pps[0]]  # the key older results used
    print(json.dumps(out))


if __name__ == "__main__":
    main()
