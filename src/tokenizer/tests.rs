//! Unit tests on hand-built vocabularies; parity with llama.cpp is in `tests/tokenizer_parity.rs`.

use super::*;
use crate::gguf::{Value, ValueType};

fn strs(items: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        items.iter().map(|s| Value::String(s.to_string())).collect(),
    )
}

fn ints(items: &[i32]) -> Value {
    Value::Array(
        ValueType::I32,
        items.iter().map(|&v| Value::I32(v)).collect(),
    )
}

fn kv(k: &str, v: Value) -> (String, Value) {
    (k.to_string(), v)
}

/// A tiny SentencePiece vocabulary: control tokens, byte tokens for '\n' and the bytes of
/// "é", and pieces whose scores decide the merge order.
fn spm_metadata() -> Metadata {
    let tokens = [
        "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>", "▁", "h", "e", "l", "o", "he", "ll",
        "hell", "▁hell", "▁hello", "lo",
    ];
    let types = [2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    let scores: Vec<Value> = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
    Metadata::from_entries(vec![
        kv("tokenizer.ggml.model", Value::String("llama".into())),
        kv("tokenizer.ggml.tokens", strs(&tokens)),
        kv("tokenizer.ggml.token_type", ints(&types)),
        kv(
            "tokenizer.ggml.scores",
            Value::Array(ValueType::F32, scores),
        ),
        kv("tokenizer.ggml.bos_token_id", Value::U32(1)),
        kv("tokenizer.ggml.eos_token_id", Value::U32(2)),
        kv("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ])
}

/// A tiny byte-level BPE vocabulary with ChatML control tokens.
fn bpe_metadata() -> Metadata {
    let tokens = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "h",
        "i",
        "Ġ",
        "Ġh",
        "Ġhi",
        "hi",
        "!",
        "1",
        "2",
        "Ã",
        "©",
    ];
    let types = [3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    Metadata::from_entries(vec![
        kv("tokenizer.ggml.model", Value::String("gpt2".into())),
        kv("tokenizer.ggml.pre", Value::String("smollm".into())),
        kv("tokenizer.ggml.tokens", strs(&tokens)),
        kv("tokenizer.ggml.token_type", ints(&types)),
        kv("tokenizer.ggml.merges", strs(&["Ġ h", "Ġh i", "h i"])),
        kv("tokenizer.ggml.bos_token_id", Value::U32(1)),
        kv("tokenizer.ggml.eos_token_id", Value::U32(2)),
        kv("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ])
}

#[test]
fn spm_merges_by_score_and_prefixes_a_space() {
    let tok = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    // "▁hello": ▁hell (14) has a better score than ▁hello (15) but both are reachable; the
    // highest-scoring pair is merged first at every step.
    let ids = tok.encode("hello", true, false).unwrap();
    assert_eq!(ids[0], 1, "SPM adds BOS by default");
    assert_eq!(tok.decode(&ids).unwrap(), "<s> hello");
    assert_eq!(tok.decode_with(&ids, true).unwrap(), "hello");
    assert_eq!(tok.decode(&ids[1..]).unwrap(), "hello");
}

#[test]
fn spm_byte_fallback() {
    let tok = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let ids = tok.encode("\né", false, false).unwrap();
    // "▁" then the bytes of '\n' and 'é' (no piece for them)
    assert_eq!(ids, vec![6, 3, 4, 5]);
    assert_eq!(tok.decode(&ids).unwrap(), "\né");
}

#[test]
fn special_tokens_need_parse_special() {
    let tok = Tokenizer::from_metadata(&bpe_metadata()).unwrap();
    assert_eq!(
        tok.encode("<|im_start|>hi", false, true).unwrap(),
        vec![1, 8]
    );
    let plain = tok.encode("<|im_start|>hi", false, false).unwrap();
    assert!(
        !plain.contains(&1),
        "control text must not become a control token: {plain:?}"
    );
    assert_eq!(tok.encode(" hi!", false, false).unwrap(), vec![7, 9]);
    // digits are split one by one for smollm
    assert_eq!(tok.encode("12", false, false).unwrap(), vec![10, 11]);
    assert_eq!(tok.encode("", true, true).unwrap(), Vec::<u32>::new());
}

#[test]
fn eog_and_control() {
    let tok = Tokenizer::from_metadata(&bpe_metadata()).unwrap();
    assert_eq!(tok.eog_tokens(), &[0, 2]);
    assert!(tok.is_control(1));
    assert!(!tok.is_control(3));
    assert!(!tok.is_control(1000));
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert_eq!(tok.vocab_size(), 14);
    assert_eq!(tok.token_piece(6), Some("Ġh"));
    assert_eq!(tok.token_piece(99), None);
}

#[test]
fn decode_rejects_unknown_ids() {
    let tok = Tokenizer::from_metadata(&bpe_metadata()).unwrap();
    assert!(matches!(
        tok.decode(&[3, 500]),
        Err(TokenizerError::InvalidToken { id: 500, .. })
    ));
}

#[test]
fn stream_decoder_holds_back_split_characters() {
    let tok = Tokenizer::from_metadata(&bpe_metadata()).unwrap();
    // "é" is the two byte-level tokens Ã (0xC3) and © (0xA9)
    let mut s = StreamDecoder::new(&tok);
    assert_eq!(s.push(7).unwrap(), " hi");
    assert_eq!(s.push(12).unwrap(), "");
    assert_eq!(s.push(13).unwrap(), "é");
    assert!(s.push(999).is_err());
    assert_eq!(s.push(12).unwrap(), "");
    assert_eq!(s.push(9).unwrap(), "\u{FFFD}!");
    assert_eq!(s.flush(), "");
    let ids = [7, 12, 13, 12, 9, 12];
    let mut s = StreamDecoder::new(&tok);
    let mut streamed = String::new();
    for id in ids {
        streamed += &s.push(id).unwrap();
    }
    streamed += &s.flush();
    assert_eq!(streamed, tok.decode(&ids).unwrap());
}

#[test]
fn unsupported_and_malformed_metadata_are_errors() {
    let md = Metadata::from_entries(vec![
        kv("tokenizer.ggml.model", Value::String("bert".into())),
        kv("tokenizer.ggml.tokens", strs(&["a"])),
    ]);
    assert!(matches!(
        Tokenizer::from_metadata(&md),
        Err(TokenizerError::Unsupported { .. })
    ));
    assert!(matches!(
        Tokenizer::from_metadata(&Metadata::default()),
        Err(TokenizerError::MissingKey { .. })
    ));

    let mut entries: Vec<(String, Value)> = bpe_metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    entries.push(kv("tokenizer.ggml.pre", Value::String("martian".into())));
    assert!(matches!(
        Tokenizer::from_metadata(&Metadata::from_entries(entries)),
        Err(TokenizerError::UnsupportedPre { .. })
    ));

    let mut entries: Vec<(String, Value)> = bpe_metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    entries.push(kv("tokenizer.ggml.eos_token_id", Value::U32(14)));
    assert!(matches!(
        Tokenizer::from_metadata(&Metadata::from_entries(entries)),
        Err(TokenizerError::BadMetadata { .. })
    ));

    let mut entries: Vec<(String, Value)> = spm_metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    entries.push(kv("tokenizer.ggml.token_type", ints(&[1, 1])));
    assert!(matches!(
        Tokenizer::from_metadata(&Metadata::from_entries(entries)),
        Err(TokenizerError::BadMetadata { .. })
    ));
}
