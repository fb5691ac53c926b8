//! AVX2 + FMA micro-kernels of the block attention (`attention.rs`), chosen at run time.
//!
//! Dots: `MQ` queries × `MK` keys (up to 4 × 2), one eight-lane accumulator per pair, each K
//! and Q chunk loaded once for the tile; the accumulators are reduced four at a time with
//! `vhaddps` (per pair always `((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))`), then the `hd mod 8`
//! tail is added element by element. Weighted V: `MQ` queries × 16 output elements held in
//! registers over all the block's keys (each V chunk loaded once for the `MQ` queries), then
//! 8, then a scalar tail. A pair's or an element's operations never depend on `MQ` or `MK`.

use super::attention::{attend_with, AttnMachine, AttnScratch};
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

impl AttnMachine for Avx2 {
    #[inline(always)]
    unsafe fn dots<const MQ: usize, const MK: usize>(q: [&[f32]; MQ], k: [&[f32]; MK], hd: usize) -> [[f32; MK]; MQ] {
        assert!(q.iter().chain(k.iter()).all(|r| r.len() >= hd));
        let n8 = hd / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); MK]; MQ];
        let mut d = 0;
        while d < n8 {
            // SAFETY: d + 8 ≤ hd ≤ every row's length.
            let kv: [__m256; MK] = std::array::from_fn(|c| unsafe { _mm256_loadu_ps(k[c].as_ptr().add(d)) });
            for a in 0..MQ {
                let qv = _mm256_loadu_ps(q[a].as_ptr().add(d));
                for c in 0..MK {
                    acc[a][c] = _mm256_fmadd_ps(qv, kv[c], acc[a][c]);
                }
            }
            d += 8;
        }
        let mut out = [[0.0f32; MK]; MQ];
        let mut pair = 0;
        while pair < MQ * MK {
            let at = |i: usize| {
                let i = (pair + i).min(MQ * MK - 1);
                acc[i / MK][i % MK]
            };
            let mut r = [0.0f32; 4];
            _mm_storeu_ps(r.as_mut_ptr(), reduce4([at(0), at(1), at(2), at(3)]));
            for (i, &x) in r.iter().enumerate().take(MQ * MK - pair) {
                out[(pair + i) / MK][(pair + i) % MK] = x;
            }
            pair += 4;
        }
        if n8 < hd {
            for (a, row) in out.iter_mut().enumerate() {
                for (c, o) in row.iter_mut().enumerate() {
                    for d in n8..hd {
                        *o += q[a][d] * k[c][d];
                    }
                }
            }
        }
        out
    }

    #[inline(always)]
    unsafe fn accumulate<const MQ: usize>(acc: [&mut [f32]; MQ], alpha: [f32; MQ], p: [&[f32]; MQ], v: &[f32], off: usize, stride: usize, n: usize, hd: usize) {
        if n == 0 {
            return;
        }
        assert!(off + (n - 1) * stride + hd <= v.len() && acc.iter().all(|r| r.len() >= hd) && p.iter().all(|r| r.len() >= n));
        let vp = v.as_ptr().add(off);
        let al: [__m256; MQ] = std::array::from_fn(|a| _mm256_set1_ps(alpha[a]));
        let mut d = 0;
        while d + 16 <= hd {
            let mut r: [[__m256; 2]; MQ] = std::array::from_fn(|a| {
                // SAFETY: d + 16 ≤ hd ≤ the row's length (asserted).
                unsafe { [_mm256_mul_ps(_mm256_loadu_ps(acc[a].as_ptr().add(d)), al[a]), _mm256_mul_ps(_mm256_loadu_ps(acc[a].as_ptr().add(d + 8)), al[a])] }
            });
            for j in 0..n {
                // SAFETY: row j of V holds hd elements from here (asserted).
                let row = vp.add(j * stride + d);
                let (v0, v1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                for a in 0..MQ {
                    let w = _mm256_broadcast_ss(p[a].get_unchecked(j));
                    r[a][0] = _mm256_fmadd_ps(w, v0, r[a][0]);
                    r[a][1] = _mm256_fmadd_ps(w, v1, r[a][1]);
                }
            }
            for a in 0..MQ {
                _mm256_storeu_ps(acc[a].as_mut_ptr().add(d), r[a][0]);
                _mm256_storeu_ps(acc[a].as_mut_ptr().add(d + 8), r[a][1]);
            }
            d += 16;
        }
        if d + 8 <= hd {
            // SAFETY: as above.
            let mut r: [__m256; MQ] = std::array::from_fn(|a| unsafe { _mm256_mul_ps(_mm256_loadu_ps(acc[a].as_ptr().add(d)), al[a]) });
            for j in 0..n {
                let v0 = _mm256_loadu_ps(vp.add(j * stride + d));
                for a in 0..MQ {
                    r[a] = _mm256_fmadd_ps(_mm256_broadcast_ss(p[a].get_unchecked(j)), v0, r[a]);
                }
            }
            for a in 0..MQ {
                _mm256_storeu_ps(acc[a].as_mut_ptr().add(d), r[a]);
            }
            d += 8;
        }
        for d in d..hd {
            for a in 0..MQ {
                let mut x = acc[a][d] * alpha[a];
                for j in 0..n {
                    x += p[a][j] * *vp.add(j * stride + d);
                }
                acc[a][d] = x;
            }
        }
    }
}
