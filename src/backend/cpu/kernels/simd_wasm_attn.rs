//! SIMD128 micro-kernels of the block attention (`attention.rs`); compiled in with `+simd128`.
//!
//! As `simd_x86_attn.rs` with four-lane vectors: one accumulator per (query, key) pair,
//! reduced four pairs at a time by a shuffle transpose (per pair always `(l0+l1)+(l2+l3)`), then
//! the `hd mod 4` tail; weighted V over 8, then 4 output elements in registers per query, then a
//! scalar tail. The multiply-add is `f32x4.relaxed_madd` in the threaded build (fused or not at
//! the engine's choice, the same choice for every instance) and mul + add in the baseline.

use super::attention::{AttnMachine, KEY_BLOCK};
use super::simd_wasm::madd;
use core::arch::wasm32::*;

/// The SIMD128 machine.
pub(super) struct Simd128;

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
unsafe fn store4(v: [v128; 4]) -> [f32; 4] {
    let r = reduce4(v);
    [f32x4_extract_lane::<0>(r), f32x4_extract_lane::<1>(r), f32x4_extract_lane::<2>(r), f32x4_extract_lane::<3>(r)]
}

impl AttnMachine for Simd128 {
    // The structure of `simd_x86_attn.rs` with four lanes.
    #[inline(always)]
    unsafe fn dots(q: [*const f32; 4], mq: usize, k: *const f32, stride: usize, n: usize, hd: usize, out: &mut [f32]) {
        assert!(mq <= 4 && out.len() >= mq * KEY_BLOCK && n <= KEY_BLOCK);
        let n8 = hd / 4 * 4;
        let z = f32x4_splat(0.0);
        let mut j = 0;
        if mq == 4 {
            // 4 queries × 2 keys: 8 accumulators, 2 key and 1 query chunk loaded per step.
            while j + 2 <= n {
                let (k0, k1) = (k.add(j * stride), k.add((j + 1) * stride));
                let (mut a00, mut a01, mut a10, mut a11, mut a20, mut a21, mut a30, mut a31) = (z, z, z, z, z, z, z, z);
                let mut d = 0;
                while d < n8 {
                    let (x0, x1) = (load(k0.add(d)), load(k1.add(d)));
                    let y = load(q[0].add(d));
                    a00 = madd(y, x0, a00);
                    a01 = madd(y, x1, a01);
                    let y = load(q[1].add(d));
                    a10 = madd(y, x0, a10);
                    a11 = madd(y, x1, a11);
                    let y = load(q[2].add(d));
                    a20 = madd(y, x0, a20);
                    a21 = madd(y, x1, a21);
                    let y = load(q[3].add(d));
                    a30 = madd(y, x0, a30);
                    a31 = madd(y, x1, a31);
                    d += 4;
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
                    let y = load(qa.add(d));
                    a0 = madd(y, load(kk[0].add(d)), a0);
                    a1 = madd(y, load(kk[1].add(d)), a1);
                    a2 = madd(y, load(kk[2].add(d)), a2);
                    a3 = madd(y, load(kk[3].add(d)), a3);
                    d += 4;
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
                    a0 = madd(load(qa.add(d)), load(kj.add(d)), a0);
                    d += 4;
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
            // 4 queries × 8 elements: 8 accumulators, 2 V chunks loaded per key.
            let (l0, l1, l2, l3) = (f32x4_splat(alpha[0]), f32x4_splat(alpha[1]), f32x4_splat(alpha[2]), f32x4_splat(alpha[3]));
            while d + 8 <= hd {
                let at = |a: usize, e: usize| ap.add(a * hd + d + e);
                let mut r00 = f32x4_mul(load(at(0, 0)), l0);
                let mut r01 = f32x4_mul(load(at(0, 4)), l0);
                let mut r10 = f32x4_mul(load(at(1, 0)), l1);
                let mut r11 = f32x4_mul(load(at(1, 4)), l1);
                let mut r20 = f32x4_mul(load(at(2, 0)), l2);
                let mut r21 = f32x4_mul(load(at(2, 4)), l2);
                let mut r30 = f32x4_mul(load(at(3, 0)), l3);
                let mut r31 = f32x4_mul(load(at(3, 4)), l3);
                for j in 0..n {
                    let row = v.add(j * stride + d);
                    let (v0, v1) = (load(row), load(row.add(4)));
                    let w = f32x4_splat(*pp.add(j));
                    r00 = madd(w, v0, r00);
                    r01 = madd(w, v1, r01);
                    let w = f32x4_splat(*pp.add(KEY_BLOCK + j));
                    r10 = madd(w, v0, r10);
                    r11 = madd(w, v1, r11);
                    let w = f32x4_splat(*pp.add(2 * KEY_BLOCK + j));
                    r20 = madd(w, v0, r20);
                    r21 = madd(w, v1, r21);
                    let w = f32x4_splat(*pp.add(3 * KEY_BLOCK + j));
                    r30 = madd(w, v0, r30);
                    r31 = madd(w, v1, r31);
                }
                v128_store(at(0, 0) as *mut v128, r00);
                v128_store(at(0, 4) as *mut v128, r01);
                v128_store(at(1, 0) as *mut v128, r10);
                v128_store(at(1, 4) as *mut v128, r11);
                v128_store(at(2, 0) as *mut v128, r20);
                v128_store(at(2, 4) as *mut v128, r21);
                v128_store(at(3, 0) as *mut v128, r30);
                v128_store(at(3, 4) as *mut v128, r31);
                d += 8;
            }
        }
        for a in 0..mq {
            let (o, pa, l) = (ap.add(a * hd), pp.add(a * KEY_BLOCK), f32x4_splat(alpha[a]));
            let mut d = d;
            // One query: 8, then 4 elements per pass, then the scalar tail.
            while d + 8 <= hd {
                let mut r0 = f32x4_mul(load(o.add(d)), l);
                let mut r1 = f32x4_mul(load(o.add(d + 4)), l);
                for j in 0..n {
                    let row = v.add(j * stride + d);
                    let w = f32x4_splat(*pa.add(j));
                    r0 = madd(w, load(row), r0);
                    r1 = madd(w, load(row.add(4)), r1);
                }
                v128_store(o.add(d) as *mut v128, r0);
                v128_store(o.add(d + 4) as *mut v128, r1);
                d += 8;
            }
            if d + 4 <= hd {
                let mut r0 = f32x4_mul(load(o.add(d)), l);
                for j in 0..n {
                    r0 = madd(f32x4_splat(*pa.add(j)), load(v.add(j * stride + d)), r0);
                }
                v128_store(o.add(d) as *mut v128, r0);
                d += 4;
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
