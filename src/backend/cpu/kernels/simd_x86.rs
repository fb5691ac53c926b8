//! AVX2 + FMA + F16C fused dot products (x86_64), chosen at run time.
//!
//! Each kernel mirrors the scalar reference beside its format (`legacy.rs`, `kquants.rs`,
//! `float.rs`): blocks are read with unaligned loads from the byte slice, nibbles widened to
//! 8 × i32 lanes, converted to f32 and multiplied into f32 accumulators; per-block scales
//! (and mins, through `Σ x`) are applied once per block or sub-block. Rows are walked with
//! `chunks_exact`, so a length mismatch stops early instead of reading out of bounds.

use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat, QK, QK_K};
use std::arch::x86_64::*;

/// Whether this CPU has what every kernel here and in `simd_x86_q8` is compiled for (the
/// condition on which `mod.rs` hands out its `AVX2` table).
pub(super) fn has_avx2_fma_f16c() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// AVX-VNNI (`vpdpbusd` on 256-bit vectors).
pub(super) fn has_avxvnni() -> bool {
    is_x86_feature_detected!("avxvnni")
}

#[inline(always)]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// f16 at `b[off..off + 2]` as f32 (panics if out of range). Only for AVX callers.
///
/// The bits go into the vector register with `vmovd` from a general register, which
/// writes the whole register. Left to itself LLVM loads the 16 bits with `vpinsrw` into
/// some register it knows has zero upper lanes — in the dot kernels, the running scalar
/// accumulator — a false dependency that chained every block's scale conversion to the
/// previous block's sum (Q4_1 decode was bound by it). A 32-bit load does not help: LLVM
/// narrows it back, since only the low 16 bits are converted.
#[inline(always)]
pub(super) unsafe fn f16_at(b: &[u8], off: usize) -> f32 {
    let bits = u16::from_le_bytes([b[off], b[off + 1]]) as u32;
    let v: __m128i;
    std::arch::asm!("vmovd {v}, {b:e}", v = out(xmm_reg) v, b = in(reg) bits, options(pure, nomem, nostack, preserves_flags));
    _mm_cvtss_f32(_mm_cvtph_ps(v))
}

/// Bytes `b[off..off + 8]` zero-extended to 8 × i32.
#[inline(always)]
unsafe fn u8x8(b: &[u8], off: usize) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_loadl_epi64(b.as_ptr().add(off) as *const __m128i))
}

/// Bytes `b[off..off + 8]` sign-extended to 8 × i32.
#[inline(always)]
unsafe fn i8x8(b: &[u8], off: usize) -> __m256i {
    _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.as_ptr().add(off) as *const __m128i))
}

#[inline(always)]
unsafe fn xload(x: &[f32], off: usize) -> __m256 {
    _mm256_loadu_ps(x.as_ptr().add(off))
}

#[inline(always)]
unsafe fn cvt(v: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(v)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_f32(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(row.len() / 4);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        let w0 = _mm256_loadu_ps(row.as_ptr().add(4 * i) as *const f32);
        let w1 = _mm256_loadu_ps(row.as_ptr().add(4 * i + 32) as *const f32);
        a0 = _mm256_fmadd_ps(w0, xload(x, i), a0);
        a1 = _mm256_fmadd_ps(w1, xload(x, i + 8), a1);
        i += 16;
    }
    let mut s = hsum(_mm256_add_ps(a0, a1));
    for j in i..n {
        s += f32::from_le_bytes([row[4 * j], row[4 * j + 1], row[4 * j + 2], row[4 * j + 3]]) * x[j];
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(row.len() / 2);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        let h = row.as_ptr().add(2 * i) as *const __m128i;
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(h)), xload(x, i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(h.add(1))), xload(x, i + 8), a1);
        i += 16;
    }
    let mut s = hsum(_mm256_add_ps(a0, a1));
    for j in i..n {
        s += f16_at(row, 2 * j) * x[j];
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_bf16(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(row.len() / 2);
    let mut a0 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(row.as_ptr().add(2 * i) as *const __m128i);
        let w = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        a0 = _mm256_fmadd_ps(w, xload(x, i), a0);
        i += 8;
    }
    let mut s = hsum(a0);
    for j in i..n {
        s += f32::from_bits((u16::from_le_bytes([row[2 * j], row[2 * j + 1]]) as u32) << 16) * x[j];
    }
    s
}

/// The 32 nibbles at `b[off..off + 16]` as four 8-lane f32 vectors in element order
/// (low nibbles are elements 0..16, high nibbles 16..32).
#[inline(always)]
unsafe fn nibbles32(b: &[u8], off: usize) -> [__m256; 4] {
    let m4 = _mm256_set1_epi32(0x0F);
    let a = u8x8(b, off);
    let c = u8x8(b, off + 8);
    [
        cvt(_mm256_and_si256(a, m4)),
        cvt(_mm256_and_si256(c, m4)),
        cvt(_mm256_srli_epi32(a, 4)),
        cvt(_mm256_srli_epi32(c, 4)),
    ]
}

/// `Σ x` (8 lanes) of `xs[0..32]`.
#[inline(always)]
unsafe fn sx32(xs: &[f32]) -> __m256 {
    _mm256_add_ps(
        _mm256_add_ps(xload(xs, 0), xload(xs, 8)),
        _mm256_add_ps(xload(xs, 16), xload(xs, 24)),
    )
}

/// `Σ q·x` (8 lanes) of four q vectors against `xs[0..32]`.
///
/// Measured faster than rebuilding `w = d·q + m` with an FMA per vector (Sapphire-Rapids-class
/// Xeon: 324 vs 411 µs per 576×1536 Q4_1 matvec): FMA ports are the bottleneck, and the
/// `Σ x` adds below can issue on another port.
#[inline(always)]
unsafe fn qx32(q: [__m256; 4], xs: &[f32]) -> __m256 {
    let a = _mm256_mul_ps(q[0], xload(xs, 0));
    let b = _mm256_mul_ps(q[1], xload(xs, 8));
    let a = _mm256_fmadd_ps(q[2], xload(xs, 16), a);
    let b = _mm256_fmadd_ps(q[3], xload(xs, 24), b);
    _mm256_add_ps(a, b)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    // Σ d·(q − 8)·x = d·Σ q·x − 8d·Σ x
    let (mut acc, mut accs) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(BlockQ4_0::BYTES).zip(x.chunks_exact(QK)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        acc = _mm256_fmadd_ps(d, qx32(nibbles32(b, 2), xs), acc);
        accs = _mm256_fmadd_ps(d, sx32(xs), accs);
    }
    hsum(_mm256_fnmadd_ps(_mm256_set1_ps(8.0), accs, acc))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_1(row: &[u8], x: &[f32]) -> f32 {
    // Σ (d·q + m)·x = d·Σ q·x + m·Σ x
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(BlockQ4_1::BYTES).zip(x.chunks_exact(QK)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let m = _mm256_set1_ps(f16_at(b, 2));
        acc = _mm256_fmadd_ps(d, qx32(nibbles32(b, 4), xs), acc);
        accm = _mm256_fmadd_ps(m, sx32(xs), accm);
    }
    hsum(_mm256_add_ps(acc, accm))
}

/// 16 in lane i where bit (first + i) of `qh` (broadcast in `hv`) is set, else 0.
#[inline(always)]
unsafe fn high5(hv: __m256i, first: i32) -> __m256i {
    let sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let bits = _mm256_and_si256(_mm256_srl_epi32(hv, _mm_cvtsi32_si128(first)), sel);
    _mm256_and_si256(_mm256_cmpeq_epi32(bits, sel), _mm256_set1_epi32(16))
}

/// The 32 five-bit values of a Q5 block (`qh` at `b[off..off + 4]`, nibbles after it).
#[inline(always)]
unsafe fn fives32(b: &[u8], off: usize) -> [__m256; 4] {
    let qh = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]) as i32;
    let m4 = _mm256_set1_epi32(0x0F);
    let hv = _mm256_set1_epi32(qh);
    let a = u8x8(b, off + 4);
    let c = u8x8(b, off + 12);
    [
        cvt(_mm256_or_si256(_mm256_and_si256(a, m4), high5(hv, 0))),
        cvt(_mm256_or_si256(_mm256_and_si256(c, m4), high5(hv, 8))),
        cvt(_mm256_or_si256(_mm256_srli_epi32(a, 4), high5(hv, 16))),
        cvt(_mm256_or_si256(_mm256_srli_epi32(c, 4), high5(hv, 24))),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_0(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc, mut accs) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(BlockQ5_0::BYTES).zip(x.chunks_exact(QK)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        acc = _mm256_fmadd_ps(d, qx32(fives32(b, 2), xs), acc);
        accs = _mm256_fmadd_ps(d, sx32(xs), accs);
    }
    hsum(_mm256_fnmadd_ps(_mm256_set1_ps(16.0), accs, acc))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_1(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(BlockQ5_1::BYTES).zip(x.chunks_exact(QK)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let m = _mm256_set1_ps(f16_at(b, 2));
        acc = _mm256_fmadd_ps(d, qx32(fives32(b, 4), xs), acc);
        accm = _mm256_fmadd_ps(m, sx32(xs), accm);
    }
    hsum(_mm256_add_ps(acc, accm))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(BlockQ8_0::BYTES).zip(x.chunks_exact(QK)) {
        let d = _mm256_set1_ps(f16_at(b, 0));
        let a = _mm256_mul_ps(cvt(i8x8(b, 2)), xload(xs, 0));
        let c = _mm256_mul_ps(cvt(i8x8(b, 10)), xload(xs, 8));
        let a = _mm256_fmadd_ps(cvt(i8x8(b, 18)), xload(xs, 16), a);
        let c = _mm256_fmadd_ps(cvt(i8x8(b, 26)), xload(xs, 24), c);
        acc0 = _mm256_fmadd_ps(d, a, acc0);
        acc1 = _mm256_fmadd_ps(d, c, acc1);
    }
    hsum(_mm256_add_ps(acc0, acc1))
}

/// Shared Q4_K/Q5_K kernel: `qs` at `qs_off`, optional `qh` at `qh_off` (Q5_K).
#[inline(always)]
unsafe fn dot_k4<const Q5: bool>(row: &[u8], x: &[f32], bytes: usize, qh_off: usize, qs_off: usize) -> f32 {
    let m4 = _mm256_set1_epi32(0x0F);
    let sixteen = _mm256_set1_epi32(16);
    let (mut acc, mut accm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (b, xs) in row.chunks_exact(bytes).zip(x.chunks_exact(QK_K)) {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales: &[u8; 12] = b[4..16].try_into().unwrap_or(&[0; 12]);
        // Sub-block pairs (2i, 2i + 1) share the bytes qs[32i..32i + 32].
        for i in 0..4 {
            let (s0, m0) = scale_min_k4(2 * i, scales);
            let (s1, m1) = scale_min_k4(2 * i + 1, scales);
            let (mut q0, mut q1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in 0..4 {
                let v = u8x8(b, qs_off + 32 * i + 8 * c);
                let (mut lo, mut hi) = (_mm256_and_si256(v, m4), _mm256_srli_epi32(v, 4));
                if Q5 {
                    // bit (2i) and (2i + 1) of qh[8c..8c + 8] → bit 4
                    let h = _mm256_slli_epi32(u8x8(b, qh_off + 8 * c), 4);
                    let sh0 = _mm_cvtsi32_si128(2 * i as i32);
                    let sh1 = _mm_cvtsi32_si128(2 * i as i32 + 1);
                    lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_srl_epi32(h, sh0), sixteen));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_srl_epi32(h, sh1), sixteen));
                }
                q0 = _mm256_fmadd_ps(cvt(lo), xload(xs, 64 * i + 8 * c), q0);
                q1 = _mm256_fmadd_ps(cvt(hi), xload(xs, 64 * i + 32 + 8 * c), q1);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s0 as f32), q0, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s1 as f32), q1, acc);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * m0 as f32), sx32(&xs[64 * i..]), accm);
            accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * m1 as f32), sx32(&xs[64 * i + 32..]), accm);
        }
    }
    hsum(_mm256_sub_ps(acc, accm))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_k(row: &[u8], x: &[f32]) -> f32 {
    dot_k4::<false>(row, x, BlockQ4K::BYTES, 0, 16)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_k(row: &[u8], x: &[f32]) -> f32 {
    dot_k4::<true>(row, x, BlockQ5K::BYTES, 16, 48)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q6_k(row: &[u8], x: &[f32]) -> f32 {
    let m4 = _mm256_set1_epi32(0x0F);
    let m30 = _mm256_set1_epi32(0x30);
    let off32 = _mm256_set1_epi32(32);
    let mut acc = _mm256_setzero_ps();
    for (b, xs) in row.chunks_exact(BlockQ6K::BYTES).zip(x.chunks_exact(QK_K)) {
        let d = f16_at(b, 208);
        for n in 0..2 {
            // q[k][s]: 8-lane partial sums for the four 32-element quarters k, halves s.
            let mut part = [[_mm256_setzero_ps(); 2]; 4];
            for c in 0..4 {
                let l = 8 * c;
                let qa = u8x8(b, 64 * n + l);
                let qb = u8x8(b, 64 * n + 32 + l);
                let qh = u8x8(b, 128 + 32 * n + l);
                let q = [
                    _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_and_si256(_mm256_slli_epi32(qh, 4), m30)),
                    _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_and_si256(_mm256_slli_epi32(qh, 2), m30)),
                    _mm256_or_si256(_mm256_srli_epi32(qa, 4), _mm256_and_si256(qh, m30)),
                    _mm256_or_si256(_mm256_srli_epi32(qb, 4), _mm256_and_si256(_mm256_srli_epi32(qh, 2), m30)),
                ];
                for k in 0..4 {
                    let qf = cvt(_mm256_sub_epi32(q[k], off32));
                    let xv = xload(xs, 128 * n + 32 * k + l);
                    part[k][c / 2] = _mm256_fmadd_ps(qf, xv, part[k][c / 2]);
                }
            }
            for (k, halves) in part.iter().enumerate() {
                for (h, p) in halves.iter().enumerate() {
                    let sc = b[192 + 8 * n + 2 * k + h] as i8;
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc as f32), *p, acc);
                }
            }
        }
    }
    hsum(acc)
}
