//! `hearth bench`: prompt-processing and decode speed (llama-bench's pp/tg), the GPU profile
//! (`--backend gpu --profile`), and constrained vs unconstrained decoding
//! (`--prompt P --json-schema F | --regex R | --grammar F`).

#[cfg(feature = "gpu")]
use super::gpu_session;
use hearth::backend::Backend;
use hearth::engine::{self, Constraint, GenerateParams, SamplerParams, Session};
use hearth::template::ChatMessage;
use std::path::Path;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(super) fn cmd_bench<B: Backend + 'static>(mut s: Session<B>, reps: usize, pp: &[usize], tg: usize) -> Result<(), String> {
    cmd_bench_ref(&mut s, reps, pp, tg)
}

fn cmd_bench_ref<B: Backend + 'static>(s: &mut Session<B>, reps: usize, pp: &[usize], tg: usize) -> Result<(), String> {
    let n_vocab = s.config().n_vocab as u32;
    let max_pp = pp.iter().copied().max().unwrap_or(0);
    if max_pp == 0 || pp.contains(&0) {
        return Err("--pp: every prompt size must be at least 1".into());
    }
    // Deterministic pseudo-random prompt tokens (as llama-bench does).
    let toks: Vec<u32> = (0..(max_pp.max(tg + 1)) as u64).map(|i| ((i * 2_654_435_761) % n_vocab as u64) as u32).collect();
    let mut pp_tps: Vec<Vec<f64>> = vec![Vec::new(); pp.len()];
    let mut tg_tps = Vec::new();
    for rep in 0..=reps {
        let mut pp_s = Vec::with_capacity(pp.len());
        for &n in pp {
            s.reset();
            let t = Instant::now();
            let l = s.prefill(&toks[..n]).map_err(|e| e.to_string())?;
            s.backend_mut().argmax(&l, 0, n_vocab as usize).map_err(|e| e.to_string())?;
            pp_s.push(t.elapsed().as_secs_f64());
        }
        s.reset();
        s.prefill(&toks[..1]).map_err(|e| e.to_string())?;
        let before = s.backend().counters();
        let t = Instant::now();
        for k in 2..=tg + 1 {
            let l = s.prefill(&toks[..k]).map_err(|e| e.to_string())?;
            s.backend_mut().argmax(&l, 0, n_vocab as usize).map_err(|e| e.to_string())?;
        }
        let tg_s = t.elapsed().as_secs_f64();
        if let (Some(a), Some(b), true) = (before, s.backend().counters(), rep == reps) {
            println!(
                "per decoded token: {:.1} dispatches, {:.2} submits",
                (b.dispatches - a.dispatches) as f64 / tg as f64,
                (b.submits - a.submits) as f64 / tg as f64
            );
        }
        if rep > 0 {
            // rep 0 is the warm-up
            for ((v, &n), secs) in pp_tps.iter_mut().zip(pp).zip(pp_s) {
                v.push(n as f64 / secs);
            }
            tg_tps.push(tg as f64 / tg_s);
        }
    }
    let samples = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
    println!("backend: {}", s.backend().describe());
    for (v, n) in pp_tps.into_iter().zip(pp) {
        println!("pp{n} samples: {}", samples(&v));
        println!("pp{n}: {:.1} tok/s (median of {reps})", median(v));
    }
    println!("tg{tg} samples: {}", samples(&tg_tps));
    println!("tg{tg}: {:.1} tok/s (median of {reps})", median(tg_tps));
    Ok(())
}

/// `hearth bench --backend gpu --profile`: the timed runs, then one profiled prefill per
/// prompt size and one profiled decode of `tg` tokens, each printed per token.
#[cfg(feature = "gpu")]
pub(super) fn gpu_profile(path: &Path, ctx: usize, reps: usize, pp: &[usize], tg: usize) -> Result<(), String> {
    let mut s = gpu_session(path, ctx)?;
    {
        let c = s.backend().context();
        println!("adapter: {:?}", c.info);
        println!("adapter features: {:?}", c.features);
        println!(
            "adapter limits: maxStorageBufferBindingSize {}, maxBufferSize {}, maxComputeWorkgroupStorageSize {}, maxComputeInvocationsPerWorkgroup {}, maxStorageBuffersPerShaderStage {}",
            c.limits.max_storage_buffer_binding_size,
            c.limits.max_buffer_size,
            c.limits.max_compute_workgroup_storage_size,
            c.limits.max_compute_invocations_per_workgroup,
            c.limits.max_storage_buffers_per_shader_stage
        );
    }
    // The matvec shapes in use (gpu_session tuned them, or read them from the cache).
    for (ty, cols) in s.backend().tune_classes() {
        let m = s.backend().matvec_shape(ty, cols);
        let d = hearth::backend::gpu::MatvecShape::default_for(ty, cols);
        println!("matvec shape: {} cols {cols}: wg {} tpr {}{}", ty.name(), m.wg, m.tpr, if m == d { " (default)" } else { "" });
    }
    // The timed runs first, unprofiled (timestamp waits would slow them).
    cmd_bench_ref(&mut s, reps, pp, tg)?;
    let n_vocab = s.config().n_vocab as u32;
    let toks: Vec<u32> = (0..(pp.iter().copied().max().unwrap_or(1).max(tg + 2)) as u64).map(|i| ((i * 2_654_435_761) % n_vocab as u64) as u32).collect();
    let e = |e: hearth::engine::EngineError| e.to_string();
    let b = |e: hearth::backend::BackendError| e.to_string();
    s.backend_mut().set_profiling(true).map_err(b)?;
    let snap = |s: &Session<hearth::backend::gpu::GpuBackend>| (s.backend().profile(), s.backend().stats());
    for &n in pp {
        s.reset();
        let (p0, c0) = snap(&s);
        let l = s.prefill(&toks[..n]).map_err(e)?;
        s.backend_mut().argmax(&l, 0, n_vocab as usize).map_err(b)?;
        let (p1, c1) = snap(&s);
        print!("{}", p1.since(&p0).table(&format!("profile pp{n}"), n, c1.submits - c0.submits, c1.bind_groups - c0.bind_groups));
    }
    s.reset();
    s.prefill(&toks[..1]).map_err(e)?;
    // One decoded token first so the steady state (cached bind groups) is what is counted.
    let l = s.prefill(&toks[..2]).map_err(e)?;
    s.backend_mut().argmax(&l, 0, n_vocab as usize).map_err(b)?;
    let (p0, c0) = snap(&s);
    for k in 3..=tg + 2 {
        let l = s.prefill(&toks[..k]).map_err(e)?;
        s.backend_mut().argmax(&l, 0, n_vocab as usize).map_err(b)?;
    }
    let (p1, c1) = snap(&s);
    print!("{}", p1.since(&p0).table(&format!("profile tg{tg}"), tg, c1.submits - c0.submits, c1.bind_groups - c0.bind_groups));
    s.backend_mut().set_profiling(false).map_err(b)
}

#[cfg(not(feature = "gpu"))]
pub(super) fn gpu_profile(_: &Path, _: usize, _: usize, _: &[usize], _: usize) -> Result<(), String> {
    Err("this build has no GPU backend (built without the `gpu` feature)".into())
}

/// Constrained vs unconstrained greedy decoding of the same tokens. Per rep: the constrained
/// chat completion of `prompt` (K tokens, timed from the end of its prefill to its last token),
/// then the same K tokens unconstrained (the prompt prefilled, then the argmax of each step and
/// one forward per token, as unconstrained greedy decoding runs). The constrained run feeds the
/// tokens its grammar forces in batches (the first ones with the prompt), the unconstrained one
/// one at a time: that is part of what is measured. Rep 0 is the warm-up; the token trie is
/// built before it (`Session::prepare_constraints`, its time printed apart).
pub(super) fn cmd_bench_constrained<B: Backend + 'static>(mut s: Session<B>, reps: usize, prompt: &str, c: Constraint, max_tokens: usize) -> Result<(), String> {
    let err = |e: engine::EngineError| e.to_string();
    let n_vocab = s.config().n_vocab;
    let msgs = [ChatMessage::new("user", prompt)];
    let prompt_toks = s.chat_tokens(&msgs).map_err(err)?;
    let p = GenerateParams { max_tokens, sampler: SamplerParams::greedy(), stop: vec![], constraint: Some(c) };
    let (mut ours, mut theirs, mut per_tok, mut mask, mut compile) = (vec![], vec![], vec![], vec![], vec![]);
    let mut last = None;
    // The token trie is built once per session, before the timed runs (its own line).
    println!("vocab (token trie, once per session): {:.1} ms", s.prepare_constraints().map_err(err)?);
    for rep in 0..=reps {
        s.reset();
        let mut g = s.start(&prompt_toks, &p).map_err(err)?;
        let t = Instant::now();
        while pollster::block_on(s.step(&mut g)).map_err(err)?.is_some() {}
        let ours_s = t.elapsed().as_secs_f64();
        let done = g.into_completion();
        let k = done.tokens.len();
        if k < 2 {
            return Err(format!("the constrained output has {k} token(s): too short to time"));
        }
        s.reset();
        let mut all = prompt_toks.clone();
        let l = s.prefill(&all).map_err(err)?;
        let t = Instant::now();
        s.backend_mut().argmax(&l, 0, n_vocab).map_err(|e| e.to_string())?;
        for &tok in &done.tokens[..k - 1] {
            all.push(tok);
            let l = s.prefill(&all).map_err(err)?;
            s.backend_mut().argmax(&l, 0, n_vocab).map_err(|e| e.to_string())?;
        }
        let theirs_s = t.elapsed().as_secs_f64();
        let st = done.usage.constraint.unwrap_or_default();
        if rep > 0 {
            ours.push(k as f64 / ours_s);
            theirs.push(k as f64 / theirs_s);
            per_tok.push(st.grammar_ms / k as f64);
            compile.push(st.compile_ms);
            if st.masks > 0 {
                mask.push(st.mask_ms / st.masks as f64);
            }
        }
        last = Some((done, st));
    }
    let Some((done, st)) = last else { return Err("no rep ran".into()) };
    let samples = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(" ");
    println!("backend: {}", s.backend().describe());
    println!("prompt tokens: {}", prompt_toks.len());
    println!("output tokens: {} ({} forced, {} masks), finish {}", done.tokens.len(), st.forced_tokens, st.masks, done.finish_reason.as_str());
    println!("output: {}", done.text.replace('\n', "\\n"));
    println!("constrained samples: {}", samples(&ours));
    println!("constrained: {:.2} tok/s (median of {reps})", median(ours));
    println!("unconstrained samples: {}", samples(&theirs));
    println!("unconstrained: {:.2} tok/s (median of {reps})", median(theirs));
    println!("grammar per token: {:.4} ms (median of {reps})", median(per_tok));
    if !mask.is_empty() {
        let n = mask.len();
        println!("per mask: {:.4} ms (median of {n})", median(mask));
    }
    println!("compile: {:.3} ms (median of {reps})", median(compile));
    Ok(())
}
