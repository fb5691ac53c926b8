//! Constrained decoding on the three test models (SmolLM2: byte-level BPE, Gemma 3: SentencePiece
//! with byte fallback, Qwen2.5: byte-level BPE with 150k tokens): every output of 22 JSON
//! Schemas, greedy and at temperature 0.8, parses and validates (the `jsonschema` crate);
//! regex and Lark outputs match; bad constraints fail before any token and the session stays
//! usable. Schemas are bounded (maxLength, maxItems, integer ranges) so each output is short.

mod common;

use hearth::backend::cpu::CpuBackend;
use hearth::engine::{Constraint, EngineError, FinishReason, GenerateParams, SamplerParams, Session};
use hearth::template::ChatMessage;
use serde_json::{json, Value};

/// An object with exactly these properties (`required` listed), no others.
fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn str_max(n: usize) -> Value {
    json!({"type": "string", "maxLength": n})
}

fn schemas() -> Vec<Value> {
    let s8 = str_max(8);
    vec![
        obj(json!({"name": s8}), &["name"]),
        obj(json!({"age": {"type": "integer", "minimum": 0, "maximum": 120}}), &["age"]),
        obj(json!({"color": {"enum": ["red", "green", "blue"]}}), &["color"]),
        obj(json!({"ok": {"type": "boolean"}}), &["ok"]),
        obj(json!({"person": obj(json!({"first": s8, "last": s8}), &["first", "last"])}), &["person"]),
        json!({"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}, "minItems": 1, "maxItems": 3}),
        obj(json!({"tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}}), &["tags"]),
        obj(json!({"id": {"type": "integer", "minimum": 1, "maximum": 99}, "note": str_max(6)}), &["id"]),
        obj(json!({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}}), &["code"]),
        obj(json!({"value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, str_max(5)]}}), &["value"]),
        obj(json!({"kind": {"const": "ticket"}, "n": {"type": "integer", "minimum": 0, "maximum": 5}}), &["kind", "n"]),
        obj(json!({"nick": {"type": ["string", "null"], "maxLength": 4}}), &["nick"]),
        obj(json!({"rows": {"type": "array", "maxItems": 2, "items": obj(json!({"id": {"type": "integer", "minimum": 0, "maximum": 99}}), &["id"])}}), &["rows"]),
        obj(json!({"delta": {"type": "integer", "minimum": -5, "maximum": 5}}), &["delta"]),
        obj(json!({"priority": {"enum": ["low", "high"]}, "team": {"enum": ["web", "ops", "hr"]}}), &["priority", "team"]),
        obj(json!({"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}), &["date"]),
        json!({"enum": ["yes", "no"]}),
        obj(json!({"score": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}}), &["score"]),
        obj(json!({"word": {"type": "string", "minLength": 2, "maxLength": 4}}), &["word"]),
        json!({"anyOf": [obj(json!({"kind": {"const": "a"}, "x": {"type": "integer", "minimum": 0, "maximum": 9}}), &["kind", "x"]), obj(json!({"kind": {"const": "b"}, "y": {"type": "boolean"}}), &["kind", "y"])]}),
        obj(json!({"name": str_max(6), "age": {"type": "integer", "minimum": 18, "maximum": 99}, "member": {"type": "boolean"}}), &["name", "age", "member"]),
        obj(json!({"x": {"type": "integer", "minimum": 0, "maximum": 3}, "y": {"type": "boolean"}}), &[]),
    ]
}

fn params(temperature: f32, max_tokens: usize, c: Constraint) -> GenerateParams {
    let sampler = if temperature > 0.0 { SamplerParams { temperature, seed: 11, ..Default::default() } } else { SamplerParams::greedy() };
    GenerateParams { max_tokens, sampler, stop: vec![], constraint: Some(c) }
}

/// Chat models get a chat turn; the base model (Gemma 3 270M) a plain completion.
fn run(s: &mut Session<CpuBackend>, chat: bool, prompt: &str, p: &GenerateParams) -> Result<hearth::engine::Completion, EngineError> {
    let mut streamed = String::new();
    let mut on_delta = |d: &str| {
        streamed.push_str(d);
        true
    };
    let c = if chat {
        s.chat(&[ChatMessage::new("system", "Reply with JSON only."), ChatMessage::new("user", prompt)], p, &mut on_delta)?
    } else {
        s.complete(prompt, p, &mut on_delta)?
    };
    assert_eq!(streamed, c.text, "streamed deltas differ from the text");
    Ok(c)
}

fn schemas_validate_on(file: &str, chat: bool) {
    let mut s = common::load_file(file, CpuBackend::new(), 512);
    let prompt = if chat { "Fill in an example record." } else { "An example record in JSON:\n" };
    for (i, schema) in schemas().into_iter().enumerate() {
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema {i}: {e}"));
        for temperature in [0.0, 0.8] {
            let p = params(temperature, 80, Constraint::JsonSchema(schema.clone()));
            let c = run(&mut s, chat, prompt, &p).unwrap_or_else(|e| panic!("{file} schema {i}: {e}"));
            assert_eq!(c.finish_reason, FinishReason::Stop, "{file} schema {i} t={temperature}: unfinished {:?}", c.text);
            let v: Value = serde_json::from_str(&c.text).unwrap_or_else(|e| panic!("{file} schema {i} t={temperature}: {e}: {:?}", c.text));
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{file} schema {i} t={temperature}: {} does not validate: {errors:?}", c.text);
        }
    }
}

#[test]
fn json_schemas_validate_smollm2() {
    schemas_validate_on("SmolLM2-135M-Instruct.Q4_1.gguf", true);
}

#[test]
fn json_schemas_validate_gemma3_spm() {
    schemas_validate_on("gemma-3-270m-q4_k_m.gguf", false);
}

#[test]
fn json_schemas_validate_qwen2_5() {
    schemas_validate_on("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", true);
}

/// Regex and Lark outputs match (checked with the `regex` crate, anchored).
#[test]
fn regex_and_lark_outputs_match() {
    let cases: Vec<(Constraint, &str)> = vec![
        (Constraint::Regex("(yes|no)".into()), "^(yes|no)$"),
        (Constraint::Regex("[0-9]{3}-[0-9]{4}".into()), "^[0-9]{3}-[0-9]{4}$"),
        (Constraint::Regex("[a-z]{1,8}@example\\.com".into()), "^[a-z]{1,8}@example\\.com$"),
        (Constraint::Regex("The answer is (4|5)\\.".into()), "^The answer is (4|5)\\.$"),
        (Constraint::Lark("start: \"Sentiment: \" LABEL\nLABEL: \"positive\" | \"negative\" | \"neutral\"\n".into()), "^Sentiment: (positive|negative|neutral)$"),
        (Constraint::Lark("start: sum\nsum: NUM (\" + \" NUM)*\nNUM: /[0-9]{1,2}/\n".into()), "^[0-9]{1,2}( \\+ [0-9]{1,2})*$"),
    ];
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        let mut s = common::load_file(file, CpuBackend::new(), 256);
        for (c, re) in &cases {
            let re = regex::Regex::new(re).unwrap();
            for temperature in [0.0, 0.8] {
                let out = run(&mut s, false, "Question: what is 2 + 2? Answer:", &params(temperature, 24, c.clone())).unwrap();
                if out.finish_reason == FinishReason::Length {
                    // An unbounded repetition (the Lark sum) may run to max_tokens: still a prefix.
                    assert!(matches!(c, Constraint::Lark(g) if g.contains('*')), "{file} {c:?}: unfinished {:?}", out.text);
                    continue;
                }
                assert_eq!(out.finish_reason, FinishReason::Stop);
                assert!(re.is_match(&out.text), "{file} {c:?} t={temperature}: {:?}", out.text);
            }
        }
    }
}

/// Forced text is fed without sampling and still counts as (and streams as) output.
#[test]
fn forced_tokens_are_emitted_and_counted() {
    let mut s = common::load(CpuBackend::new());
    let c = run(&mut s, false, "Greeting:", &params(0.0, 32, Constraint::Regex("Hello, world! [0-9]".into()))).unwrap();
    assert!(c.text.starts_with("Hello, world! ") && c.text.len() == 15, "{:?}", c.text);
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert_eq!(c.tokens.len(), c.usage.completion_tokens);
    assert_eq!(s.tokenizer().decode(&c.tokens).unwrap().trim_start(), c.text);
}

#[test]
fn bad_constraints_fail_before_any_token_and_the_session_stays_usable() {
    let mut s = common::load(CpuBackend::new());
    let bad = [
        (Constraint::JsonSchema(json!({"type": "objekt"})), "objekt"),
        (Constraint::JsonSchema(json!([1, 2])), "must be an object"),
        (Constraint::JsonSchema(json!({"type": "string", "minLength": 5, "maxLength": 2})), "nsatisfiable"),
        (Constraint::Regex("([a-z".into()), "regex"),
        (Constraint::Lark("start: missing_rule\n".into()), "missing_rule"),
        (Constraint::Lark("   ".into()), "empty"),
    ];
    for (c, needle) in bad {
        let mut deltas = 0;
        let e = s.complete("Hi", &params(0.0, 8, c.clone()), &mut |_| {
            deltas += 1;
            true
        });
        match e {
            Err(EngineError::BadRequest(m)) => assert!(m.contains(needle), "{c:?}: {m}"),
            other => panic!("{c:?}: expected BadRequest, got {other:?}"),
        }
        assert_eq!(deltas, 0);
    }
    let ok = s.complete("Hi", &params(0.0, 8, Constraint::Regex("(yes|no)".into())), &mut |_| true).unwrap();
    assert!(ok.text == "yes" || ok.text == "no", "{:?}", ok.text);
}

/// A constraint the model cannot finish within max_tokens ends with "length".
#[test]
fn unfinished_constraint_ends_with_length() {
    let mut s = common::load(CpuBackend::new());
    let schema = obj(json!({"text": {"type": "string", "minLength": 40, "maxLength": 60}}), &["text"]);
    let c = s.complete("Write:", &params(0.0, 6, Constraint::JsonSchema(schema)), &mut |_| true).unwrap();
    assert_eq!(c.finish_reason, FinishReason::Length);
    assert_eq!(c.tokens.len(), 6);
    assert!(c.text.starts_with("{\"text\": \""), "{:?}", c.text);
}

/// Runs the built `hearth` binary; returns (exit code, stdout, stderr).
fn hearth(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("hearth starts");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The CLI: `hearth run --json-schema` prints JSON that validates and its grammar timings;
/// `hearth bench --prompt --json-schema` prints the figures bench/structured.py reads (both
/// decodes of the same tokens, the constrained output validating); a constrained bench without
/// --prompt, or --prompt without a constraint, is refused with a clear error.
#[test]
fn cli_run_and_bench_with_a_json_schema() {
    let schema = obj(json!({"name": str_max(12), "age": {"type": "integer", "minimum": 0, "maximum": 120}}), &["name", "age"]);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_person_schema.json");
    std::fs::write(&file, schema.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let prompt = "Alice is 34. Give her name and age as JSON.";

    let (code, out, err) = hearth(&["run", "--chat", "--prompt", prompt, "--json-schema", f, "-n", "32"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert!(validator.is_valid(&v), "{out}");
    assert!(err.contains("[stop |") && err.contains("[constraint | vocab "), "{err}");

    let (code, out, err) = hearth(&["bench", "--prompt", prompt, "--json-schema", f, "--reps", "1", "--tg", "32"]);
    assert_eq!(code, Some(0), "{err}");
    for line in ["vocab (token trie, once per session): ", "constrained samples: ", "constrained: ", "unconstrained: ", "grammar per token: ", "compile: "] {
        assert!(out.lines().any(|l| l.starts_with(line)), "no {line:?} line in {out}");
    }
    let tokens = out.lines().find_map(|l| l.strip_prefix("output tokens: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(tokens.ends_with("finish stop"), "{tokens}");
    let json = out.lines().find_map(|l| l.strip_prefix("output: ")).unwrap();
    assert!(validator.is_valid(&serde_json::from_str(json).unwrap()), "{json}");
    for l in out.lines().filter(|l| l.starts_with("constrained: ") || l.starts_with("unconstrained: ")) {
        let tps: f64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(tps.is_finite() && tps > 0.0, "{l}");
    }

    let (code, _, err) = hearth(&["bench", "--json-schema", f, "--reps", "1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("needs --prompt"), "{err}");
    let (code, _, err) = hearth(&["bench", "--prompt", prompt]);
    assert_eq!(code, Some(2), "clap refuses --prompt without a constraint: {err}");
}
