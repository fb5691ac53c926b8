//! The header's memory budget: metadata is charged at its in-memory size.

use super::writer::sample_metadata;
use super::*;

/// A header whose one key/value is an array of `count` elements of type id `ty`, cut after
/// its head (the elements never arrive: the head alone must be refused).
fn array_head(ty: u32, count: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // key/values
    b.extend(3u64.to_le_bytes());
    b.extend(b"big");
    b.extend(9u32.to_le_bytes()); // array
    b.extend(ty.to_le_bytes());
    b.extend(count.to_le_bytes());
    b
}

#[test]
fn arrays_are_charged_per_element_not_per_file_byte() {
    // 20 M one-byte elements: 20 MB in the file, 640 MB as values: refused at the head.
    let mut r = Reader::new();
    let err = r.feed(&array_head(0, 20_000_000)).unwrap_err();
    assert_eq!(err, Error::HeaderMemory { limit: DEFAULT_MAX_HEADER_MEMORY });
    // 1 M elements fit (32 MB): the reader just waits for them.
    assert!(Reader::new().feed(&array_head(0, 1_000_000)).unwrap().is_empty());
}

#[test]
fn a_small_budget_refuses_what_a_large_one_parses() {
    let mut w = Writer::new();
    for (k, v) in sample_metadata() {
        w.kv(&k, v);
    }
    let bytes = w.to_bytes();
    let mut ok = Reader::with_budget(DEFAULT_MAX_HEADER_BYTES, 1 << 20);
    assert!(matches!(ok.feed(&bytes).unwrap().first(), Some(Event::Header(_))));
    // 19 pairs of 56 bytes each fit in 1200 bytes by count, not once keys and values count.
    let mut tight = Reader::with_budget(DEFAULT_MAX_HEADER_BYTES, 1200);
    assert!(matches!(tight.feed(&bytes), Err(Error::HeaderMemory { .. })));
    // Far too small: refused at the count.
    let mut tiny = Reader::with_budget(DEFAULT_MAX_HEADER_BYTES, 256);
    assert!(matches!(tiny.feed(&bytes), Err(Error::TooManyKv { count: 19 })));
}

#[test]
fn counts_and_strings_beyond_the_budget_fail_before_their_bytes_arrive() {
    // 10 M tensors: 240 MB of directory at least, more than 256 MiB once parsed.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(10_000_000u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    assert_eq!(Reader::new().feed(&b), Err(Error::TooManyTensors { count: 10_000_000 }));
    // A 300 MB string value (under the 512 MiB byte limit): refused at its length.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(b"k");
    b.extend(8u32.to_le_bytes()); // string
    b.extend((300u64 << 20).to_le_bytes());
    assert_eq!(Reader::new().feed(&b), Err(Error::HeaderMemory { limit: DEFAULT_MAX_HEADER_MEMORY }));
}

#[test]
fn real_sized_vocabularies_fit() {
    // Gemma 3's 262 144 tokens with scores and types: well under the budget.
    let n = 262_144;
    let mut w = Writer::new();
    w.kv("tokenizer.ggml.tokens", Value::Array(ValueType::String, (0..n).map(|i| Value::String(format!("tok{i}"))).collect()));
    w.kv("tokenizer.ggml.scores", Value::Array(ValueType::F32, (0..n).map(|i| Value::F32(i as f32)).collect()));
    w.kv("tokenizer.ggml.token_type", Value::Array(ValueType::I32, (0..n).map(|_| Value::I32(1)).collect()));
    assert!(parse_header(&w.to_bytes()).is_ok());
}
