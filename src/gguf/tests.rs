//! Tests across the GGUF layer: writer round trips, chunked reading, one crafted input per
//! error variant.

use super::writer::sample_metadata;
use super::*;
use crate::quant::GgmlType;

/// Tensors of several types and shapes, including a scalar and an empty one.
fn sample_tensors(w: &mut Writer) {
    let bytes = |n: usize, seed: u8| {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
    };
    w.tensor("f32", &[3, 2], GgmlType::F32, bytes(24, 1));
    w.tensor("q4_1", &[64, 2], GgmlType::Q4_1, bytes(80, 2));
    w.tensor("f16", &[5], GgmlType::F16, bytes(10, 3));
    w.tensor("empty", &[0, 4], GgmlType::F32, vec![]);
    w.tensor("scalar", &[], GgmlType::I8, bytes(1, 4));
}

fn sample_writer() -> Writer {
    let mut w = Writer::new();
    for (k, v) in sample_metadata() {
        w.kv(&k, v);
    }
    sample_tensors(&mut w);
    w
}

/// Feeds `bytes` in `chunk`-sized pieces; returns the events and `finish`'s result.
fn read_chunked(bytes: &[u8], chunk: usize) -> (Vec<Event>, Result<(), Error>) {
    let mut r = Reader::new();
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        match r.feed(piece) {
            Ok(evs) => events.extend(evs),
            Err(e) => return (events, Err(e)),
        }
    }
    assert_eq!(r.bytes_seen(), bytes.len() as u64);
    (events, r.finish())
}

/// Overwrites the offset field of the tensor info named `name` (with `n_dims` dims).
fn patch_offset(bytes: &mut [u8], name: &str, n_dims: usize, offset: u64) {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    needle.extend_from_slice(&(n_dims as u32).to_le_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("tensor info")
        + needle.len()
        + 8 * n_dims
        + 4;
    bytes[at..at + 8].copy_from_slice(&offset.to_le_bytes());
}

fn preamble(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = GGUF_MAGIC.to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn err(bytes: &[u8]) -> Error {
    parse_header(bytes).expect_err("must be rejected")
}

#[test]
fn round_trip_all_value_types_v2_and_v3() {
    for version in [2, 3] {
        let mut w = sample_writer();
        w.version(version);
        let bytes = w.to_bytes();
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.version, version);
        let expected: Vec<(String, Value)> = sample_metadata();
        let got: Vec<(String, Value)> = h
            .metadata
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.alignment, 32);
        assert_eq!(h.data_offset % 32, 0);
        let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["f32", "q4_1", "f16", "empty", "scalar"]);
        let q = h.tensor("q4_1").unwrap();
        assert_eq!(
            (q.dims.as_slice(), q.ty, q.n_elements(), q.n_bytes),
            (&[64u64, 2][..], GgmlType::Q4_1, 128, 80)
        );
        assert_eq!(h.tensor("scalar").unwrap().n_elements(), 1);
        assert_eq!(h.tensor("empty").unwrap().n_bytes, 0);
        assert!(h.tensor("nope").is_none());
        h.check_file_len(bytes.len() as u64).unwrap();
        let f16 = h.tensor("f16").unwrap();
        let r = h.tensor_range(f16).unwrap();
        assert_eq!(r.end - r.start, 10);
        assert_eq!(bytes[r.start as usize], 3);
    }
}

#[test]
fn custom_alignment_and_out_of_order_data() {
    for align in [1u64, 8, 64, 4096] {
        let mut w = sample_writer();
        w.alignment(align).data_order(&[2, 4, 0, 3, 1]);
        let bytes = w.to_bytes();
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.alignment, align);
        assert_eq!(h.data_offset % align, 0);
        assert!(h.tensors.iter().all(|t| t.offset % align == 0));
        assert!(h.tensor("f16").unwrap().offset < h.tensor("f32").unwrap().offset);
        let (events, end) = read_chunked(&bytes, 5);
        end.unwrap();
        let order: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Tensor { index, .. } => Some(*index),
                Event::Header(_) => None,
            })
            .collect();
        // Data order; the empty tensor sorts by its (aligned) offset.
        let mut expected: Vec<usize> = (0..5).collect();
        expected.sort_by_key(|&i| (h.tensors[i].offset, h.tensors[i].n_bytes));
        assert_eq!(order, expected);
    }
}

#[test]
fn every_chunk_size_gives_identical_events() {
    let mut w = sample_writer();
    w.data_order(&[1, 0]);
    let bytes = w.to_bytes();
    let (whole, end) = read_chunked(&bytes, bytes.len());
    end.unwrap();
    assert_eq!(whole.len(), 6);
    let Event::Header(h) = &whole[0] else {
        panic!("header first")
    };
    assert_eq!(**h, parse_header(&bytes).unwrap());
    for e in &whole[1..] {
        let Event::Tensor { index, bytes: data } = e else {
            panic!("one header")
        };
        let r = h.tensor_range(&h.tensors[*index]).unwrap();
        assert!(*data == bytes[r.start as usize..r.end as usize]);
    }
    for chunk in [1, 2, 7, 64, 4096] {
        let (events, end) = read_chunked(&bytes, chunk);
        end.unwrap();
        assert_eq!(events, whole, "chunk size {chunk}");
    }
}

#[test]
fn header_emitted_exactly_when_complete() {
    let bytes = sample_writer().to_bytes();
    // Smallest prefix that parses = end of the tensor directory.
    let end = (0..=bytes.len())
        .find(|&n| parse_header(&bytes[..n]).is_ok())
        .unwrap();
    for n in 0..end {
        match parse_header(&bytes[..n]) {
            Err(Error::Truncated { needed }) => assert!(
                needed > n as u64 && needed <= end as u64,
                "n={n} needed={needed}"
            ),
            other => panic!("prefix {n}: {other:?}"),
        }
    }
    let mut r = Reader::new();
    for (i, b) in bytes[..end].iter().enumerate() {
        let evs = r.feed(std::slice::from_ref(b)).unwrap();
        assert_eq!(evs.is_empty(), i + 1 < end, "byte {i}");
    }
    assert!(r.header().is_some());
}

#[test]
fn reader_truncation_and_sticky_errors() {
    let bytes = sample_writer().to_bytes();
    let h = parse_header(&bytes).unwrap();
    let mut r = Reader::new();
    r.feed(&bytes[..bytes.len() - 40]).unwrap();
    let needed = h.data_offset + h.data_len();
    assert_eq!(r.finish(), Err(Error::Truncated { needed }));
    let mut r = Reader::new();
    r.feed(&bytes[..10]).unwrap();
    assert!(matches!(r.finish(), Err(Error::Truncated { needed }) if needed > 10));
    assert_eq!(Reader::new().finish(), Err(Error::Truncated { needed: 24 }));
    let mut r = Reader::new();
    assert_eq!(r.feed(b"<"), Err(Error::BadMagic(b"<".to_vec())));
    assert_eq!(r.feed(&bytes), Err(Error::BadMagic(b"<".to_vec())));
    assert_eq!(r.finish(), Err(Error::BadMagic(b"<".to_vec())));
}

#[test]
fn trailing_bytes_after_the_data_are_ignored() {
    let mut bytes = sample_writer().to_bytes();
    bytes.extend_from_slice(&[0xAB; 100]);
    let (events, end) = read_chunked(&bytes, 3);
    end.unwrap();
    assert_eq!(events.len(), 6);
}

#[test]
fn zero_tensors_and_zero_kvs() {
    let bytes = preamble(3, 0, 0);
    let h = parse_header(&bytes).unwrap();
    assert_eq!(
        (
            h.tensors.len(),
            h.metadata.len(),
            h.data_offset,
            h.data_len()
        ),
        (0, 0, 32, 0)
    );
    let (events, end) = read_chunked(&bytes, 1);
    end.unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn error_bad_magic_and_version() {
    assert_eq!(err(b"GGML\x03\0\0\0"), Error::BadMagic(b"GGM".to_vec()));
    assert_eq!(err(b"GX"), Error::BadMagic(b"GX".to_vec()));
    assert_eq!(err(&preamble(1, 0, 0)), Error::UnsupportedVersion(1));
    assert_eq!(err(&preamble(4, 0, 0)), Error::UnsupportedVersion(4));
    assert!(Error::UnsupportedVersion(1).to_string().contains("v1"));
    assert_eq!(err(b"GGUF\x03\0"), Error::Truncated { needed: 24 });
}

#[test]
fn error_counts_and_lengths() {
    assert_eq!(
        err(&preamble(3, u64::MAX, 0)),
        Error::TooManyTensors { count: u64::MAX }
    );
    assert_eq!(
        err(&preamble(3, 0, 1 << 60)),
        Error::TooManyKv { count: 1 << 60 }
    );
    // A count that fits the limit but not the bytes is truncation, with a useful bound.
    assert_eq!(
        err(&preamble(3, 0, 1000)),
        Error::Truncated {
            needed: 24 + 13 * 1000
        }
    );
    let mut b = preamble(3, 0, 1);
    b.extend_from_slice(&(u64::MAX - 3).to_le_bytes());
    assert!(matches!(err(&b), Error::StringTooLong { len, .. } if len == u64::MAX - 3));
    let mut b = preamble(3, 0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(err(&b), Error::ArrayTooLong { count: 1 << 40 });
    // A limit equal to the file length turns impossible counts into errors.
    let mut b = preamble(3, 0, 1000);
    b.extend_from_slice(&[0; 100]);
    assert_eq!(
        parse_header_with_limit(&b, b.len() as u64),
        Err(Error::TooManyKv { count: 1000 })
    );
}

#[test]
fn error_value_types_utf8_and_nesting() {
    let mut b = preamble(3, 0, 1);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&13u32.to_le_bytes());
    assert_eq!(err(&b), Error::UnknownValueType(13));
    let mut b = preamble(3, 0, 1);
    b.extend_from_slice(&2u64.to_le_bytes());
    b.extend_from_slice(&[b'k', 0xff]);
    assert_eq!(err(&b), Error::BadUtf8 { offset: 32 });
    let nest = |depth: usize| {
        let mut v = Value::Array(ValueType::U8, vec![Value::U8(7)]);
        for _ in 1..depth {
            v = Value::Array(ValueType::Array, vec![v]);
        }
        let mut w = Writer::new();
        w.kv("deep", v.clone());
        (w.to_bytes(), v)
    };
    let (ok, v) = nest(MAX_ARRAY_DEPTH);
    assert_eq!(parse_header(&ok).unwrap().metadata.get("deep"), Some(&v));
    let (deep, _) = nest(MAX_ARRAY_DEPTH + 1);
    assert_eq!(
        err(&deep),
        Error::ArrayTooDeep {
            depth: MAX_ARRAY_DEPTH + 1
        }
    );
}

#[test]
fn error_tensor_directory() {
    let mut w = Writer::new();
    w.tensor_raw("old_q4_2", &[32], 4, vec![0; 20]);
    assert_eq!(
        err(&w.to_bytes()),
        Error::UnknownTensorType {
            name: "old_q4_2".into(),
            id: 4
        }
    );
    let mut w = Writer::new();
    w.tensor("a", &[1], GgmlType::F32, vec![0; 4])
        .tensor("a", &[1], GgmlType::F32, vec![0; 4]);
    assert_eq!(err(&w.to_bytes()), Error::DuplicateTensor("a".into()));
    let mut w = Writer::new();
    w.tensor("five", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]);
    assert_eq!(
        err(&w.to_bytes()),
        Error::TooManyDims {
            name: "five".into(),
            n_dims: 5
        }
    );
    let mut w = Writer::new();
    w.tensor("q", &[16, 2], GgmlType::Q4_0, vec![0; 18]);
    assert_eq!(
        err(&w.to_bytes()),
        Error::NotBlockAligned { name: "q".into() }
    );
    let mut w = Writer::new();
    w.tensor("big", &[u64::MAX, 2], GgmlType::F32, vec![]);
    assert!(matches!(err(&w.to_bytes()), Error::Overflow(_)));
    let mut w = Writer::new();
    w.tensor("big", &[1 << 62], GgmlType::F32, vec![]);
    assert!(matches!(err(&w.to_bytes()), Error::Overflow(_)));
    let mut w = Writer::new();
    w.tensor("a", &[6], GgmlType::F32, vec![0; 24])
        .tensor("b", &[1], GgmlType::F32, vec![0; 4]);
    let mut bytes = w.to_bytes();
    patch_offset(&mut bytes, "b", 1, u64::MAX - 31);
    assert!(matches!(err(&bytes), Error::Overflow(_)));
}

#[test]
fn error_alignment_and_placement() {
    for bad in [
        Value::U32(0),
        Value::U32(48),
        Value::String("32".into()),
        Value::I32(-32),
    ] {
        let mut w = Writer::new();
        w.kv("general.alignment", bad.clone());
        assert_eq!(
            err(&w.to_bytes()),
            Error::BadAlignment(bad.summary()),
            "{bad:?}"
        );
    }
    // Laid out with 32 but declaring 64: the second tensor sits at 32.
    let mut w = Writer::new();
    w.kv("general.alignment", Value::U32(64));
    w.tensor("a", &[6], GgmlType::F32, vec![0; 24])
        .tensor("b", &[1], GgmlType::F32, vec![0; 4]);
    assert_eq!(
        err(&w.to_bytes()),
        Error::TensorMisaligned {
            name: "b".into(),
            offset: 32,
            alignment: 64
        }
    );
    let mut w = Writer::new();
    w.tensor("a", &[16], GgmlType::F32, vec![0; 64])
        .tensor("b", &[8], GgmlType::F32, vec![0; 32]);
    let mut bytes = w.to_bytes();
    patch_offset(&mut bytes, "b", 1, 32);
    assert_eq!(
        err(&bytes),
        Error::OverlappingTensors {
            first: "a".into(),
            second: "b".into()
        }
    );
    // Out of bounds: the file ends inside the last tensor.
    let bytes = sample_writer().to_bytes();
    let h = parse_header(&bytes).unwrap();
    let end = h.data_offset + h.data_len();
    h.check_file_len(end).unwrap();
    let last = h
        .tensors
        .iter()
        .max_by_key(|t| t.offset + t.n_bytes)
        .unwrap();
    assert_eq!(
        h.check_file_len(end - 1),
        Err(Error::TensorOutOfBounds {
            name: last.name.clone(),
            offset: h.data_offset + last.offset,
            len: last.n_bytes
        })
    );
}

#[test]
fn error_header_too_large() {
    let bytes = sample_writer().to_bytes();
    assert_eq!(
        parse_header_with_limit(&bytes, 300),
        Err(Error::HeaderTooLarge { limit: 300 })
    );
    let mut r = Reader::with_limits(300);
    let result = bytes.chunks(1).try_for_each(|b| r.feed(b).map(drop));
    assert_eq!(result, Err(Error::HeaderTooLarge { limit: 300 }));
    assert!(r.bytes_seen() <= 300);
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn read_file_streams_every_tensor() {
    let bytes = sample_writer().to_bytes();
    let path = std::env::temp_dir().join(format!("hearth-gguf-test-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mut seen = Vec::new();
    let h = read_file(&path, |i, t, data| {
        seen.push((i, t.name.clone(), data.to_vec()));
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    assert_eq!(seen.len(), h.tensors.len());
    for (i, name, data) in &seen {
        let r = h.tensor_range(&h.tensors[*i]).unwrap();
        assert_eq!(
            (name, data.as_slice()),
            (
                &h.tensors[*i].name,
                &bytes[r.start as usize..r.end as usize]
            )
        );
    }
    std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    let e = read_file(&path, |_, _, _| Ok::<(), std::convert::Infallible>(())).unwrap_err();
    assert!(
        matches!(e, ReadFileError::Gguf(Error::TensorOutOfBounds { .. })),
        "{e:?}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// A tensor declared by length (not held): `to_bytes` writes zeros for it, and `header_bytes`
/// is exactly the file's bytes before its data section, with the file's length.
#[test]
fn declared_tensors_lay_out_like_held_zeros_and_header_bytes_is_the_files_prefix() {
    let mut held = Writer::new();
    let mut declared = Writer::new();
    for w in [&mut held, &mut declared] {
        w.alignment(64);
        w.kv("general.architecture", Value::String("llama".into()));
        w.tensor("a", &[3], GgmlType::F32, vec![1; 12]);
    }
    held.tensor("big", &[256, 4], GgmlType::Q4_K, vec![0; 576]).tensor("c", &[2], GgmlType::F32, vec![2; 8]);
    declared.tensor_declared("big", &[256, 4], GgmlType::Q4_K, 576).tensor("c", &[2], GgmlType::F32, vec![2; 8]);
    let bytes = held.to_bytes();
    assert_eq!(declared.to_bytes(), bytes);
    let (head, len) = declared.header_bytes();
    let h = parse_header(&bytes).unwrap();
    assert_eq!((head.len() as u64, len), (h.data_offset, bytes.len() as u64));
    assert_eq!(head, bytes[..head.len()]);
    h.check_file_len(len).unwrap();
    // Only declared tensors: the length still covers them all.
    let mut w = Writer::new();
    w.tensor_declared("x", &[1 << 20, 1024], GgmlType::Q4_K, 576 << 20);
    let (head, len) = w.to_owned().header_bytes();
    assert_eq!(len, head.len() as u64 + (576 << 20));
}
