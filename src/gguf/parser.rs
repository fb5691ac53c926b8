//! A resumable GGUF header parser.
//!
//! The header is a sequence of items (preamble, key/value heads, array elements, tensor
//! infos). [`HeaderParser::advance`] parses as many whole items as the bytes allow and
//! remembers where it stopped, so feeding a file one byte at a time costs O(file) overall:
//! an item is re-read only from its own start, and only once the bytes it needs are there.
//! Nested arrays are a stack of [`Frame`]s, so one 49 152-entry vocabulary array is not
//! re-parsed from its start on every retry.

use super::{Error, Header, Metadata, TensorInfo, Value, ValueType};
use crate::quant::GgmlType;
use std::collections::HashSet;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a GGUF tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays accepted (an array of arrays is depth 2).
pub const MAX_ARRAY_DEPTH: usize = 8;

/// magic + version + tensor count + kv count.
const PREAMBLE_BYTES: u64 = 24;
/// Smallest key/value: empty key (8) + type (4) + a one-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;

/// In-memory cost of one metadata value (an array element is one `Value`, whatever its
/// size in the file: a one-byte `u8` costs this much).
pub(crate) const VALUE_COST: u64 = std::mem::size_of::<Value>() as u64;
/// In-memory cost of one key/value pair, besides the key's and value's heap bytes.
const KV_COST: u64 = std::mem::size_of::<(String, Value)>() as u64;
/// In-memory cost of one tensor info besides its name (twice: the directory and the
/// duplicate-name set, with the set's overhead) and dimensions.
const TENSOR_COST: u64 = std::mem::size_of::<TensorInfo>() as u64 + std::mem::size_of::<String>() as u64 + 16;

/// Bytes an element of type `ty` needs at least (its exact size for fixed-size types).
fn min_size(ty: ValueType) -> u64 {
    use ValueType::*;
    match ty {
        U8 | I8 | Bool => 1,
        U16 | I16 => 2,
        U32 | I32 | F32 => 4,
        U64 | I64 | F64 => 8,
        String => 8,
        Array => 12,
    }
}

/// Result of [`HeaderParser::advance`].
pub(crate) enum Status {
    /// The header continues; the whole header needs at least `needed` bytes of file.
    NeedMore { needed: u64 },
    /// The header is complete.
    Done(Header),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Preamble,
    Kv,
    Array,
    Tensors,
    Done,
}

/// An array being filled: `count` elements of `ty`, `items` read so far.
struct Frame {
    ty: ValueType,
    count: u64,
    items: Vec<Value>,
}

/// Reads little-endian fields from `data`, which starts at absolute offset `base`.
/// Running short yields `Error::Truncated` with the absolute offset needed.
struct Cursor<'a> {
    data: &'a [u8],
    off: usize,
    base: u64,
    limit: u64,
    /// Bytes of memory the header may still use (see `HeaderParser::charge`).
    mem_left: u64,
    mem_limit: u64,
}

impl<'a> Cursor<'a> {
    fn abs(&self) -> u64 {
        self.base.saturating_add(self.off as u64)
    }
    fn remaining(&self) -> u64 {
        self.data.len().saturating_sub(self.off) as u64
    }
    /// Header bytes still allowed after the current position.
    fn budget(&self) -> u64 {
        self.limit.saturating_sub(self.abs())
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let too_large = Error::HeaderTooLarge { limit: self.limit };
        let end_abs = self.abs().checked_add(n).ok_or(too_large.clone())?;
        if end_abs > self.limit {
            return Err(too_large);
        }
        if n > self.remaining() {
            return Err(Error::Truncated { needed: end_abs });
        }
        // n <= remaining, so it fits in usize and the range is in bounds.
        let end = self.off + n as usize;
        let bytes = self
            .data
            .get(self.off..end)
            .ok_or(Error::Truncated { needed: end_abs })?;
        self.off = end;
        Ok(bytes)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let needed = self.abs().saturating_add(N as u64);
        let bytes = self.take(N as u64)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Error::Truncated { needed })
    }
    fn u8(&mut self) -> Result<u8, Error> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A GGUF string: u64 length + bytes, which must be UTF-8 (see the module doc of `gguf`).
    fn string(&mut self) -> Result<String, Error> {
        let len = self.u64()?;
        if len > self.budget() {
            return Err(Error::StringTooLong {
                len,
                limit: self.limit,
            });
        }
        if len > self.mem_left {
            return Err(Error::HeaderMemory {
                limit: self.mem_limit,
            });
        }
        let offset = self.abs();
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Error::BadUtf8 { offset }),
        }
    }
    fn value_type(&mut self) -> Result<ValueType, Error> {
        let id = self.u32()?;
        ValueType::from_id(id).ok_or(Error::UnknownValueType(id))
    }
    /// A non-array value of type `ty`. Bool: any non-zero byte is `true`, as in ggml.
    fn scalar(&mut self, ty: ValueType) -> Result<Value, Error> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.u8()?),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array()?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array()?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array()?)),
            ValueType::U32 => Value::U32(self.u32()?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array()?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array()?)),
            ValueType::Bool => Value::Bool(self.u8()? != 0),
            ValueType::String => Value::String(self.string()?),
            ValueType::U64 => Value::U64(self.u64()?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array()?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array()?)),
            // Arrays are parsed element by element through frames; callers never get here.
            ValueType::Array => return Err(Error::UnknownValueType(ValueType::Array as u32)),
        })
    }
    /// An array head (element type + count), checked against the header limit.
    fn array_head(&mut self) -> Result<Frame, Error> {
        let ty = self.value_type()?;
        let count = self.u64()?;
        if count > self.budget() / min_size(ty) {
            return Err(Error::ArrayTooLong { count });
        }
        // Each element becomes a `Value`: a 140 MB array of u8 would need 4.5 GB.
        if count > self.mem_left / VALUE_COST {
            return Err(Error::HeaderMemory {
                limit: self.mem_limit,
            });
        }
        // Capacity only for elements whose minimal bytes are already here.
        let cap = count.min(self.remaining() / min_size(ty));
        Ok(Frame {
            ty,
            count,
            items: Vec::with_capacity(cap as usize),
        })
    }
}

/// Pushes onto an array's elements, growing the vector at most to `count` (plain `push`
/// would double it, so a reserved array could take twice its charged memory).
fn push_bounded(items: &mut Vec<Value>, count: u64, value: Value) {
    if items.len() == items.capacity() {
        let left = usize::try_from(count).unwrap_or(usize::MAX).saturating_sub(items.len());
        items.reserve_exact(left.min(items.len().max(4)).max(1));
    }
    items.push(value);
}

/// The resumable parser; see the module doc.
pub(crate) struct HeaderParser {
    limit: u64,
    /// Most bytes of memory the parsed header may take (metadata at its in-memory size).
    mem_limit: u64,
    /// Memory charged so far for committed items.
    mem_used: u64,
    /// Absolute offset of the first byte not yet consumed.
    pos: u64,
    stage: Stage,
    version: u32,
    n_tensors: u64,
    n_kv: u64,
    kvs: Vec<(String, Value)>,
    /// Key of the key/value whose array is being filled.
    pending_key: String,
    frames: Vec<Frame>,
    alignment: u64,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
}

impl HeaderParser {
    /// A parser that rejects headers longer than `limit` bytes in the file, or needing more
    /// than `mem_limit` bytes of memory once parsed.
    pub(crate) fn new(limit: u64, mem_limit: u64) -> HeaderParser {
        HeaderParser {
            limit,
            mem_limit,
            mem_used: 0,
            pos: 0,
            stage: Stage::Preamble,
            version: 0,
            n_tensors: 0,
            n_kv: 0,
            kvs: Vec::new(),
            pending_key: String::new(),
            frames: Vec::new(),
            alignment: DEFAULT_ALIGNMENT,
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// Absolute offset of the next byte the parser wants (what `advance` expects first).
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Parses from `data`, which holds the file's bytes from [`pos`](Self::pos) on.
    /// Returns how many bytes were consumed (the caller drops them and passes the rest,
    /// plus new bytes, next time) and whether the header is complete. Errors are final.
    pub(crate) fn advance(&mut self, data: &[u8]) -> Result<(usize, Status), Error> {
        let mut c = Cursor {
            data,
            off: 0,
            base: self.pos,
            limit: self.limit,
            mem_left: self.mem_limit.saturating_sub(self.mem_used),
            mem_limit: self.mem_limit,
        };
        loop {
            if self.stage == Stage::Done {
                return Ok((c.off, Status::Done(self.build()?)));
            }
            let item_start = c.off;
            match self.step(&mut c) {
                Ok(()) => self.pos = c.abs(),
                Err(Error::Truncated { needed }) => {
                    let item_min = self.pos.saturating_add(self.min_item_bytes());
                    let needed = needed
                        .max(item_min)
                        .saturating_add(self.min_bytes_after_item());
                    if needed > self.limit {
                        return Err(Error::HeaderTooLarge { limit: self.limit });
                    }
                    return Ok((item_start, Status::NeedMore { needed }));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The fewest bytes the item being parsed can take.
    fn min_item_bytes(&self) -> u64 {
        match self.stage {
            Stage::Preamble => PREAMBLE_BYTES,
            Stage::Kv => MIN_KV_BYTES,
            Stage::Array => self.frames.last().map_or(0, |f| min_size(f.ty)),
            Stage::Tensors => MIN_TENSOR_INFO_BYTES,
            Stage::Done => 0,
        }
    }

    /// A lower bound on the header bytes after the item being parsed, so that
    /// `Truncated { needed }` tells a caller how much to fetch, not just the next field.
    fn min_bytes_after_item(&self) -> u64 {
        let kvs_done = self.kvs.len() as u64;
        let tensors_after = |done: u64| {
            self.n_tensors
                .saturating_sub(done)
                .saturating_mul(MIN_TENSOR_INFO_BYTES)
        };
        let kvs_after = |pending: u64| {
            self.n_kv
                .saturating_sub(kvs_done + pending)
                .saturating_mul(MIN_KV_BYTES)
        };
        match self.stage {
            Stage::Preamble | Stage::Done => 0,
            Stage::Kv => kvs_after(1).saturating_add(tensors_after(0)),
            Stage::Array => {
                let elems = self.frames.iter().fold(0u64, |acc, f| {
                    let left = f.count.saturating_sub(f.items.len() as u64 + 1);
                    acc.saturating_add(left.saturating_mul(min_size(f.ty)))
                });
                elems
                    .saturating_add(kvs_after(1))
                    .saturating_add(tensors_after(0))
            }
            Stage::Tensors => tensors_after(self.tensors.len() as u64 + 1),
        }
    }

    /// Parses one item. On `Truncated` the caller rewinds to the item's start.
    fn step(&mut self, c: &mut Cursor) -> Result<(), Error> {
        match self.stage {
            Stage::Preamble => self.preamble(c),
            Stage::Kv => {
                let key = c.string()?;
                let ty = c.value_type()?;
                if ty == ValueType::Array {
                    let frame = c.array_head()?;
                    // The pair, its key and every element's `Value`, reserved at the head.
                    let cost = KV_COST + key.len() as u64 + frame.count.saturating_mul(VALUE_COST);
                    self.charge(c, cost)?;
                    self.pending_key = key;
                    self.frames.push(frame);
                    self.stage = Stage::Array;
                } else {
                    let value = c.scalar(ty)?;
                    let heap = value.as_str().map_or(0, str::len) as u64;
                    self.charge(c, KV_COST + key.len() as u64 + heap)?;
                    self.kvs.push((key, value));
                    self.after_kv(c)?;
                }
                Ok(())
            }
            Stage::Array => self.array_item(c),
            Stage::Tensors => self.tensor_info(c),
            Stage::Done => Ok(()),
        }
    }

    /// Adds `cost` bytes of memory for an item just parsed; fails with
    /// [`Error::HeaderMemory`] past the memory limit. A failed item is not retried, so there
    /// is nothing to undo.
    fn charge(&mut self, c: &mut Cursor, cost: u64) -> Result<(), Error> {
        let used = self.mem_used.saturating_add(cost);
        if used > self.mem_limit {
            return Err(Error::HeaderMemory {
                limit: self.mem_limit,
            });
        }
        self.mem_used = used;
        c.mem_left = self.mem_limit - used;
        Ok(())
    }

    fn preamble(&mut self, c: &mut Cursor) -> Result<(), Error> {
        // Checked byte by byte so a stream that is not GGUF fails at its first byte; the
        // error holds the bytes up to the first wrong one, whatever the chunking.
        for (i, (&got, &want)) in c.data.iter().zip(&GGUF_MAGIC).enumerate() {
            if got != want {
                return Err(Error::BadMagic(c.data.get(..=i).unwrap_or(&[]).to_vec()));
            }
        }
        c.take(4)?;
        let version = c.u32()?;
        if version != 2 && version != 3 {
            return Err(Error::UnsupportedVersion(version));
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        let budget = self.limit.saturating_sub(PREAMBLE_BYTES);
        if n_tensors > budget / MIN_TENSOR_INFO_BYTES {
            return Err(Error::TooManyTensors { count: n_tensors });
        }
        if n_kv > budget / MIN_KV_BYTES {
            return Err(Error::TooManyKv { count: n_kv });
        }
        // Counts whose entries alone would not fit in memory fail before any is read (and
        // before a reader buffers the bytes such a header claims to need).
        if n_tensors > self.mem_limit / TENSOR_COST {
            return Err(Error::TooManyTensors { count: n_tensors });
        }
        if n_kv > self.mem_limit / KV_COST {
            return Err(Error::TooManyKv { count: n_kv });
        }
        self.version = version;
        self.n_tensors = n_tensors;
        self.n_kv = n_kv;
        self.kvs = Vec::with_capacity(n_kv.min(c.remaining() / MIN_KV_BYTES) as usize);
        if n_kv == 0 {
            self.start_tensors(c)?;
        } else {
            self.stage = Stage::Kv;
        }
        Ok(())
    }

    /// One element of the innermost open array, or closes it when full.
    fn array_item(&mut self, c: &mut Cursor) -> Result<(), Error> {
        let depth = self.frames.len();
        let Some(top) = self.frames.last_mut() else {
            // No open array: nothing to do but go on with the next key/value.
            return self.after_kv(c);
        };
        if top.items.len() as u64 >= top.count {
            let Some(done) = self.frames.pop() else {
                return Ok(());
            };
            let value = Value::Array(done.ty, done.items);
            match self.frames.last_mut() {
                Some(parent) => push_bounded(&mut parent.items, parent.count, value),
                None => {
                    let key = std::mem::take(&mut self.pending_key);
                    self.kvs.push((key, value));
                    self.after_kv(c)?;
                }
            }
        } else if top.ty == ValueType::Array {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Error::ArrayTooDeep { depth: depth + 1 });
            }
            let frame = c.array_head()?;
            // This element's own `Value` was reserved with its parent; its elements are new.
            self.charge(c, frame.count.saturating_mul(VALUE_COST))?;
            self.frames.push(frame);
        } else {
            let value = c.scalar(top.ty)?;
            let heap = value.as_str().map_or(0, str::len) as u64;
            self.charge(c, heap)?;
            let Some(top) = self.frames.last_mut() else {
                return Ok(());
            };
            push_bounded(&mut top.items, top.count, value);
        }
        Ok(())
    }

    fn after_kv(&mut self, c: &Cursor) -> Result<(), Error> {
        if self.kvs.len() as u64 >= self.n_kv {
            self.start_tensors(c)
        } else {
            self.stage = Stage::Kv;
            Ok(())
        }
    }

    /// All metadata is read: fix the alignment, then read the directory.
    fn start_tensors(&mut self, c: &Cursor) -> Result<(), Error> {
        let key = "general.alignment";
        if let Some((_, v)) = self.kvs.iter().rev().find(|(k, _)| k == key) {
            self.alignment = match v.as_u64() {
                Some(a) if a.is_power_of_two() => a,
                _ => return Err(Error::BadAlignment(v.summary())),
            };
        }
        let cap = self.n_tensors.min(c.remaining() / MIN_TENSOR_INFO_BYTES);
        self.tensors = Vec::with_capacity(cap as usize);
        self.stage = if self.n_tensors == 0 {
            Stage::Done
        } else {
            Stage::Tensors
        };
        Ok(())
    }

    fn tensor_info(&mut self, c: &mut Cursor) -> Result<(), Error> {
        let name = c.string()?;
        let n_dims = c.u32()?;
        if n_dims > MAX_DIMS {
            return Err(Error::TooManyDims { name, n_dims });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64()?);
        }
        let id = c.u32()?;
        let offset = c.u64()?;
        // The item is complete: from here on every error is final.
        self.charge(c, TENSOR_COST + 2 * name.len() as u64 + 8 * n_dims as u64)?;
        let Some(ty) = GgmlType::from_id(id) else {
            return Err(Error::UnknownTensorType { name, id });
        };
        if self.names.contains(&name) {
            return Err(Error::DuplicateTensor(name));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or(Error::Overflow("tensor element count"))?;
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % (ty.block_size().max(1) as u64) != 0 {
            return Err(Error::NotBlockAligned { name });
        }
        let n_bytes = ty
            .bytes_for(n_elements)
            .ok_or(Error::Overflow("tensor byte size"))?;
        if offset % self.alignment != 0 {
            return Err(Error::TensorMisaligned {
                name,
                offset,
                alignment: self.alignment,
            });
        }
        offset
            .checked_add(n_bytes)
            .ok_or(Error::Overflow("tensor end"))?;
        self.names.insert(name.clone());
        self.tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        });
        if self.tensors.len() as u64 >= self.n_tensors {
            self.stage = Stage::Done;
        }
        Ok(())
    }

    /// Places the data section and checks the directory as a whole.
    fn build(&mut self) -> Result<Header, Error> {
        let data_offset = self
            .pos
            .checked_next_multiple_of(self.alignment)
            .ok_or(Error::Overflow("data section offset"))?;
        let tensors = std::mem::take(&mut self.tensors);
        // Empty tensors occupy no bytes and overlap nothing.
        let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
        order.sort_by_key(|t| t.offset);
        let mut furthest: Option<&TensorInfo> = None;
        for t in order {
            if let Some(prev) = furthest {
                let prev_end = prev.offset.saturating_add(prev.n_bytes);
                if t.offset < prev_end {
                    return Err(Error::OverlappingTensors {
                        first: prev.name.clone(),
                        second: t.name.clone(),
                    });
                }
            }
            furthest = Some(t);
        }
        let header = Header {
            version: self.version,
            metadata: Metadata::from_entries(std::mem::take(&mut self.kvs)),
            tensors,
            alignment: self.alignment,
            data_offset,
        };
        data_offset
            .checked_add(header.data_len())
            .ok_or(Error::Overflow("data section end"))?;
        Ok(header)
    }
}
