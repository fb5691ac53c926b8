//! A real model split into parts: the default registry model (SmolLM2) split as llama.cpp's
//! `gguf-split --split-max-tensors 100` splits it (tests/goldens/split_smollm2.json: the size and
//! SHA-256 of each of gguf-split's parts, made by `make_split.py --real`). The split is made here,
//! at test time, by the same splitter the browser test uses (examples/split_gguf.rs), and must be
//! gguf-split's very bytes; then the CLI, given the first or the last part, generates exactly the
//! unsplit file's greedy text, and `inspect` on a part lists every tensor of the model.

#[path = "common/synthetic_build.rs"]
mod synthetic_build;

use serde::Deserialize;
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Golden {
    model: String,
    max_tensors: usize,
    source_sha256: String,
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    name: String,
    bytes: usize,
    sha256: String,
}

fn sha256(b: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(b))
}

fn hearth(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth")).args(args).output().unwrap();
    assert!(out.status.success(), "hearth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_real_model_split_by_gguf_split_runs_from_any_part_like_the_whole_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(root.join("tests/goldens/split_smollm2.json")).unwrap()).unwrap();
    let whole_path = root.join("models/cache").join(&g.model);
    let whole = std::fs::read(&whole_path).unwrap_or_else(|e| panic!("{}: {e} (make models)", whole_path.display()));
    assert_eq!(sha256(&whole), g.source_sha256, "{} is not the file the golden was split from", g.model);

    let parts = synthetic_build::split_gguf(&whole, g.max_tensors);
    assert_eq!(parts.len(), g.parts.len());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("split_real");
    std::fs::create_dir_all(&dir).unwrap();
    for (p, want) in parts.iter().zip(&g.parts) {
        assert_eq!((p.len(), sha256(p)), (want.bytes, want.sha256.clone()), "{}: not gguf-split's bytes", want.name);
        std::fs::write(dir.join(&want.name), p).unwrap();
    }
    drop((whole, parts));
    let path = |p: &Part| dir.join(&p.name);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (first, last) = (s(&path(&g.parts[0])), s(&path(g.parts.last().unwrap())));

    let listing = hearth(&["inspect", &last]);
    let tensors = |l: &str| l.lines().filter(|l| l.starts_with("  ") && l.contains("blk.")).count();
    assert_eq!(tensors(&listing), tensors(&hearth(&["inspect", &s(&whole_path)])), "{listing}");
    assert!(listing.contains("supported:"), "{listing}");

    let run = |m: &str| hearth(&["run", "--model", m, "--chat", "--prompt", "Name three colours.", "-n", "16", "--ctx", "128"]);
    let want = run(&s(&whole_path));
    assert!(want.split_whitespace().count() >= 3, "the unsplit model's text: {want:?}");
    assert_eq!(run(&first), want, "from the first part");
    assert_eq!(run(&last), want, "from the last part");
    eprintln!("split {} into {} parts: {want:?} from each", g.model, g.parts.len());
    let _ = std::fs::remove_dir_all(&dir);
}
