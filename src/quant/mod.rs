//! Block formats of GGML/GGUF tensors: the single source of truth for their layouts.
//!
//! Every other layer (the GGUF reader, the CPU backend, the WGSL kernels) asks this module
//! for block sizes and byte sizes. A type id that is not listed here is rejected by the
//! GGUF reader as unknown; a listed type without a dequantizer is rejected when used.

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

mod check;
mod float;
mod kquants;
mod legacy;
mod q8;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
#[cfg(target_arch = "x86_64")]
mod simd_x86_q8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm_q8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm_tile;
#[cfg(test)]
mod tests;
mod tile;

pub use check::{check_q8_kernels, check_quantize, KernelCheck};
pub use float::{BF16Format, F16Format, F32Format};
pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
pub use q8::{DotQ8Fn, DotQ8x4Fn, Q8Acts, Q8Slice, Q8_BLOCK};
pub use tile::{dot_q8_tile_fn, DotQ8TileFn, Q8Tile, Q8Tiles};

/// A fused dot product of one quantized row with f32 activations: `Σ w[i]·x[i]` with the
/// row's blocks decoded in registers, never materialised, and f32 accumulation.
///
/// The function assumes `row.len() == ty.bytes_for(x.len())`; callers check that once per
/// matrix ([`dot`] checks it on every call). If it is violated the function does not cause
/// undefined behaviour: it stops at the end of the shorter operand, or panics on a slice
/// index (never reads out of bounds).
pub type DotFn = fn(row: &[u8], x: &[f32]) -> f32;

/// One block format: its layout, its scalar reference kernels, and its fastest dot product.
///
/// Mirrors ggml's `type_traits[]` row (`blck_size`, `type_size`, `to_float`, `vec_dot`).
/// Adding a format is one new implementation plus one line in `FORMATS` (mod.rs).
pub trait QuantFormat {
    /// The GGML type this implements.
    const TY: GgmlType;
    /// Elements per block.
    const BLOCK: usize;
    /// Bytes per block.
    const BYTES: usize;

    /// Decodes one block: `block.len() == BYTES`, `out.len() == BLOCK` (the caller checks).
    fn dequantize_block(block: &[u8], out: &mut [f32]);

    /// The plain scalar fused dot product of one block with `x` (`x.len() == BLOCK`).
    fn dot_block(block: &[u8], x: &[f32]) -> f32;

    /// The fastest dot product this CPU supports: a SIMD kernel from `simd_x86`/`simd_wasm`
    /// when one exists for [`Self::TY`] and the CPU has the features, else the scalar reference.
    fn fast_dot() -> DotFn {
        simd_dot(Self::TY).unwrap_or(dot_row_scalar::<Self>)
    }
}

/// The SIMD kernel for `ty` on this machine, if there is one.
fn simd_dot(ty: GgmlType) -> Option<DotFn> {
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = simd_x86::select(ty) {
        return Some(f);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if let Some(f) = simd_wasm::select(ty) {
        return Some(f);
    }
    let _ = ty;
    None
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
struct Format {
    ty: GgmlType,
    dequantize: fn(&[u8], &mut [f32]),
    dot_scalar: DotFn,
    fast_dot: fn() -> DotFn,
}

const fn format<F: QuantFormat>() -> Format {
    assert!(F::TY.block_size() == F::BLOCK && F::TY.type_size() == F::BYTES);
    Format {
        ty: F::TY,
        dequantize: dequantize_row::<F>,
        dot_scalar: dot_row_scalar::<F>,
        fast_dot: F::fast_dot,
    }
}

/// Every supported format, once. Types not listed are [`QuantError::Unsupported`].
const FORMATS: &[Format] = &[
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

fn lookup(ty: GgmlType) -> Result<&'static Format, QuantError> {
    FORMATS.iter().find(|f| f.ty == ty).ok_or(QuantError::Unsupported(ty))
}

/// Checks that `bytes` bytes hold exactly `elems` elements of `ty`.
fn check_len(ty: GgmlType, elems: usize, bytes: usize) -> Result<(), QuantError> {
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
    /// Whether [`dequantize`], [`dot`] and [`dot_fn`] support this type.
    pub fn is_supported(self) -> bool {
        lookup(self).is_ok()
    }
}

/// Decodes `out.len()` elements of type `ty` from `bytes` (whole blocks, ggml layout).
///
/// Errors: [`QuantError::Unsupported`] for types without a dequantizer (IQ*, TQ*, MXFP4,
/// Q8_1, Q8_K, integer and F64 types), [`QuantError::NotBlockAligned`] when `out.len()` is
/// not a multiple of the block size, [`QuantError::BadLength`] when `bytes.len()` is not
/// exactly `ty.bytes_for(out.len())`. On error `out` is left untouched.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let f = lookup(ty)?;
    check_len(ty, out.len(), bytes.len())?;
    (f.dequantize)(bytes, out);
    Ok(())
}

/// The fastest fused dot product for `ty` on this machine (AVX2+FMA on x86_64 when the CPU
/// has it, SIMD128 on wasm32 when compiled with `+simd128`, scalar otherwise).
///
/// Errors: [`QuantError::Unsupported`] for types without a kernel.
pub fn dot_fn(ty: GgmlType) -> Result<DotFn, QuantError> {
    Ok((lookup(ty)?.fast_dot)())
}

/// The plain scalar reference dot product for `ty` (the oracle the fast paths are tested
/// against). Errors: as [`dot`].
pub fn dot_scalar_fn(ty: GgmlType) -> Result<DotFn, QuantError> {
    Ok(lookup(ty)?.dot_scalar)
}

/// `Σ w[i]·x[i]` for one quantized row `row` of type `ty` and activations `x`, using the
/// fastest kernel ([`dot_fn`]).
///
/// Errors: [`QuantError::Unsupported`], [`QuantError::NotBlockAligned`] (`x.len()` not a
/// multiple of the block size) or [`QuantError::BadLength`] (`row.len()` is not
/// `ty.bytes_for(x.len())`).
pub fn dot(ty: GgmlType, row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    let f = lookup(ty)?;
    check_len(ty, x.len(), row.len())?;
    Ok(((f.fast_dot)())(row, x))
}

/// As [`dot`], but with the plain scalar reference kernel. Same errors.
pub fn dot_scalar(ty: GgmlType, row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    let f = lookup(ty)?;
    check_len(ty, x.len(), row.len())?;
    Ok((f.dot_scalar)(row, x))
}

/// The fastest integer dot product of a `ty` row with 8-bit activations ([`Q8Acts`]) on
/// this machine, or `None` when the format has none (F32, F16, BF16, Q2_K: use [`dot_fn`]).
pub fn dot_q8_fn(ty: GgmlType) -> Option<DotQ8Fn> {
    q8::fastest(ty)
}

/// The four-token integer kernel for `ty` on this machine (prefill), or `None` when there is
/// none (then call the [`dot_q8_fn`] kernel once per token). Its reference is four calls of
/// [`dot_q8_scalar_fn`].
pub fn dot_q8x4_fn(ty: GgmlType) -> Option<DotQ8x4Fn> {
    q8::fastest_x4(ty)
}

/// The scalar reference integer dot product for `ty` (the oracle of [`dot_q8_fn`]), or
/// `None` as [`dot_q8_fn`].
pub fn dot_q8_scalar_fn(ty: GgmlType) -> Option<DotQ8Fn> {
    q8::scalar(ty)
}

/// `Σ w[i]·x[i]` for one `ty` row and 8-bit activations, with the fastest integer kernel.
///
/// Errors: [`QuantError::Unsupported`] when `ty` has no integer kernel,
/// [`QuantError::NotBlockAligned`] or [`QuantError::BadLength`] as [`dot`].
pub fn dot_q8(ty: GgmlType, row: &[u8], x: Q8Slice<'_>) -> Result<f32, QuantError> {
    let f = dot_q8_fn(ty).ok_or(QuantError::Unsupported(ty))?;
    check_len(ty, x.len(), row.len())?;
    Ok(f(row, x))
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
