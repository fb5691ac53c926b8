//! Byte-level BPE (GGUF `tokenizer.ggml.model = "gpt2"`: GPT-2, SmolLM/SmolLM2, Qwen2, Llama 3…)
//! built on the `tokenizers` crate: llama.cpp's pre-tokenizer regexes (chosen by
//! `tokenizer.ggml.pre`, see `llm_tokenizer_bpe` in llama.cpp's `src/llama-vocab.cpp`) as a
//! sequence of isolating splits, GPT-2's byte-to-unicode mapping, and the merge table.
//!
//! Special tokens are *not* registered with the `tokenizers` object: the caller splits them
//! out first, exactly as llama.cpp's `tokenizer_st_partition` does, so the object only ever
//! sees plain text.

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use super::TokenizerError;

// Regexes copied from llama.cpp `llm_tokenizer_bpe::llm_tokenizer_bpe` (the "adapted" forms,
// which avoid `(?i:…)`). Each list is applied in order, each regex splitting the pieces the
// previous one produced.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const CHATGLM4: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DEEPSEEK_CODER: &[&str] = &[
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];
const DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];
const FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"];
const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"];

/// How llama.cpp pre-tokenizes for one `tokenizer.ggml.pre` value.
pub(crate) struct PreType {
    pub regexes: &'static [&'static str],
    /// Use a whole pre-token as one token when it is in the vocabulary (llama.cpp `ignore_merges`).
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` before `tokenizer.ggml.add_bos_token` overrides it.
    pub add_bos: bool,
}

/// The pre-tokenizer for `tokenizer.ggml.pre`, or `None` when llama.cpp's list is not
/// supported here (the caller reports it as unsupported).
pub(crate) fn pre_type(pre: &str) -> Option<PreType> {
    let p = |regexes, ignore_merges, add_bos| {
        Some(PreType {
            regexes,
            ignore_merges,
            add_bos,
        })
    };
    match pre {
        "default" => p(DEFAULT, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => p(&[LLAMA3], true, true),
        "dbrx" | "smaug-bpe" => p(&[LLAMA3], false, false),
        "deepseek-coder" => p(DEEPSEEK_CODER, false, false),
        "deepseek-llm" => p(DEEPSEEK_LLM, false, false),
        "falcon" => p(FALCON, false, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            p(&[r"\p{N}", GPT2], false, false)
        }
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling"
        | "exaone4" => p(&[GPT2], false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "stablelm2" | "hunyuan" | "megrez" => {
            p(&[QWEN2], false, false)
        }
        "qwen35" => p(&[QWEN35], false, false),
        "chatglm-bpe" => p(&[CHATGLM4], false, false),
        "tekken" => p(&[TEKKEN], true, true),
        "gpt-4o" | "llama4" => p(&[GPT4O], false, false),
        _ => None,
    }
}

/// Builds the `tokenizers` object for a byte-level BPE vocabulary.
pub(crate) fn build(
    tokens: &[String],
    merges: &[&str],
    pre: &PreType,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    // ids fit in u32: the caller checked the vocabulary size
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    // `tokenizers` rejects a merge whose parts or result are not in the vocabulary; such a
    // merge could never produce a token in llama.cpp either, so it is dropped.
    let mut pairs = Vec::with_capacity(merges.len());
    let mut joined = String::new();
    for m in merges {
        // llama.cpp splits at the first space after the first byte (a part may be " ").
        let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
            continue;
        };
        let (a, b) = (&m[..pos], &m[pos + 1..]);
        joined.clear();
        joined.push_str(a);
        joined.push_str(b);
        if vocab.contains_key(a) && vocab.contains_key(b) && vocab.contains_key(joined.as_str()) {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    let model = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;

    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(pre.regexes.len() + 1);
    for re in pre.regexes {
        let split = Split::new(
            SplitPattern::Regex((*re).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TokenizerError::Build(format!("pre-tokenizer regex {re:?}: {e}")))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());

    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Sequence::new(steps)));
    Ok(tok)
}

/// GPT-2's byte-to-unicode table inverted: the byte each printable stand-in character means.
/// Bytes 33–126, 161–172 and 174–255 stand for themselves; the others were shifted to
/// U+0100 onwards in byte order (`bytes_to_unicode` in GPT-2's `encoder.py`).
pub(crate) fn byte_level_decode(piece: &str, out: &mut Vec<u8>) {
    for ch in piece.chars() {
        match char_to_byte(ch) {
            Some(b) => out.push(b),
            // Not a byte-level character: keep it as text (llama.cpp writes an error marker).
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn is_direct(b: u8) -> bool {
    matches!(b, 33..=126 | 161..=172 | 174..=255)
}

fn char_to_byte(ch: char) -> Option<u8> {
    let c = ch as u32;
    if c < 256 && is_direct(c as u8) {
        return Some(c as u8);
    }
    // the n-th byte that is not direct maps to U+0100 + n: 0–32, then 127–160, then 173
    match c.checked_sub(256)? {
        n @ 0..=32 => Some(n as u8),
        n @ 33..=66 => Some((127 + n - 33) as u8),
        67 => Some(173),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_round_trips() {
        let mut out = Vec::new();
        byte_level_decode("Ġhello", &mut out);
        assert_eq!(out, b" hello");
        out.clear();
        byte_level_decode("Ċ", &mut out);
        assert_eq!(out, b"\n");
        out.clear();
        byte_level_decode("ĉ", &mut out);
        assert_eq!(out, b"\t");
    }

    #[test]
    fn every_supported_regex_compiles() {
        for pre in [
            "default",
            "llama-bpe",
            "dbrx",
            "deepseek-coder",
            "deepseek-llm",
            "falcon",
            "smollm",
            "gpt-2",
            "qwen2",
            "qwen35",
            "chatglm-bpe",
            "tekken",
            "gpt-4o",
        ] {
            let pt = pre_type(pre).unwrap();
            for re in pt.regexes {
                Split::new(
                    SplitPattern::Regex((*re).to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .unwrap_or_else(|e| panic!("{pre}: {re}: {e}"));
            }
        }
        assert!(pre_type("no-such-pre").is_none());
    }
}
