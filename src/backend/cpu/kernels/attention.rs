//! Causal attention over the f32 KV cache (layout `[pos][kv_head][head_dim]`), flash-attention
//! style: a tile of queries that share one KV head (the heads of a GQA group × a few tokens)
//! walks the keys in blocks of [`KEY_BLOCK`], so each K and V row is loaded once per tile, not
//! once per query; the softmax is online (running max, sum and output rescaled per block), and
//! all buffers are a thread's reusable [`AttnScratch`].
//!
//! **A query's result does not depend on its tile** (which tokens and heads it is computed
//! with, so neither on how a prompt was split into batches nor on the thread count): key
//! blocks are aligned to absolute positions (block `b` is keys `32b..32b+32`), a query visits
//! exactly the blocks that hold one of its keys, and every block is computed over all its
//! slots, the ones outside the query's window (or past the keys the tile read) as score `−∞`,
//! weight 0. Each (query, key) dot and each output element has one fixed order of operations
//! in every micro-kernel instance of a machine ([`AttnMachine`]). Only a zero weight times a
//! V element of a key past the query's own position (inside its tile) is added where a
//! query computed alone adds nothing: `a + 0·v = a` for finite `v` (up to the sign of a zero).
//!
//! Machines: AVX2 + FMA (`simd_x86_attn.rs`, detected at run time), SIMD128 (wasm,
//! `simd_wasm_attn.rs`) and the portable one below; `mod.rs` picks one (`attend`). [`attention_reference`] is the
//! per-(token, head) two-pass algorithm the CPU backend had before; the tests and the wasm
//! check (`check.rs`) hold every machine to it.

use crate::backend::AttnParams;
use std::ops::Range;

/// Keys per block of the online softmax (blocks start at multiples of it).
pub const KEY_BLOCK: usize = 32;

/// One machine's micro-kernels, on up to four queries (`mq`) at once. Every way a kernel
/// groups its work must compute each (query, key) dot, and each output element, with the same
/// operations in the same order.
pub(super) trait AttnMachine {
    /// `out[i·KEY_BLOCK + j] = q_i · k_j` for `i < mq`, `j < n`, where `q_i` is `q[i]..+hd` and
    /// `k_j` is `k + j·stride ..+hd`.
    ///
    /// # Safety
    /// The CPU has the machine's features (all the trait's functions); the `mq` query rows and
    /// the `n` key rows are readable for `hd` floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dots(q: [*const f32; 4], mq: usize, k: *const f32, stride: usize, n: usize, hd: usize, out: &mut [f32]);
    /// `acc[i·hd + d] = acc[i·hd + d]·alpha[i] + Σ_{j<n} p[i·KEY_BLOCK + j]·v[j·stride + d]` for
    /// `i < mq`, `d < hd`, `j` in order.
    ///
    /// # Safety
    /// As [`AttnMachine::dots`]; the `n` V rows are readable for `hd` floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn accumulate(acc: &mut [f32], mq: usize, alpha: &[f32], p: &[f32], v: *const f32, stride: usize, n: usize, hd: usize);
}

/// A thread's buffers for [`attend`](super::attend): scores, running max and sum, rescale factors, outputs.
#[derive(Debug, Default)]
pub struct AttnScratch {
    s: Vec<f32>,
    m: Vec<f32>,
    l: Vec<f32>,
    alpha: Vec<f32>,
    acc: Vec<f32>,
}

/// First key position `pos` attends to.
#[inline]
pub(super) fn window_start(pos: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) if w > 0 => (pos + 1).saturating_sub(w),
        _ => 0,
    }
}

/// The block algorithm (module docs) on machine `M`.
///
/// # Safety
/// The CPU has `M`'s features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn attend_with<M: AttnMachine>(q: &[f32], k: &[f32], v: &[f32], p: &AttnParams, tokens: Range<usize>, heads: Range<usize>, sc: &mut AttnScratch, mut write: impl FnMut(usize, &[f32])) {
    let hd = p.head_dim;
    let (nh, nt) = (heads.len(), tokens.len());
    if nh == 0 || nt == 0 || hd == 0 {
        return;
    }
    let group = p.n_head / p.n_head_kv;
    let kvh = heads.start / group;
    assert!(heads.end <= p.n_head && (heads.end - 1) / group == kvh && tokens.end <= p.n_tokens, "attention tile out of range");
    let kv_stride = p.n_head_kv * hd;
    let koff = kvh * hd;
    let nq = nh * nt;
    sc.s.clear();
    sc.s.resize(nq * KEY_BLOCK, 0.0);
    sc.m.clear();
    sc.m.resize(nq, f32::NEG_INFINITY);
    sc.l.clear();
    sc.l.resize(nq, 0.0);
    sc.alpha.clear();
    sc.alpha.resize(nq, 0.0);
    sc.acc.clear();
    sc.acc.resize(nq * hd, 0.0);
    // Query i = (token tokens.start + i / nh, head heads.start + i % nh).
    let q_row = |i: usize| {
        let (t, h) = (tokens.start + i / nh, heads.start + i % nh);
        &q[(t * p.n_head + h) * hd..(t * p.n_head + h + 1) * hd]
    };
    let pos_of = |t: usize| p.pos0 + t;
    let (first, last) = (pos_of(tokens.start), pos_of(tokens.end - 1));
    for b in window_start(first, p.window) / KEY_BLOCK..=last / KEY_BLOCK {
        let lo = b * KEY_BLOCK;
        // Tokens with a key in this block: position ≥ lo and window start < lo + KEY_BLOCK
        // (both grow with the token, so they are a range).
        let ta = tokens.start.max(lo.saturating_sub(p.pos0));
        let mut tb = ta;
        while tb < tokens.end && window_start(pos_of(tb), p.window) < lo + KEY_BLOCK {
            tb += 1;
        }
        if ta >= tb {
            continue;
        }
        let hi = (lo + KEY_BLOCK).min(pos_of(tb - 1) + 1);
        let qa = (ta - tokens.start) * nh;
        let qb = (tb - tokens.start) * nh;
        // Raw dots of the active queries with keys lo..hi (rows in bounds: hi ≤ the cache's rows).
        assert!(hi * kv_stride <= k.len() && hi * kv_stride <= v.len());
        let mut i = qa;
        while i < qb {
            let mq = (qb - i).min(4);
            let rows: [*const f32; 4] = std::array::from_fn(|c| q_row(i + c.min(mq - 1)).as_ptr());
            // SAFETY: the caller's (M's features); rows in bounds (slices above, assert).
            unsafe { M::dots(rows, mq, k.as_ptr().add(lo * kv_stride + koff), kv_stride, hi - lo, hd, &mut sc.s[i * KEY_BLOCK..]) };
            i += mq;
        }
        // Online softmax per active query, over every slot of the block.
        for i in qa..qb {
            let pos = pos_of(tokens.start + i / nh);
            let first_key = window_start(pos, p.window);
            let row = &mut sc.s[i * KEY_BLOCK..(i + 1) * KEY_BLOCK];
            for (slot, x) in row.iter_mut().enumerate() {
                let j = lo + slot;
                *x = if j < first_key || j > pos {
                    f32::NEG_INFINITY
                } else {
                    let s = *x * p.scale;
                    match p.softcap {
                        Some(c) => c * (s / c).tanh(),
                        None => s,
                    }
                };
            }
            let mut m_new = sc.m[i];
            for &x in row.iter() {
                m_new = m_new.max(x);
            }
            let alpha = super::super::vmath::exp(sc.m[i] - m_new);
            let sum = super::super::vmath::exp_block(row, m_new);
            sc.l[i] = sc.l[i] * alpha + sum;
            sc.m[i] = m_new;
            sc.alpha[i] = alpha;
        }
        // Weighted V rows lo..hi into the active queries' outputs.
        let mut i = qa;
        while i < qb {
            let mq = (qb - i).min(4);
            // SAFETY: the caller's (M's features); V rows in bounds (asserted above).
            unsafe { M::accumulate(&mut sc.acc[i * hd..], mq, &sc.alpha[i..], &sc.s[i * KEY_BLOCK..], v.as_ptr().add(lo * kv_stride + koff), kv_stride, hi - lo, hd) };
            i += mq;
        }
    }
    for (i, row) in sc.acc.chunks_exact_mut(hd).enumerate() {
        let l = sc.l[i];
        row.iter_mut().for_each(|x| *x /= l);
    }
    for (t, out) in tokens.zip(sc.acc.chunks_exact(nh * hd)) {
        write(t, out);
    }
}

/// The portable machine: eight scalar partial sums per dot (summed as a tree), no fused
/// multiply-adds; the compiler may vectorise it, which changes no result.
pub(super) struct Portable;

impl AttnMachine for Portable {
    #[inline(always)]
    unsafe fn dots(q: [*const f32; 4], mq: usize, k: *const f32, stride: usize, n: usize, hd: usize, out: &mut [f32]) {
        for (i, &qi) in q.iter().enumerate().take(mq) {
            let qi = std::slice::from_raw_parts(qi, hd);
            for j in 0..n {
                out[i * KEY_BLOCK + j] = dot_portable(qi, std::slice::from_raw_parts(k.add(j * stride), hd));
            }
        }
    }

    #[inline(always)]
    unsafe fn accumulate(acc: &mut [f32], mq: usize, alpha: &[f32], p: &[f32], v: *const f32, stride: usize, n: usize, hd: usize) {
        for i in 0..mq {
            let acc = &mut acc[i * hd..(i + 1) * hd];
            acc.iter_mut().for_each(|x| *x *= alpha[i]);
            for (j, &w) in p[i * KEY_BLOCK..i * KEY_BLOCK + n].iter().enumerate() {
                let row = std::slice::from_raw_parts(v.add(j * stride), hd);
                acc.iter_mut().zip(row).for_each(|(x, y)| *x += w * y);
            }
        }
    }
}

/// `a · b` with eight partial sums, `((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7))`, then the tail.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// Scalar reference: per (token, head), every score, the softmax, then the weighted sum of V
/// (two passes; the CPU backend's attention before the block kernels). Single-threaded.
pub fn attention_reference(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], p: &AttnParams) {
    let hd = p.head_dim;
    if hd == 0 || p.n_head_kv == 0 {
        return;
    }
    let group = p.n_head / p.n_head_kv;
    let kv_stride = p.n_head_kv * hd;
    for (i, o) in out.chunks_exact_mut(hd).enumerate().take(p.n_tokens * p.n_head) {
        let (t, h) = (i / p.n_head, i % p.n_head);
        let pos = p.pos0 + t;
        let start = window_start(pos, p.window);
        let qh = &q[i * hd..(i + 1) * hd];
        let kvh = (h / group) * hd;
        let mut scores: Vec<f32> = (start..=pos)
            .map(|j| {
                let kj = &k[j * kv_stride + kvh..j * kv_stride + kvh + hd];
                let s = qh.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * p.scale;
                match p.softcap {
                    Some(c) => c * (s / c).tanh(),
                    None => s,
                }
            })
            .collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum = super::super::vmath::exp_shifted(&mut scores, max);
        o.iter_mut().for_each(|x| *x = 0.0);
        for (j, s) in (start..=pos).zip(&scores) {
            let w = s / sum;
            let vj = &v[j * kv_stride + kvh..j * kv_stride + kvh + hd];
            o.iter_mut().zip(vj).for_each(|(a, b)| *a += w * b);
        }
    }
}
