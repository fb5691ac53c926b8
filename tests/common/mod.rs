//! Helpers shared by the integration tests.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use hearth::gguf::{parse_header, Error as GgufError, Metadata};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default test model; panics (the test fails, never skips) when `make models` has not run.
pub fn smollm2_path() -> PathBuf {
    let model = root().join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.exists(),
        "{} is missing: run `make models` to fetch the test model",
        model.display()
    );
    model
}

/// Reads only as much of a GGUF file as its header needs, and returns its metadata.
pub fn read_metadata(path: &Path) -> Metadata {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    let mut want: u64 = 4 << 20;
    loop {
        (&mut file)
            .take(want.saturating_sub(bytes.len() as u64))
            .read_to_end(&mut bytes)
            .unwrap();
        match parse_header(&bytes) {
            Ok(h) => return h.metadata,
            Err(GgufError::Truncated { needed }) if bytes.len() as u64 == want => {
                want = needed.max(want * 2)
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}
