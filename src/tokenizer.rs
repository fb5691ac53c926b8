//! Text ⇄ token ids from GGUF tokenizer metadata, matching llama.cpp token for token.
//!
//! Two vocabulary types are supported (`tokenizer.ggml.model`):
//! - `"gpt2"`: byte-level BPE (GPT-2, SmolLM2, Qwen2, Llama 3…), built on the `tokenizers`
//!   crate with llama.cpp's pre-tokenizer regexes for `tokenizer.ggml.pre` ([`bpe`]);
//! - `"llama"`: SentencePiece BPE with byte fallback (Llama 2, Mistral, Gemma 1–3), a direct
//!   port of llama.cpp's algorithm ([`spm`]).
//!
//! Special tokens (control, user-defined, unknown) are split out of the text before either
//! algorithm runs, in llama.cpp's order (`tokenizer_st_partition`): longest token text first.
//! Control tokens are recognised only when the caller asks (`parse_special`), so text typed
//! by a user cannot inject `<|im_start|>`; user-defined tokens are always recognised.
//!
//! Decoding works on bytes: each token is turned into the bytes it stands for, and text is
//! produced only from complete UTF-8 sequences ([`StreamDecoder`] for streaming).

mod bpe;
mod load;
mod spm;
mod stream;

pub use stream::{StreamDecoder, TokenDecoder};

use load::{read_id, read_scores, read_strings, read_tokens, read_types};

use std::collections::HashMap;

use crate::gguf::Metadata;

/// Why a tokenizer could not be built, or an encode/decode failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.ggml.model` names a vocabulary type this crate does not implement.
    #[error("unsupported tokenizer model {model:?} (supported: \"gpt2\", \"llama\")")]
    Unsupported { model: String },
    /// `tokenizer.ggml.pre` names a BPE pre-tokenizer this crate does not implement.
    #[error("unsupported BPE pre-tokenizer {pre:?}")]
    UnsupportedPre { pre: String },
    /// A required metadata key is absent.
    #[error("missing tokenizer metadata key {key}")]
    MissingKey { key: &'static str },
    /// A metadata key has the wrong type, length or range.
    #[error("bad tokenizer metadata {key}: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    /// A token id outside the vocabulary was given to decode.
    #[error("token id {id} is outside the vocabulary ({vocab_size} tokens)")]
    InvalidToken { id: u32, vocab_size: usize },
    /// Building the `tokenizers` pipeline failed (e.g. a pre-tokenizer regex).
    #[error("cannot build tokenizer: {0}")]
    Build(String),
    /// The `tokenizers` pipeline failed on an input.
    #[error("cannot encode text: {0}")]
    Encode(String),
}

/// Token types as GGUF stores them (`tokenizer.ggml.token_type`, llama.cpp `llama_token_type`).
mod token_type {
    pub const NORMAL: u8 = 1;
    pub const UNKNOWN: u8 = 2;
    pub const CONTROL: u8 = 3;
    pub const USER_DEFINED: u8 = 4;
    pub const BYTE: u8 = 6;
}

/// Token texts llama.cpp treats as end-of-generation (`llama_vocab::impl::load`, the
/// `special_eog_ids` list); such tokens are also forced to be control tokens.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Token texts llama.cpp takes as the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Fill-in-the-middle tokens llama.cpp also counts as end-of-generation (pad, repo, file separator).
const FIM_EOG_TEXTS: &[&str] = &[
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

#[derive(Clone)]
enum Kind {
    /// Byte-level BPE through the `tokenizers` crate.
    Bpe(Box<tokenizers::Tokenizer>),
    /// SentencePiece BPE: text → id lookup and scores for the merge order.
    Spm {
        token_to_id: HashMap<String, u32>,
        scores: Vec<f32>,
    },
}

/// A special token as the partitioner sees it.
#[derive(Clone)]
struct Special {
    id: u32,
    /// Strip whitespace after the token (llama.cpp's `LLAMA_TOKEN_ATTR_RSTRIP`, set for Phi-3).
    rstrip: bool,
}

/// A GGUF model's tokenizer. Immutable once built; `encode`/`decode` take `&self`.
#[derive(Clone)]
pub struct Tokenizer {
    kind: Kind,
    tokens: Vec<String>,
    types: Vec<u8>,
    /// Control, user-defined and unknown tokens, longest text first.
    specials: Vec<Special>,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field(
                "type",
                &match self.kind {
                    Kind::Bpe(_) => "gpt2",
                    Kind::Spm { .. } => "llama",
                },
            )
            .field("vocab_size", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eog", &self.eog)
            .finish()
    }
}

/// One piece of input after special tokens are split out.
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    ///
    /// Fails with [`TokenizerError::Unsupported`] for vocabulary types other than `gpt2` and
    /// `llama`, [`TokenizerError::UnsupportedPre`] for an unknown `tokenizer.ggml.pre`, and
    /// `MissingKey`/`BadMetadata` for absent or malformed arrays and ids.
    pub fn from_metadata(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
        let model = md
            .get_str("tokenizer.ggml.model")
            .ok_or(TokenizerError::MissingKey {
                key: "tokenizer.ggml.model",
            })?;
        let tokens = read_tokens(md)?;
        let n = tokens.len();
        let mut types = read_types(md, n)?;

        let (kind, mut add_bos, mut add_space_prefix) = match model {
            "gpt2" => {
                let pre_name = md.get_str("tokenizer.ggml.pre").unwrap_or("default");
                let pre =
                    bpe::pre_type(pre_name).ok_or_else(|| TokenizerError::UnsupportedPre {
                        pre: pre_name.to_string(),
                    })?;
                let merges = read_strings(md, "tokenizer.ggml.merges")?.ok_or(
                    TokenizerError::MissingKey {
                        key: "tokenizer.ggml.merges",
                    },
                )?;
                let tok = bpe::build(&tokens, &merges, &pre)?;
                (Kind::Bpe(Box::new(tok)), pre.add_bos, false)
            }
            "llama" => {
                let scores = read_scores(md, n)?;
                let mut token_to_id = HashMap::with_capacity(n);
                for (id, t) in tokens.iter().enumerate() {
                    token_to_id.insert(t.clone(), id as u32);
                }
                (
                    Kind::Spm {
                        token_to_id,
                        scores,
                    },
                    true,
                    true,
                )
            }
            other => {
                return Err(TokenizerError::Unsupported {
                    model: other.to_string(),
                })
            }
        };
        let mut add_eos = false;
        if let Some(v) = md.get_bool("tokenizer.ggml.add_bos_token") {
            add_bos = v;
        }
        if let Some(v) = md.get_bool("tokenizer.ggml.add_eos_token") {
            add_eos = v;
        }
        if let Some(v) = md.get_bool("tokenizer.ggml.add_space_prefix") {
            add_space_prefix = v;
        }

        let bos = read_id(md, "tokenizer.ggml.bos_token_id", n)?;
        let eos = read_id(md, "tokenizer.ggml.eos_token_id", n)?;
        let mut eot = read_id(md, "tokenizer.ggml.eot_token_id", n)?;
        let eom = read_id(md, "tokenizer.ggml.eom_token_id", n)?;

        // End-of-generation set, following llama.cpp: tokens recognised by their text (made
        // control tokens if the converter forgot), then eos/eot/eom.
        let mut eog: Vec<u32> = Vec::new();
        for (id, text) in tokens.iter().enumerate() {
            let id = id as u32;
            if eot.is_none() && EOT_TEXTS.contains(&text.as_str()) {
                eot = Some(id);
            }
            if EOG_TEXTS.contains(&text.as_str()) || FIM_EOG_TEXTS.contains(&text.as_str()) {
                types[id as usize] = token_type::CONTROL;
                eog.push(id);
            }
        }
        for id in [eos, eot, eom].into_iter().flatten() {
            if !eog.contains(&id) {
                eog.push(id);
            }
        }
        eog.sort_unstable();

        // Phi-3 strips whitespace after its special tokens (llama.cpp keys this on the name).
        let name = md.get_str("general.name").unwrap_or("").to_lowercase();
        let phi3 = name.contains("phi-3") || name.contains("phi3");
        let mut specials: Vec<Special> = (0..n)
            .filter(|&i| {
                matches!(
                    types[i],
                    token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
                )
            })
            .map(|i| {
                let t = tokens[i].as_str();
                let rstrip = phi3 && !matches!(t, "<unk>" | "<s>" | "<|endoftext|>");
                Special {
                    id: i as u32,
                    rstrip,
                }
            })
            .collect();
        specials.sort_by(|a, b| {
            tokens[b.id as usize]
                .len()
                .cmp(&tokens[a.id as usize].len())
        });

        Ok(Tokenizer {
            kind,
            tokens,
            types,
            specials,
            bos,
            eos,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }

    /// Encodes text into token ids.
    ///
    /// `add_special` adds BOS (and EOS) where the model asks for them
    /// (`tokenizer.ggml.add_bos_token` / `add_eos_token`, with llama.cpp's defaults: SPM adds
    /// BOS, most BPE vocabularies do not). `parse_special` recognises control-token text such
    /// as `<|im_start|>` as that token; without it such text is encoded as plain characters.
    /// Fails only if the model asks for a BOS/EOS it does not define, or on an internal
    /// `tokenizers` error.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(
                self.bos
                    .ok_or_else(|| missing("tokenizer.ggml.bos_token_id"))?,
            );
        }
        match &self.kind {
            Kind::Bpe(tok) => {
                for f in fragments {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(s) => {
                            let enc = tok
                                .encode_fast(s, false)
                                .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                            out.extend_from_slice(enc.get_ids());
                        }
                    }
                }
            }
            Kind::Spm { .. } => {
                // llama.cpp prefixes a space to text at the start and after each special token.
                let mut prev_special = true;
                let mut buf = String::new();
                for f in fragments {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(s) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('▁');
                            }
                            for ch in s.chars() {
                                buf.push(if ch == ' ' { '▁' } else { ch });
                            }
                            spm::tokenize(self, &buf, &mut out);
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(
                self.eos
                    .ok_or_else(|| missing("tokenizer.ggml.eos_token_id"))?,
            );
        }
        Ok(out)
    }

    /// Decodes ids to text, rendering control tokens (BOS, `<|im_end|>`…) as their text, like
    /// llama.cpp's `llama_detokenize(…, unparse_special = true)`. Use [`Tokenizer::decode_with`]
    /// to drop control tokens. Bytes that do not form valid UTF-8 become U+FFFD. Fails with
    /// [`TokenizerError::InvalidToken`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_with(ids, false)
    }

    /// Decodes ids to text; with `skip_control`, control and unknown tokens produce nothing
    /// (llama.cpp's `unparse_special = false`). Errors as [`Tokenizer::decode`].
    pub fn decode_with(&self, ids: &[u32], skip_control: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip_space = self.add_space_prefix;
        for &id in ids {
            let start = bytes.len();
            self.append_token_bytes(id, !skip_control, &mut bytes)?;
            if strip_space && bytes.len() > start {
                if bytes[start] == b' ' {
                    bytes.remove(start);
                }
                strip_space = false;
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The raw vocabulary entry for an id (`Ġhello`, `▁hello`, `<0x0A>`, `<|im_end|>`), or
    /// `None` outside the vocabulary.
    pub fn token_piece(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The bytes a token stands for when decoded (control tokens rendered as their text).
    /// A token may carry part of a UTF-8 character; `None` outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.append_token_bytes(id, true, &mut out).ok()?;
        Some(out)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token, if the model defines one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the model defines one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `encode(…, add_special = true, …)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Tokens that end generation, sorted: EOS, EOT, and control tokens such as
    /// `<|im_end|>`, `<end_of_turn>`, `<|endoftext|>` (llama.cpp's `llama_vocab::is_eog`).
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog
    }

    /// Whether a token ends generation (see [`Tokenizer::eog_tokens`]).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// Whether a token is a control token (BOS, EOS, chat markers); false outside the vocabulary.
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&token_type::CONTROL)
    }

    fn append_token_bytes(
        &self,
        id: u32,
        render_control: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), TokenizerError> {
        let text = self
            .tokens
            .get(id as usize)
            .ok_or(TokenizerError::InvalidToken {
                id,
                vocab_size: self.tokens.len(),
            })?;
        match self.types[id as usize] {
            token_type::CONTROL | token_type::UNKNOWN => {
                if render_control {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            token_type::USER_DEFINED => out.extend_from_slice(text.as_bytes()),
            token_type::NORMAL => match self.kind {
                Kind::Bpe(_) => bpe::byte_level_decode(text, out),
                Kind::Spm { .. } => out.extend_from_slice(text.replace('▁', " ").as_bytes()),
            },
            token_type::BYTE => {
                if let Some(b) = parse_byte_token(text) {
                    out.push(b);
                }
            }
            // unused (5) and undefined tokens decode to nothing, as in llama.cpp
            _ => {}
        }
        Ok(())
    }

    /// Splits special-token text out of `text`, as llama.cpp's `tokenizer_st_partition`:
    /// for each special token, longest first, every occurrence in every remaining text
    /// fragment becomes a token fragment.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(text));
        for sp in &self.specials {
            let ty = self.types[sp.id as usize];
            if !parse_special && (ty == token_type::CONTROL || ty == token_type::UNKNOWN) {
                continue;
            }
            let needle = self.tokens[sp.id as usize].as_str();
            if needle.is_empty()
                || !frags
                    .iter()
                    .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(pos) = rest.find(needle) {
                    if pos > 0 {
                        next.push(Fragment::Text(&rest[..pos]));
                    }
                    next.push(Fragment::Token(sp.id));
                    rest = &rest[pos + needle.len()..];
                    if sp.rstrip {
                        rest = rest.trim_start_matches(|c: char| {
                            matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
                        });
                    }
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }
}

impl spm::SpmVocab for Tokenizer {
    fn token_id(&self, text: &str) -> Option<u32> {
        match &self.kind {
            Kind::Spm { token_to_id, .. } => token_to_id.get(text).copied(),
            Kind::Bpe(_) => None,
        }
    }
    fn score(&self, id: u32) -> f32 {
        match &self.kind {
            Kind::Spm { scores, .. } => scores.get(id as usize).copied().unwrap_or(0.0),
            Kind::Bpe(_) => 0.0,
        }
    }
    fn byte_token(&self, byte: u8) -> Option<u32> {
        // llama.cpp: the `<0xNN>` token, else the one-byte text token (ASCII only here).
        self.token_id(&format!("<0x{byte:02X}>")).or_else(|| {
            if byte.is_ascii() {
                self.token_id(&(byte as char).to_string())
            } else {
                None
            }
        })
    }
}

fn missing(key: &'static str) -> TokenizerError {
    TokenizerError::BadMetadata {
        key,
        reason: "add_special asks for this token but the model does not define it".into(),
    }
}

/// `<0xNN>` → the byte NN.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;
