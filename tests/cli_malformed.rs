//! `hearth inspect` and `hearth run` on malformed files: exit status 1 and one clear line on
//! stderr, never a panic (101), an abort (134), a kill or a hang. Runs the built binary.
//!
//! The files are built here with the GGUF writer: the block counts (2^40 aborted,
//! u64::MAX panicked, 0xFFFFFFFF hung), other hyper-parameters that break a rule, a
//! header claiming a huge array, tensors past the end, truncation, garbage, and chat templates
//! that would exhaust memory.

use hearth::gguf::{Value, ValueType};
use hearth::model::synthetic::tiny_llama;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: each run takes well under a second. Only a guard so a hang fails the test
/// instead of stalling the suite; nothing is asserted about speed.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_malformed");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `hearth args…`; returns (exit code, stderr). Kills and fails on the hang guard.
fn hearth(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("hearth {args:?} still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Both commands end with status 1 and exactly one line on stderr, the error, which
/// contains `expect`.
fn assert_clean_failure(path: &Path, expect: &str) {
    let p = path.to_str().unwrap();
    for args in [vec!["inspect", p], vec!["run", "--model", p, "--prompt", "hi", "-n", "1", "--chat"]] {
        let (code, err) = hearth(&args);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:") || l.contains("panicked")).collect();
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(expect), "{args:?}: expected {expect:?} in {err}");
    }
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn malformed_hyper_parameters_exit_1_with_one_line() {
    for (name, n) in [("2^40", 1u64 << 40), ("u64max", u64::MAX), ("u32max", 0xFFFF_FFFF), ("zero", 0)] {
        let p = write(&format!("block_count_{name}.gguf"), &tiny_llama(&[("llama.block_count", Value::U64(n))]));
        assert_clean_failure(&p, &format!("llama.block_count = {n}"));
    }
    let cases: [(&str, Value, &str); 5] = [
        ("heads0", Value::U32(0), "llama.attention.head_count = 0"),
        ("heads_huge", Value::U64(1 << 40), "llama.attention.head_count = 1099511627776"),
        ("ff", Value::U32(17), "llama.feed_forward_length = 17"),
        ("ctx0", Value::U32(0), "llama.context_length = 0"),
        ("embd", Value::U64(u64::MAX), "llama.embedding_length"),
    ];
    for (name, v, expect) in cases {
        let key = match name {
            "heads0" | "heads_huge" => "llama.attention.head_count",
            "ff" => "llama.feed_forward_length",
            "ctx0" => "llama.context_length",
            _ => "llama.embedding_length",
        };
        let p = write(&format!("{name}.gguf"), &tiny_llama(&[(key, v)]));
        assert_clean_failure(&p, expect);
    }
}

#[test]
fn malformed_bytes_exit_1_with_one_line() {
    let good = tiny_llama(&[]);
    let p = write("truncated.gguf", &good[..good.len() / 2]);
    assert_clean_failure(&p, "truncated.gguf");
    let p = write("garbage.gguf", b"this is not a model at all");
    assert_clean_failure(&p, "not a GGUF file");
    // A header claiming a 2^40-element array.
    let mut b = b"GGUF".to_vec();
    for x in [3u64.to_le_bytes().to_vec()[..4].to_vec(), 0u64.to_le_bytes().to_vec(), 1u64.to_le_bytes().to_vec()] {
        b.extend(x);
    }
    b.extend(3u64.to_le_bytes());
    b.extend(b"big");
    b.extend(9u32.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    let p = write("huge_array.gguf", &b);
    assert_clean_failure(&p, "huge_array.gguf");
    // Tensors past the end: the last bytes cut, the directory intact.
    let p = write("short_data.gguf", &good[..good.len() - 64]);
    assert_clean_failure(&p, "extends past the end of the file");
}

#[test]
fn hostile_chat_templates_exit_1_with_one_line() {
    let doubling = format!("{{% set s = 'x' %}}{}{{{{ s }}}}", "{% set s = s ~ s %}\n".repeat(40));
    for (name, src) in [
        ("indent", "{{ ('x' ~ '\\n' ~ 'y')|indent(4000000000) }}".to_string()),
        ("doubling", doubling),
        ("nested_range", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}".to_string()),
    ] {
        let p = write(&format!("template_{name}.gguf"), &tiny_llama(&[("tokenizer.chat_template", Value::String(src))]));
        let (code, err) = hearth(&["run", "--model", p.to_str().unwrap(), "--prompt", "hi", "-n", "1", "--chat"]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.lines().filter(|l| l.starts_with("error:")).count() == 1 && err.contains("chat template exceeded a limit"), "{name}: {err}");
    }
    // The tiny model itself runs (the checks above are not failing for another reason).
    let p = write("tiny.gguf", &tiny_llama(&[]));
    let (code, err) = hearth(&["run", "--model", p.to_str().unwrap(), "--prompt", "ab", "-n", "2"]);
    assert_eq!(code, Some(0), "{err}");
    let _ = ValueType::U8;
}
