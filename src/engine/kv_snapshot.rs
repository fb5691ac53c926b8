//! Snapshots of a prompt prefix's KV cache: exported after a prefill, restored on a later
//! page load so that the prefix is not prefilled again (the persisted prompt cache).
//!
//! A snapshot holds the keys and values of positions `0..n` of every layer, the `n` tokens
//! they belong to, and everything that changes those bytes: the caller's model id (the
//! file's sha256), the backend that computed them ([`Backend::describe`]: CPU and GPU, or two
//! GPUs, round differently), a fingerprint of the hyper-parameters, the allocated context
//! (LongRoPE picks its factors by it), the element type and this format's version. Restoring
//! checks all of them and the checksum before a single byte reaches the cache, so a
//! corrupted, truncated or mismatched entry is an error the caller answers by rebuilding it.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `HEARTHKV` |
//! | 4 | format version ([`VERSION`]) |
//! | 4 | element type (0 = f32) |
//! | 4 × 5 | n_layer, kv_dim, n_tokens, n_vocab, n_ctx |
//! | 8 | hyper-parameter fingerprint (XXH3-64 of the `Config`'s debug form) |
//! | 4 + m | model id (UTF-8, at most [`MAX_ID`] bytes) |
//! | 4 + b | backend description (UTF-8, at most [`MAX_ID`] bytes) |
//! | 4 × n_tokens | the tokens |
//! | 4 × n_tokens × kv_dim × 2 × n_layer | per layer: K rows `0..n`, then V rows `0..n` (f32) |
//! | 8 | XXH3-64 of every byte before it |

use crate::model::Config;
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64;

/// Version of the layout above; a snapshot of another version is refused.
pub const VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"HEARTHKV";
/// Element type f32 (the only KV type the backends have).
const DTYPE_F32: u32 = 0;
/// Longest model id or backend description accepted.
pub const MAX_ID: usize = 1024;

/// Why a snapshot was refused. Nothing was written to the KV cache.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SnapshotError {
    #[error("KV snapshot is truncated ({got} bytes, at least {need} needed)")]
    Truncated { got: usize, need: usize },
    #[error("not a KV snapshot (bad magic)")]
    BadMagic,
    #[error("KV snapshot checksum mismatch (corrupted entry)")]
    Checksum,
    #[error("KV snapshot {field} is {got}, this engine needs {want}")]
    Mismatch { field: &'static str, got: String, want: String },
    #[error("KV snapshot has {got} bytes, its header says {need}")]
    Length { got: usize, need: usize },
    #[error("KV snapshot: {0}")]
    Invalid(String),
}

/// What a snapshot must match to be restored: this model, backend and context.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotKey<'a> {
    /// Caller's id of the model file (its sha256 in the browser).
    pub model_id: &'a str,
    /// [`crate::backend::Backend::describe`] of the backend that computes.
    pub backend: &'a str,
    pub n_layer: usize,
    pub kv_dim: usize,
    pub n_vocab: usize,
    pub n_ctx: usize,
    /// [`config_fingerprint`] of the model.
    pub fingerprint: u64,
}

/// XXH3-64 of the hyper-parameters' debug form: any change to them (or to how they are
/// read) gives another fingerprint, so a snapshot never meets a model it was not made by.
pub fn config_fingerprint(cfg: &Config) -> u64 {
    xxh3_64(format!("{cfg:?}").as_bytes())
}

/// A validated snapshot, borrowing its bytes.
#[derive(Debug)]
pub struct Snapshot<'a> {
    pub tokens: Vec<u32>,
    /// f32 little-endian: per layer K then V, each `n_tokens × kv_dim`.
    payload: &'a [u8],
    kv_dim: usize,
}

impl Snapshot<'_> {
    /// Keys (`kv == 0`) or values (`kv == 1`) of `layer`, rows `0..n_tokens`.
    pub fn rows(&self, layer: usize, kv: usize) -> Vec<f32> {
        let len = self.tokens.len() * self.kv_dim * 4;
        let at = (layer * 2 + kv) * len;
        self.payload[at..at + len].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

/// Size of a snapshot of `n_tokens` positions, or `None` on overflow.
pub fn snapshot_len(key: &SnapshotKey<'_>, n_tokens: usize) -> Option<usize> {
    let payload = n_tokens.checked_mul(key.kv_dim)?.checked_mul(8)?.checked_mul(key.n_layer)?;
    let fixed = 8 + 4 + 4 + 4 * 5 + 8 + 4 + key.model_id.len() + 4 + key.backend.len() + 8;
    fixed.checked_add(n_tokens.checked_mul(4)?)?.checked_add(payload)
}

/// Starts a snapshot of `tokens` (header and tokens); the caller appends each layer's K then V
/// rows with [`push_rows`] and closes it with [`finish`].
pub fn begin(key: &SnapshotKey<'_>, tokens: &[u32]) -> Result<Vec<u8>, SnapshotError> {
    if key.model_id.len() > MAX_ID || key.backend.len() > MAX_ID {
        return Err(SnapshotError::Invalid(format!("model id and backend are limited to {MAX_ID} bytes")));
    }
    let total = snapshot_len(key, tokens.len()).ok_or_else(|| SnapshotError::Invalid("size overflows".into()))?;
    let mut out = Vec::new();
    out.try_reserve_exact(total).map_err(|_| SnapshotError::Invalid(format!("cannot allocate {total} bytes")))?;
    out.extend_from_slice(MAGIC);
    for v in [VERSION, DTYPE_F32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [key.n_layer, key.kv_dim, tokens.len(), key.n_vocab, key.n_ctx] {
        out.extend_from_slice(&u32_of(v)?.to_le_bytes());
    }
    out.extend_from_slice(&key.fingerprint.to_le_bytes());
    for s in [key.model_id, key.backend] {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    tokens.iter().for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
    Ok(out)
}

/// Appends f32 rows to a snapshot under construction.
pub fn push_rows(out: &mut Vec<u8>, rows: &[f32]) {
    rows.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

/// Closes a snapshot with its checksum.
pub fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn u32_of(v: usize) -> Result<u32, SnapshotError> {
    u32::try_from(v).map_err(|_| SnapshotError::Invalid(format!("{v} does not fit the format")))
}

/// Reads little-endian fields, failing on truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(SnapshotError::Truncated { got: self.bytes.len(), need: self.at.saturating_add(n) })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn text(&mut self) -> Result<&'a str, SnapshotError> {
        let n = self.u32()? as usize;
        if n > MAX_ID {
            return Err(SnapshotError::Invalid(format!("a {n}-byte id (at most {MAX_ID})")));
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| SnapshotError::Invalid("id is not UTF-8".into()))
    }
}

fn check<T: PartialEq + std::fmt::Display>(field: &'static str, got: T, want: T) -> Result<(), SnapshotError> {
    if got == want {
        Ok(())
    } else {
        Err(SnapshotError::Mismatch { field, got: got.to_string(), want: want.to_string() })
    }
}

/// Parses and validates a snapshot against `key`: magic, version, element type, every
/// dimension, the model id, the backend, the exact length and the checksum, and that every
/// token is in the vocabulary and the prefix is shorter than the context. Never panics.
pub fn parse<'a>(bytes: &'a [u8], key: &SnapshotKey<'_>) -> Result<Snapshot<'a>, SnapshotError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    check("format version", r.u32()?, VERSION)?;
    check("element type", r.u32()?, DTYPE_F32)?;
    let n_layer = r.u32()? as usize;
    let kv_dim = r.u32()? as usize;
    let n_tokens = r.u32()? as usize;
    let n_vocab = r.u32()? as usize;
    let n_ctx = r.u32()? as usize;
    let fingerprint = r.u64()?;
    let model_id = r.text()?;
    let backend = r.text()?;
    // The checksum first: a corrupted entry is reported as such, not as whichever field the
    // corruption happened to hit. The length must be exact before it can be located.
    let need = snapshot_len(&SnapshotKey { model_id, backend, n_layer, kv_dim, n_vocab, n_ctx, fingerprint }, n_tokens)
        .ok_or_else(|| SnapshotError::Invalid("size overflows".into()))?;
    if bytes.len() != need {
        return Err(SnapshotError::Length { got: bytes.len(), need });
    }
    let (body, sum) = bytes.split_at(need - 8);
    let mut s = [0u8; 8];
    s.copy_from_slice(sum);
    if xxh3_64(body) != u64::from_le_bytes(s) {
        return Err(SnapshotError::Checksum);
    }
    check("model id", model_id, key.model_id)?;
    check("backend", backend, key.backend)?;
    check("layer count", n_layer, key.n_layer)?;
    check("KV width", kv_dim, key.kv_dim)?;
    check("vocabulary size", n_vocab, key.n_vocab)?;
    check("context length", n_ctx, key.n_ctx)?;
    check("hyper-parameter fingerprint", fingerprint, key.fingerprint)?;
    if n_tokens == 0 || n_tokens >= n_ctx {
        return Err(SnapshotError::Invalid(format!("{n_tokens} tokens for a context of {n_ctx}")));
    }
    let tok_bytes = r.take(n_tokens * 4)?;
    let tokens: Vec<u32> = tok_bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(SnapshotError::Invalid(format!("token {bad} is outside the vocabulary")));
    }
    let payload = r.take(need - 8 - r.at)?;
    Ok(Snapshot { tokens, payload, kv_dim })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SnapshotKey<'static> {
        SnapshotKey { model_id: "abc", backend: "cpu", n_layer: 2, kv_dim: 3, n_vocab: 10, n_ctx: 8, fingerprint: 7 }
    }

    fn sample() -> Vec<u8> {
        let mut out = begin(&key(), &[1, 2]).unwrap();
        for l in 0..4 {
            push_rows(&mut out, &[l as f32; 6]);
        }
        finish(out)
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        assert_eq!(bytes.len(), snapshot_len(&key(), 2).unwrap());
        let s = parse(&bytes, &key()).unwrap();
        assert_eq!(s.tokens, vec![1, 2]);
        assert_eq!(s.rows(1, 1), vec![3.0; 6]);
    }

    #[test]
    fn every_mismatch_is_refused() {
        let bytes = sample();
        let cases: Vec<SnapshotKey> = vec![
            SnapshotKey { model_id: "abd", ..key() },
            SnapshotKey { backend: "webgpu", ..key() },
            SnapshotKey { n_layer: 3, ..key() },
            SnapshotKey { kv_dim: 4, ..key() },
            SnapshotKey { n_vocab: 11, ..key() },
            SnapshotKey { n_ctx: 9, ..key() },
            SnapshotKey { fingerprint: 8, ..key() },
        ];
        for k in cases {
            assert!(matches!(parse(&bytes, &k), Err(SnapshotError::Mismatch { .. })), "{k:?}");
        }
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(parse(&b, &key()).is_err(), "flip at {i}");
            assert!(parse(&bytes[..i], &key()).is_err(), "truncated to {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(&longer, &key()).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift: deterministic, no dependency.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let good = sample();
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the cases keep a valid prefix so the parser gets past the magic.
            if next() % 2 == 0 {
                let keep = (next() as usize % good.len()).min(b.len());
                b[..keep].copy_from_slice(&good[..keep]);
            }
            if b == good {
                continue;
            }
            assert!(parse(&b, &key()).is_err());
        }
        // Huge declared sizes are refused by length, not allocated.
        let mut b = good.clone();
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&b, &key()).is_err());
    }

    #[test]
    fn a_token_outside_the_vocabulary_or_an_empty_prefix_is_refused() {
        let mut out = begin(&key(), &[1, 10]).unwrap();
        (0..4).for_each(|_| push_rows(&mut out, &[0.0; 6]));
        assert!(matches!(parse(&finish(out), &key()), Err(SnapshotError::Invalid(_))));
        let empty = finish(begin(&key(), &[]).unwrap());
        assert!(matches!(parse(&empty, &key()), Err(SnapshotError::Invalid(_))));
    }
}
