//! Chat templates: renders a conversation into the prompt text a model was trained on.
//!
//! GGUF files carry the Hugging Face Jinja template in `tokenizer.chat_template`. It is
//! rendered with `minijinja` configured like `transformers` (`trim_blocks`, `lstrip_blocks`,
//! no trailing newline kept, Python string methods such as `.strip()` via `pycompat`, the
//! `raise_exception` and `strftime_now` functions, `bos_token`/`eos_token` variables).
//!
//! Templates come from untrusted files, so every resource a render can use is bounded, and
//! every failure is a [`TemplateError`], never a panic, an abort or a hang:
//! - the source: at most [`MAX_TEMPLATE_BYTES`];
//! - instructions: minijinja's fuel ([`FUEL`]) and recursion limit;
//! - memory: every string and sequence a render creates is charged to a byte budget
//!   ([`RENDER_BUDGET_BYTES`] plus [`BUDGET_PER_INPUT_BYTE`] per byte of the conversation;
//!   vendored minijinja, `vendor/minijinja/HEARTH-PATCH.md`), so `{% set s = s ~ s %}`
//!   forty times stops after a few doublings; operations that size an allocation by an
//!   argument (`indent`, `format` widths, `*`, `replace`, `join`, `slice`, `batch`) check it
//!   before allocating, and format widths are capped at 4096;
//! - output: at most [`MAX_OUTPUT_BYTES`] plus twice the conversation's size.
//!
//! A template that hits one of these limits is [`TemplateError::Limit`]. [`ChatTemplate::new`]
//! renders two probe conversations, so a template that exhausts a limit on an ordinary
//! conversation fails the load (the whole model, `INVALID_MODEL` in JS), like a template that
//! does not parse. A template that only misbehaves on some conversations fails those requests.

use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::gguf::Metadata;

/// One message of a conversation (OpenAI shape: `role` is "system", "user", "assistant"…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why a chat template could not be loaded or rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The model has no `tokenizer.chat_template`: chat is unavailable (raw completion works).
    #[error("the model has no chat template")]
    NoTemplate,
    /// The template does not parse.
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// The template called `raise_exception(message)` (e.g. roles out of order).
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed otherwise (an undefined operation, a wrong type…).
    #[error("chat template failed: {0}")]
    Render(String),
    /// The template is larger than [`MAX_TEMPLATE_BYTES`], or a render exceeded a limit
    /// (fuel, recursion, memory budget, output size): see the module doc.
    #[error("chat template exceeded a limit: {0}")]
    Limit(String),
}

/// Instructions a template may execute per render. HF templates render a conversation in a
/// few thousand; this bounds a hostile template's loop without limiting real ones.
pub const FUEL: u64 = 5_000_000;
/// Largest template source accepted (real ones are 1–20 KB).
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;
/// Bytes of strings and sequences one render may create, besides the conversation's share.
pub const RENDER_BUDGET_BYTES: usize = 64 << 20;
/// Budget added per byte of the conversation (templates copy each message a few times).
pub const BUDGET_PER_INPUT_BYTE: usize = 16;
/// Longest rendered text, besides twice the conversation's size.
pub const MAX_OUTPUT_BYTES: usize = 8 << 20;
/// Marks errors raised by the template's own `raise_exception`.
const RAISED: &str = "\u{0}raise_exception\u{0}";
const NAME: &str = "chat";

/// A compiled chat template with the model's BOS/EOS token texts.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: Option<String>,
    eos: Option<String>,
    now_unix: Option<i64>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

impl ChatTemplate {
    /// The template in `tokenizer.chat_template`, with `bos_token`/`eos_token` taken from
    /// `tokenizer.ggml.tokens` at the BOS/EOS ids. [`TemplateError::NoTemplate`] when the key
    /// is absent; [`TemplateError::Syntax`] when it does not parse.
    pub fn from_metadata(md: &Metadata) -> Result<ChatTemplate, TemplateError> {
        let source = md
            .get_str("tokenizer.chat_template")
            .ok_or(TemplateError::NoTemplate)?;
        let token = |key: &str| -> Option<String> {
            let id = md.get_u64(key)?;
            let tokens = md.get_array("tokenizer.ggml.tokens")?;
            tokens
                .get(usize::try_from(id).ok()?)?
                .as_str()
                .map(str::to_string)
        };
        ChatTemplate::new(
            source,
            token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"),
        )
    }

    /// Compiles `source`; `bos`/`eos` become the `bos_token`/`eos_token` variables (empty
    /// strings when `None`). [`TemplateError::Syntax`] when the template does not parse.
    pub fn new(
        source: &str,
        bos: Option<String>,
        eos: Option<String>,
    ) -> Result<ChatTemplate, TemplateError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::Limit(format!(
                "the template has {} bytes, more than {MAX_TEMPLATE_BYTES}",
                source.len()
            )));
        }
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(bounded_methods::call);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{RAISED}{message}"),
                ))
            },
        );
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let t = ChatTemplate {
            env,
            bos,
            eos,
            now_unix: Some(0),
        };
        t.probe()?;
        Ok(ChatTemplate {
            now_unix: None,
            ..t
        })
    }

    /// Renders two ordinary conversations; a limit hit on either fails (see the module doc).
    /// Other errors are left to request time: a template may legitimately refuse a
    /// conversation shape (`raise_exception`), and the probe cannot know which it expects.
    fn probe(&self) -> Result<(), TemplateError> {
        let probes = [
            vec![ChatMessage::new("user", "Hello")],
            vec![
                ChatMessage::new("system", "You are helpful."),
                ChatMessage::new("user", "Hello"),
                ChatMessage::new("assistant", "Hi!"),
                ChatMessage::new("user", "How are you?"),
            ],
        ];
        for messages in &probes {
            if let Err(e @ TemplateError::Limit(_)) = self.render(messages, true) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sets the clock `strftime_now` reads (Unix seconds, UTC). Natively the default is the
    /// system clock; in the browser (no clock in `wasm32-unknown-unknown`) pass `Date.now()`,
    /// otherwise `strftime_now` renders 1970-01-01.
    pub fn set_now(&mut self, unix_seconds: i64) {
        self.now_unix = Some(unix_seconds);
    }

    /// Renders a conversation. With `add_generation_prompt`, the text ends with the opening
    /// of the assistant's turn, ready for generation. Errors: [`TemplateError::Raised`] with
    /// the template's message, or [`TemplateError::Render`].
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let now = self.now_unix.unwrap_or_else(system_now);
        let strftime_now =
            move |format: String| -> Result<String, Error> { Ok(strftime(now, &format)) };
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_deref().unwrap_or(""),
            eos_token => self.eos.as_deref().unwrap_or(""),
            strftime_now => minijinja::Value::from_function(strftime_now),
        };
        let input: usize = messages
            .iter()
            .map(|m| m.role.len().saturating_add(m.content.len()))
            .fold(0, usize::saturating_add);
        let budget = RENDER_BUDGET_BYTES.saturating_add(input.saturating_mul(BUDGET_PER_INPUT_BYTE));
        let mut out = CappedWriter {
            text: Vec::new(),
            cap: MAX_OUTPUT_BYTES.saturating_add(input.saturating_mul(2)),
            overflowed: false,
        };
        let (result, spent) = minijinja::budget::with_budget(budget, || {
            let r = tmpl.render_captured_to(ctx, &mut out);
            (r, minijinja::budget::is_spent())
        });
        match result {
            Ok(_) => String::from_utf8(out.text)
                .map_err(|_| TemplateError::Render("the output is not UTF-8".into())),
            Err(_) if out.overflowed => Err(TemplateError::Limit(format!(
                "the output exceeds {} bytes",
                out.cap
            ))),
            Err(e) if spent => Err(TemplateError::Limit(format!(
                "{} (budget {budget} bytes)",
                describe(&e)
            ))),
            Err(e) if is_limit(&e) => Err(TemplateError::Limit(describe(&e))),
            Err(e) => Err(match e.detail().and_then(|d| d.strip_prefix(RAISED)) {
                Some(message) => TemplateError::Raised(message.to_string()),
                None => TemplateError::Render(describe(&e)),
            }),
        }
    }
}

/// True for the errors of a bound: fuel, and those minijinja (and the patch) report as
/// invalid operations with a fixed message (recursion, repetition, widths, the budget).
fn is_limit(e: &Error) -> bool {
    const LIMIT_MESSAGES: [&str; 4] = ["recursion limit", "memory budget", "too large", "too many elements"];
    let text = describe(e);
    e.kind() == ErrorKind::OutOfFuel || LIMIT_MESSAGES.iter().any(|m| text.contains(m))
}

/// The render's output, refusing to grow past `cap` bytes.
struct CappedWriter {
    text: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len().saturating_add(buf.len()) > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("chat template output too long"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Python string methods (`minijinja_contrib::pycompat`), with the two whose result size an
/// argument multiplies (`replace`, `join`) checked against the render's budget first.
mod bounded_methods {
    use minijinja::value::{Value, ValueKind};
    use minijinja::{Error, ErrorKind, State};

    fn too_large() -> Error {
        Error::new(ErrorKind::InvalidOperation, "the result would exceed the template's memory budget")
    }

    fn fits(n: Option<usize>) -> Result<(), Error> {
        match (minijinja::budget::remaining(), n) {
            (None, _) => Ok(()),
            (Some(left), Some(n)) if n <= left => Ok(()),
            _ => Err(too_large()),
        }
    }

    /// Length of `s.replace(from, to)` (an empty `from` matches around every character).
    fn replaced_len(s: &str, from: &str, to: &str) -> Option<usize> {
        let matches = if from.is_empty() { s.chars().count() + 1 } else { s.matches(from).count() };
        s.len().checked_sub(matches.checked_mul(from.len())?)?.checked_add(matches.checked_mul(to.len())?)
    }

    pub(super) fn call(state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
        if let (ValueKind::String, Some(s)) = (value.kind(), value.as_str()) {
            match (method, args) {
                ("replace", [from, to, ..]) => {
                    if let (Some(from), Some(to)) = (from.as_str(), to.as_str()) {
                        fits(replaced_len(s, from, to))?;
                    }
                }
                ("join", [items, ..]) => {
                    let mut total = Some(0usize);
                    for (i, item) in items.try_iter()?.enumerate() {
                        let len = item.as_str().map_or_else(|| item.to_string().len(), str::len);
                        let sep = if i > 0 { s.len() } else { 0 };
                        total = total.and_then(|t| t.checked_add(len)?.checked_add(sep));
                        fits(total)?;
                    }
                }
                _ => {}
            }
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    }
}

/// The error with its cause chain and template line, without the internal marker.
fn describe(e: &Error) -> String {
    let mut s = e.to_string().replace(RAISED, "");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(not(target_arch = "wasm32"))]
fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
fn system_now() -> i64 {
    0 // std has no clock on wasm32-unknown-unknown (SystemTime::now panics); see `set_now`
}

/// A small `strftime` for the formats chat templates use (Llama 3.x: "%d %b %Y"):
/// %Y %y %m %d %e %B %b %A %a %H %M %S %j %%; other specifiers are copied through.
fn strftime(unix: i64, format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out += &y.to_string(),
            Some('y') => out += &format!("{:02}", y.rem_euclid(100)),
            Some('m') => out += &format!("{m:02}"),
            Some('d') => out += &format!("{d:02}"),
            Some('e') => out += &format!("{d:2}"),
            Some('B') => out += MONTHS[(m - 1) as usize],
            Some('b') => out += &MONTHS[(m - 1) as usize][..3],
            Some('A') => out += DAYS[weekday],
            Some('a') => out += &DAYS[weekday][..3],
            Some('H') => out += &format!("{:02}", secs / 3600),
            Some('M') => out += &format!("{:02}", secs / 60 % 60),
            Some('S') => out += &format!("{:02}", secs % 60),
            Some('j') => out += &format!("{yday:03}"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant, "chrono-compatible low-level date algorithms").
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01 (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value;

    fn user(s: &str) -> ChatMessage {
        ChatMessage::new("user", s)
    }

    #[test]
    fn missing_template_is_no_template() {
        assert!(matches!(
            ChatTemplate::from_metadata(&Metadata::default()),
            Err(TemplateError::NoTemplate)
        ));
    }

    #[test]
    fn metadata_supplies_bos_and_eos() {
        let md = Metadata::from_entries(vec![
            (
                "tokenizer.chat_template".into(),
                Value::String("{{ bos_token }}{{ messages[0].content }}{{ eos_token }}".into()),
            ),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(
                    crate::gguf::ValueType::String,
                    vec![Value::String("<s>".into()), Value::String("</s>".into())],
                ),
            ),
            ("tokenizer.ggml.bos_token_id".into(), Value::U32(0)),
            ("tokenizer.ggml.eos_token_id".into(), Value::U32(1)),
        ]);
        let t = ChatTemplate::from_metadata(&md).unwrap();
        assert_eq!(t.render(&[user("hi")], false).unwrap(), "<s>hi</s>");
    }

    #[test]
    fn malformed_templates_are_errors() {
        for src in [
            "{% for m in messages %}",
            "{{ messages[0].content ",
            "{% if %}{% endif %}",
            "{% endfor %}",
        ] {
            assert!(
                matches!(
                    ChatTemplate::new(src, None, None),
                    Err(TemplateError::Syntax(_))
                ),
                "{src}"
            );
        }
        // fails only at render time
        let t = ChatTemplate::new("{{ messages[0].content + 1 }}", None, None).unwrap();
        assert!(matches!(
            t.render(&[user("x")], false),
            Err(TemplateError::Render(_))
        ));
    }

    #[test]
    fn raise_exception_carries_its_message() {
        let t = ChatTemplate::new("{% if messages[0].role != 'system' %}{{ raise_exception('System message required') }}{% endif %}", None, None).unwrap();
        match t.render(&[user("x")], false) {
            Err(TemplateError::Raised(m)) => assert_eq!(m, "System message required"),
            other => panic!("{other:?}"),
        }
    }

    /// Templates that would hang or exhaust memory (the among them) fail the load,
    /// each with `Limit`, quickly.
    #[test]
    fn hostile_templates_fail_the_load() {
        let doubling = format!("{{% set s = 'x' %}}{}{{{{ s|length }}}}", "{% set s = s ~ s %}\n".repeat(40));
        let plus_doubling = format!("{{% set s = 'x' %}}{}{{{{ s|length }}}}", "{% set s = s + s %}\n".repeat(40));
        let seq_doubling = format!("{{% set l = [1] %}}{}{{{{ l|join }}}}", "{% set l = l + l %}\n".repeat(40));
        let ns_loop = "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}";
        let macro_doubling = "{% macro f(s, n) %}{% if n > 0 %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ f('x', 64) }}";
        let hostile = [
            "{{ ('x' ~ '\n' ~ 'y')|indent(4000000000) }}",
            "{{ ('x' ~ '\n' ~ 'y')|indent(width=4000000000) }}",
            doubling.as_str(),
            plus_doubling.as_str(),
            seq_doubling.as_str(),
            ns_loop,
            macro_doubling,
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{{ '%999999999999s'|format('x') }}",
            "{{ '%.999999999999f'|format(1.5) }}",
            "{{ '{:>999999999999}'.format('x') }}",
            "{{ 'x' * 1000000000000 }}",
            "{% set s = 'x' * 100000 %}{{ s.replace('', 'y' * 100000) }}",
            "{% set s = 'x' * 100000 %}{{ s|replace('x', 'y' * 100000) }}",
            "{% set l = ['x' * 1000000] * 100000 %}{{ l|join }}",
            "{% set l = ['x' * 1000000] * 100000 %}{{ ''.join(l) }}",
            "{{ range(10)|batch(1000000000000) }}",
            "{{ range(10)|slice(1000000000000) }}",
            "{{ [1, 2]|tojson(indent=1000000000000) }}",
            "{% set big = 'x' * 10000 %}{% for i in range(100000) %}{{ big }}{% endfor %}",
        ];
        for src in hostile {
            match ChatTemplate::new(src, None, None) {
                Err(TemplateError::Limit(_)) => {}
                other => panic!("{src}: {other:?}"),
            }
        }
        let huge = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(matches!(ChatTemplate::new(&huge, None, None), Err(TemplateError::Limit(_))));
    }

    /// A template that explodes only on some conversations loads; those renders fail with
    /// `Limit`, the others work.
    #[test]
    fn conversation_dependent_limits_fail_only_that_render() {
        let src = "{% if messages|length > 5 %}{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{% endif %}{{ messages[0].content }}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        assert_eq!(t.render(&[user("hi")], false).unwrap(), "hi");
        assert!(matches!(t.render(&vec![user("hi"); 6], false), Err(TemplateError::Limit(_))));
        assert_eq!(t.render(&[user("again")], false).unwrap(), "again");
    }

    /// Real renders stay far below the limits: a conversation of 4 MB renders.
    #[test]
    fn large_conversations_render() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>' + '\n' }}{% endfor %}",
            None,
            None,
        )
        .unwrap();
        let big = "y".repeat(1 << 20);
        let out = t.render(&vec![user(&big); 4], false).unwrap();
        assert!(out.len() > 4 << 20);
    }

    #[test]
    fn python_string_methods_and_whitespace_control() {
        let src = "{% for m in messages %}\n  {{ m.content.strip().upper() }}|{{ m.role.startswith('us') }}\n{% endfor %}\n";
        let t = ChatTemplate::new(src, None, None).unwrap();
        assert_eq!(t.render(&[user("  hi  ")], false).unwrap(), "  HI|True\n");
    }

    #[test]
    fn strftime_now_formats_the_given_clock() {
        let mut t =
            ChatTemplate::new("{{ strftime_now('%d %b %Y %A %H:%M:%S %j') }}", None, None).unwrap();
        t.set_now(1_732_446_000); // 2024-11-24 11:00:00 UTC, a Sunday
        assert_eq!(
            t.render(&[], false).unwrap(),
            "24 Nov 2024 Sunday 11:00:00 329"
        );
        assert_eq!(strftime(0, "%Y-%m-%d %a"), "1970-01-01 Thu");
        assert_eq!(strftime(951_782_400, "%Y-%m-%d"), "2000-02-29");
    }
}
