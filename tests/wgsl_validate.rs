//! Every WGSL kernel must be valid WGSL for an adapter without optional features (no
//! shader-f16, no subgroups): a shader that fails to parse or validate fails `cargo test`,
//! on any machine, GPU or not.
//!
//! Each file is one kernel, except the weight-reading kernels: `weights.wgsl` (matvec,
//! matmul, embed) is compiled followed by one `dequant_*.wgsl` per block family, exactly as
//! `src/backend/gpu/pipelines.rs` concatenates them, so each such pair is validated.

use std::path::Path;

fn validate(name: &str, src: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| format!("{name}: {}", e.emit_to_string(src)))?;
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        // unpack2x16float is core WGSL; naga gates it behind this capability, which wgpu
        // grants on every backend but downlevel GL. No shader-f16, no subgroups.
        naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
    );
    validator.validate(&module).map_err(|e| format!("{name}: {}", e.emit_to_string(src)))?;
    Ok(())
}

#[test]
fn every_wgsl_kernel_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/gpu/kernels");
    let weights = std::fs::read_to_string(dir.join("weights.wgsl")).expect("weights.wgsl");
    let (mut alone, mut families) = (0, 0);
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("kernels directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
        let src = std::fs::read_to_string(&path).expect("read kernel");
        if file == "weights.wgsl" {
            continue; // validated with each dequant_*.wgsl
        }
        let result = if file.starts_with("dequant_") {
            families += 1;
            validate(&format!("weights.wgsl + {file}"), &format!("{weights}\n{src}"))
        } else {
            alone += 1;
            validate(&file, &src)
        };
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "invalid kernels:\n{}", failures.join("\n"));
    assert!(alone >= 10, "expected every single-file kernel, found {alone}");
    assert!(families >= 6, "expected every dequant_*.wgsl family, found {families}");
}
