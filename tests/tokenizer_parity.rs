//! Tokenizer parity with llama.cpp, the reference implementation.
//!
//! - SmolLM2 (the default model): `tests/goldens/tokenizer_smollm2.json`, written by
//!   `tests/goldens/make_tokenizer_goldens.py` from llama-cpp-python 0.3.36, for every
//!   combination of add_bos and parse_special. Needs `models/cache/` (`make models`).
//! - llama.cpp's own vocabulary test vectors (`models/ggml-vocab-*.gguf` + `.inp`/`.out`,
//!   checked by llama.cpp's `tests/test-tokenizer-0.cpp` with add_special = false and
//!   parse_special = false). Needs `.cache/llama-vocab/` (`models/fetch_test_vocabs.sh`).
//!
//! Missing inputs make these tests fail, never skip.

mod common;

use common::{read_metadata, root, smollm2_path};
use hearth::tokenizer::{StreamDecoder, Tokenizer};

#[derive(serde::Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    add_bos: bool,
    special: bool,
    ids: Vec<u32>,
    decoded: String,
}

#[test]
fn smollm2_matches_llama_cpp() {
    let model = smollm2_path();
    let tok = Tokenizer::from_metadata(&read_metadata(&model)).expect("SmolLM2 tokenizer");
    let golden: Golden =
        serde_json::from_str(include_str!("goldens/tokenizer_smollm2.json")).expect("golden JSON");
    assert!(golden.cases.len() >= 240);

    let mut failures = Vec::new();
    for c in &golden.cases {
        let ids = tok.encode(&c.text, c.add_bos, c.special).unwrap();
        if ids != c.ids {
            failures.push(format!(
                "encode({:?}, add_bos={}, special={}): got {ids:?}, llama.cpp {:?}",
                c.text, c.add_bos, c.special, c.ids
            ));
            continue;
        }
        let decoded = tok.decode(&ids).unwrap();
        if decoded != c.decoded {
            failures.push(format!(
                "decode({ids:?}): got {decoded:?}, llama.cpp {:?}",
                c.decoded
            ));
        }
        // byte-level BPE is lossless: plain text always comes back unchanged
        if !c.special && decoded != c.text {
            failures.push(format!("round trip of {:?} gave {decoded:?}", c.text));
        }
        let mut stream = StreamDecoder::new(&tok);
        let mut streamed = String::new();
        for &id in &ids {
            streamed += &stream.push(id).unwrap();
        }
        streamed += &stream.flush();
        if streamed != decoded {
            failures.push(format!("stream decode of {:?} gave {streamed:?}", c.text));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        golden.cases.len(),
        failures.join("\n")
    );

    // SmolLM2 ends turns with <|im_end|> and documents with <|endoftext|>
    let im_end = tok.encode("<|im_end|>", false, true).unwrap();
    let eot = tok.encode("<|endoftext|>", false, true).unwrap();
    assert!(tok.eog_tokens().contains(&im_end[0]) && tok.eog_tokens().contains(&eot[0]));
    assert!(tok.is_control(im_end[0]));
}

/// The test vectors for one of llama.cpp's vocabularies: (input, expected ids).
fn vocab_tests(name: &str) -> (Tokenizer, Vec<(String, Vec<u32>)>) {
    let dir = root().join(".cache/llama-vocab");
    let gguf = dir.join(format!("ggml-vocab-{name}.gguf"));
    assert!(
        gguf.exists(),
        "{} is missing: run `sh models/fetch_test_vocabs.sh` to fetch llama.cpp's vocabulary test files",
        gguf.display()
    );
    let tok =
        Tokenizer::from_metadata(&read_metadata(&gguf)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    // same parsing as test-tokenizer-0.cpp: inputs separated by the marker, one output line each
    let mut inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if inputs.last() == Some(&"") {
        inputs.pop(); // the C++ reader stops at the end of the file
    }
    let outputs: Vec<&str> = out.lines().collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree"
    );
    let cases = inputs
        .iter()
        .zip(&outputs)
        .map(|(i, o)| {
            (
                i.to_string(),
                o.split_whitespace().map(|t| t.parse().unwrap()).collect(),
            )
        })
        .collect();
    (tok, cases)
}

/// Checks every vector; `lossless` also requires decode(encode(text)) == text.
fn check_vocab(name: &str, lossless: bool) {
    let (tok, cases) = vocab_tests(name);
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let got = tok.encode(text, false, false).unwrap();
        if &got != want {
            failures.push(format!("{text:?}: got {got:?}, llama.cpp {want:?}"));
        } else if lossless && tok.decode(&got).unwrap() != *text {
            failures.push(format!(
                "{text:?}: decodes to {:?}",
                tok.decode(&got).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn vocab_llama_spm() {
    check_vocab("llama-spm", true);
}

#[test]
fn vocab_phi_3() {
    check_vocab("phi-3", true);
}

#[test]
fn vocab_gpt_2() {
    check_vocab("gpt-2", true);
}

#[test]
fn vocab_qwen2() {
    check_vocab("qwen2", true);
}

#[test]
fn vocab_qwen35() {
    check_vocab("qwen35", true);
}

#[test]
fn vocab_llama_bpe() {
    check_vocab("llama-bpe", true);
}

#[test]
fn vocab_starcoder() {
    check_vocab("starcoder", true);
}

#[test]
fn vocab_refact() {
    check_vocab("refact", true);
}

#[test]
fn vocab_command_r() {
    check_vocab("command-r", true);
}

#[test]
fn vocab_mpt() {
    check_vocab("mpt", true);
}

#[test]
fn vocab_falcon() {
    check_vocab("falcon", true);
}

#[test]
fn vocab_deepseek_coder() {
    check_vocab("deepseek-coder", true);
}

#[test]
fn vocab_deepseek_llm() {
    check_vocab("deepseek-llm", true);
}
