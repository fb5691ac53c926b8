//! Every `.wgsl` kernel must be valid WGSL on its own (no preprocessor), for an adapter
//! without optional features (no shader-f16, no subgroups): a shader that fails to parse
//! or validate fails `cargo test`, on any machine, GPU or not.

use std::path::Path;

#[test]
fn every_wgsl_kernel_validates_alone() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/gpu/kernels");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("kernels directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("read kernel");
        let name = path.display().to_string();
        let module = match naga::front::wgsl::parse_str(&src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {}", e.emit_to_string(&src)));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            // unpack2x16float is core WGSL; naga gates it behind this capability, which wgpu
            // grants on every backend but downlevel GL. No shader-f16, no subgroups.
            naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
        );
        if let Err(e) = validator.validate(&module) {
            failures.push(format!("{name}: {}", e.emit_to_string(&src)));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "invalid kernels:\n{}", failures.join("\n"));
    assert!(checked >= 13, "expected every kernel file, found {checked}");
}
