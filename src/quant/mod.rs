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
            pub fn from_id(id: u32) -> Option<GgmlType> {
                match id { $( $id => Some(GgmlType::$name), )* _ => None }
            }
            /// The id GGUF stores for this type.
            pub fn id(self) -> u32 { match self { $( GgmlType::$name => $id, )* } }
            /// Elements per block (1 for plain float/int types).
            pub fn block_size(self) -> usize { match self { $( GgmlType::$name => $blck, )* } }
            /// Bytes per block.
            pub fn type_size(self) -> usize { match self { $( GgmlType::$name => $bytes, )* } }
            /// The name ggml and the GGUF spec use (`"Q4_K"`).
            pub fn name(self) -> &'static str { match self { $( GgmlType::$name => stringify!($name), )* } }
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
