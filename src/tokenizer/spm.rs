//! SentencePiece-style BPE (GGUF `tokenizer.ggml.model = "llama"`: Llama 1/2, Mistral, Gemma).
//!
//! A port of llama.cpp's `llm_tokenizer_spm_session` (`src/llama-vocab.cpp`), kept exact
//! because generation quality depends on reproducing the model's own segmentation: start
//! from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
//! vocabulary entry with the highest score (ties: leftmost), then emit each final symbol
//! as its token, as its recorded sub-merges, or as `<0xNN>` byte tokens (byte fallback).
//!
//! Why not `tokenizers`' BPE model: it needs an explicit merge table, which for SPM
//! vocabularies must be derived from scores (≈ 500 k pairs for Gemma 3's 262 k vocabulary,
//! tens of MiB in wasm memory), and its tie-breaking between pairs that produce tokens of
//! equal score differs from llama.cpp's. This direct port needs only the score array.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// One symbol of the working sequence: a byte range of the input and its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of two adjacent symbols.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair (llama.cpp's comparator).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Looks up what the SPM algorithm needs from the vocabulary.
pub(crate) trait SpmVocab {
    /// The id of a token whose text is exactly `text`.
    fn token_id(&self, text: &str) -> Option<u32>;
    /// The score of a token (0 when the file has no scores).
    fn score(&self, id: u32) -> f32;
    /// The `<0xNN>` token for a byte, or the fallback the vocabulary defines.
    fn byte_token(&self, byte: u8) -> Option<u32>;
}

/// Tokenizes one raw-text fragment whose spaces are already escaped as `▁`.
pub(crate) fn tokenize(vocab: &impl SpmVocab, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, ch)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: ch.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
    }
    let n = symbols.len();
    for i in 0..n.saturating_sub(1) {
        symbols[i].next = Some(i + 1);
    }

    let mut queue = BinaryHeap::new();
    // text of a merged pair -> the two symbols it came from (last writer wins, as upstream)
    let mut rev_merge: HashMap<&str, (usize, usize)> = HashMap::new();
    for i in 1..n {
        try_add_bigram(vocab, text, &symbols, i - 1, i, &mut queue, &mut rev_merge);
    }

    while let Some(bigram) = queue.pop() {
        let (l, r) = (bigram.left, bigram.right);
        // Skip pairs that went stale because one side was merged since.
        if symbols[l].len == 0
            || symbols[r].len == 0
            || symbols[l].len + symbols[r].len != bigram.len
        {
            continue;
        }
        symbols[l].len += symbols[r].len;
        symbols[r].len = 0;
        symbols[l].next = symbols[r].next;
        if let Some(next) = symbols[r].next {
            symbols[next].prev = Some(l);
        }
        if let Some(prev) = symbols[l].prev {
            try_add_bigram(vocab, text, &symbols, prev, l, &mut queue, &mut rev_merge);
        }
        if let Some(next) = symbols[l].next {
            try_add_bigram(vocab, text, &symbols, l, next, &mut queue, &mut rev_merge);
        }
    }

    let mut i = Some(0);
    while let Some(idx) = i {
        resegment(vocab, text, &symbols, idx, &rev_merge, out, 0);
        i = symbols[idx].next;
    }
}

fn try_add_bigram<'t>(
    vocab: &impl SpmVocab,
    text: &'t str,
    symbols: &[Symbol],
    left: usize,
    right: usize,
    queue: &mut BinaryHeap<Bigram>,
    rev_merge: &mut HashMap<&'t str, (usize, usize)>,
) {
    let start = symbols[left].start;
    let len = symbols[left].len + symbols[right].len;
    let Some(piece) = text.get(start..start + len) else {
        return;
    };
    let Some(id) = vocab.token_id(piece) else {
        return;
    };
    queue.push(Bigram {
        left,
        right,
        score: vocab.score(id),
        len,
    });
    rev_merge.insert(piece, (left, right));
}

fn resegment(
    vocab: &impl SpmVocab,
    text: &str,
    symbols: &[Symbol],
    idx: usize,
    rev_merge: &HashMap<&str, (usize, usize)>,
    out: &mut Vec<u32>,
    depth: usize,
) {
    let sym = symbols[idx];
    let piece = &text[sym.start..sym.start + sym.len];
    if let Some(id) = vocab.token_id(piece) {
        out.push(id);
        return;
    }
    // A merged symbol is never longer than the text, so depth is bounded by its length;
    // the explicit guard keeps a pathological vocabulary from exhausting the wasm stack.
    match rev_merge.get(piece) {
        Some(&(l, r)) if depth < 4096 => {
            resegment(vocab, text, symbols, l, rev_merge, out, depth + 1);
            resegment(vocab, text, symbols, r, rev_merge, out, depth + 1);
        }
        _ => {
            for &b in piece.as_bytes() {
                if let Some(id) = vocab.byte_token(b) {
                    out.push(id);
                }
            }
        }
    }
}
