//! Numeric kernels of the CPU backend, on plain slices.

use super::super::{Activation, AttnParams, BackendError, RopeParams};
use super::kernels;
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

/// Runs `f(i)` for every `i < count`: in parallel natively and in the threaded wasm build (the
/// spinning pool first, for decode's many small products; rayon when the pool is taken by
/// another thread's product or a product inside a task), in order in the baseline wasm build.
fn for_tasks<F>(count: usize, f: F)
where
    F: Fn(usize) + Sync + Send,
{
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    if threads() > 1 && count > 1 {
        if super::pool::run(count, &f) {
            return;
        }
        use rayon::prelude::*;
        (0..count).into_par_iter().for_each(f);
        return;
    }
    // One thread: run here. Handing the work to a one-thread pool would put this thread to
    // sleep and wake the worker on every product (~10 % of decode time in the kernel's
    // scheduler, measured with perf on SmolLM2).
    (0..count).for_each(f);
}

/// Runs `f(i, out_chunk_i)` over `out` split into chunks of `chunk` elements (see [`for_tasks`]).
fn for_chunks<F>(out: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if chunk == 0 {
        return;
    }
    let out = Shared::new(out);
    for_tasks(out.len.div_ceil(chunk), |i| {
        let start = i * chunk;
        // SAFETY: task indices are distinct and each maps to its own `chunk`-sized range.
        f(i, unsafe { out.range(start, (start + chunk).min(out.len)) });
    });
}

/// An output buffer the tasks of one job write to, each to elements no other task writes
/// (distinct chunks, or distinct rows of a token-major matrix). It stays mutably borrowed
/// for the whole job.
struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks write disjoint elements (the callers' contract on `range` and `set`).
unsafe impl Send for Shared<'_> {}
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    fn new(out: &'a mut [f32]) -> Self {
        Shared {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _out: std::marker::PhantomData,
        }
    }

    /// Elements `start..end` (clamped to the buffer).
    ///
    /// # Safety
    /// No other task may touch these elements during the job.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range(&self, start: usize, end: usize) -> &mut [f32] {
        let end = end.min(self.len);
        let start = start.min(end);
        // SAFETY: in bounds (clamped); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }

    /// Writes element `i` (panics out of bounds).
    ///
    /// # Safety
    /// No other task may touch element `i` during the job.
    unsafe fn set(&self, i: usize, v: f32) {
        assert!(i < self.len, "write at {i} past {}", self.len);
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { *self.ptr.add(i) = v };
    }
}

/// Buffers a matrix product reuses from call to call, so decode allocates nothing: the
/// activations quantized to 8 bits.
#[derive(Debug, Default)]
pub struct MatmulScratch {
    acts: kernels::Q8Acts,
    tiles: kernels::Q8Tiles,
}

/// `out[t, r] = row_r(w) · x[t]` over quantized rows.
///
/// With `q8` set and an integer kernel for `ty` ([`kernels::dot_q8_fn`]), `x` is quantized
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
    match kernels::dot_q8_fn(ty) {
        Some(dot) if q8 => matmul_q8(ty, dot, w, row_bytes, rows, cols, x, out, n, scratch),
        _ => matmul_f32(ty, w, row_bytes, rows, cols, x, out, n),
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_q8(
    ty: GgmlType,
    dot: kernels::DotQ8Fn,
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
    // One token against TILE_ROWS rows with the tiles' arithmetic, where this build has it:
    // decode and a prefill's leftover tokens then compute what a tile would, bit for bit, so
    // a token's result does not depend on how the prompt was split (`simd_x86_rows.rs`).
    let rows4 = kernels::dot_q8_rows_fn(ty);
    if n == 1 {
        let xq = acts.as_slice();
        match rows4 {
            Some(f) => per_rows4(out, w, row_bytes, rows, |r| f(r, xq)),
            None => per_row(out, w, row_bytes, |row| dot(row, xq)),
        }
        return Ok(());
    }
    // Prefill: each task takes ROWS_PER_TASK rows and dots each with every token while the
    // row is in L1; the quantized tokens (n·cols bytes) stay in L2. Each task writes its rows'
    // column of the token-major output in place (no transposed copy on the calling thread).
    let tokens = (0..n)
        .map(|t| acts.slice(t * cols, cols))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| BackendError::Shape { op: "matmul", detail: format!("{cols} columns are not whole 8-bit blocks") })?;
    // Four tokens per pass where a tile kernel exists: each weight block is unpacked once for
    // four tokens. The interleaved tiles where this build has kernels for them, else four slices.
    let tile = kernels::dot_q8_tile_fn(ty).filter(|_| scratch.tiles.fill(acts, n, cols));
    let tile_rows = kernels::dot_q8_tile_rows_fn(ty).filter(|_| tile.is_some());
    let dot4 = if tile.is_some() {
        None
    } else {
        kernels::dot_q8x4_fn(ty)
    };
    let tiles = &scratch.tiles;
    let out = Shared::new(&mut out[..rows * n]);
    for_tasks(rows.div_ceil(ROWS_PER_TASK), |task| {
        let (r0, r1) = (task * ROWS_PER_TASK, ((task + 1) * ROWS_PER_TASK).min(rows));
        let row = |r: usize| &w[r * row_bytes..(r + 1) * row_bytes];
        // SAFETY (every `set`): rows r0..r1 belong to this task alone.
        let put4 = |t: usize, r: usize, v: [f32; 4]| {
            v.into_iter()
                .enumerate()
                .for_each(|(k, v)| unsafe { out.set((t + k) * rows + r, v) })
        };
        let done = if let Some(tile) = tile {
            // Group by group over the task's rows: the rows (16 of them, ≤ 16 KB for 1536
            // columns) and one group's activations stay in L1 (the whole prompt's do not:
            // rows-outer ran the 1536-column product at 0.7× the speed, measured in Chromium).
            // TILE_ROWS rows at a time where this build has a several-row tile (each token
            // block loaded once for them), the rows left over one by one.
            const TR: usize = kernels::TILE_ROWS;
            let several = if tile_rows.is_some() { (r1 - r0) / TR * TR } else { 0 };
            for g in 0..tiles.groups() {
                let Some(x) = tiles.tile(g) else { break };
                if let Some(tile_rows) = tile_rows {
                    for r in (r0..r0 + several).step_by(TR) {
                        let v = tile_rows(std::array::from_fn(|k| row(r + k)), x);
                        v.into_iter().enumerate().for_each(|(k, v)| put4(4 * g, r + k, v));
                    }
                }
                (r0 + several..r1).for_each(|r| put4(4 * g, r, tile(row(r), x)));
            }
            4 * tiles.groups()
        } else if let Some(dot4) = dot4 {
            for r in r0..r1 {
                for (g, x) in tokens.chunks_exact(4).enumerate() {
                    put4(4 * g, r, dot4(row(r), [x[0], x[1], x[2], x[3]]));
                }
            }
            n - n % 4
        } else {
            0
        };
        if let Some(rows4) = rows4 {
            const TR: usize = kernels::TILE_ROWS;
            for r in (r0..r1).step_by(TR) {
                // The last group of a task may be short: its missing rows repeat row r (the
                // lanes are independent, so the real rows' results are unchanged).
                let rs = std::array::from_fn(|k| row(if r + k < r1 { r + k } else { r }));
                for (t, &xq) in tokens.iter().enumerate().skip(done) {
                    let v = rows4(rs, xq);
                    (r..(r + TR).min(r1)).for_each(|rr| unsafe { out.set(t * rows + rr, v[rr - r]) });
                }
            }
            return;
        }
        for r in r0..r1 {
            for (t, &xq) in tokens.iter().enumerate().skip(done) {
                unsafe { out.set(t * rows + r, dot(row(r), xq)) };
            }
        }
    });
    Ok(())
}

/// Decode with a four-row kernel: `out[r..r + 4] = f(rows r..r + 4 of w)`, rows spread over
/// tasks of `ROWS_PER_TASK` (a multiple of four); a short last group repeats its first row in
/// the missing slots.
fn per_rows4<F>(out: &mut [f32], w: &[u8], row_bytes: usize, rows: usize, f: F)
where
    F: Fn([&[u8]; kernels::TILE_ROWS]) -> [f32; kernels::TILE_ROWS] + Sync + Send,
{
    const TR: usize = kernels::TILE_ROWS;
    const _: () = assert!(ROWS_PER_TASK % TR == 0);
    let rows = rows.min(out.len());
    for_chunks(&mut out[..rows], ROWS_PER_TASK, |task, chunk| {
        let r0 = task * ROWS_PER_TASK;
        for (g, o) in chunk.chunks_mut(TR).enumerate() {
            let r = r0 + g * TR;
            let rs = std::array::from_fn(|k| {
                let rr = if k < o.len() { r + k } else { r };
                &w[rr * row_bytes..(rr + 1) * row_bytes]
            });
            o.copy_from_slice(&f(rs)[..o.len()]);
        }
    });
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
) -> Result<(), BackendError> {
    let dot = kernels::dot_fn(ty)?;
    if n == 1 {
        per_row(out, w, row_bytes, |row| dot(row, x));
        return Ok(());
    }
    // Prefill: dequantize each row once, then dot it with every token; each task writes its
    // rows of the token-major output in place.
    let err = std::sync::Mutex::new(None);
    let out = Shared::new(&mut out[..rows * n]);
    for_tasks(rows.div_ceil(ROWS_PER_TASK), |task| {
        let r0 = task * ROWS_PER_TASK;
        let mut row = vec![0.0f32; cols];
        for r in r0..(r0 + ROWS_PER_TASK).min(rows) {
            if let Err(e) = quant::dequantize(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut row) {
                *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
            for t in 0..n {
                // SAFETY: row r belongs to this task alone.
                unsafe { out.set(t * rows + r, dot_f32(&row, &x[t * cols..(t + 1) * cols])) };
            }
        }
    });
    if let Some(e) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.into());
    }
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

/// Rotates `n_heads` heads of `head_dim` for each of `n_tokens` tokens at positions `pos0..`,
/// in place, as ggml's `rope_f32`: pair `i` turns by `pos · freq_scale · theta^(-2i/n_rot)`,
/// divided by `factors[i]` when there are factors, and the rotated pair is multiplied by
/// `mscale`. The frequencies are computed once per call and each position's sines and cosines
/// once for all its heads (the same values a per-head computation gives).
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &mut [f32],
    n_tokens: usize,
    n_heads: usize,
    head_dim: usize,
    pos0: usize,
    p: RopeParams,
    factors: Option<&[f32]>,
    mscale: f32,
) {
    if n_heads == 0 || head_dim == 0 {
        return;
    }
    let half = p.n_rot / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| {
            let f = p.theta.powf(-2.0 * i as f32 / p.n_rot as f32);
            factors.map_or(f, |ff| f / ff[i])
        })
        .collect();
    let mut sin_cos = vec![(0.0f32, 1.0f32); half];
    for (t, token) in x
        .chunks_exact_mut(n_heads * head_dim)
        .take(n_tokens)
        .enumerate()
    {
        let pos = (pos0 + t) as f32 * p.freq_scale;
        for (sc, f) in sin_cos.iter_mut().zip(&freqs) {
            let (s, c) = (pos * f).sin_cos();
            *sc = (s * mscale, c * mscale);
        }
        for head in token.chunks_exact_mut(head_dim) {
            rotate(head, &sin_cos, p.neox);
        }
    }
}

/// Turns pair `i` of one head by the angle whose `(sin, cos)` is `sin_cos[i]`: elements
/// `(i, i + n_rot/2)` in NeoX order, `(2i, 2i + 1)` otherwise.
fn rotate(x: &mut [f32], sin_cos: &[(f32, f32)], neox: bool) {
    let half = sin_cos.len();
    for (i, &(sin, cos)) in sin_cos.iter().enumerate() {
        let (a, b) = if neox {
            (i, i + half)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos - x1 * sin;
        x[b] = x0 * sin + x1 * cos;
    }
}

/// Tokens per attention task in a prefill: with the `group` heads of one KV head, the tile of
/// queries that loads each K and V row once (`kernels::attend`).
const ATTN_TOKENS: usize = 8;

/// Causal attention for every (token, head) pair; see [`super::super::Backend::attention`].
/// Tasks: a prefill's tiles of [`ATTN_TOKENS`] tokens × one KV head's query heads, the last
/// tokens (the most keys) first; a batch of at most `ATTN_TOKENS` tokens (decode) splits by
/// query head instead, so threads still share it. A query's result does not depend on the
/// split (`kernels/attention.rs`).
pub fn attention(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], p: &AttnParams) {
    let (hd, n) = (p.head_dim, p.n_tokens);
    if hd == 0 || n == 0 || p.n_head == 0 || p.n_head_kv == 0 {
        return;
    }
    let heads = if n > ATTN_TOKENS { p.n_head / p.n_head_kv } else { 1 };
    let head_tiles = p.n_head / heads;
    let token_tiles = n.div_ceil(ATTN_TOKENS);
    let out = Shared::new(out);
    for_tasks(token_tiles * head_tiles, |i| {
        let (tt, ht) = (token_tiles - 1 - i / head_tiles, i % head_tiles);
        let tokens = tt * ATTN_TOKENS..((tt + 1) * ATTN_TOKENS).min(n);
        let (h0, h1) = (ht * heads, (ht + 1) * heads);
        kernels::attend(q, k, v, p, tokens, h0..h1, |t, o| {
            let start = (t * p.n_head + h0) * hd;
            // SAFETY: each task writes its own tokens' rows of its own heads.
            unsafe { out.range(start, start + o.len()) }.copy_from_slice(o);
        });
    });
}

/// The gate activation of a GLU feed-forward block.
pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::Silu => super::vmath::silu(x),
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
        rope(&mut a, 1, 1, 4, 1, p, None, 1.0);
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = [1.0, 1.0, 0.0, 0.0];
        rope(&mut b, 1, 1, 4, 1, RopeParams { neox: true, ..p }, None, 1.0);
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn rope_with_factors_divides_each_pairs_angle_and_scales_only_rotated_dims() {
        // Scalar reference: element by element, from the definition (ggml rope_ext with
        // freq_factors, ext_factor 0, mscale = attn_factor).
        let (n_tokens, n_heads, hd, n_rot, pos0) = (3, 2, 8, 6, 5);
        let factors = [1.0f32, 4.0, 32.0];
        for neox in [false, true] {
            let p = RopeParams { theta: 500000.0, n_rot, neox, freq_scale: 0.5 };
            let x0: Vec<f32> = (0..n_tokens * n_heads * hd).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let mut x = x0.clone();
            rope(&mut x, n_tokens, n_heads, hd, pos0, p, Some(&factors), 1.25);
            let mut want = x0.clone();
            for t in 0..n_tokens {
                for h in 0..n_heads {
                    let base = (t * n_heads + h) * hd;
                    for i in 0..n_rot / 2 {
                        let angle = (pos0 + t) as f64 * 0.5 * 500000f64.powf(-2.0 * i as f64 / n_rot as f64) / factors[i] as f64;
                        let (a, b) = if neox { (base + i, base + i + n_rot / 2) } else { (base + 2 * i, base + 2 * i + 1) };
                        let (x0a, x0b) = (x0[a] as f64, x0[b] as f64);
                        want[a] = ((x0a * angle.cos() - x0b * angle.sin()) * 1.25) as f32;
                        want[b] = ((x0a * angle.sin() + x0b * angle.cos()) * 1.25) as f32;
                    }
                }
            }
            for (i, (g, w)) in x.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-5, "neox={neox} element {i}: {g} vs {w}");
            }
            // The dimensions past n_rot are left as they were (not scaled).
            assert_eq!(x[6..8], x0[6..8]);
        }
    }

    #[test]
    fn rope_turns_each_token_by_its_position_in_every_head() {
        // Two tokens at positions 3 and 4, two heads each, n_rot 2 of head_dim 4: pair 0 turns
        // by the position (theta^0 = 1), the unrotated tail stays.
        let p = RopeParams {
            theta: 10000.0,
            n_rot: 2,
            neox: false,
            freq_scale: 0.5,
        };
        let mut x = [
            1.0, 0.0, 7.0, 8.0, 1.0, 0.0, 7.0, 8.0, 1.0, 0.0, 7.0, 8.0, 1.0, 0.0, 7.0, 8.0,
        ];
        rope(&mut x, 2, 2, 4, 3, p, None, 1.0);
        for (t, token) in x.chunks_exact(8).enumerate() {
            let angle = (3 + t) as f32 * 0.5;
            for head in token.chunks_exact(4) {
                assert_eq!(head, [angle.cos(), angle.sin(), 7.0, 8.0]);
            }
        }
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
    fn prefill_products_at_odd_shapes_match_the_scalar_reference() {
        // Rows, tokens and blocks that are not multiples of the tiles (TILE_ROWS rows, four
        // tokens, 16-row tasks): every output of the q8 product equals the scalar reference's
        // integer dot of that row with that token's quantized activations, to rounding.
        use crate::quant::synth::Rng;
        use crate::quant::tests::random_row;
        let mut rng = Rng(0x0DD5_0000_0000_0017);
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
            let reference = kernels::dot_q8_scalar_fn(ty).unwrap();
            let (rows, blocks) = (37, 3);
            let cols = blocks * ty.block_size();
            let w: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, blocks)).collect();
            let row_bytes = w.len() / rows;
            for n in [1, 3, 4, 7, 9] {
                let x: Vec<f32> = (0..n * cols).map(|i| rng.f() * [0.02, 1.0, 7.0][(i / 32) % 3]).collect();
                let mut out = vec![f32::NAN; n * rows];
                let mut scratch = MatmulScratch::default();
                matmul(ty, &w, row_bytes, rows, cols, &x, &mut out, n, true, &mut scratch).unwrap();
                let mut acts = kernels::Q8Acts::new();
                acts.quantize(&x).unwrap();
                for t in 0..n {
                    let xq = acts.slice(t * cols, cols).unwrap();
                    for r in 0..rows {
                        let row = &w[r * row_bytes..(r + 1) * row_bytes];
                        let want = reference(row, xq);
                        let got = out[t * rows + r];
                        // Exact integer sums; the f32 scale products and their order differ:
                        // a few epsilons of Σ|w·x| (x̂ = d·q is within d/2 of x).
                        let mut wf = vec![0.0f32; cols];
                        quant::dequantize(ty, row, &mut wf).unwrap();
                        let mag: f64 = (0..cols).map(|i| (wf[i] as f64 * x[t * cols + i] as f64).abs()).sum();
                        assert!(((got - want) as f64).abs() <= 1e-5 * mag + 1e-30, "{ty:?} n={n} token {t} row {r}: {got} vs {want}");
                    }
                    // Where this build has the one-token rows kernel (or no tile at all), a
                    // token's outputs do not depend on its batch: the same bits alone.
                    if kernels::dot_q8_rows_fn(ty).is_some() || kernels::dot_q8_tile_fn(ty).is_none() {
                        let mut alone = vec![f32::NAN; rows];
                        matmul(ty, &w, row_bytes, rows, cols, &x[t * cols..(t + 1) * cols], &mut alone, 1, true, &mut scratch).unwrap();
                        let batched: Vec<u32> = out[t * rows..(t + 1) * rows].iter().map(|v| v.to_bits()).collect();
                        assert_eq!(alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), batched, "{ty:?} n={n} token {t}: alone vs in a batch");
                    }
                }
            }
        }
    }

    #[test]
    fn argmax_prefers_first_and_ignores_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
    }
}
