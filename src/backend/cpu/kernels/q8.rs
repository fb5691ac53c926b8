//! 8-bit activations and integer dot products against them (llama.cpp's `vec_dot_*_q8_*`).
//!
//! A matrix-vector product quantizes its activation vector once, in blocks of 32, to
//! `x ≈ d·q` with `q` a signed byte in [-127, 127] and `d = max|x| / 127` (ggml's
//! `quantize_row_q8_0`/`q8_1`; with `s = d·Σq` kept per block as in `block_q8_1`). The dot
//! products then multiply weight integers by activation integers, exactly, and apply the
//! float scales once per 32 elements: `Σ w·x ≈ Σ_blocks d_w·d_x·Σ q_w·q_x (+ min terms)`.
//!
//! Unlike llama.cpp, k-quants are also dotted with these 32-element blocks (not 256-element
//! `block_q8_K`): one activation layout serves every weight format, and the finer scales are
//! at least as accurate. Q2_K (16-element sub-blocks with mins) needs per-16 sums and is not
//! covered; it stays on the f32 path.
//!
//! The integer dot products themselves are rows of the kernel tables (`mod.rs`); their scalar
//! references are in `reference.rs`.
//!
//! Error of the approximation: rounding gives `|x − d·q| ≤ d/2` per element, so the integer
//! dot differs from the f32 dot of the dequantized row by at most `Σ_blocks (d_x/2)·Σ|w|`
//! (plus f32 rounding); the tests check exactly this bound.

use crate::quant::{GgmlType, QuantError};

/// Elements per activation block.
pub const Q8_BLOCK: usize = GgmlType::Q8_0.block_size();

/// An activation vector quantized to 8 bits in blocks of [`Q8_BLOCK`]: reusable scratch
/// (quantizing again reuses the allocation once it is large enough).
#[derive(Debug, Default, Clone)]
pub struct Q8Acts {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    /// `qs` widened to i16, once per product, in the baseline wasm build: SIMD128 has no
    /// byte multiply-add, and widening the activations for every row cost more than the
    /// products (`simd_wasm_q8.rs`).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    qw: Vec<i16>,
}

/// A borrowed run of whole blocks of a [`Q8Acts`]: what the integer dot products read.
#[derive(Debug, Clone, Copy)]
pub struct Q8Slice<'a> {
    /// The quantized values, `32·k` of them.
    pub(super) qs: &'a [i8],
    /// Per block: the scale `d`.
    pub(super) d: &'a [f32],
    /// Per block: `d·Σq`, the block's sum of (quantized) activations.
    pub(super) s: &'a [f32],
    /// `qs` as i16 (baseline wasm build only).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    pub(super) qw: &'a [i16],
}

impl Q8Slice<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.qs.len()
    }
    /// Whether the slice holds no element.
    pub fn is_empty(&self) -> bool {
        self.qs.is_empty()
    }
}

impl Q8Acts {
    /// An empty buffer.
    pub fn new() -> Q8Acts {
        Q8Acts::default()
    }

    /// Number of quantized elements.
    pub fn len(&self) -> usize {
        self.qs.len()
    }

    /// Whether no element is held.
    pub fn is_empty(&self) -> bool {
        self.qs.is_empty()
    }

    /// Quantizes `x` into this buffer, replacing its contents (no allocation when the buffer
    /// already held as many elements). Non-finite inputs give non-finite or zero scales,
    /// never a panic.
    ///
    /// Errors: [`QuantError::NotBlockAligned`] when `x.len()` is not a multiple of 32.
    pub fn quantize(&mut self, x: &[f32]) -> Result<(), QuantError> {
        if x.len() % Q8_BLOCK != 0 {
            return Err(QuantError::NotBlockAligned { ty: GgmlType::Q8_0, elems: x.len(), block: Q8_BLOCK });
        }
        let blocks = x.len() / Q8_BLOCK;
        self.qs.resize(x.len(), 0);
        self.d.resize(blocks, 0.0);
        self.s.resize(blocks, 0.0);
        let it = x.chunks_exact(Q8_BLOCK).zip(self.qs.chunks_exact_mut(Q8_BLOCK));
        for ((xs, qs), (d, s)) in it.zip(self.d.iter_mut().zip(self.s.iter_mut())) {
            (*d, *s) = super::quantize_block_fast(xs, qs);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
        {
            self.qw.clear();
            self.qw.extend(self.qs.iter().map(|&q| q as i16));
        }
        Ok(())
    }

    /// Elements `start..start + len` as a [`Q8Slice`], or `None` unless both are multiples
    /// of 32 and the range is inside the buffer.
    pub fn slice(&self, start: usize, len: usize) -> Option<Q8Slice<'_>> {
        if start % Q8_BLOCK != 0 || len % Q8_BLOCK != 0 || start.checked_add(len)? > self.qs.len() {
            return None;
        }
        let (b0, nb) = (start / Q8_BLOCK, len / Q8_BLOCK);
        Some(Q8Slice {
            qs: &self.qs[start..start + len],
            d: &self.d[b0..b0 + nb],
            s: &self.s[b0..b0 + nb],
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
            qw: &self.qw[start..start + len],
        })
    }

    /// The whole buffer as a [`Q8Slice`].
    pub fn as_slice(&self) -> Q8Slice<'_> {
        Q8Slice {
            qs: &self.qs,
            d: &self.d,
            s: &self.s,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
            qw: &self.qw,
        }
    }
}

/// ggml `quantize_row_q8_1` for one block: returns `(d, d·Σq)` (the reference; rounding half
/// away from zero, as `roundf`).
#[inline]
pub fn quantize_block(xs: &[f32], qs: &mut [i8]) -> (f32, f32) {
    let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(xs) {
        // |v·id| ≤ 127 for finite input; `as` saturates (NaN → 0) otherwise.
        let r = (v * id).round() as i8;
        *q = r;
        sum += r as i32;
    }
    (d, d * sum as f32)
}

/// An integer dot product of one quantized weight row with 8-bit activations.
///
/// Assumes `x.len()` is the row's element count (callers check once per matrix); if not,
/// it stops at the end of the shorter operand and never reads out of bounds.
pub type DotQ8Fn = fn(row: &[u8], x: Q8Slice<'_>) -> f32;

/// Four activation vectors (four tokens) dotted with one row at once, each weight block
/// unpacked once: the prefill tile. Equal to four [`DotQ8Fn`] calls up to f32 rounding; same
/// length contract.
pub type DotQ8x4Fn = fn(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4];

/// Blocks every one of the four activation vectors covers (they may differ when misused).
#[cfg(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
pub(super) fn blocks4(x: &[Q8Slice<'_>; 4]) -> usize {
    x.iter().map(|x| x.d.len().min(x.s.len()).min(x.qs.len() / Q8_BLOCK)).min().unwrap_or(0)
}

