//! x86_64 prefill tiles: `R` weight rows against the four interleaved tokens of a
//! [`Q8Tile`] per inner loop (llamafile's tinyBLAS idea), for every 8-bit-activation format
//! (rows of `mod.rs`'s `AVX2` and `AVX2_VNNI` tables; one-row instances fill `tile`, four-row
//! ones `tile_rows`).
//!
//! Per 32-element block: the four tokens' activation bytes are loaded once for the `R` rows;
//! each row's block is unpacked once for the four tokens; each (row, token) integer sum is one
//! `vpdpbusd` (AVX-VNNI) or `vpmaddubsw` + `vpmaddwd` (AVX2). The four tokens' eight-lane
//! sums are then transposed into one vector (`vphaddd` ×3: lane k = token k, the low 128 bits
//! over elements 0..16 and the high over 16..32), so the float work — conversion, the weight
//! scale times the four tokens' scales (loaded as one vector), offsets and mins through the
//! tokens' block sums — is done once per (row, block) for four tokens, not once per token as
//! in the `[Q8Slice; 4]` kernels of `simd_x86_q8.rs`.
//!
//! Signed weights (Q8_0, and Q6_K's `q − 32`) take ggml's sign trick: `|w|` as unsigned and
//! the sign moved onto the activations. Q6_K's two scales per block (one per 16 elements)
//! multiply the transposed sums before the halves are added (`vpmulld`).
//!
//! The integer sums are exact; the float order differs from the one-token kernels (the block's
//! lanes are summed before scaling), so results agree to rounding (`tests.rs`).

use super::q8::Q8_BLOCK;
use super::simd_x86::f16_at;
use super::simd_x86_q8::{bit4_from_bits32, dot_us, load32, nibbles32};
use super::tile::Q8Tile;
use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat, QK_K};
use std::arch::x86_64::*;

/// Sub-blocks of 32 elements in a k-quant super-block.
pub(super) const SUBS: usize = QK_K / Q8_BLOCK;

/// `Σ u·s` of 32 unsigned by 32 signed bytes, as 8 × i32 partial sums.
#[inline(always)]
pub(super) unsafe fn idot<const VNNI: bool>(u: __m256i, s: __m256i) -> __m256i {
    if VNNI {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
    } else {
        dot_us(u, s)
    }
}

/// Lane k (k < 4): the sum of `p[k]`'s lanes 0..4 (elements 0..16); lane 4 + k: of its
/// lanes 4..8 (elements 16..32).
#[inline(always)]
pub(super) unsafe fn transpose4(p: [__m256i; 4]) -> __m256i {
    _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]))
}

/// The two halves of a [`transpose4`] added: lane k = token k's whole-block sum.
#[inline(always)]
pub(super) unsafe fn fold(a: __m256i) -> __m128i {
    _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a))
}

/// Block `i` of the four tokens: their 32 activation bytes each.
#[inline(always)]
unsafe fn tokens(x: &Q8Tile<'_>, i: usize) -> [__m256i; 4] {
    let q = &x.qs[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
    std::array::from_fn(|k| load32(q, Q8_BLOCK * k))
}

/// Four floats at `v[4i..4i + 4]` (the four tokens' scales or sums of block `i`).
#[inline(always)]
unsafe fn four(v: &[f32], i: usize) -> __m128 {
    let s = &v[4 * i..4 * i + 4];
    _mm_loadu_ps(s.as_ptr())
}

/// The four tokens' integer sums with unsigned weights `u` (< 128), transposed.
#[inline(always)]
unsafe fn sums_unsigned<const VNNI: bool>(u: __m256i, xv: &[__m256i; 4]) -> __m256i {
    transpose4(std::array::from_fn(|k| idot::<VNNI>(u, xv[k])))
}

/// The four tokens' integer sums with signed weights `w` (|w| ≤ 127), transposed.
#[inline(always)]
unsafe fn sums_signed<const VNNI: bool>(w: __m256i, xv: &[__m256i; 4]) -> __m256i {
    let u = _mm256_sign_epi8(w, w);
    transpose4(std::array::from_fn(|k| idot::<VNNI>(u, _mm256_sign_epi8(xv[k], w))))
}

/// The results of one tile: row r, token k.
#[inline(always)]
unsafe fn lanes<const R: usize>(acc: [__m128; R]) -> [[f32; 4]; R] {
    acc.map(|a| {
        let mut o = [0.0f32; 4];
        _mm_storeu_ps(o.as_mut_ptr(), a);
        o
    })
}

/// Blocks of `bytes` every row and the tile cover (they may differ when misused).
#[inline(always)]
fn blocks_of<const R: usize>(rows: &[&[u8]; R], x: &Q8Tile<'_>, bytes: usize, per: usize) -> usize {
    rows.iter().map(|r| r.len() / bytes).min().unwrap_or(0).min(x.blocks() / per)
}

/// Legacy 32-element formats: `Σ_blocks d_w·d_x·Σ q·q_x + c_w·s_x` per row and token, with the
/// unsigned quants (< 32) from `quants(block)` and `c_w = coef(block, d_w)`; `SIGNED` weights
/// (Q8_0) use the sign trick and have no `c_w` term.
#[inline(always)]
unsafe fn legacy<const R: usize, const SIGNED: bool, const VNNI: bool>(
    rows: [&[u8]; R],
    x: Q8Tile<'_>,
    bytes: usize,
    quants: impl Fn(&[u8]) -> __m256i,
    coef: impl Fn(&[u8], f32) -> f32,
) -> [[f32; 4]; R] {
    let nb = blocks_of(&rows, &x, bytes, 1);
    let rows = rows.map(|r| &r[..nb * bytes]);
    let mut acc = [_mm_setzero_ps(); R];
    for i in 0..nb {
        let xv = tokens(&x, i);
        let dx = four(x.d, i);
        for r in 0..R {
            let b = &rows[r][bytes * i..bytes * (i + 1)];
            let dw = f16_at(b, 0);
            let q = quants(b);
            let s = if SIGNED { sums_signed::<VNNI>(q, &xv) } else { sums_unsigned::<VNNI>(q, &xv) };
            acc[r] = _mm_fmadd_ps(_mm_mul_ps(dx, _mm_set1_ps(dw)), _mm_cvtepi32_ps(fold(s)), acc[r]);
            if !SIGNED {
                acc[r] = _mm_fmadd_ps(four(x.s, i), _mm_set1_ps(coef(b, dw)), acc[r]);
            }
        }
    }
    lanes(acc)
}

/// Q4_K / Q5_K: sub-block c of a super-block is a legacy block with scale `d·s_c` and
/// offset `−dmin·m_c` (times the token's block sum).
#[inline(always)]
unsafe fn k4<const R: usize, const Q5: bool, const VNNI: bool>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let nsb = blocks_of(&rows, &x, bytes, SUBS);
    let rows = rows.map(|r| &r[..nsb * bytes]);
    let (m4, one) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(1));
    let mut acc = [_mm_setzero_ps(); R];
    for sb in 0..nsb {
        let blk: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * sb..bytes * (sb + 1)]);
        // Per row: the eight sub-blocks' float scales and mins.
        let mut scale = [[0.0f32; SUBS]; R];
        let mut min = [[0.0f32; SUBS]; R];
        for r in 0..R {
            let (d, dmin) = (f16_at(blk[r], 0), f16_at(blk[r], 2));
            let sc: [u8; 12] = blk[r][4..16].try_into().unwrap_or([0; 12]);
            for j in 0..SUBS {
                let (s, m) = scale_min_k4(j, &sc);
                (scale[r][j], min[r][j]) = (d * s as f32, dmin * m as f32);
            }
        }
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let xv = tokens(&x, i);
            let (dx, sx) = (four(x.d, i), four(x.s, i));
            for r in 0..R {
                // Sub-blocks 2j (low nibbles) and 2j + 1 (high) share qs[32j..32j + 32].
                let v = load32(blk[r], qs_off + 32 * (c / 2));
                let mut q = if c % 2 == 0 { _mm256_and_si256(v, m4) } else { _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4) };
                if Q5 {
                    // Bit c of qh[l] is bit 4 of element 32c + l.
                    let h = _mm256_and_si256(_mm256_srl_epi16(load32(blk[r], 16), _mm_cvtsi32_si128(c as i32)), one);
                    q = _mm256_or_si256(q, _mm256_slli_epi16::<4>(h));
                }
                let s = _mm_cvtepi32_ps(fold(sums_unsigned::<VNNI>(q, &xv)));
                acc[r] = _mm_fmadd_ps(_mm_mul_ps(dx, _mm_set1_ps(scale[r][c])), s, acc[r]);
                acc[r] = _mm_fnmadd_ps(sx, _mm_set1_ps(min[r][c]), acc[r]);
            }
        }
    }
    lanes(acc)
}

/// Q6_K: sub-block c's 6-bit values (0..63): element 32c + l is nibble ⌊k/2⌋ of
/// ql[64n + 32(k % 2) + l] with bits 2k..2k + 2 of qh[32n + l] above it (n = c / 4, k = c % 4),
/// as `simd_x86_q8::q6k_half`.
#[inline(always)]
pub(super) unsafe fn q6k_sub(b: &[u8], c: usize) -> __m256i {
    let (n, k) = (c / 4, c % 4);
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let ql = load32(b, 64 * n + 32 * (k % 2));
    let qh = load32(b, 128 + 32 * n);
    let lo = if k < 2 { _mm256_and_si256(ql, m4) } else { _mm256_and_si256(_mm256_srli_epi16::<4>(ql), m4) };
    let hi = match k {
        0 => _mm256_slli_epi16::<4>(qh),
        1 => _mm256_slli_epi16::<2>(qh),
        2 => qh,
        _ => _mm256_srli_epi16::<2>(qh),
    };
    _mm256_or_si256(lo, _mm256_and_si256(hi, m30))
}

/// Q6_K: `d·Σ_c Σ_halves sc·Σ (q − 32)·q_x · d_x` per row and token.
#[inline(always)]
unsafe fn q6k<const R: usize, const VNNI: bool>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
    let bytes = BlockQ6K::BYTES;
    let nsb = blocks_of(&rows, &x, bytes, SUBS);
    let rows = rows.map(|r| &r[..nsb * bytes]);
    let k32 = _mm256_set1_epi8(32);
    let mut acc = [_mm_setzero_ps(); R];
    for sb in 0..nsb {
        let blk: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * sb..bytes * (sb + 1)]);
        let d: [f32; R] = std::array::from_fn(|r| f16_at(blk[r], 208));
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let xv = tokens(&x, i);
            let dx = four(x.d, i);
            for r in 0..R {
                let w = _mm256_sub_epi8(q6k_sub(blk[r], c), k32);
                let (sc0, sc1) = (blk[r][192 + 2 * c] as i8 as i32, blk[r][193 + 2 * c] as i8 as i32);
                let scv = _mm256_set_m128i(_mm_set1_epi32(sc1), _mm_set1_epi32(sc0));
                let s = _mm_cvtepi32_ps(fold(_mm256_mullo_epi32(sums_signed::<VNNI>(w, &xv), scv)));
                acc[r] = _mm_fmadd_ps(_mm_mul_ps(dx, _mm_set1_ps(d[r])), s, acc[r]);
            }
        }
    }
    lanes(acc)
}

/// Instantiates every format's tile for `$r` rows with `VNNI = $vnni` under `$features`.
macro_rules! tiles {
    ($vnni:literal, $features:literal) => {
        use super::*;

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q4_0<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            legacy::<R, false, $vnni>(rows, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| -8.0 * d)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q4_1<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            legacy::<R, false, $vnni>(rows, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16_at(b, 2))
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q5_0<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            let q = |b: &[u8]| _mm256_or_si256(nibbles32(b, 6), bit4_from_bits32(b, 2));
            legacy::<R, false, $vnni>(rows, x, BlockQ5_0::BYTES, q, |_, d| -16.0 * d)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q5_1<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            let q = |b: &[u8]| _mm256_or_si256(nibbles32(b, 8), bit4_from_bits32(b, 4));
            legacy::<R, false, $vnni>(rows, x, BlockQ5_1::BYTES, q, |b, _| f16_at(b, 2))
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q8_0<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            legacy::<R, true, $vnni>(rows, x, BlockQ8_0::BYTES, |b| load32(b, 2), |_, _| 0.0)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q4_k<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            k4::<R, false, $vnni>(rows, x)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q5_k<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            k4::<R, true, $vnni>(rows, x)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn tile_q6_k<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            q6k::<R, $vnni>(rows, x)
        }
    };
}

/// AVX2 + FMA + F16C.
pub(super) mod avx2 {
    tiles!(false, "avx2,fma,f16c");
}

/// AVX2 + FMA + F16C + AVX-VNNI (`vpdpbusd` on 256 bits: Zen 4+, Alder Lake+).
pub(super) mod vnni {
    tiles!(true, "avx2,fma,f16c,avxvnni");
}
