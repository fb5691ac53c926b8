//! x86_64 prefill tiles and their one-token twins for the unsigned legacy formats (Q4_0,
//! Q4_1, Q5_0, Q5_1) on CPUs with AVX-512 (F, BW, VL, VNNI): the `AVX512` table of `mod.rs`.
//!
//! The AVX2 tiles (`simd_x86_tile.rs`) fold each (row, block)'s four tokens into one vector
//! (`vphaddd` ×3 + an extract) before the float work, and with 16 vector registers they spill
//! the tokens and constants (perf on Qwen2.5-Coder 0.5B, whose layers are mostly Q5_0: ~12
//! instructions per row, token and block). Here, as in llamafile's tinyBLAS, each (row, token)
//! keeps eight float lanes over the whole row and is reduced once at the end:
//! - a block's 32 weights are unpacked once into both 256-bit halves of a zmm (nibbles by a
//!   per-lane variable shift, Q5's fifth bits by one byte-masked add from the `qh` word as a
//!   mask register);
//! - one `vpdpbusd` zmm multiplies them with two tokens' 32 activation bytes (the interleaved
//!   [`Q8Tile`] holds tokens 0, 1 then 2, 3 contiguously, so two loads per block cover four);
//! - `acc = (d_x·d_w)·Σ + acc` per lane (lanes 0..8: token 2p, 8..16: token 2p + 1), and the
//!   block's offset or min, `c_w·s_x`, into a four-lane (token) accumulator per row.
//!
//! The one-token kernel over four rows ([`rows_q5_0`] …) does the same float operations per
//! (row, token) with 256-bit vectors, and both reduce with [`finish`], so its results equal the
//! tile's bit for bit (the contract of `tile.rs`'s `DotQ8RowsFn`; checked in `tests.rs`).

use super::q8::{Q8Slice, Q8_BLOCK};
use super::simd_x86::f16_at;
use super::simd_x86_q8::{load32, nibbles32};
use super::tile::{Q8Tile, TILE_ROWS};
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, QuantFormat};
use std::arch::x86_64::*;

/// Whether this CPU has what the kernels here are compiled for (with `has_avx2_fma_f16c`).
pub(super) fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// One legacy format: block bytes, where the 16 nibble bytes and the fifth-bit word are,
/// and the per-block offset coefficient `c_w` (of the token's block sum) from the block and
/// its scale.
#[derive(Clone, Copy)]
struct Fmt {
    bytes: usize,
    qs: usize,
    /// Offset of the little-endian `u32` of fifth bits (Q5), `None` for Q4.
    qh: Option<usize>,
    /// `c_w = m` (f16 at byte 2: Q4_1, Q5_1) or `c_w = k·d_w` (Q4_0: −8, Q5_0: −16).
    min_at_2: bool,
    k: f32,
}

const Q4_0: Fmt = Fmt { bytes: BlockQ4_0::BYTES, qs: 2, qh: None, min_at_2: false, k: -8.0 };
const Q4_1: Fmt = Fmt { bytes: BlockQ4_1::BYTES, qs: 4, qh: None, min_at_2: true, k: 0.0 };
const Q5_0: Fmt = Fmt { bytes: BlockQ5_0::BYTES, qs: 6, qh: Some(2), min_at_2: false, k: -16.0 };
const Q5_1: Fmt = Fmt { bytes: BlockQ5_1::BYTES, qs: 8, qh: Some(4), min_at_2: true, k: 0.0 };

#[inline(always)]
fn coef(f: Fmt, b: &[u8], dw: f32) -> f32 {
    if f.min_at_2 {
        // SAFETY: f16_at only converts (F16C is enabled wherever this inlines).
        unsafe { f16_at(b, 2) }
    } else {
        f.k * dw
    }
}

#[inline(always)]
fn qh_word(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The block's 32 unsigned quants in both 256-bit halves (elements 0..16 then 16..32).
#[inline(always)]
unsafe fn quants512(f: Fmt, b: &[u8]) -> __m512i {
    let s = &b[f.qs..f.qs + 16];
    let v = _mm512_broadcast_i32x4(_mm_loadu_si128(s.as_ptr() as *const __m128i));
    // 128-bit lanes 1 and 3 take the high nibbles.
    let sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    let q = _mm512_and_si512(_mm512_srlv_epi64(v, sh), _mm512_set1_epi8(0x0F));
    match f.qh {
        Some(off) => {
            let h = qh_word(b, off) as u64;
            _mm512_mask_add_epi8(q, h | (h << 32), q, _mm512_set1_epi8(0x10))
        }
        None => q,
    }
}

/// The block's 32 unsigned quants in element order (256 bits).
#[inline(always)]
unsafe fn quants256(f: Fmt, b: &[u8]) -> __m256i {
    let q = nibbles32(b, f.qs);
    match f.qh {
        Some(off) => _mm256_mask_add_epi8(q, qh_word(b, off), q, _mm256_set1_epi8(0x10)),
        None => q,
    }
}

/// One (row, token)'s result: its eight lanes summed in a fixed order, plus its offset sum.
#[inline(always)]
fn finish(l: &[f32], off: f32) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])) + off
}

/// `R` rows against the four tokens of `x` (result `[row][token]`).
#[inline(always)]
unsafe fn tile<const R: usize>(f: Fmt, rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
    let nb = rows.iter().map(|r| r.len() / f.bytes).min().unwrap_or(0).min(x.blocks());
    let rows = rows.map(|r| &r[..nb * f.bytes]);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut off = [_mm_setzero_ps(); R];
    // Lanes 0..8 ← token 2p's scale, 8..16 ← token 2p + 1's.
    let pick = [_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)];
    for i in 0..nb {
        let q = &x.qs[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
        let xv = [_mm512_loadu_si512(q.as_ptr() as *const __m512i), _mm512_loadu_si512(q[64..].as_ptr() as *const __m512i)];
        let d4 = _mm_loadu_ps(x.d[4 * i..4 * i + 4].as_ptr());
        let s4 = _mm_loadu_ps(x.s[4 * i..4 * i + 4].as_ptr());
        let dx = pick.map(|p| _mm512_permutexvar_ps(p, _mm512_castps128_ps512(d4)));
        for r in 0..R {
            let b = &rows[r][f.bytes * i..f.bytes * (i + 1)];
            let dw = f16_at(b, 0);
            let w = quants512(f, b);
            for p in 0..2 {
                let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv[p]));
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dx[p], _mm512_set1_ps(dw)), s, acc[r][p]);
            }
            off[r] = _mm_fmadd_ps(s4, _mm_set1_ps(coef(f, b, dw)), off[r]);
        }
    }
    std::array::from_fn(|r| {
        let mut l = [0.0f32; 32];
        _mm512_storeu_ps(l.as_mut_ptr(), acc[r][0]);
        _mm512_storeu_ps(l[16..].as_mut_ptr(), acc[r][1]);
        let mut o = [0.0f32; 4];
        _mm_storeu_ps(o.as_mut_ptr(), off[r]);
        std::array::from_fn(|k| finish(&l[8 * k..8 * k + 8], o[k]))
    })
}

/// [`TILE_ROWS`] rows against one token, with [`tile`]'s float operations per (row, token).
#[inline(always)]
unsafe fn rows4(f: Fmt, rows: [&[u8]; TILE_ROWS], x: Q8Slice<'_>) -> [f32; TILE_ROWS] {
    let xb = x.d.len().min(x.s.len()).min(x.qs.len() / Q8_BLOCK);
    let nb = rows.iter().map(|r| r.len() / f.bytes).min().unwrap_or(0).min(xb);
    let rows = rows.map(|r| &r[..nb * f.bytes]);
    let mut acc = [_mm256_setzero_ps(); TILE_ROWS];
    let mut off = _mm_setzero_ps();
    for i in 0..nb {
        let xv = load32(x.qs, Q8_BLOCK * i);
        let dx = _mm256_set1_ps(x.d[i]);
        let blk: [&[u8]; TILE_ROWS] = std::array::from_fn(|r| &rows[r][f.bytes * i..f.bytes * (i + 1)]);
        let dw: [f32; TILE_ROWS] = std::array::from_fn(|r| f16_at(blk[r], 0));
        for r in 0..TILE_ROWS {
            let s = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), quants256(f, blk[r]), xv));
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(dw[r])), s, acc[r]);
        }
        let c = _mm_setr_ps(coef(f, blk[0], dw[0]), coef(f, blk[1], dw[1]), coef(f, blk[2], dw[2]), coef(f, blk[3], dw[3]));
        off = _mm_fmadd_ps(_mm_set1_ps(x.s[i]), c, off);
    }
    let mut o = [0.0f32; TILE_ROWS];
    _mm_storeu_ps(o.as_mut_ptr(), off);
    std::array::from_fn(|r| {
        let mut l = [0.0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), acc[r]);
        finish(&l, o[r])
    })
}

macro_rules! format {
    ($tile:ident, $rows:ident, $fmt:ident) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(super) unsafe fn $tile<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
            tile::<R>($fmt, rows, x)
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(super) unsafe fn $rows(rows: [&[u8]; TILE_ROWS], x: Q8Slice<'_>) -> [f32; TILE_ROWS] {
            rows4($fmt, rows, x)
        }
    };
}

format!(tile_q4_0, rows_q4_0, Q4_0);
format!(tile_q4_1, rows_q4_1, Q4_1);
format!(tile_q5_0, rows_q5_0, Q5_0);
format!(tile_q5_1, rows_q5_1, Q5_1);
