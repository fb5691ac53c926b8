//! Chat templates rendered by `hearth::template` against Jinja2 renderings made the way
//! transformers does (`tests/goldens/make_template_goldens.py` → `templates/expected.json`).

mod common;

use common::{read_metadata, root, smollm2_path};
use hearth::template::{ChatMessage, ChatTemplate, TemplateError};

#[derive(serde::Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    template: String,
    file: String,
    bos_token: String,
    eos_token: String,
    conversation: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    expected: Option<String>,
    error: Option<String>,
}

fn template_source(file: &str) -> String {
    std::fs::read_to_string(root().join("tests/goldens/templates").join(file)).unwrap()
}

#[test]
fn renders_like_jinja2() {
    let golden: Golden =
        serde_json::from_str(include_str!("goldens/templates/expected.json")).unwrap();
    assert_eq!(golden.cases.len(), 30);
    let mut failures = Vec::new();
    for c in &golden.cases {
        let t = ChatTemplate::new(
            &template_source(&c.file),
            Some(c.bos_token.clone()),
            Some(c.eos_token.clone()),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", c.template));
        let got = t.render(&c.messages, c.add_generation_prompt);
        let ok = match (&got, &c.expected, &c.error) {
            (Ok(text), Some(want), _) => text == want,
            (Err(TemplateError::Raised(msg)), None, Some(want)) => msg == want,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{} / {} (gen prompt {}): got {got:?}, want {:?}",
                c.template,
                c.conversation,
                c.add_generation_prompt,
                c.expected.as_ref().or(c.error.as_ref())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn smollm2_template_comes_from_the_model_file() {
    let md = read_metadata(&smollm2_path());
    let t = ChatTemplate::from_metadata(&md).unwrap();
    let rendered = t
        .render(&[ChatMessage::new("user", "Hello!")], true)
        .unwrap();
    assert_eq!(
        rendered,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        md.get_str("tokenizer.chat_template").unwrap(),
        template_source("SmolLM2-135M-Instruct.jinja"),
        "the committed copy of SmolLM2's template is stale"
    );
}
