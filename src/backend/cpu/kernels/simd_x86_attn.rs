//! AVX2 + FMA micro-kernels of the block attention (`attention.rs`), chosen at run time.
//!
//! Dots: `MQ` queries × `MK` keys (up to 4 × 2), one eight-lane accumulator per pair, each K
//! and Q chunk loaded once for the tile; the accumulators are reduced four at a time with
//! `vhaddps` (per pair always `((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))`), then the `hd mod 8`
//! tail is added element by element. Weighted V: `MQ` queries × 16 output elements held in
//! registers over all the block's keys (each V chunk loaded once for the `MQ` queries), then
//! 8, then a scalar tail. A pair's or an element's operations never depend on `MQ` or `MK`.

use super::attention::{attend_with, AttnMachine, AttnScratch, KEY_BLOCK};
use crate::backend::AttnParams;
use std::arch::x86_64::*;
use std::ops::Range;

/// The AVX2 + FMA machine. Reachable only through [`attend_avx2`].
pub(super) struct Avx2;

/// `attention::attend_with` on [`Avx2`].
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn attend_avx2(q: &[f32], k: &[f32], v: &[f32], p: &AttnParams, tokens: Range<usize>, heads: Range<usize>, s: &mut AttnScratch, write: impl FnMut(usize, &[f32])) {
    // SAFETY: the caller's.
    unsafe { attend_with::<Avx2>(q, k, v, p, tokens, heads, s, write) }
}

/// Lane r of the result: the sum of `v[r]`'s eight lanes, `((0+1)+(2+3)) + ((4+5)+(6+7))`.
#[inline(always)]
unsafe fn reduce4(v: [__m256; 4]) -> __m128 {
    let h = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
}

/// The dot tail past the last full chunk: `s + Σ q[d]·k[d]`, `d` in `n8..hd` in order.
#[inline(always)]
unsafe fn tail(mut s: f32, q: *const f32, k: *const f32, n8: usize, hd: usize) -> f32 {
    for d in n8..hd {
        s += *q.add(d) * *k.add(d);
    }
    s
}

/// Writes the four reduced sums of `v` (see [`reduce4`]) to `r`.
#[inline(always)]
unsafe fn store4(v: [__m256; 4]) -> [f32; 4] {
    let mut r = [0.0f32; 4];
    _mm_storeu_ps(r.as_mut_ptr(), reduce4(v));
    r
}

impl AttnMachine for Avx2 {
    // No closures or arrays of vectors indexed in loops here: a closure does not inherit
    // `attend_avx2`'s target features (its intrinsics became calls), and indexed arrays of
    // vectors were spilled to the stack in the inner loops (measured with perf).
    #[inline(always)]
    unsafe fn dots(q: [*const f32; 4], mq: usize, k: *const f32, stride: usize, n: usize, hd: usize, out: &mut [f32]) {
        assert!(mq <= 4 && out.len() >= mq * KEY_BLOCK && n <= KEY_BLOCK);
        let n8 = hd / 8 * 8;
        let z = _mm256_setzero_ps();
        let mut j = 0;
        if mq == 4 {
            // 4 queries × 2 keys: 8 accumulators, 2 key and 1 query chunk loaded per step.
            while j + 2 <= n {
                let (k0, k1) = (k.add(j * stride), k.add((j + 1) * stride));
                let (mut a00, mut a01, mut a10, mut a11, mut a20, mut a21, mut a30, mut a31) = (z, z, z, z, z, z, z, z);
                let mut d = 0;
                while d < n8 {
                    let (x0, x1) = (_mm256_loadu_ps(k0.add(d)), _mm256_loadu_ps(k1.add(d)));
                    let y = _mm256_loadu_ps(q[0].add(d));
                    a00 = _mm256_fmadd_ps(y, x0, a00);
                    a01 = _mm256_fmadd_ps(y, x1, a01);
                    let y = _mm256_loadu_ps(q[1].add(d));
                    a10 = _mm256_fmadd_ps(y, x0, a10);
                    a11 = _mm256_fmadd_ps(y, x1, a11);
                    let y = _mm256_loadu_ps(q[2].add(d));
                    a20 = _mm256_fmadd_ps(y, x0, a20);
                    a21 = _mm256_fmadd_ps(y, x1, a21);
                    let y = _mm256_loadu_ps(q[3].add(d));
                    a30 = _mm256_fmadd_ps(y, x0, a30);
                    a31 = _mm256_fmadd_ps(y, x1, a31);
                    d += 8;
                }
                let r0 = store4([a00, a01, a10, a11]);
                let r1 = store4([a20, a21, a30, a31]);
                let r = [r0[0], r0[1], r0[2], r0[3], r1[0], r1[1], r1[2], r1[3]];
                for a in 0..4 {
                    for c in 0..2 {
                        out[a * KEY_BLOCK + j + c] = tail(r[2 * a + c], q[a], k.add((j + c) * stride), n8, hd);
                    }
                }
                j += 2;
            }
        }
        for a in 0..mq {
            let qa = q[a];
            let mut j = j;
            // 1 query × 4 keys.
            while j + 4 <= n {
                let kk = [k.add(j * stride), k.add((j + 1) * stride), k.add((j + 2) * stride), k.add((j + 3) * stride)];
                let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
                let mut d = 0;
                while d < n8 {
                    let y = _mm256_loadu_ps(qa.add(d));
                    a0 = _mm256_fmadd_ps(y, _mm256_loadu_ps(kk[0].add(d)), a0);
                    a1 = _mm256_fmadd_ps(y, _mm256_loadu_ps(kk[1].add(d)), a1);
                    a2 = _mm256_fmadd_ps(y, _mm256_loadu_ps(kk[2].add(d)), a2);
                    a3 = _mm256_fmadd_ps(y, _mm256_loadu_ps(kk[3].add(d)), a3);
                    d += 8;
                }
                let r = store4([a0, a1, a2, a3]);
                for c in 0..4 {
                    out[a * KEY_BLOCK + j + c] = tail(r[c], qa, kk[c], n8, hd);
                }
                j += 4;
            }
            while j < n {
                let kj = k.add(j * stride);
                let mut a0 = z;
                let mut d = 0;
                while d < n8 {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qa.add(d)), _mm256_loadu_ps(kj.add(d)), a0);
                    d += 8;
                }
                out[a * KEY_BLOCK + j] = tail(store4([a0, a0, a0, a0])[0], qa, kj, n8, hd);
                j += 1;
            }
        }
    }

    #[inline(always)]
    unsafe fn accumulate(acc: &mut [f32], mq: usize, alpha: &[f32], p: &[f32], v: *const f32, stride: usize, n: usize, hd: usize) {
        assert!(mq <= 4 && acc.len() >= mq * hd && alpha.len() >= mq && p.len() >= mq * KEY_BLOCK && n <= KEY_BLOCK);
        let ap = acc.as_mut_ptr();
        let pp = p.as_ptr();
        let mut d = 0;
        if mq == 4 {
            // 4 queries × 16 elements: 8 accumulators, 2 V chunks loaded per key.
            let (l0, l1, l2, l3) = (_mm256_set1_ps(alpha[0]), _mm256_set1_ps(alpha[1]), _mm256_set1_ps(alpha[2]), _mm256_set1_ps(alpha[3]));
            while d + 16 <= hd {
                let at = |a: usize, e: usize| ap.add(a * hd + d + e);
                let mut r00 = _mm256_mul_ps(_mm256_loadu_ps(at(0, 0)), l0);
                let mut r01 = _mm256_mul_ps(_mm256_loadu_ps(at(0, 8)), l0);
                let mut r10 = _mm256_mul_ps(_mm256_loadu_ps(at(1, 0)), l1);
                let mut r11 = _mm256_mul_ps(_mm256_loadu_ps(at(1, 8)), l1);
                let mut r20 = _mm256_mul_ps(_mm256_loadu_ps(at(2, 0)), l2);
                let mut r21 = _mm256_mul_ps(_mm256_loadu_ps(at(2, 8)), l2);
                let mut r30 = _mm256_mul_ps(_mm256_loadu_ps(at(3, 0)), l3);
                let mut r31 = _mm256_mul_ps(_mm256_loadu_ps(at(3, 8)), l3);
                for j in 0..n {
                    let row = v.add(j * stride + d);
                    let (v0, v1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                    let w = _mm256_broadcast_ss(&*pp.add(j));
                    r00 = _mm256_fmadd_ps(w, v0, r00);
                    r01 = _mm256_fmadd_ps(w, v1, r01);
                    let w = _mm256_broadcast_ss(&*pp.add(KEY_BLOCK + j));
                    r10 = _mm256_fmadd_ps(w, v0, r10);
                    r11 = _mm256_fmadd_ps(w, v1, r11);
                    let w = _mm256_broadcast_ss(&*pp.add(2 * KEY_BLOCK + j));
                    r20 = _mm256_fmadd_ps(w, v0, r20);
                    r21 = _mm256_fmadd_ps(w, v1, r21);
                    let w = _mm256_broadcast_ss(&*pp.add(3 * KEY_BLOCK + j));
                    r30 = _mm256_fmadd_ps(w, v0, r30);
                    r31 = _mm256_fmadd_ps(w, v1, r31);
                }
                _mm256_storeu_ps(at(0, 0), r00);
                _mm256_storeu_ps(at(0, 8), r01);
                _mm256_storeu_ps(at(1, 0), r10);
                _mm256_storeu_ps(at(1, 8), r11);
                _mm256_storeu_ps(at(2, 0), r20);
                _mm256_storeu_ps(at(2, 8), r21);
                _mm256_storeu_ps(at(3, 0), r30);
                _mm256_storeu_ps(at(3, 8), r31);
                d += 16;
            }
        }
        for a in 0..mq {
            let (o, pa, l) = (ap.add(a * hd), pp.add(a * KEY_BLOCK), _mm256_set1_ps(alpha[a]));
            let mut d = d;
            // One query: 16, then 8 elements per pass, then the scalar tail.
            while d + 16 <= hd {
                let mut r0 = _mm256_mul_ps(_mm256_loadu_ps(o.add(d)), l);
                let mut r1 = _mm256_mul_ps(_mm256_loadu_ps(o.add(d + 8)), l);
                for j in 0..n {
                    let row = v.add(j * stride + d);
                    let w = _mm256_broadcast_ss(&*pa.add(j));
                    r0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(row), r0);
                    r1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(row.add(8)), r1);
                }
                _mm256_storeu_ps(o.add(d), r0);
                _mm256_storeu_ps(o.add(d + 8), r1);
                d += 16;
            }
            if d + 8 <= hd {
                let mut r0 = _mm256_mul_ps(_mm256_loadu_ps(o.add(d)), l);
                for j in 0..n {
                    r0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*pa.add(j)), _mm256_loadu_ps(v.add(j * stride + d)), r0);
                }
                _mm256_storeu_ps(o.add(d), r0);
                d += 8;
            }
            for d in d..hd {
                let mut x = *o.add(d) * alpha[a];
                for j in 0..n {
                    x += *pa.add(j) * *v.add(j * stride + d);
                }
                *o.add(d) = x;
            }
        }
    }
}
