//! AVX2 integer dot products of quantized rows with 8-bit activations (x86_64), chosen at
//! run time (rows of `mod.rs`'s `AVX2` table); each mirrors its scalar reference in
//! `reference.rs`.
//!
//! Per 32 elements: the weight integers as 32 unsigned bytes, `_mm256_maddubs_epi16` with
//! the 32 signed activation bytes (pairs summed to i16, no saturation: |q_w| ≤ 63,
//! |q_x| ≤ 127), `_mm256_madd_epi16` to 8 × i32, then one float multiply-add with the
//! block's combined scale. Offsets (Q4_0's −8, Q5_0's −16) and mins go through the
//! activation block sums `s_x`, so the weights stay unsigned (ggml's `mul_sum_us8_pairs`).
//! Every load is inside a `chunks_exact` chunk, so no read leaves its slice.

use super::q8::{blocks4, Q8Slice, Q8_BLOCK};
use super::simd_x86::{f16_at, hsum};
use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat, QK_K};
use std::arch::x86_64::*;

/// How far ahead of the block being dotted the weights are requested. Decode streams each
/// matrix from memory once per token; the hardware prefetcher alone left the kernels
/// waiting on loads (perf: most samples on the weight load). Measured on this machine
/// (2026-11-30, decode tok/s, 1 thread): SmolLM2 Q4_1 ~47 → ~63 (2048–4096 alike), Gemma 3
/// Q4_K_M ~23 → ~35 (4096 best of 1024/2048/4096), Qwen2.5 0.5B ~12 → ~16.
const PREFETCH: usize = 4096;

/// Asks for the cache lines `PREFETCH` bytes ahead of block `b` (a matrix is one
/// contiguous stream, so that is a later row). A hint: never faults, even past the end.
#[inline(always)]
unsafe fn prefetch_ahead(b: &[u8]) {
    prefetch_at::<PREFETCH>(b)
}

/// [`prefetch_ahead`] at `AHEAD` bytes.
#[inline(always)]
pub(super) unsafe fn prefetch_at<const AHEAD: usize>(b: &[u8]) {
    let p = b.as_ptr().wrapping_add(AHEAD);
    let mut o = 0;
    while o < b.len() {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o) as *const i8);
        o += 64;
    }
}

/// 32 bytes at `s[off..off + 32]` (checked: panics rather than read out of bounds).
#[inline(always)]
pub(super) unsafe fn load32<T: Copy>(s: &[T], off: usize) -> __m256i {
    let s = &s[off..off + 32 / size_of::<T>()];
    _mm256_loadu_si256(s.as_ptr() as *const __m256i)
}

/// 16 bytes at `b[off..off + 16]` (checked).
#[inline(always)]
unsafe fn load16(b: &[u8], off: usize) -> __m128i {
    let s = &b[off..off + 16];
    _mm_loadu_si128(s.as_ptr() as *const __m128i)
}

/// `Σ u·s` of 32 unsigned by 32 signed bytes, as 8 × i32 partial sums.
#[inline(always)]
pub(super) unsafe fn dot_us(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// The 32 nibbles at `b[off..off + 16]` as bytes in element order (low nibbles first).
#[inline(always)]
pub(super) unsafe fn nibbles32(b: &[u8], off: usize) -> __m256i {
    let v = load16(b, off);
    let m4 = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4))
}

/// 0x10 in byte j where bit j of the little-endian `u32` at `b[off..off + 4]` is set
/// (ggml's `bytes_from_bits_32`).
#[inline(always)]
pub(super) unsafe fn bit4_from_bits32(b: &[u8], off: usize) -> __m256i {
    let bits = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]) as i32;
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits), shuf);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi8(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Shared legacy loop: `Σ d_w·d_x·Σ q·q_x + c_w·s_x` with `c_w = coef(block)` and the
/// unsigned weight bytes from `quants(block)`.
#[inline(always)]
unsafe fn legacy(row: &[u8], x: Q8Slice<'_>, bytes: usize, quants: impl Fn(&[u8]) -> __m256i, coef: impl Fn(&[u8], f32) -> f32) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut extra = 0.0f32;
    let it = row.chunks_exact(bytes).zip(x.qs.chunks_exact(Q8_BLOCK));
    for ((b, qx), (&dx, &sx)) in it.zip(x.d.iter().zip(x.s)) {
        prefetch_ahead(b);
        let dw = f16_at(b, 0);
        let p = _mm256_cvtepi32_ps(dot_us(quants(b), load32(qx, 0)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), p, acc);
        extra += coef(b, dw) * sx;
    }
    hsum(acc) + extra
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    // d·Σ (q − 8)·x = d·d_x·Σ q·q_x − 8d·s_x
    legacy(row, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| -8.0 * d)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_1(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16_at(b, 2))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ5_0::BYTES, |b| _mm256_or_si256(nibbles32(b, 6), bit4_from_bits32(b, 2)), |_, d| -16.0 * d)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_1(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ5_1::BYTES, |b| _mm256_or_si256(nibbles32(b, 8), bit4_from_bits32(b, 4)), |b, _| f16_at(b, 2))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q8_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for ((b, qx), &dx) in row.chunks_exact(BlockQ8_0::BYTES).zip(x.qs.chunks_exact(Q8_BLOCK)).zip(x.d) {
        prefetch_ahead(b);
        let w = load32(b, 2);
        // Signed × signed: |w| as unsigned, the sign moved onto x (ggml `mul_sum_i8_pairs`).
        let p = dot_us(_mm256_sign_epi8(w, w), _mm256_sign_epi8(load32(qx, 0), w));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(b, 0) * dx), _mm256_cvtepi32_ps(p), acc);
    }
    hsum(acc)
}

/// The quants (< 32) of sub-blocks 2i (low nibbles of `qs[32i..32i + 32]`) and 2i + 1 (high
/// nibbles) of a Q4_K/Q5_K block `b` whose `qs` start at `qs_off`; Q5_K adds bit 2i (2i + 1)
/// of `qh[l]` (given as `qh`) as bit 4 of element 64i + l (64i + 32 + l).
#[inline(always)]
pub(super) unsafe fn k4_pair<const Q5: bool>(b: &[u8], qh: __m256i, qs_off: usize, i: usize) -> (__m256i, __m256i) {
    let (m4, one) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(1));
    let v = load32(b, qs_off + 32 * i);
    let mut lo = _mm256_and_si256(v, m4);
    let mut hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if Q5 {
        let h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * i as i32)), one);
        let h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * i as i32 + 1)), one);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
    }
    (lo, hi)
}

/// Shared Q4_K/Q5_K loop: `qs` at byte 48 (Q5_K, with `qh` at 16) or 16 (Q4_K).
#[inline(always)]
unsafe fn dot_k4<const Q5: bool>(row: &[u8], x: Q8Slice<'_>) -> f32 {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    let it = row.chunks_exact(bytes).zip(x.qs.chunks_exact(QK_K));
    for ((b, qx), (dx, sx)) in it.zip(x.d.chunks_exact(8).zip(x.s.chunks_exact(8))) {
        prefetch_ahead(b);
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
        let qh = if Q5 { load32(b, 16) } else { _mm256_setzero_si256() };
        let mut m = 0.0f32;
        // Sub-blocks 2i (low nibbles) and 2i + 1 (high nibbles) share qs[32i..32i + 32].
        for i in 0..4 {
            let (s0, m0) = scale_min_k4(2 * i, &scales);
            let (s1, m1) = scale_min_k4(2 * i + 1, &scales);
            let (lo, hi) = k4_pair::<Q5>(b, qh, qs_off, i);
            let p0 = _mm256_cvtepi32_ps(dot_us(lo, load32(qx, 64 * i)));
            let p1 = _mm256_cvtepi32_ps(dot_us(hi, load32(qx, 64 * i + 32)));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s0 as f32 * dx[2 * i]), p0, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * s1 as f32 * dx[2 * i + 1]), p1, acc);
            m += m0 as f32 * sx[2 * i] + m1 as f32 * sx[2 * i + 1];
        }
        mins += dmin * m;
    }
    hsum(acc) - mins
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q4_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    dot_k4::<false>(row, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q5_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    dot_k4::<true>(row, x)
}

/// The 6-bit values (0..63) of half `n` of a Q6_K block `b`, as four vectors of 32 bytes:
/// element 128n + 32k + l is nibble k / 2 of ql[64n + 32(k % 2) + l] with bits 2k..2k + 2 of
/// qh[32n + l] above it (kquants.rs `unpack_q6k`). Byte-wise shifts via 16-bit lanes are safe:
/// the masks drop the bits that cross a byte.
#[inline(always)]
unsafe fn q6k_half(b: &[u8], n: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let qa = load32(b, 64 * n);
    let qb = load32(b, 64 * n + 32);
    let qh = load32(b, 128 + 32 * n);
    [
        _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
        _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), _mm256_and_si256(qh, m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_q6_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    let k32 = _mm256_set1_epi8(32);
    let mut acc = _mm256_setzero_ps();
    let it = row.chunks_exact(BlockQ6K::BYTES).zip(x.qs.chunks_exact(QK_K));
    for ((b, qx), dx) in it.zip(x.d.chunks_exact(8)) {
        prefetch_ahead(b);
        let d = f16_at(b, 208);
        for n in 0..2 {
            for (k, &qk) in q6k_half(b, n).iter().enumerate() {
                let c = 4 * n + k;
                let xv = load32(qx, 32 * c);
                // Σ (q − 32)·q_x per pair, in i16: |·| ≤ 2·32·127.
                let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qk, xv), _mm256_maddubs_epi16(k32, xv));
                let sc0 = b[192 + 2 * c] as i8 as i16;
                let sc1 = b[193 + 2 * c] as i8 as i16;
                let scv = _mm256_set_m128i(_mm_set1_epi16(sc1), _mm_set1_epi16(sc0));
                let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, scv));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * dx[c]), p, acc);
            }
        }
    }
    hsum(acc)
}

/// As [`legacy`], for four activation vectors at once: each weight block is unpacked once
/// and multiplied with the four tokens' blocks (the prefill tile). `SIGNED` weights (Q8_0)
/// take the sign trick of [`dot_q8_0`] and no `s_x` term.
#[inline(always)]
unsafe fn legacy_x4<const SIGNED: bool>(
    row: &[u8],
    x: [Q8Slice<'_>; 4],
    bytes: usize,
    quants: impl Fn(&[u8]) -> __m256i,
    coef: impl Fn(&[u8], f32) -> f32,
) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut extra = [0.0f32; 4];
    let nb = blocks4(&x);
    for (i, b) in row.chunks_exact(bytes).take(nb).enumerate() {
        let dw = f16_at(b, 0);
        let q = quants(b);
        let u = if SIGNED { _mm256_sign_epi8(q, q) } else { q };
        let c = coef(b, dw);
        for k in 0..4 {
            let mut xv = load32(x[k].qs, Q8_BLOCK * i);
            if SIGNED {
                xv = _mm256_sign_epi8(xv, q);
            }
            let p = _mm256_cvtepi32_ps(dot_us(u, xv));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[k].d[i]), p, acc[k]);
            extra[k] += c * x[k].s[i];
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) + extra[k])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q4_0(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| -8.0 * d)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q4_1(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16_at(b, 2))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q5_0(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ5_0::BYTES, |b| _mm256_or_si256(nibbles32(b, 6), bit4_from_bits32(b, 2)), |_, d| -16.0 * d)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q5_1(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ5_1::BYTES, |b| _mm256_or_si256(nibbles32(b, 8), bit4_from_bits32(b, 4)), |b, _| f16_at(b, 2))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q8_0(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<true>(row, x, BlockQ8_0::BYTES, |b| load32(b, 2), |_, _| 0.0)
}

/// As [`dot_k4`], for four activation vectors at once.
#[inline(always)]
unsafe fn dot_k4_x4<const Q5: bool>(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut mins = [0.0f32; 4];
    let nsb = blocks4(&x) / 8;
    for (sb, b) in row.chunks_exact(bytes).take(nsb).enumerate() {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
        let qh = if Q5 { load32(b, 16) } else { _mm256_setzero_si256() };
        for i in 0..4 {
            let (s0, m0) = scale_min_k4(2 * i, &scales);
            let (s1, m1) = scale_min_k4(2 * i + 1, &scales);
            let (lo, hi) = k4_pair::<Q5>(b, qh, qs_off, i);
            let (c0, c1) = (8 * sb + 2 * i, 8 * sb + 2 * i + 1);
            let (f0, f1) = (d * s0 as f32, d * s1 as f32);
            for k in 0..4 {
                let p0 = _mm256_cvtepi32_ps(dot_us(lo, load32(x[k].qs, Q8_BLOCK * c0)));
                let p1 = _mm256_cvtepi32_ps(dot_us(hi, load32(x[k].qs, Q8_BLOCK * c1)));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(f0 * x[k].d[c0]), p0, acc[k]);
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(f1 * x[k].d[c1]), p1, acc[k]);
                mins[k] += dmin * (m0 as f32 * x[k].s[c0] + m1 as f32 * x[k].s[c1]);
            }
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) - mins[k])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q4_k(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    dot_k4_x4::<false>(row, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q5_k(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    dot_k4_x4::<true>(row, x)
}

/// As [`dot_q6_k`], for four activation vectors at once: each block's 6-bit values are put
/// together once and multiplied with the four tokens' blocks (Qwen2.5 0.5B's pp128 spent 12 %
/// in the one-token kernel).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot4_q6_k(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    let k32 = _mm256_set1_epi8(32);
    let mut acc = [_mm256_setzero_ps(); 4];
    let nsb = blocks4(&x) / 8;
    for (sb, b) in row.chunks_exact(BlockQ6K::BYTES).take(nsb).enumerate() {
        let d = f16_at(b, 208);
        for n in 0..2 {
            for (k, &qk) in q6k_half(b, n).iter().enumerate() {
                let c = 8 * sb + 4 * n + k;
                let sc0 = b[192 + 2 * (4 * n + k)] as i8 as i16;
                let sc1 = b[193 + 2 * (4 * n + k)] as i8 as i16;
                let scv = _mm256_set_m128i(_mm_set1_epi16(sc1), _mm_set1_epi16(sc0));
                for t in 0..4 {
                    let xv = load32(x[t].qs, Q8_BLOCK * c);
                    let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(qk, xv), _mm256_maddubs_epi16(k32, xv));
                    let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, scv));
                    acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[t].d[c]), p, acc[t]);
                }
            }
        }
    }
    std::array::from_fn(|t| hsum(acc[t]))
}

/// [`super::q8::quantize_block`] for one 32-element block with AVX2, bit for bit: the same
/// `amax` (a maximum does not depend on order; NaN lanes are skipped as `f32::max` skips
/// them), the same `v·(1/d)` products, `roundf`'s half-away-from-zero rounding rebuilt exactly
/// (`t = trunc(v)`, then `t ± 1` where `|v − t| ≥ 0.5`: the difference is exact) and NaN → 0 as
/// `as i8` does. Checked against the reference by `check::check_quantize`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_block(xs: &[f32; Q8_BLOCK], qs: &mut [i8; Q8_BLOCK]) -> (f32, f32) {
    let v: [__m256; 4] = std::array::from_fn(|k| _mm256_loadu_ps(xs[8 * k..].as_ptr()));
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let mut m = _mm256_setzero_ps();
    for x in v {
        // `max(a, b)` returns `b` when `a` is NaN: NaN lanes leave `m` as it was.
        m = _mm256_max_ps(_mm256_and_ps(x, abs), m);
    }
    let mut l = [0.0f32; 8];
    _mm256_storeu_ps(l.as_mut_ptr(), m);
    let amax = l.iter().fold(0.0f32, |a, &b| a.max(b));
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let (half, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    let r: [__m256i; 4] = v.map(|x| {
        let p = _mm256_mul_ps(x, id);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_and_ps(_mm256_sub_ps(p, t), abs), half);
        // ±1 with p's sign where the fraction reaches one half.
        let step = _mm256_and_ps(up, _mm256_or_ps(one, _mm256_andnot_ps(abs, p)));
        let q = _mm256_add_ps(t, step);
        // NaN → 0 (`as i8`); finite products are within ±127 (|v| ≤ amax).
        _mm256_cvtps_epi32(_mm256_and_ps(q, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p)))
    });
    // i32 → i8 (the values fit: no saturation), back in element order.
    let w = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
    let w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, w);
    let s = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    (d, d * _mm_cvtsi128_si32(s) as f32)
}
