//! UTF-8-safe incremental decoding of generated tokens.

use super::{Tokenizer, TokenizerError};

/// Incremental decoder for streaming generated tokens: each [`StreamDecoder::push`] returns
/// the text that became complete, never half of a multi-byte character (a character split
/// across tokens, as byte-fallback and byte-level vocabularies do for emoji and CJK, is held
/// back until its last byte arrives). The concatenation of all `push` results and
/// [`StreamDecoder::flush`] equals [`Tokenizer::decode_with`] on the same ids.
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    state: TokenDecoder,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder that renders control tokens as their text (like [`Tokenizer::decode`]).
    pub fn new(tokenizer: &'t Tokenizer) -> StreamDecoder<'t> {
        StreamDecoder { tokenizer, state: TokenDecoder::new(tokenizer) }
    }

    /// A decoder that drops control tokens (like `decode_with(ids, true)`).
    pub fn skipping_control(tokenizer: &'t Tokenizer) -> StreamDecoder<'t> {
        StreamDecoder { tokenizer, state: TokenDecoder::skipping_control(tokenizer) }
    }

    /// Adds one token; returns the newly completed text (possibly empty). Fails with
    /// [`TokenizerError::InvalidToken`] for an id outside the vocabulary (the decoder is unchanged).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        self.state.push(self.tokenizer, id)
    }

    /// Returns whatever is left (an incomplete character becomes U+FFFD) and resets.
    pub fn flush(&mut self) -> String {
        self.state.flush()
    }
}

/// The state of a [`StreamDecoder`] without the borrow of its tokenizer, for owners that
/// keep a decoder beside the tokenizer (an engine's generation in progress). Pass the same
/// tokenizer to every call.
#[derive(Debug, Clone)]
pub struct TokenDecoder {
    pending: Vec<u8>,
    strip_space: bool,
    skip_control: bool,
}

impl TokenDecoder {
    /// Renders control tokens as their text.
    pub fn new(tokenizer: &Tokenizer) -> TokenDecoder {
        TokenDecoder { pending: Vec::new(), strip_space: tokenizer.add_space_prefix, skip_control: false }
    }

    /// Drops control tokens.
    pub fn skipping_control(tokenizer: &Tokenizer) -> TokenDecoder {
        TokenDecoder { skip_control: true, ..TokenDecoder::new(tokenizer) }
    }

    /// See [`StreamDecoder::push`].
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        let start = self.pending.len();
        tokenizer.append_token_bytes(id, !self.skip_control, &mut self.pending)?;
        if self.strip_space && self.pending.len() > start {
            if self.pending[start] == b' ' {
                self.pending.remove(start);
            }
            self.strip_space = false;
        }
        Ok(self.take_complete())
    }

    /// See [`StreamDecoder::flush`].
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            let rest = &self.pending[consumed..];
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // the prefix was just validated, so this cannot fail
                    out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                    consumed += valid;
                    match e.error_len() {
                        // an invalid sequence: replace it, as from_utf8_lossy does
                        Some(len) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed += len;
                        }
                        // an incomplete character at the end: wait for more bytes
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }
}
