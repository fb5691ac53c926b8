//! The parsed header: metadata plus the tensor directory, and whole-prefix parsing.

use super::parser::{HeaderParser, Status};
use super::{Error, Metadata, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_MEMORY};
use crate::quant::GgmlType;
use std::ops::Range;

/// One entry of the tensor directory, validated against the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as GGUF stores them (`ne[0]`, `ne[1]`, …).
    pub dims: Vec<u64>,
    /// The block format of the data.
    pub ty: GgmlType,
    /// Offset of the first byte relative to the data section ([`Header::data_offset`]);
    /// a multiple of [`Header::alignment`].
    pub offset: u64,
    /// Size of the data in bytes (whole blocks of `ty`).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements: the product of `dims` (1 for zero dimensions). The reader has
    /// checked it does not overflow; a hand-built `TensorInfo` saturates at `u64::MAX`.
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }
}

/// A parsed GGUF header: version, metadata, tensor directory and data-section placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Key/value metadata in file order.
    pub metadata: Metadata,
    /// Tensor directory in file (directory) order; data may be stored in another order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment: `general.alignment`, default 32.
    pub alignment: u64,
    /// Absolute offset of the data section: the end of the directory rounded up to `alignment`.
    pub data_offset: u64,
}

impl Header {
    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The absolute byte range of `t` in the file, or [`Error::Overflow`] if it does not fit
    /// in 64 bits (never for tensors of a header the reader produced).
    pub fn tensor_range(&self, t: &TensorInfo) -> Result<Range<u64>, Error> {
        let start = self
            .data_offset
            .checked_add(t.offset)
            .ok_or(Error::Overflow("tensor start"))?;
        let end = start
            .checked_add(t.n_bytes)
            .ok_or(Error::Overflow("tensor end"))?;
        Ok(start..end)
    }

    /// The model architecture (`general.architecture`, e.g. `"llama"`), if present.
    pub fn architecture(&self) -> Option<&str> {
        self.metadata.get_str("general.architecture")
    }

    /// End of the last tensor relative to `data_offset` (0 without tensors); saturates on
    /// overflow, which the reader has ruled out.
    pub fn data_len(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.offset.saturating_add(t.n_bytes))
            .max()
            .unwrap_or(0)
    }

    /// Checks that every tensor lies inside a file of `file_len` bytes; the first that does
    /// not is [`Error::TensorOutOfBounds`] (an overflowing range is [`Error::Overflow`]).
    pub fn check_file_len(&self, file_len: u64) -> Result<(), Error> {
        for t in &self.tensors {
            let r = self.tensor_range(t)?;
            if r.end > file_len {
                return Err(Error::TensorOutOfBounds {
                    name: t.name.clone(),
                    offset: r.start,
                    len: t.n_bytes,
                });
            }
        }
        Ok(())
    }
}

/// Parses the header from `bytes`, a prefix of a GGUF file (the whole file works too).
///
/// Returns [`Error::Truncated`] with a lower bound on the prefix length needed when `bytes`
/// ends inside the header, or another [`Error`] when the header is malformed. Counts and
/// lengths are checked against the default header limit of 512 MiB.
pub fn parse_header(bytes: &[u8]) -> Result<Header, Error> {
    parse_header_with_limit(bytes, DEFAULT_MAX_HEADER_BYTES)
}

/// Like [`parse_header`], with the header size limit explicit: pass the file's length when
/// it is known, so that impossible counts are reported as such rather than as truncation.
/// The memory budget is [`DEFAULT_MAX_HEADER_MEMORY`].
pub fn parse_header_with_limit(bytes: &[u8], max_header_bytes: u64) -> Result<Header, Error> {
    let mut parser = HeaderParser::new(max_header_bytes, DEFAULT_MAX_HEADER_MEMORY);
    match parser.advance(bytes)? {
        (_, Status::Done(header)) => Ok(header),
        (_, Status::NeedMore { needed }) => Err(Error::Truncated { needed }),
    }
}
