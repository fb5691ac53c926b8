#!/usr/bin/env python3
"""llama.cpp's speed on a GGUF through llama-cpp-python (the same build the goldens use):
pp<N> (one batch of N prompt tokens) and tg<N> (N single-token decode steps), median of
--reps after a warm-up, with the same pseudo-random tokens as `hearth bench`.

usage: bench/llama_cpp_speed.py MODEL.gguf [--threads 2] [--reps 5] [--pp 128] [--tg 128]
Prints JSON: {"pp": tok/s, "tg": tok/s, ...}.
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
    ap.add_argument("--pp", type=int, default=128)
    ap.add_argument("--tg", type=int, default=128)
    a = ap.parse_args()
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=max(1024, a.pp + a.tg + 8), n_batch=512,
                          n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    n_vocab = llm.n_vocab()
    toks = [(i * 2654435761) % n_vocab for i in range(a.pp + a.tg)]
    pp, tg = [], []
    for rep in range(a.reps + 1):
        llm.reset()
        t = time.perf_counter()
        llm.eval(toks[:a.pp])
        pp_s = time.perf_counter() - t
        llm.reset()
        llm.eval(toks[:1])
        t = time.perf_counter()
        for k in range(1, a.tg + 1):
            llm.eval(toks[k:k + 1])
        tg_s = time.perf_counter() - t
        if rep > 0:
            pp.append(a.pp / pp_s)
            tg.append(a.tg / tg_s)
    print(json.dumps({"engine": "llama.cpp", "version": llama_cpp.__version__, "threads": a.threads,
                      f"pp{a.pp}": statistics.median(pp), f"tg{a.tg}": statistics.median(tg),
                      "pp_samples": pp, "tg_samples": tg}))


if __name__ == "__main__":
    main()
