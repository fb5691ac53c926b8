//! Errors of the GGUF layer: one variant per way a file can be malformed.

use thiserror::Error;

/// Why a GGUF file (or a prefix of one) was rejected.
///
/// Every variant comes from checking untrusted bytes; none signals a bug in Hearth.
/// [`Error::Truncated`] is the only one that more bytes can cure.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The file does not start with `GGUF` (holds its first bytes, up to the first wrong one).
    #[error("not a GGUF file: magic {0:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic(Vec<u8>),
    /// A version other than 2 or 3.
    #[error(
        "unsupported GGUF version {0}: Hearth reads v2 and v3 (v1 used 32-bit counts; \
         re-convert the model with a current llama.cpp; a byte-swapped version means a \
         big-endian file)"
    )]
    UnsupportedVersion(u32),
    /// The input ends early: at least `needed` bytes from the start of the file are needed.
    #[error("truncated GGUF: need at least {needed} bytes")]
    Truncated { needed: u64 },
    /// A string length that cannot fit in the header size limit.
    #[error("string of {len} bytes exceeds the header limit of {limit} bytes")]
    StringTooLong { len: u64, limit: u64 },
    /// A key, tensor name or string value that is not valid UTF-8 (at absolute `offset`).
    #[error("invalid UTF-8 in the string at byte {offset}")]
    BadUtf8 { offset: u64 },
    /// A metadata value type id outside the spec.
    #[error("unknown metadata value type {0}")]
    UnknownValueType(u32),
    /// A tensor type id that `quant::GgmlType` does not know.
    #[error("tensor {name:?} has unknown type id {id}")]
    UnknownTensorType { name: String, id: u32 },
    /// A tensor count that cannot fit in the header size limit.
    #[error("tensor count {count} cannot fit in the header")]
    TooManyTensors { count: u64 },
    /// A key/value count that cannot fit in the header size limit.
    #[error("metadata count {count} cannot fit in the header")]
    TooManyKv { count: u64 },
    /// An array length that cannot fit in the header size limit.
    #[error("array of {count} elements cannot fit in the header")]
    ArrayTooLong { count: u64 },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    #[error("arrays nested {depth} deep (limit {})", super::MAX_ARRAY_DEPTH)]
    ArrayTooDeep { depth: usize },
    /// Two tensors share a name.
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),
    /// `general.alignment` is not a non-zero power of two held in an integer.
    #[error("general.alignment must be a non-zero power of two, got {0}")]
    BadAlignment(String),
    /// A tensor offset that is not a multiple of the alignment.
    #[error("tensor {name:?} at offset {offset} is not aligned to {alignment} bytes")]
    TensorMisaligned {
        name: String,
        offset: u64,
        alignment: u64,
    },
    /// A size or offset computation overflowed 64 bits.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
    /// A tensor reaches past the end of the file (`offset` is absolute, `len` in bytes).
    #[error("tensor {name:?} ({len} bytes at byte {offset}) extends past the end of the file")]
    TensorOutOfBounds { name: String, offset: u64, len: u64 },
    /// Two tensors' byte ranges overlap.
    #[error("tensors {first:?} and {second:?} overlap")]
    OverlappingTensors { first: String, second: String },
    /// More than [`MAX_DIMS`](super::MAX_DIMS) dimensions.
    #[error(
        "tensor {name:?} has {n_dims} dimensions (GGUF allows at most {})",
        super::MAX_DIMS
    )]
    TooManyDims { name: String, n_dims: u32 },
    /// The innermost dimension is not a multiple of the type's block size.
    #[error("tensor {name:?}: the first dimension is not a multiple of its type's block size")]
    NotBlockAligned { name: String },
    /// The header does not fit in the reader's limit (`Reader::with_limits`).
    #[error("GGUF header larger than the limit of {limit} bytes")]
    HeaderTooLarge { limit: u64 },
    /// The parsed header would need more memory than its budget: metadata is charged at its
    /// in-memory size (each array element is one `Value`), see
    /// [`DEFAULT_MAX_HEADER_MEMORY`](super::DEFAULT_MAX_HEADER_MEMORY).
    #[error("GGUF header needs more than its memory budget of {limit} bytes (metadata counts at its in-memory size)")]
    HeaderMemory { limit: u64 },
    /// The parts of a split model (`gguf-split`) do not fit together: a missing or
    /// malformed `split.*` key, parts out of order or missing, a tensor in two parts or in none.
    #[error("split GGUF: {0}")]
    Split(String),
}
