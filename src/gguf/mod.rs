//! GGUF v2/v3 reader: header, typed metadata, tensor directory.
//!
//! The reader is incremental: [`Reader::feed`] accepts the file in chunks of any size
//! (the browser streams it) and emits the header as soon as it is complete, then each
//! tensor's bytes as soon as they are; [`parse_header`] parses a prefix held in memory.
//! Malformed input is an [`Error`], never a panic, and no allocation is sized by an
//! unchecked count: counts and lengths are checked against the header size limit
//! (512 MiB by default, or the file length when known) and against a memory budget that
//! charges metadata at its in-memory size ([`DEFAULT_MAX_HEADER_MEMORY`], 256 MiB), and
//! capacity is reserved only for elements whose bytes have arrived.
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
//! Models split into several files (`gguf-split`): see [`split`].
//!
//! Spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>

mod error;
mod header;
mod parser;
mod reader;
pub mod split;
mod tensor_bytes;
mod value;
pub mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_memory;

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

/// Default budget for the parsed header in memory: 256 MiB. Metadata is charged at its
/// in-memory size, not its file size: every array element is one `Value`
/// (`size_of::<Value>()`, 32 bytes on 64-bit targets) plus a string's bytes, every key/value
/// pair and tensor entry its struct size plus its name. The largest real headers Hearth
/// runs (Gemma 3's 262 144-token vocabulary with scores and types) take about 30 MB; a
/// header that would need more fails with [`Error::HeaderMemory`] (or a count error) as soon
/// as the count or length that exceeds it is read, before its elements are.
pub const DEFAULT_MAX_HEADER_MEMORY: u64 = 256 << 20;
