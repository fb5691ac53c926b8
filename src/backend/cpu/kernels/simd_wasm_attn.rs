//! SIMD128 micro-kernels of the block attention (`attention.rs`); compiled in with `+simd128`.
//!
//! As `simd_x86_attn.rs` with four-lane vectors: one accumulator per (query, key) pair,
//! reduced four pairs at a time by a shuffle transpose (per pair always `(l0+l1)+(l2+l3)`), then
//! the `hd mod 4` tail; weighted V over 8, then 4 output elements in registers per query, then a
//! scalar tail. The multiply-add is `f32x4.relaxed_madd` in the threaded build (fused or not at
//! the engine's choice, the same choice for every instance) and mul + add in the baseline.

use super::attention::AttnMachine;
use core::arch::wasm32::*;

/// The SIMD128 machine.
pub(super) struct Simd128;

/// `a·b + c` per lane: one relaxed multiply-add where the build has relaxed SIMD.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_relaxed_madd(a, b, c)
}

/// `a·b + c` per lane (SIMD128 has no fused multiply-add).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_add(f32x4_mul(a, b), c)
}

/// Four floats from `p` (wasm loads need no alignment).
#[inline(always)]
unsafe fn load(p: *const f32) -> v128 {
    v128_load(p as *const v128)
}

/// Lane r of the result: the sum of `v[r]`'s four lanes, `(0+1)+(2+3)`.
#[inline(always)]
fn reduce4(v: [v128; 4]) -> v128 {
    let s01 = f32x4_add(i32x4_shuffle::<0, 4, 2, 6>(v[0], v[1]), i32x4_shuffle::<1, 5, 3, 7>(v[0], v[1]));
    let s23 = f32x4_add(i32x4_shuffle::<0, 4, 2, 6>(v[2], v[3]), i32x4_shuffle::<1, 5, 3, 7>(v[2], v[3]));
    // s01 = (a01, b01, a23, b23), s23 = (c01, d01, c23, d23).
    f32x4_add(i32x4_shuffle::<0, 1, 4, 5>(s01, s23), i32x4_shuffle::<2, 3, 6, 7>(s01, s23))
}

impl AttnMachine for Simd128 {
    #[inline(always)]
    unsafe fn dots<const MQ: usize, const MK: usize>(q: [&[f32]; MQ], k: [&[f32]; MK], hd: usize) -> [[f32; MK]; MQ] {
        assert!(q.iter().chain(k.iter()).all(|r| r.len() >= hd));
        let n4 = hd / 4 * 4;
        let mut acc = [[f32x4_splat(0.0); MK]; MQ];
        let mut d = 0;
        while d < n4 {
            // d + 4 ≤ hd ≤ every row's length.
            let kv: [v128; MK] = std::array::from_fn(|c| load(k[c].as_ptr().add(d)));
            for a in 0..MQ {
                let qv = load(q[a].as_ptr().add(d));
                for c in 0..MK {
                    acc[a][c] = madd(qv, kv[c], acc[a][c]);
                }
            }
            d += 4;
        }
        let mut out = [[0.0f32; MK]; MQ];
        let mut pair = 0;
        while pair < MQ * MK {
            let at = |i: usize| {
                let i = (pair + i).min(MQ * MK - 1);
                acc[i / MK][i % MK]
            };
            let r = reduce4([at(0), at(1), at(2), at(3)]);
            let r = [f32x4_extract_lane::<0>(r), f32x4_extract_lane::<1>(r), f32x4_extract_lane::<2>(r), f32x4_extract_lane::<3>(r)];
            for (i, &x) in r.iter().enumerate().take(MQ * MK - pair) {
                out[(pair + i) / MK][(pair + i) % MK] = x;
            }
            pair += 4;
        }
        if n4 < hd {
            for (a, row) in out.iter_mut().enumerate() {
                for (c, o) in row.iter_mut().enumerate() {
                    for d in n4..hd {
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
        let al: [v128; MQ] = std::array::from_fn(|a| f32x4_splat(alpha[a]));
        let mut d = 0;
        while d + 8 <= hd {
            // d + 8 ≤ hd ≤ the row's length (asserted).
            let mut r: [[v128; 2]; MQ] = std::array::from_fn(|a| [f32x4_mul(load(acc[a].as_ptr().add(d)), al[a]), f32x4_mul(load(acc[a].as_ptr().add(d + 4)), al[a])]);
            for j in 0..n {
                // Row j of V holds hd elements from here (asserted).
                let row = vp.add(j * stride + d);
                let (v0, v1) = (load(row), load(row.add(4)));
                for a in 0..MQ {
                    let w = f32x4_splat(*p[a].get_unchecked(j));
                    r[a][0] = madd(w, v0, r[a][0]);
                    r[a][1] = madd(w, v1, r[a][1]);
                }
            }
            for a in 0..MQ {
                v128_store(acc[a].as_mut_ptr().add(d) as *mut v128, r[a][0]);
                v128_store(acc[a].as_mut_ptr().add(d + 4) as *mut v128, r[a][1]);
            }
            d += 8;
        }
        if d + 4 <= hd {
            let mut r: [v128; MQ] = std::array::from_fn(|a| f32x4_mul(load(acc[a].as_ptr().add(d)), al[a]));
            for j in 0..n {
                let v0 = load(vp.add(j * stride + d));
                for a in 0..MQ {
                    r[a] = madd(f32x4_splat(*p[a].get_unchecked(j)), v0, r[a]);
                }
            }
            for a in 0..MQ {
                v128_store(acc[a].as_mut_ptr().add(d) as *mut v128, r[a]);
            }
            d += 4;
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
