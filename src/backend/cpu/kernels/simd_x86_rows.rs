//! x86_64 one-token kernels with the prefill tiles' arithmetic: four weight rows against one
//! token's 8-bit activations (the `rows` field of `mod.rs`'s `AVX2` and `AVX2_VNNI` tables).
//!
//! Why: decode (one token) and the tokens a prefill leaves over after its groups of four used
//! the one-token kernels of `simd_x86_q8.rs`, whose float order differs from the tiles'
//! (eight lanes scaled per block and summed at the end, vs the block's integer sum scaled once).
//! The difference is one rounding, but the next product quantizes its activations to 8 bits
//! again, and an element that moves across a rounding boundary moves by a whole step: through
//! 30 layers a prompt fed one token at a time and the same prompt in one prefill ended at
//! last-token logits cosine 0.98–0.999 (SmolLM2 Q4_1), against 1.0000000 with f32 activations.
//! Neither order is closer to llama.cpp (measured against the goldens of `tests/parity_cpu.rs`:
//! each wins on some prompts); what matters is that a token's result does not depend on how
//! the prompt was split, so a prompt-cache hit equals a miss and a conversation's second turn
//! equals the same text prefilled at once.
//!
//! Here the lanes are the four rows instead of the four tokens: per block, each row's integer
//! sum with the token (`vpdpbusd`, or `vpmaddubsw` + `vpmaddwd`), the four sums transposed
//! into one vector (`vphaddd` ×3, as the tiles do for tokens), then per lane exactly the float
//! operations a tile does for one (row, token): `acc = (d_x·d_w)·Σ + acc`, then the offset or
//! min term through the block sum. The results equal the tiles' bit for bit (`tests.rs`).

use super::q8::{Q8Slice, Q8_BLOCK};
use super::simd_x86_q8::{bit4_from_bits32, k4_pair, load32, nibbles32, prefetch_at};

/// How far ahead of each row's block the weights are requested (bytes).
const PREFETCH: usize = 16384;

#[inline(always)]
unsafe fn prefetch_ahead(b: &[u8]) {
    prefetch_at::<PREFETCH>(b)
}
use super::simd_x86_tile::{fold, idot, q6k_sub, transpose4, SUBS};
use super::tile::TILE_ROWS as R;
use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat};
use std::arch::x86_64::*;

/// Blocks of `bytes` every row and the token cover (they may differ when misused).
#[inline(always)]
fn blocks_of(rows: &[&[u8]; R], x: &Q8Slice<'_>, bytes: usize, per: usize) -> usize {
    let xb = x.d.len().min(x.s.len()).min(x.qs.len() / Q8_BLOCK);
    rows.iter().map(|r| r.len() / bytes).min().unwrap_or(0).min(xb / per)
}

/// The f16 at `b[r][off..off + 2]` of each row's block, converted in one instruction (as exact
/// as `simd_x86::f16_at`; built in registers: four scalar stores then a vector load of them would stall
/// on store forwarding once per block).
#[inline(always)]
unsafe fn f16x4(b: &[&[u8]; R], off: usize) -> __m128 {
    let h = |r: usize| i16::from_le_bytes([b[r][off], b[r][off + 1]]);
    _mm_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), 0, 0, 0, 0))
}

#[inline(always)]
unsafe fn out(acc: __m128) -> [f32; R] {
    let mut o = [0.0f32; R];
    _mm_storeu_ps(o.as_mut_ptr(), acc);
    o
}

/// Legacy 32-element formats (see `simd_x86_tile::legacy`): lane r = row r.
#[inline(always)]
unsafe fn legacy<const SIGNED: bool, const VNNI: bool>(
    rows: [&[u8]; R],
    x: Q8Slice<'_>,
    bytes: usize,
    quants: impl Fn(&[u8]) -> __m256i,
    coef: impl Fn(&[&[u8]; R], __m128) -> __m128,
) -> [f32; R] {
    let nb = blocks_of(&rows, &x, bytes, 1);
    let rows = rows.map(|r| &r[..nb * bytes]);
    let mut acc = _mm_setzero_ps();
    for i in 0..nb {
        let xv = load32(x.qs, Q8_BLOCK * i);
        let blk: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * i..bytes * (i + 1)]);
        let p: [__m256i; R] = std::array::from_fn(|r| {
            prefetch_ahead(blk[r]);
            let q = quants(blk[r]);
            if SIGNED {
                idot::<VNNI>(_mm256_sign_epi8(q, q), _mm256_sign_epi8(xv, q))
            } else {
                idot::<VNNI>(q, xv)
            }
        });
        let dw = f16x4(&blk, 0);
        let s = _mm_cvtepi32_ps(fold(transpose4(p)));
        acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(x.d[i]), dw), s, acc);
        if !SIGNED {
            acc = _mm_fmadd_ps(_mm_set1_ps(x.s[i]), coef(&blk, dw), acc);
        }
    }
    out(acc)
}

/// Q4_K / Q5_K (see `simd_x86_tile::k4`): sub-blocks 2j and 2j + 1 share each row's load of
/// `qs[32j..32j + 32]`; the rows' scales and mins are built in registers per sub-block.
#[inline(always)]
unsafe fn k4<const Q5: bool, const VNNI: bool>(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let nsb = blocks_of(&rows, &x, bytes, SUBS);
    let rows = rows.map(|r| &r[..nsb * bytes]);
    let mut acc = _mm_setzero_ps();
    for sb in 0..nsb {
        let blk: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * sb..bytes * (sb + 1)]);
        blk.iter().for_each(|b| prefetch_ahead(b));
        let (d, dmin) = (f16x4(&blk, 0), f16x4(&blk, 2));
        let sc: [[u8; 12]; R] = std::array::from_fn(|r| blk[r][4..16].try_into().unwrap_or([0; 12]));
        let qh: [__m256i; R] = std::array::from_fn(|r| if Q5 { load32(blk[r], 16) } else { _mm256_setzero_si256() });
        for j in 0..SUBS / 2 {
            let i = SUBS * sb + 2 * j;
            let (x0, x1) = (load32(x.qs, Q8_BLOCK * i), load32(x.qs, Q8_BLOCK * (i + 1)));
            let mut p0 = [_mm256_setzero_si256(); R];
            let mut p1 = [_mm256_setzero_si256(); R];
            for r in 0..R {
                let (lo, hi) = k4_pair::<Q5>(blk[r], qh[r], qs_off, j);
                p0[r] = idot::<VNNI>(lo, x0);
                p1[r] = idot::<VNNI>(hi, x1);
            }
            for (c, p) in [(2 * j, p0), (2 * j + 1, p1)] {
                let sm: [(u8, u8); R] = std::array::from_fn(|r| scale_min_k4(c, &sc[r]));
                let si = _mm_setr_epi32(sm[0].0 as i32, sm[1].0 as i32, sm[2].0 as i32, sm[3].0 as i32);
                let mi = _mm_setr_epi32(sm[0].1 as i32, sm[1].1 as i32, sm[2].1 as i32, sm[3].1 as i32);
                // The tile's `d·s` and `dmin·m`, per lane (the same products).
                let (scale, min) = (_mm_mul_ps(d, _mm_cvtepi32_ps(si)), _mm_mul_ps(dmin, _mm_cvtepi32_ps(mi)));
                let s = _mm_cvtepi32_ps(fold(transpose4(p)));
                acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(x.d[SUBS * sb + c]), scale), s, acc);
                acc = _mm_fnmadd_ps(_mm_set1_ps(x.s[SUBS * sb + c]), min, acc);
            }
        }
    }
    out(acc)
}

/// Q6_K (see `simd_x86_tile::q6k`): the transposed sums' low lanes are the rows' first 16
/// elements, the high lanes their last 16, each multiplied by its own scale.
#[inline(always)]
unsafe fn q6k<const VNNI: bool>(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    let bytes = BlockQ6K::BYTES;
    let nsb = blocks_of(&rows, &x, bytes, SUBS);
    let rows = rows.map(|r| &r[..nsb * bytes]);
    let k32 = _mm256_set1_epi8(32);
    let mut acc = _mm_setzero_ps();
    for sb in 0..nsb {
        let blk: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * sb..bytes * (sb + 1)]);
        blk.iter().for_each(|b| prefetch_ahead(b));
        let d = f16x4(&blk, 208);
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let xv = load32(x.qs, Q8_BLOCK * i);
            let p: [__m256i; R] = std::array::from_fn(|r| {
                let w = _mm256_sub_epi8(q6k_sub(blk[r], c), k32);
                idot::<VNNI>(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w))
            });
            let sc = |r: usize, h: usize| blk[r][192 + 2 * c + h] as i8 as i32;
            let scv = _mm256_setr_epi32(sc(0, 0), sc(1, 0), sc(2, 0), sc(3, 0), sc(0, 1), sc(1, 1), sc(2, 1), sc(3, 1));
            let s = _mm_cvtepi32_ps(fold(_mm256_mullo_epi32(transpose4(p), scv)));
            acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(x.d[i]), d), s, acc);
        }
    }
    out(acc)
}

/// Instantiates every format's four-row kernel with `VNNI = $vnni` under `$features`.
macro_rules! rows {
    ($vnni:literal, $features:literal) => {
        use super::*;

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q4_0(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            legacy::<false, $vnni>(rows, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| _mm_mul_ps(_mm_set1_ps(-8.0), d))
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q4_1(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            legacy::<false, $vnni>(rows, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16x4(b, 2))
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q5_0(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            let q = |b: &[u8]| _mm256_or_si256(nibbles32(b, 6), bit4_from_bits32(b, 2));
            legacy::<false, $vnni>(rows, x, BlockQ5_0::BYTES, q, |_, d| _mm_mul_ps(_mm_set1_ps(-16.0), d))
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q5_1(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            let q = |b: &[u8]| _mm256_or_si256(nibbles32(b, 8), bit4_from_bits32(b, 4));
            legacy::<false, $vnni>(rows, x, BlockQ5_1::BYTES, q, |b, _| f16x4(b, 2))
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q8_0(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            legacy::<true, $vnni>(rows, x, BlockQ8_0::BYTES, |b| load32(b, 2), |_, _| _mm_setzero_ps())
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q4_k(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            k4::<false, $vnni>(rows, x)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q5_k(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            k4::<true, $vnni>(rows, x)
        }

        #[target_feature(enable = $features)]
        pub(in super::super) unsafe fn rows_q6_k(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
            q6k::<$vnni>(rows, x)
        }
    };
}

/// AVX2 + FMA + F16C.
pub(super) mod avx2 {
    rows!(false, "avx2,fma,f16c");
}

/// AVX2 + FMA + F16C + AVX-VNNI.
pub(super) mod vnni {
    rows!(true, "avx2,fma,f16c,avxvnni");
}
