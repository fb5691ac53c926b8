//! Reading and validating the `tokenizer.ggml.*` metadata arrays and ids.

use super::{token_type, TokenizerError};
use crate::gguf::Metadata;

/// A string array, borrowed from the metadata (a vocabulary's merges are ~150k strings: copying
/// each was a measurable part of a tokenizer build).
pub(super) fn read_strings<'a>(
    md: &'a Metadata,
    key: &'static str,
) -> Result<Option<Vec<&'a str>>, TokenizerError> {
    let Some(arr) = md.get_array(key) else {
        return match md.get(key) {
            None => Ok(None),
            Some(_) => Err(TokenizerError::BadMetadata {
                key,
                reason: "not an array".into(),
            }),
        };
    };
    arr.iter()
        .map(|v| {
            v.as_str().ok_or_else(|| TokenizerError::BadMetadata {
                    key,
                    reason: "array element is not a string".into(),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) fn read_tokens(md: &Metadata) -> Result<Vec<String>, TokenizerError> {
    const KEY: &str = "tokenizer.ggml.tokens";
    let mut tokens: Vec<String> = read_strings(md, KEY)?
        .ok_or(TokenizerError::MissingKey { key: KEY })?
        .into_iter()
        .map(str::to_string)
        .collect();
    if tokens.is_empty() || u32::try_from(tokens.len()).is_err() {
        return Err(TokenizerError::BadMetadata {
            key: KEY,
            reason: format!("{} tokens", tokens.len()),
        });
    }
    // llama.cpp renames empty entries so that no token has empty text
    for (i, t) in tokens.iter_mut().enumerate() {
        if t.is_empty() {
            *t = format!("[EMPTY_{i}]");
        }
    }
    Ok(tokens)
}

pub(super) fn read_types(md: &Metadata, n: usize) -> Result<Vec<u8>, TokenizerError> {
    const KEY: &str = "tokenizer.ggml.token_type";
    let Some(arr) = md.get_array(KEY) else {
        return Ok(vec![token_type::NORMAL; n]);
    };
    if arr.len() < n {
        return Err(TokenizerError::BadMetadata {
            key: KEY,
            reason: format!("{} entries for {n} tokens", arr.len()),
        });
    }
    Ok(arr[..n]
        .iter()
        .map(|v| match v.as_i64() {
            Some(t @ 1..=6) => t as u8,
            _ => 0, // undefined: decodes to nothing, as in llama.cpp
        })
        .collect())
}

pub(super) fn read_scores(md: &Metadata, n: usize) -> Result<Vec<f32>, TokenizerError> {
    const KEY: &str = "tokenizer.ggml.scores";
    let Some(arr) = md.get_array(KEY) else {
        return Ok(vec![0.0; n]);
    };
    if arr.len() < n {
        return Err(TokenizerError::BadMetadata {
            key: KEY,
            reason: format!("{} entries for {n} tokens", arr.len()),
        });
    }
    arr[..n]
        .iter()
        .map(|v| {
            v.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| TokenizerError::BadMetadata {
                    key: KEY,
                    reason: "not a number".into(),
                })
        })
        .collect()
}

/// A token id key: absent → `None`; present but not an integer inside the vocabulary → error.
pub(super) fn read_id(
    md: &Metadata,
    key: &'static str,
    n: usize,
) -> Result<Option<u32>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(id) if (id as usize) < n => Ok(Some(id as u32)),
            _ => Err(TokenizerError::BadMetadata {
                key,
                reason: format!("{} is not a token id below {n}", v.summary()),
            }),
        },
    }
}
