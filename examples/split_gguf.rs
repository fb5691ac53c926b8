//! Splits a GGUF file as llama.cpp's `gguf-split --split --split-max-tensors N` does, byte for
//! byte (tests/split_real.rs checks the parts against gguf-split's own on the default model):
//! `split_gguf IN OUT_DIR MAX_TENSORS PREFIX` writes `OUT_DIR/PREFIX-00001-of-0000K.gguf`, ….
//! For the split-model tests (native and browser), which split a real model at test time.

#[path = "../tests/common/synthetic_build.rs"]
mod synthetic_build;

use std::path::PathBuf;
use std::process::ExitCode;

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out, max, prefix] = args.as_slice() else {
        return Err("usage: split_gguf IN OUT_DIR MAX_TENSORS PREFIX".into());
    };
    let max: usize = max.parse().ok().filter(|&n| n > 0).ok_or("MAX_TENSORS is a positive number")?;
    let bytes = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    hearth::gguf::parse_header(&bytes).map_err(|e| format!("{input}: {e}"))?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let parts = synthetic_build::split_gguf(&bytes, max);
    let count = u16::try_from(parts.len()).map_err(|_| "more than 65535 parts")?;
    for (i, p) in parts.iter().enumerate() {
        let name = hearth::gguf::split::part_name(prefix, i as u16, count);
        std::fs::write(out.join(&name), p).map_err(|e| format!("{name}: {e}"))?;
        println!("{name}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("split_gguf: {e}");
            ExitCode::FAILURE
        }
    }
}
