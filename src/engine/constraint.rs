//! Constrained decoding: a JSON Schema, regular expression or Lark grammar turned into a
//! token mask applied before sampling, with the tokens the grammar forces fed without
//! sampling. The grammar engine is `llguidance` (see docs/decisions.md); this file only
//! gives it our vocabulary and drives it one token at a time.
//!
//! The token table is built from our own [`Tokenizer`]: every token's decoded bytes (byte-level
//! BPE and SentencePiece with byte fallback alike), control tokens as `\xFF` + their text
//! (llguidance's convention for special tokens, which no grammar over text can produce), and
//! the model's end-of-generation tokens as the grammar's EOS set.

use super::EngineError;
use crate::tokenizer::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use serde::Deserialize;
use std::sync::Arc;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// What the output must match. Deserialises from `{"json_schema": {…}}`, `{"regex": "…"}`
/// or `{"lark": "…"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Constraint {
    /// A JSON Schema (an object; `{"type": "object"}` for "any JSON object"). The output is
    /// compact JSON with `", "` and `": "` separators.
    JsonSchema(serde_json::Value),
    /// A regular expression the whole output must match (Rust `regex` syntax, no lookaround).
    Regex(String),
    /// A grammar in llguidance's Lark dialect (`start: …`).
    Lark(String),
}

impl Constraint {
    /// The llguidance grammar for this constraint; a JSON Schema that is not an object is refused.
    fn grammar(&self) -> Result<TopLevelGrammar, EngineError> {
        Ok(match self {
            Constraint::JsonSchema(schema) => {
                let mut schema = schema.clone();
                let Some(obj) = schema.as_object_mut() else {
                    return Err(bad("a JSON Schema must be an object"));
                };
                if obj.contains_key("x-guidance") {
                    return Err(bad("JSON Schema: the \"x-guidance\" keyword is not accepted"));
                }
                let opts = JsonCompileOptions {
                    item_separator: ", ".into(),
                    key_separator: ": ".into(),
                    whitespace_flexible: false,
                    ..Default::default()
                };
                let opts = serde_json::to_value(&opts).map_err(|e| bad(&e.to_string()))?;
                obj.insert("x-guidance".into(), opts);
                TopLevelGrammar::from_json_schema(schema)
            }
            Constraint::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Constraint::Lark(g) => {
                if g.trim().is_empty() {
                    return Err(bad("the Lark grammar is empty"));
                }
                TopLevelGrammar::from_lark(g.clone())
            }
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Constraint::JsonSchema(_) => "JSON Schema",
            Constraint::Regex(_) => "regex",
            Constraint::Lark(_) => "Lark grammar",
        }
    }
}

fn bad(msg: &str) -> EngineError {
    EngineError::BadRequest(msg.to_string())
}

/// Our tokenizer as llguidance sees it.
struct Vocab {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
    /// Whether `tokenize_bytes` returns what the model would see (false when the tokenizer
    /// adds a leading space to every text, as SentencePiece with `add_space_prefix` does).
    canonical: bool,
}

impl TokenizerEnv for Vocab {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) if self.canonical => self.tokenizer.encode(text, false, false).unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            _ => self.trie.greedy_tokenize(s),
        }
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.canonical
    }
}

/// The bytes of every token for llguidance's trie: text tokens as they decode, control and
/// unknown tokens as `\xFF` + their text, tokens that decode to nothing (or to a lone 0xFF
/// byte, which would read as the special-token marker) as empty (never allowed).
pub(crate) fn token_table(tokenizer: &Tokenizer) -> Vec<Vec<u8>> {
    (0..tokenizer.vocab_size() as u32)
        .map(|id| {
            if tokenizer.is_control(id) || tokenizer.is_eog(id) {
                let mut b = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                b.extend_from_slice(tokenizer.token_piece(id).unwrap_or_default().as_bytes());
                return b;
            }
            match tokenizer.token_bytes(id) {
                Some(b) if b.first() != Some(&TokTrie::SPECIAL_TOKEN_MARKER) => b,
                _ => Vec::new(),
            }
        })
        .collect()
}

/// Compiles constraints for one model; built once per session (the token trie and
/// llguidance's slicing of the vocabulary cost tens of milliseconds on a 150k vocabulary).
pub(crate) struct Compiler {
    factory: ParserFactory,
    eog: Vec<u32>,
    /// Tokens the tokenizer knows (the model's logits may have more: padding rows).
    n_tokens: u32,
}

impl Compiler {
    /// Fails only for an empty vocabulary or one without end-of-generation token.
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<Compiler, EngineError> {
        let words = token_table(&tokenizer);
        let n = words.len() as u32;
        // The EOS set: the end-of-generation tokens (sorted), EOS first for llguidance.
        let mut eog: Vec<u32> = tokenizer.eog_tokens().iter().copied().chain(tokenizer.eos()).filter(|&t| t < n).collect();
        eog.sort_unstable();
        eog.dedup();
        let Some(&first) = eog.first() else {
            return Err(bad("constrained decoding needs a model with an end-of-generation token"));
        };
        let eos = tokenizer.eos().filter(|&t| t < n).unwrap_or(first);
        let mut eos_first = vec![eos];
        eos_first.extend(eog.iter().copied().filter(|&t| t != eos));
        let info = TokRxInfo { tok_bos: tokenizer.bos().filter(|&t| t < n), ..TokRxInfo::new(n, eos) };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos_first);
        // A probe: the tokenizer is canonical for a text piece when encoding it alone gives
        // exactly its bytes (not a space-prefixed version).
        let probe = "{\"a\": 1}";
        let canonical = tokenizer
            .encode(probe, false, false)
            .map(|ids| ids.iter().flat_map(|&t| tokenizer.token_bytes(t).unwrap_or_default()).collect::<Vec<u8>>() == probe.as_bytes())
            .unwrap_or(false);
        let env: TokEnv = Arc::new(Vocab { trie, tokenizer, canonical });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| bad(&format!("constrained decoding: {e}")))?;
        factory.quiet();
        Ok(Compiler { factory, eog, n_tokens: n })
    }

    /// Compiles a constraint; an invalid or unsupported one fails with `BadRequest` naming the
    /// problem (before any token is generated).
    pub fn compile(&self, c: &Constraint) -> Result<Active, EngineError> {
        let grammar = c.grammar()?;
        let parser = self.factory.create_parser(grammar).map_err(|e| bad(&format!("{}: {e}", c.kind())))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(bad(&format!("{}: {e}", c.kind())));
        }
        Ok(Active { matcher, eog: self.eog.clone(), n_tokens: self.n_tokens })
    }
}

/// A constraint being decoded.
pub(crate) struct Active {
    matcher: Matcher,
    eog: Vec<u32>,
    n_tokens: u32,
}

impl Active {
    fn fail(&self, what: &str, e: impl std::fmt::Display) -> EngineError {
        EngineError::BadRequest(format!("constrained decoding {what}: {e}"))
    }

    /// Whether the grammar is complete and allows nothing more.
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Whether `tok` may come next (an end-of-generation token only where the grammar accepts).
    pub fn allows(&mut self, tok: u32) -> Result<bool, EngineError> {
        if self.eog.binary_search(&tok).is_ok() {
            return self.matcher.is_accepting().map_err(|e| self.fail("failed", e));
        }
        if tok >= self.n_tokens {
            return Ok(false); // a padding row of the output matrix: never allowed
        }
        Ok(self.matcher.validate_tokens(&[tok]).map_err(|e| self.fail("failed", e))? == 1)
    }

    /// Sets the logits of every token the grammar forbids to -inf. Fails if it allows none.
    pub fn mask_logits(&mut self, logits: &mut [f32]) -> Result<(), EngineError> {
        let mask = self.matcher.compute_mask().map_err(|e| self.fail("failed", e))?;
        let accepting = self.matcher.is_accepting().map_err(|e| self.fail("failed", e))?;
        let mut any = false;
        for (id, l) in logits.iter_mut().enumerate() {
            let id = id as u32;
            let ok = if self.eog.binary_search(&id).is_ok() { accepting } else { id < self.n_tokens && mask.is_allowed(id) };
            if ok {
                any = true;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        if !any {
            return Err(self.fail("failed", "the grammar allows no token here"));
        }
        Ok(())
    }

    /// Advances the grammar over a sampled token.
    pub fn consume(&mut self, tok: u32) -> Result<(), EngineError> {
        self.matcher.consume_token(tok).map_err(|e| self.fail("failed", e))
    }

    /// The tokens the grammar forces next (at most `room`), already consumed by the grammar;
    /// the caller feeds them to the model without sampling.
    pub fn take_forced(&mut self, room: usize) -> Result<Vec<u32>, EngineError> {
        if room == 0 || self.matcher.is_stopped() {
            return Ok(Vec::new());
        }
        let mut ff = self.matcher.compute_ff_tokens();
        if let Some(e) = self.matcher.get_error() {
            return Err(self.fail("failed", e));
        }
        if let Some(at) = ff.iter().position(|t| self.eog.binary_search(t).is_ok()) {
            ff.truncate(at);
        }
        ff.truncate(room);
        if !ff.is_empty() {
            self.matcher.consume_tokens(&ff).map_err(|e| self.fail("failed", e))?;
        }
        Ok(ff)
    }
}
