//! A small GGUF writer: builds valid (or deliberately odd) files for tests, the fuzzer and
//! tools. It writes what it is given without validation, so tests can also build malformed
//! files (an array whose elements do not match its element type, a wrong data length).

use super::{Value, ValueType, DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::quant::GgmlType;

/// One tensor to write.
#[derive(Debug, Clone)]
struct WriterTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    data: Vec<u8>,
    /// The data's length when it is not held (zeros): see [`Writer::tensor_declared`].
    declared: Option<u64>,
}

impl WriterTensor {
    fn len(&self) -> u64 {
        self.declared.unwrap_or(self.data.len() as u64)
    }
}

/// Builds a GGUF file in memory: metadata in insertion order, tensors in directory order,
/// data laid out in [`data_order`](Writer::data_order) (default: directory order), each
/// tensor at the next multiple of the alignment, the last one padded too (as ggml does).
#[derive(Debug, Clone)]
pub struct Writer {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<WriterTensor>,
    data_order: Option<Vec<usize>>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    /// An empty GGUF v3 file with the default alignment (32).
    pub fn new() -> Writer {
        Writer {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
            data_order: None,
        }
    }

    /// Sets the version field (2 and 3 have the same layout).
    pub fn version(&mut self, version: u32) -> &mut Writer {
        self.version = version;
        self
    }

    /// Lays data out with `alignment` and records it as `general.alignment` (a `U32` when
    /// it fits, else a `U64`). An alignment of 0 pads nothing but is still recorded.
    pub fn alignment(&mut self, alignment: u64) -> &mut Writer {
        self.alignment = alignment;
        let value = match u32::try_from(alignment) {
            Ok(a) => Value::U32(a),
            Err(_) => Value::U64(alignment),
        };
        self.kv("general.alignment", value)
    }

    /// Appends a metadata key/value.
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Writer {
        self.metadata.push((key.to_owned(), value));
        self
    }

    /// Appends a tensor of type `ty`; `data` is written as given.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> &mut Writer {
        self.tensor_raw(name, dims, ty.id(), data)
    }

    /// Appends a tensor with a raw type id (possibly unknown).
    pub fn tensor_raw(
        &mut self,
        name: &str,
        dims: &[u64],
        type_id: u32,
        data: Vec<u8>,
    ) -> &mut Writer {
        self.tensors.push(WriterTensor {
            name: name.to_owned(),
            dims: dims.to_vec(),
            type_id,
            data,
            declared: None,
        });
        self
    }

    /// Appends a tensor of `len` bytes of zeros that are not held in memory: for files too
    /// large to build in memory, written with [`header_bytes`](Writer::header_bytes) and
    /// extended to their length (sparse). [`to_bytes`](Writer::to_bytes) writes the zeros.
    pub fn tensor_declared(&mut self, name: &str, dims: &[u64], ty: GgmlType, len: u64) -> &mut Writer {
        self.tensor_raw(name, dims, ty.id(), Vec::new());
        if let Some(t) = self.tensors.last_mut() {
            t.declared = Some(len);
        }
        self
    }

    /// Stores tensor data in this order of directory indices (others follow in directory
    /// order; out-of-range and repeated indices are ignored).
    pub fn data_order(&mut self, order: &[usize]) -> &mut Writer {
        self.data_order = Some(order.to_vec());
        self
    }

    /// The directory indices in data order.
    fn layout_order(&self) -> Vec<usize> {
        let mut seen = vec![false; self.tensors.len()];
        let mut order = Vec::with_capacity(self.tensors.len());
        let requested = self.data_order.iter().flatten().copied();
        for i in requested.chain(0..self.tensors.len()) {
            if let Some(s) = seen.get_mut(i) {
                if !*s {
                    *s = true;
                    order.push(i);
                }
            }
        }
        order
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (mut out, offsets, order) = self.header();
        let data_offset = out.len() as u64;
        for &i in &order {
            if let (Some(t), Some(&o)) = (self.tensors.get(i), offsets.get(i)) {
                out.resize((data_offset + o) as usize, 0);
                out.extend_from_slice(&t.data);
                out.resize((data_offset + o + t.len()) as usize, 0);
            }
        }
        let total = self.pad(out.len() as u64).max(data_offset);
        out.resize(total as usize, 0);
        out
    }

    /// The file's bytes up to its data section (padding included), and the whole file's length:
    /// the header of a file whose data is written separately (or left sparse).
    pub fn header_bytes(&self) -> (Vec<u8>, u64) {
        let (out, offsets, order) = self.header();
        let end = order.iter().filter_map(|&i| Some(offsets.get(i)? + self.tensors.get(i)?.len())).max().unwrap_or(0);
        let len = out.len() as u64;
        (out, self.pad(len + end).max(len))
    }

    fn pad(&self, n: u64) -> u64 {
        let align = self.alignment.max(1);
        n.div_ceil(align) * align
    }

    /// The header (padded to the data section), each tensor's offset in the data section, and
    /// the directory indices in data order.
    fn header(&self) -> (Vec<u8>, Vec<u64>, Vec<usize>) {
        let pad = |n: u64| self.pad(n);
        // Offsets relative to the data section.
        let mut offsets = vec![0u64; self.tensors.len()];
        let mut end = 0u64;
        let order = self.layout_order();
        for &i in &order {
            let start = pad(end);
            if let (Some(o), Some(t)) = (offsets.get_mut(i), self.tensors.get(i)) {
                *o = start;
                end = start + t.len();
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_str(&mut out, key);
            out.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            write_payload(&mut out, value);
        }
        for (t, offset) in self.tensors.iter().zip(&offsets) {
            write_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let data_offset = pad(out.len() as u64);
        out.resize(data_offset as usize, 0);
        (out, offsets, order)
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A value without its type id (array elements carry none).
fn write_payload(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => write_str(out, s),
        Value::Array(ty, items) => {
            out.extend_from_slice(&(*ty as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_payload(out, item);
            }
        }
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

/// A value of every type, including nested and empty arrays (for tests and fuzz seeds).
pub fn sample_metadata() -> Vec<(String, Value)> {
    use Value::*;
    let nested = Array(
        ValueType::Array,
        vec![
            Array(ValueType::I32, vec![I32(1), I32(-2)]),
            Array(ValueType::String, vec![String("x".into())]),
            Array(ValueType::U8, vec![]),
        ],
    );
    vec![
        ("general.architecture".into(), String("llama".into())),
        ("t.u8".into(), U8(200)),
        ("t.i8".into(), I8(-100)),
        ("t.u16".into(), U16(60_000)),
        ("t.i16".into(), I16(-30_000)),
        ("t.u32".into(), U32(4_000_000_000)),
        ("t.i32".into(), I32(-2_000_000_000)),
        ("t.f32".into(), F32(1.5)),
        ("t.bool".into(), Bool(true)),
        ("t.string".into(), String("héllo ✓".into())),
        ("t.u64".into(), U64(u64::MAX - 1)),
        ("t.i64".into(), I64(i64::MIN + 1)),
        ("t.f64".into(), F64(-0.25)),
        ("t.empty_string".into(), String(std::string::String::new())),
        (
            "t.array_f32".into(),
            Array(ValueType::F32, vec![F32(0.5), F32(-1.0)]),
        ),
        ("t.array_empty".into(), Array(ValueType::U64, vec![])),
        (
            "t.array_empty_strings".into(),
            Array(ValueType::String, vec![]),
        ),
        (
            "t.array_bool".into(),
            Array(ValueType::Bool, vec![Bool(false), Bool(true)]),
        ),
        ("t.nested".into(), nested),
    ]
}
