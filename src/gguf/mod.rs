//! GGUF v2/v3 reader: header, typed metadata, tensor directory.
//!
//! The reader is incremental: [`Reader::feed`] accepts the file in chunks of any size
//! (the browser streams it) and reports when the header is complete; after that, each
//! tensor's absolute byte range is known from [`Header::tensor_range`]. Malformed input is
//! an [`Error`], never a panic, and no allocation is sized by an unchecked count.
//!
//! Spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>

mod value;
pub use value::{Metadata, Value, ValueType};
