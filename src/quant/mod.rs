//! Block formats of GGML/GGUF tensors: the single source of truth for their layouts.
//!
//! Every other layer (the GGUF reader, the CPU backend's kernels, the WGSL kernels through
//! `override` constants) asks this module for block sizes and byte sizes. A type id that is
//! not listed in `ggml_types!` is rejected by the GGUF reader as unknown; a listed type
//! without a [`FORMATS`] row is rejected when used.
//!
//! Owns: the GGUF type ids and sizes (`ggml_types!`), one layout file per family
//! (`float.rs`, `legacy.rs`, `kquants.rs`: block structs, dequantization, scalar reference
//! dot), the registration list [`FORMATS`], and random valid blocks for tests ([`synth`]).
//! Nothing here is machine-specific: SIMD kernels are the CPU backend's
//! (`backend::cpu::kernels`).

use thiserror::Error;

/// Errors from the block-format layer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    /// The type is known to GGUF but Hearth has no kernel for it.
    #[error("block type {0:?} is not supported")]
    Unsupported(GgmlType),
    /// A byte slice does not hold a whole number of blocks for the element count.
    #[error("{ty:?}: {elems} elements need {expected} bytes, got {got}")]
    BadLength { ty: GgmlType, elems: usize, expected: usize, got: usize },
    /// The element count is not a multiple of the block size.
    #[error("{ty:?}: {elems} elements is not a multiple of the block size {block}")]
    NotBlockAligned { ty: GgmlType, elems: usize, block: usize },
}

macro_rules! ggml_types {
    ($( $name:ident = $id:literal, $blck:literal, $bytes:literal; )*) => {
        /// A GGML tensor type, with the numeric id GGUF stores for it.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum GgmlType { $( $name, )* }

        impl GgmlType {
            /// All types known to the reader.
            pub const ALL: &'static [GgmlType] = &[$( GgmlType::$name, )*];

            /// The type for a GGUF type id, or `None` when the id is unknown.
            pub const fn from_id(id: u32) -> Option<GgmlType> {
                match id { $( $id => Some(GgmlType::$name), )* _ => None }
            }
            /// The id GGUF stores for this type.
            pub const fn id(self) -> u32 { match self { $( GgmlType::$name => $id, )* } }
            /// Elements per block (1 for plain float/int types).
            pub const fn block_size(self) -> usize { match self { $( GgmlType::$name => $blck, )* } }
            /// Bytes per block.
            pub const fn type_size(self) -> usize { match self { $( GgmlType::$name => $bytes, )* } }
            /// The name ggml and the GGUF spec use (`"Q4_K"`).
            pub const fn name(self) -> &'static str { match self { $( GgmlType::$name => stringify!($name), )* } }
        }
    };
}

// ids, block sizes and byte sizes from ggml.h / ggml.c `type_traits`.
ggml_types! {
    F32 = 0, 1, 4;
    F16 = 1, 1, 2;
    Q4_0 = 2, 32, 18;
    Q4_1 = 3, 32, 20;
    Q5_0 = 6, 32, 22;
    Q5_1 = 7, 32, 24;
    Q8_0 = 8, 32, 34;
    Q8_1 = 9, 32, 36;
    Q2_K = 10, 256, 84;
    Q3_K = 11, 256, 110;
    Q4_K = 12, 256, 144;
    Q5_K = 13, 256, 176;
    Q6_K = 14, 256, 210;
    Q8_K = 15, 256, 292;
    IQ2_XXS = 16, 256, 66;
    IQ2_XS = 17, 256, 74;
    IQ3_XXS = 18, 256, 98;
    IQ1_S = 19, 256, 50;
    IQ4_NL = 20, 32, 18;
    IQ3_S = 21, 256, 110;
    IQ2_S = 22, 256, 82;
    IQ4_XS = 23, 256, 136;
    I8 = 24, 1, 1;
    I16 = 25, 1, 2;
    I32 = 26, 1, 4;
    I64 = 27, 1, 8;
    F64 = 28, 1, 8;
    IQ1_M = 29, 256, 56;
    BF16 = 30, 1, 2;
    TQ1_0 = 34, 256, 54;
    TQ2_0 = 35, 256, 66;
    MXFP4 = 39, 32, 17;
}

impl GgmlType {
    /// Bytes needed for `elems` elements, or `None` when `elems` is not a whole number of
    /// blocks or the size overflows.
    pub fn bytes_for(self, elems: u64) -> Option<u64> {
        let blck = self.block_size() as u64;
        if elems % blck != 0 {
            return None;
        }
        (elems / blck).checked_mul(self.type_size() as u64)
    }
}

mod float;
mod kquants;
mod legacy;
pub mod synth;
// Shared with the CPU kernels' tests (`backend/cpu/kernels/tests.rs`): row and size helpers.
#[cfg(test)]
pub(crate) mod tests;

pub use float::{BF16Format, F16Format, F32Format};
pub use kquants::{scale_min_k4, unpack_q3k, unpack_q4k, unpack_q5k, unpack_q6k, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, Unpacked, QK_K};
pub use legacy::{fives, nibbles, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK};

/// A fused dot product of one quantized row with f32 activations: `Σ w[i]·x[i]` with the
/// row's blocks decoded in registers, never materialised, and f32 accumulation. The
/// reference ([`dot_scalar_fn`]) lives here; the CPU backend's SIMD kernels
/// (`backend::cpu::kernels`) have the same type.
///
/// The function assumes `row.len() == ty.bytes_for(x.len())`; callers check that once per
/// matrix ([`dot_scalar`] checks it on every call). If it is violated the function does not
/// cause undefined behaviour: it stops at the end of the shorter operand, or panics on a slice
/// index (never reads out of bounds).
pub type DotFn = fn(row: &[u8], x: &[f32]) -> f32;

/// A float field of a block, by byte offset: what a random block must keep finite and of a
/// sensible size ([`synth`]); every other byte of a block may hold any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An f16 multiplier (`d`, `dmin`): positive and small.
    Scale(usize),
    /// An f16 additive term (`m` of Q4_1 and Q5_1): signed.
    Min(usize),
    /// An f32 element (F32).
    F32(usize),
    /// An f16 element (F16).
    F16(usize),
    /// A bfloat16 element (BF16).
    BF16(usize),
}

/// One block format: its layout and its scalar reference kernels.
///
/// Mirrors ggml's `type_traits[]` row (`blck_size`, `type_size`, `to_float`, `vec_dot`
/// reference). Adding a format is one new implementation (a layout file) plus one line in
/// [`FORMATS`]; its CPU SIMD kernels, if any, are rows of `backend::cpu::kernels`.
pub trait QuantFormat {
    /// The GGML type this implements.
    const TY: GgmlType;
    /// Elements per block.
    const BLOCK: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// The block's float fields (see [`Field`]).
    const FIELDS: &'static [Field];

    /// Decodes one block: `block.len() == BYTES`, `out.len() == BLOCK` (the caller checks).
    fn dequantize_block(block: &[u8], out: &mut [f32]);

    /// The plain scalar fused dot product of one block with `x` (`x.len() == BLOCK`).
    fn dot_block(block: &[u8], x: &[f32]) -> f32;
}

/// Row-level scalar reference: the sum over blocks of [`QuantFormat::dot_block`].
fn dot_row_scalar<F: QuantFormat + ?Sized>(row: &[u8], x: &[f32]) -> f32 {
    row.chunks_exact(F::BYTES)
        .zip(x.chunks_exact(F::BLOCK))
        .map(|(b, xs)| F::dot_block(b, xs))
        .sum()
}

fn dequantize_row<F: QuantFormat + ?Sized>(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(F::BYTES).zip(out.chunks_exact_mut(F::BLOCK)) {
        F::dequantize_block(b, o);
    }
}

/// A row of the registration list: ggml's `type_traits` entry for one supported format.
#[derive(Debug)]
pub struct Format {
    pub ty: GgmlType,
    /// Elements per block.
    pub block: usize,
    /// Bytes per block.
    pub bytes: usize,
    /// The block's float fields.
    pub fields: &'static [Field],
    /// Decodes whole blocks (`bytes.len() / self.bytes` of them into `out`).
    pub dequantize: fn(&[u8], &mut [f32]),
    /// The scalar reference dot product of a row (the oracle of every fast kernel).
    pub dot_scalar: DotFn,
}

const fn format<F: QuantFormat>() -> Format {
    // The layout file and ggml's table (`ggml_types!` above) must agree.
    assert!(F::TY.block_size() == F::BLOCK && F::TY.type_size() == F::BYTES);
    Format {
        ty: F::TY,
        block: F::BLOCK,
        bytes: F::BYTES,
        fields: F::FIELDS,
        dequantize: dequantize_row::<F>,
        dot_scalar: dot_row_scalar::<F>,
    }
}

/// Every supported format, once. Types not listed are [`QuantError::Unsupported`].
pub const FORMATS: &[Format] = &[
    format::<F32Format>(),
    format::<F16Format>(),
    format::<BF16Format>(),
    format::<BlockQ4_0>(),
    format::<BlockQ4_1>(),
    format::<BlockQ5_0>(),
    format::<BlockQ5_1>(),
    format::<BlockQ8_0>(),
    format::<BlockQ2K>(),
    format::<BlockQ3K>(),
    format::<BlockQ4K>(),
    format::<BlockQ5K>(),
    format::<BlockQ6K>(),
];

/// The [`FORMATS`] row of `ty`. Errors: [`QuantError::Unsupported`] when there is none.
pub fn format_of(ty: GgmlType) -> Result<&'static Format, QuantError> {
    FORMATS.iter().find(|f| f.ty == ty).ok_or(QuantError::Unsupported(ty))
}

/// Checks that `bytes` bytes hold exactly `elems` elements of `ty`.
///
/// Errors: [`QuantError::NotBlockAligned`] when `elems` is not a multiple of the block size,
/// [`QuantError::BadLength`] when `bytes` is not `ty.bytes_for(elems)`.
pub fn check_len(ty: GgmlType, elems: usize, bytes: usize) -> Result<(), QuantError> {
    let block = ty.block_size();
    if elems % block != 0 {
        return Err(QuantError::NotBlockAligned { ty, elems, block });
    }
    // (elems / block) * type_size cannot overflow u64 for any usize elems.
    let expected = (elems / block) as u64 * ty.type_size() as u64;
    if bytes as u64 != expected {
        let expected = usize::try_from(expected).unwrap_or(usize::MAX);
        return Err(QuantError::BadLength { ty, elems, expected, got: bytes });
    }
    Ok(())
}

impl GgmlType {
    /// Whether this type has a [`FORMATS`] row ([`dequantize`], [`dot_scalar`]); the CPU
    /// backend computes with every such type.
    pub fn is_supported(self) -> bool {
        format_of(self).is_ok()
    }
}

/// Decodes `out.len()` elements of type `ty` from `bytes` (whole blocks, ggml layout).
///
/// Errors: [`QuantError::Unsupported`] for types without a dequantizer (IQ*, TQ*, MXFP4,
/// Q8_1, Q8_K, integer and F64 types), [`QuantError::NotBlockAligned`] when `out.len()` is
/// not a multiple of the block size, [`QuantError::BadLength`] when `bytes.len()` is not
/// exactly `ty.bytes_for(out.len())`. On error `out` is left untouched.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let f = format_of(ty)?;
    check_len(ty, out.len(), bytes.len())?;
    (f.dequantize)(bytes, out);
    Ok(())
}

/// The plain scalar reference dot product for `ty` (the oracle the fast paths are tested
/// against). Errors: [`QuantError::Unsupported`].
pub fn dot_scalar_fn(ty: GgmlType) -> Result<DotFn, QuantError> {
    Ok(format_of(ty)?.dot_scalar)
}

/// `Σ w[i]·x[i]` for one quantized row `row` of type `ty` and activations `x`, with the plain
/// scalar reference kernel.
///
/// Errors: [`QuantError::Unsupported`], [`QuantError::NotBlockAligned`] (`x.len()` not a
/// multiple of the block size) or [`QuantError::BadLength`] (`row.len()` is not
/// `ty.bytes_for(x.len())`).
pub fn dot_scalar(ty: GgmlType, row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    let f = format_of(ty)?;
    check_len(ty, x.len(), row.len())?;
    Ok((f.dot_scalar)(row, x))
}

/// Copies `N` bytes starting at `off` (panics if out of range; callers pass whole blocks).
#[inline(always)]
fn bytes_at<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

/// Reads the little-endian f16 at `b[off..off + 2]`.
#[inline(always)]
fn half_at(b: &[u8], off: usize) -> half::f16 {
    half::f16::from_bits(u16::from_le_bytes(bytes_at(b, off)))
}
