//! Numeric kernels of the CPU backend, on plain slices.

use super::super::{Activation, AttnParams, BackendError, RopeParams};
use crate::quant::{self, GgmlType};

/// Rows handed to one task: enough work to amortise scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 16;

/// Threads the matvec rows are spread over: rayon's pool natively and in the threaded wasm
/// build (feature `threads`, pool started from JS by `initThreadPool`), 1 in the baseline wasm build.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
pub fn threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
pub fn threads() -> usize {
    1
}

/// Runs `f(first_row, out_chunk)` over `out` split into chunks of `chunk` elements, in
/// parallel natively and in the threaded wasm build, in order in the baseline wasm build.
fn for_chunks<F>(out: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    if threads() > 1 {
        // The spinning pool first (decode's many small products); rayon when the pool is
        // taken (another thread's product, or a product inside a task).
        let len = out.len();
        let base = SendPtr(out.as_mut_ptr());
        let task = |i: usize| {
            let start = i * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: task indices are distinct and each maps to its own `chunk`-sized range
            // of `out`, which stays mutably borrowed for the whole job.
            let c = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
            f(i, c);
        };
        if chunk > 0 && super::pool::run(len.div_ceil(chunk), &task) {
            return;
        }
        use rayon::prelude::*;
        out.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    // One thread: run here. Handing the work to a one-thread pool would put this thread to
    // sleep and wake the worker on every product (~10 % of decode time in the kernel's
    // scheduler, measured with perf on SmolLM2).
    out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
}

/// A pointer the tasks of one job share (each writes its own range).
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: used only by `for_chunks`, whose tasks write disjoint ranges.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
unsafe impl Send for SendPtr {}
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
unsafe impl Sync for SendPtr {}

/// Buffers a matrix product reuses from call to call, so decode allocates nothing: the
/// activations quantized to 8 bits and the transposed prefill output.
#[derive(Debug, Default)]
pub struct MatmulScratch {
    acts: quant::Q8Acts,
    transposed: Vec<f32>,
}

/// `out[t, r] = row_r(w) · x[t]` over quantized rows.
///
/// With `q8` set and an integer kernel for `ty` ([`quant::dot_q8_fn`]), `x` is quantized
/// once to 8-bit blocks and every row is an integer dot product (as llama.cpp does);
/// otherwise rows are dotted with the f32 activations.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    n: usize,
    q8: bool,
    scratch: &mut MatmulScratch,
) -> Result<(), BackendError> {
    match quant::dot_q8_fn(ty) {
        Some(dot) if q8 => matmul_q8(ty, dot, w, row_bytes, rows, cols, x, out, n, scratch),
        _ => matmul_f32(ty, w, row_bytes, rows, cols, x, out, n, scratch),
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_q8(
    ty: GgmlType,
    dot: quant::DotQ8Fn,
    w: &[u8],
    row_bytes: usize,
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    n: usize,
    scratch: &mut MatmulScratch,
) -> Result<(), BackendError> {
    scratch.acts.quantize(x)?;
    let acts = &scratch.acts;
    if n == 1 {
        let xq = acts.as_slice();
        per_row(out, w, row_bytes, |row| dot(row, xq));
        return Ok(());
    }
    // Prefill: each task takes ROWS_PER_TASK rows and dots each with every token while the
    // row is in L1; the quantized tokens (n·cols bytes) stay in L2. Results are computed
    // transposed (`[rows, n]`) so each task owns a contiguous output chunk.
    let tokens = (0..n)
        .map(|t| acts.slice(t * cols, cols))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| BackendError::Shape { op: "matmul", detail: format!("{cols} columns are not whole 8-bit blocks") })?;
    let tmp = &mut scratch.transposed;
    tmp.clear();
    tmp.resize(rows * n, 0.0);
    let dot4 = quant::dot_q8x4_fn(ty);
    for_chunks(tmp, ROWS_PER_TASK * n, |task, chunk| {
        let r0 = task * ROWS_PER_TASK;
        for (i, out_row) in chunk.chunks_exact_mut(n).enumerate() {
            let r = r0 + i;
            let row = &w[r * row_bytes..(r + 1) * row_bytes];
            let mut t = 0;
            // Four tokens per pass where a tile kernel exists: each weight block is unpacked
            // once for four tokens.
            if let Some(dot4) = dot4 {
                for (o, x) in out_row.chunks_exact_mut(4).zip(tokens.chunks_exact(4)) {
                    o.copy_from_slice(&dot4(row, [x[0], x[1], x[2], x[3]]));
                    t += 4;
                }
            }
            for (o, &xq) in out_row[t..].iter_mut().zip(&tokens[t..]) {
                *o = dot(row, xq);
            }
        }
    });
    transpose(tmp, out, rows, n);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn matmul_f32(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    n: usize,
    scratch: &mut MatmulScratch,
) -> Result<(), BackendError> {
    let dot = quant::dot_fn(ty)?;
    if n == 1 {
        per_row(out, w, row_bytes, |row| dot(row, x));
        return Ok(());
    }
    // Prefill: dequantize each row once, then dot it with every token. Results are
    // computed transposed (`[rows, n]`) so each task owns a contiguous output chunk.
    let tmp = &mut scratch.transposed;
    tmp.clear();
    tmp.resize(rows * n, 0.0);
    let err = std::sync::Mutex::new(None);
    for_chunks(tmp, ROWS_PER_TASK * n, |task, chunk| {
        let r0 = task * ROWS_PER_TASK;
        let mut row = vec![0.0f32; cols];
        for (i, out_row) in chunk.chunks_exact_mut(n).enumerate() {
            let r = r0 + i;
            if let Err(e) = quant::dequantize(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut row) {
                *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
            for (t, o) in out_row.iter_mut().enumerate() {
                *o = dot_f32(&row, &x[t * cols..(t + 1) * cols]);
            }
        }
    });
    if let Some(e) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.into());
    }
    transpose(tmp, out, rows, n);
    Ok(())
}

/// Decode: `out[r] = f(row r of w)`, rows spread over tasks of `ROWS_PER_TASK`.
fn per_row<F>(out: &mut [f32], w: &[u8], row_bytes: usize, f: F)
where
    F: Fn(&[u8]) -> f32 + Sync + Send,
{
    for_chunks(out, ROWS_PER_TASK, |task, chunk| {
        let r0 = task * ROWS_PER_TASK;
        for (i, o) in chunk.iter_mut().enumerate() {
            let r = r0 + i;
            *o = f(&w[r * row_bytes..(r + 1) * row_bytes]);
        }
    });
}

/// `out[t·rows + r] = tmp[r·n + t]`.
fn transpose(tmp: &[f32], out: &mut [f32], rows: usize, n: usize) {
    for (r, row) in tmp.chunks_exact(n).enumerate().take(rows) {
        for (t, &v) in row.iter().enumerate() {
            out[t * rows + r] = v;
        }
    }
}

/// f32 dot product with 8 independent accumulators (lets the compiler vectorise).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// RMSNorm (Zhang & Sennrich 2019): `x / sqrt(mean(x²) + eps) * w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    for ((o, v), g) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

/// Rotates one head in place at position `pos` (already scaled), as ggml's `rope_f32`:
/// pair `i` turns by `pos · theta^(-2i/n_rot)`.
pub fn rope_head(x: &mut [f32], pos: f32, p: RopeParams) {
    let half = p.n_rot / 2;
    for i in 0..half {
        let freq = p.theta.powf(-2.0 * i as f32 / p.n_rot as f32);
        let (sin, cos) = (pos * freq).sin_cos();
        let (a, b) = if p.neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos - x1 * sin;
        x[b] = x0 * sin + x1 * cos;
    }
}

/// Causal attention for every (token, head) pair; see [`super::super::Backend::attention`].
pub fn attention(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], p: &AttnParams) {
    let hd = p.head_dim;
    let group = p.n_head / p.n_head_kv;
    let kv_stride = p.n_head_kv * hd;
    for_chunks(out, hd, |i, o| {
        let (t, h) = (i / p.n_head, i % p.n_head);
        let pos = p.pos0 + t;
        let start = match p.window {
            Some(w) if w > 0 => (pos + 1).saturating_sub(w),
            _ => 0,
        };
        let qh = &q[i * hd..(i + 1) * hd];
        let kvh = (h / group) * hd;
        let mut scores: Vec<f32> = (start..=pos)
            .map(|j| {
                let s = dot_f32(qh, &k[j * kv_stride + kvh..j * kv_stride + kvh + hd]) * p.scale;
                match p.softcap {
                    Some(c) => c * (s / c).tanh(),
                    None => s,
                }
            })
            .collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        o.iter_mut().for_each(|x| *x = 0.0);
        for (j, s) in (start..=pos).zip(&scores) {
            let w = s / sum;
            let vj = &v[j * kv_stride + kvh..j * kv_stride + kvh + hd];
            o.iter_mut().zip(vj).for_each(|(a, b)| *a += w * b);
        }
    });
}

/// The gate activation of a GLU feed-forward block.
pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::Silu => x / (1.0 + (-x).exp()),
        // tanh approximation, as ggml_gelu and Gemma's reference use.
        Activation::Gelu => {
            const SQRT_2_OVER_PI: f32 = 0.797_884_6;
            0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
        }
    }
}

/// Index of the largest element (the first on ties; NaN never wins).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_neox_and_normal_rotate_different_pairs() {
        let p = RopeParams { theta: 10000.0, n_rot: 4, neox: false, freq_scale: 1.0 };
        let mut a = [1.0, 0.0, 1.0, 0.0];
        rope_head(&mut a, 1.0, p);
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = [1.0, 1.0, 0.0, 0.0];
        rope_head(&mut b, 1.0, RopeParams { neox: true, ..p });
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn attention_single_position_returns_v() {
        let p = AttnParams { n_tokens: 1, pos0: 0, n_head: 2, n_head_kv: 1, head_dim: 2, scale: 1.0, window: None, softcap: None };
        let (q, k, v) = ([1.0, 2.0, 3.0, 4.0], [0.5, 0.5], [7.0, 9.0]);
        let mut out = [0.0; 4];
        attention(&q, &k, &v, &mut out, &p);
        assert_eq!(out, [7.0, 9.0, 7.0, 9.0]);
    }

    #[test]
    fn attention_window_limits_history() {
        // Two cached positions; with window 1 the token sees only itself.
        let p = AttnParams { n_tokens: 1, pos0: 1, n_head: 1, n_head_kv: 1, head_dim: 1, scale: 1.0, window: Some(1), softcap: None };
        let mut out = [0.0];
        attention(&[1.0], &[100.0, 0.0], &[5.0, 3.0], &mut out, &p);
        assert_eq!(out, [3.0]);
    }

    #[test]
    fn argmax_prefers_first_and_ignores_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
    }
}
