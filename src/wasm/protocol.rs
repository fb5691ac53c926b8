//! The JSON that crosses the wasm boundary as strings: the requests JS sends
//! (`start_chat`, `start_completion`, `render_chat`) and the answers it parses (`finish_load`,
//! `step`). One serde type per message; the defaults and the validation are the engine's
//! ([`GenerateParams::default`], [`GenerateParams::validate`]), not this module's.
//!
//! The TypeScript side (`www/src/wasm-api.ts`) is checked against these types by shape:
//! [`examples`] gives a value of every message with every optional field set (and one with
//! none set), the test below writes them into `www/types-check/wasm-protocol.ts` typed as the
//! TypeScript interfaces, and `tsc` (tests/browser/types.test.mjs) refuses a missing, extra or
//! differently typed field. Compiled natively too, so that test runs under `cargo test`.

use crate::engine::{Constraint, ConstraintUsage, EngineError, FinishReason, GenerateParams, SamplerParams, Usage};
use crate::template::ChatMessage;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sampling and length fields of a generation request; each one omitted takes the engine's
/// default.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    pub max_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Vec<String>,
    /// `{"json_schema": {…}} | {"regex": "…"} | {"lark": "…"}` (see `engine::Constraint`).
    pub constraint: Option<Constraint>,
}

/// `start_chat`'s request: `{messages, …sampling}`.
#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Text the reply starts with (the Prompt API's `prefix: true` assistant message): written
    /// after the generation prompt, and the model continues it.
    #[serde(default)]
    pub assistant_prefix: String,
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Every field nothing above names (see [`Request`]).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, IgnoredAny>,
}

/// `start_completion`'s request: `{prompt, …sampling}`.
#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub prompt: String,
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Every field nothing above names (see [`Request`]).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, IgnoredAny>,
}

/// A request with flattened sampling fields. serde hands a flattened struct only the fields it
/// names, so `Sampling`'s `deny_unknown_fields` never sees a misspelt one (`"max_token": 5`
/// would be dropped and the default used, silently); the last flattened map collects what no
/// field took, and [`parse_request`] refuses it.
pub trait Request: DeserializeOwned {
    fn unknown(&self) -> &BTreeMap<String, IgnoredAny>;
}

impl Request for ChatRequest {
    fn unknown(&self) -> &BTreeMap<String, IgnoredAny> {
        &self.unknown
    }
}

impl Request for CompletionRequest {
    fn unknown(&self) -> &BTreeMap<String, IgnoredAny> {
        &self.unknown
    }
}

/// [`parse`] plus `BAD_REQUEST` naming the first field the request type does not have.
pub fn parse_request<T: Request>(json: &str) -> Result<T, EngineError> {
    let r: T = parse(json)?;
    match r.unknown().keys().next() {
        Some(k) => Err(EngineError::BadRequest(format!("request: unknown field `{k}`"))),
        None => Ok(r),
    }
}

impl Sampling {
    /// The request's parameters over the engine's defaults ([`GenerateParams::default`]),
    /// checked by the engine's one validation ([`GenerateParams::validate`]). `random_seed`
    /// gives the seed of a request without one. `BAD_REQUEST` for a value out of range.
    pub fn params(&self, random_seed: impl FnOnce() -> u64) -> Result<GenerateParams, EngineError> {
        let g = GenerateParams::default();
        let d = g.sampler;
        let p = GenerateParams {
            max_tokens: self.max_tokens.unwrap_or(g.max_tokens),
            stop: self.stop.clone(),
            constraint: self.constraint.clone(),
            sampler: SamplerParams {
                temperature: self.temperature.unwrap_or(d.temperature),
                top_p: self.top_p.unwrap_or(d.top_p),
                top_k: self.top_k.unwrap_or(d.top_k),
                min_p: self.min_p.unwrap_or(d.min_p),
                repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
                repeat_last_n: d.repeat_last_n,
                seed: self.seed.unwrap_or_else(random_seed),
            },
        };
        p.validate()?;
        Ok(p)
    }
}

/// Parses a request; `BAD_REQUEST` with serde's message for JSON that does not fit `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, EngineError> {
    serde_json::from_str(json).map_err(|e| EngineError::BadRequest(format!("request: {e}")))
}

/// What `finish_load` returns: the loaded model.
#[derive(Serialize, Debug)]
pub struct ModelInfo {
    /// GGUF `general.architecture`.
    pub arch: String,
    /// GGUF `general.name`; empty when the file has none (JS types it as a string).
    pub name: String,
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub has_chat_template: bool,
    /// The backend's own description (adapter name, threads).
    pub backend: String,
}

/// What `step` returns: the text of one token, and at the end why and how many tokens.
#[derive(Serialize, Debug)]
pub struct Step {
    pub delta: String,
    pub done: bool,
    /// `"stop" | "length" | "cancelled"`, on the last step only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'static str>,
    /// On the last step only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<StepUsage>,
}

/// Token counts of a finished generation (OpenAI's `usage`, with `cached_tokens`).
#[derive(Serialize, Debug)]
pub struct StepUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV cache entries were reused.
    pub cached_tokens: usize,
    pub total_tokens: usize,
    /// A constrained generation only: where the grammar's time went (ms from `performance.now()`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<ConstraintUsage>,
}

impl Step {
    /// One step's answer; `finished` is the finish reason and usage of the last one.
    pub fn new(delta: String, finished: Option<(FinishReason, Usage)>) -> Step {
        let usage = finished.map(|(_, u)| StepUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.cached_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            constraint: u.constraint,
        });
        Step { delta, done: finished.is_some(), finish_reason: finished.map(|(r, _)| r.as_str()), usage }
    }
}

/// An example of every message, as `(TypeScript type, JSON)`: the type is what
/// `www/src/wasm-api.ts` declares for it, `Required<…>` where the example sets every optional
/// field (so TypeScript may not declare a field the Rust type lacks). Requests are JSON that
/// [`parse`] must accept; answers are serialized Rust values.
pub fn examples() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let sampling = |constraint: serde_json::Value| {
        json!({
            "max_tokens": 64, "temperature": 0.5, "top_p": 0.9, "top_k": 20, "min_p": 0.05,
            "repeat_penalty": 1.1, "seed": 7, "stop": ["\n\n"], "constraint": constraint,
        })
    };
    let with = |mut base: serde_json::Value, extra: serde_json::Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    let messages = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]);
    let mut out = vec![
        ("Required<WasmChatRequest>", with(json!({"messages": messages, "assistant_prefix": "Sure:"}), sampling(json!({"json_schema": {"type": "object"}})))),
        ("Required<WasmCompletionRequest>", with(json!({"prompt": "Once"}), sampling(json!({"regex": "[a-z]+"})))),
        ("Required<WasmCompletionRequest>", with(json!({"prompt": "Once"}), sampling(json!({"lark": "start: /[a-z]+/"})))),
        ("WasmChatRequest", json!({"messages": messages})),
        ("WasmCompletionRequest", json!({"prompt": ""})),
        ("WasmRenderChatRequest", messages),
    ];
    let info = ModelInfo {
        arch: "llama".into(),
        name: "SmolLM2 135M".into(),
        n_ctx: 2048,
        n_vocab: 49152,
        has_chat_template: true,
        backend: "CPU, 1 thread".into(),
    };
    let usage = Usage { prompt_tokens: 12, cached_tokens: 4, completion_tokens: 3, ..Default::default() };
    let constrained = Usage { constraint: Some(ConstraintUsage { vocab_ms: 9.5, compile_ms: 1.5, grammar_ms: 0.5, masks: 1, mask_ms: 0.25, forced_tokens: 2 }), ..usage };
    let answers = [
        ("Required<WasmModelInfo>", serde_json::to_value(&info)),
        ("WasmStep", serde_json::to_value(Step::new("Hel".into(), None))),
        ("Required<WasmStep>", serde_json::to_value(Step::new("lo".into(), Some((FinishReason::Stop, usage))))),
        ("Required<WasmStep>", serde_json::to_value(Step::new("}".into(), Some((FinishReason::Stop, constrained))))),
        ("Required<WasmStep>", serde_json::to_value(Step::new(String::new(), Some((FinishReason::Length, usage))))),
        ("Required<WasmStep>", serde_json::to_value(Step::new(String::new(), Some((FinishReason::Cancelled, usage))))),
    ];
    for (ty, v) in answers {
        out.push((ty, v.unwrap_or_else(|e| serde_json::Value::String(e.to_string()))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the examples go for `tsc` (tests/browser/types.test.mjs).
    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/types-check/wasm-protocol.ts");

    fn fixture() -> String {
        let mut s = String::from(
            "// Generated by `cargo test --lib wasm::protocol` from the examples in src/wasm/protocol.rs:\n\
             // do not edit. Each value is what Rust sends or accepts, typed as the TypeScript type that\n\
             // describes it (www/src/wasm-api.ts, as built into www/dist); `tsc -p www/types-check`\n\
             // refuses a missing, extra or differently typed field (tests/browser/types.test.mjs).\n\
             import type { WasmChatRequest, WasmCompletionRequest, WasmRenderChatRequest, WasmModelInfo, WasmStep } from \"../dist/wasm-api.js\";\n\n",
        );
        for (i, (ty, v)) in examples().iter().enumerate() {
            s += &format!("export const example{i}: {ty} = {v};\n");
        }
        s
    }

    #[test]
    fn every_request_example_parses_with_every_field_set() {
        for (ty, v) in examples() {
            let json = v.to_string();
            let sampling = match ty {
                "Required<WasmChatRequest>" | "WasmChatRequest" => parse_request::<ChatRequest>(&json).map(|r| r.sampling),
                "Required<WasmCompletionRequest>" | "WasmCompletionRequest" => parse_request::<CompletionRequest>(&json).map(|r| r.sampling),
                "WasmRenderChatRequest" => {
                    parse::<Vec<ChatMessage>>(&json).expect("messages parse");
                    continue;
                }
                _ => continue,
            };
            let s = sampling.unwrap_or_else(|e| panic!("{ty} {json}: {e}"));
            assert!(s.params(|| 1).is_ok(), "{ty} {json}: in range");
            if ty.starts_with("Required<") {
                // Exhaustive (no `..`): a new field must be added here, then to the example,
                // and then TypeScript must declare it too (`Required<…>` + excess property checks).
                let Sampling { max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop, constraint } = s;
                let set = [max_tokens.is_some(), temperature.is_some(), top_p.is_some(), top_k.is_some(), min_p.is_some()]
                    .into_iter()
                    .chain([repeat_penalty.is_some(), seed.is_some(), !stop.is_empty(), constraint.is_some()]);
                assert!(set.into_iter().all(|b| b), "{ty} {json}: every field set");
            }
        }
    }

    #[test]
    fn misspelt_fields_are_refused() {
        for (json, field) in [
            (r#"{"prompt": "a", "max_token": 5}"#, "max_token"),
            (r#"{"prompt": "a", "temperature": 0, "Seed": 1}"#, "Seed"),
        ] {
            let e = parse_request::<CompletionRequest>(json).expect_err(json);
            assert_eq!((e.code(), e.to_string().contains(field)), ("BAD_REQUEST", true), "{json}: {e}");
        }
        let e = parse_request::<ChatRequest>(r#"{"messages": [], "assistant_prefx": "x"}"#).expect_err("chat");
        assert!(e.to_string().contains("assistant_prefx"), "{e}");
        let ok = parse_request::<ChatRequest>(r#"{"messages": [], "assistant_prefix": "x", "max_tokens": 3}"#).expect("known fields");
        assert_eq!((ok.assistant_prefix.as_str(), ok.sampling.max_tokens), ("x", Some(3)));
    }

    #[test]
    fn unknown_constraints_are_refused() {
        let e = parse::<CompletionRequest>(r#"{"prompt": "a", "constraint": {"grammar": "x"}}"#).expect_err("unknown constraint refused");
        assert_eq!(e.code(), "BAD_REQUEST");
    }

    #[test]
    fn defaults_are_the_engines() {
        let p = parse::<CompletionRequest>(r#"{"prompt": "a"}"#).and_then(|r| r.sampling.params(|| 9)).expect("defaults");
        let d = GenerateParams::default();
        assert_eq!(p.max_tokens, d.max_tokens);
        assert_eq!(p.sampler, SamplerParams { seed: 9, ..d.sampler });
        let e = parse::<CompletionRequest>(r#"{"prompt": "a", "temperature": 5}"#).and_then(|r| r.sampling.params(|| 9));
        assert_eq!(e.expect_err("out of the engine's range").code(), "BAD_REQUEST");
    }

    /// Writes the TypeScript fixture when it is out of date and fails (commit the new file),
    /// the way rust-analyzer keeps its generated files: `cargo test` makes it current,
    /// `tsc` then checks it.
    #[test]
    fn typescript_fixture_is_current() {
        let want = fixture();
        let have = std::fs::read_to_string(FIXTURE).unwrap_or_default();
        if have != want {
            std::fs::write(FIXTURE, &want).expect("write the fixture");
            panic!("{FIXTURE} was out of date and has been rewritten: run tests/browser/types.test.mjs and commit it");
        }
    }
}
