//! GGUF v2/v3 reader: header, typed metadata, tensor directory.
//!
//! The reader is incremental: [`Reader::feed`] accepts the file in chunks of any size
//! (the browser streams it) and emits the header as soon as it is complete, then each
//! tensor's bytes as soon as they are; [`parse_header`] parses a prefix held in memory.
//! Malformed input is an [`Error`], never a panic, and no allocation is sized by an
//! unchecked count: counts and lengths are checked against the header size limit
//! (512 MiB by default, or the file length when known), and capacity is reserved only for
//! elements whose bytes have arrived.
//!
//! Choices where the spec is silent:
//! - Strings (keys, tensor names, string values) must be valid UTF-8, else
//!   [`Error::BadUtf8`]. llama.cpp accepts any bytes, but converting lossily would silently
//!   merge distinct vocabulary entries, so a clear error is better than a wrong tokenizer.
//! - Version 1 (32-bit counts) is rejected with [`Error::UnsupportedVersion`]; files are
//!   little-endian only (a big-endian file shows as a byte-swapped version).
//! - Arrays may nest up to [`MAX_ARRAY_DEPTH`]; booleans are true for any non-zero byte.
//! - Metadata keys may repeat (the last wins in [`Metadata::get`]); tensor names may not.
//! - `general.alignment` may be any integer type holding a non-zero power of two.
//! - Tensor data may be stored in any order but may not overlap; empty tensors are allowed.
//!
//! Spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>

mod error;
mod header;
mod parser;
mod reader;
mod tensor_bytes;
mod value;
pub mod writer;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use header::{parse_header, parse_header_with_limit, Header, TensorInfo};
pub use parser::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS};
#[cfg(not(target_arch = "wasm32"))]
pub use reader::{read_file, ReadFileError};
pub use reader::{Event, Reader};
pub use tensor_bytes::{TensorBytes, PIECE};
pub use value::{Metadata, Value, ValueType};
pub use writer::Writer;

/// Default limit on the header size (metadata + tensor directory): 512 MiB.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 512 << 20;
