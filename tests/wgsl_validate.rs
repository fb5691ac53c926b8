//! Every WGSL kernel must be valid WGSL for an adapter without optional features (no
//! shader-f16, no subgroups): a shader that fails to parse or validate fails `cargo test`,
//! on any machine, GPU or not.
//!
//! Each kernel is validated exactly as its pipeline compiles it (`kernel_source`: the
//! weight-reading kernels are `weights.wgsl` followed by one `dequant_*.wgsl` per block family;
//! the RMS norms and RoPE kernels get `norm_common.wgsl` / `rope_common.wgsl` prepended), and
//! every `.wgsl` file in the kernels directory must be part of some pipeline.

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
    use hearth::backend::gpu::{kernel_source, Op, WEIGHT_KERNELS};
    use std::collections::BTreeMap;
    // label ("norm_common+rms_norm", "weights+dequant_q4", …) → code: each distinct source once.
    let mut sources = BTreeMap::new();
    for &op in Op::ALL {
        let types: Vec<_> = if op.integer() {
            WEIGHT_KERNELS.iter().filter(|k| k.int8.is_some()).map(|k| k.ty).collect()
        } else if op.reads_weights() {
            WEIGHT_KERNELS.iter().map(|k| k.ty).collect()
        } else {
            vec![hearth::quant::GgmlType::F32]
        };
        for ty in types {
            let (label, code, _) = kernel_source(op, ty).unwrap_or_else(|e| panic!("{op:?} {ty:?}: {e}"));
            sources.insert(label, code);
        }
    }
    let failures: Vec<String> = sources.iter().filter_map(|(label, code)| validate(label, code).err()).collect();
    assert!(failures.is_empty(), "invalid kernels:\n{}", failures.join("\n"));
    // No kernel file outside every pipeline (it would go unvalidated).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/gpu/kernels");
    let used: Vec<&str> = sources.keys().flat_map(|l| l.split('+')).collect();
    for entry in std::fs::read_dir(&dir).expect("kernels directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let stem = path.file_stem().and_then(|f| f.to_str()).unwrap_or_default();
        assert!(used.contains(&stem), "{stem}.wgsl is in no pipeline's source");
    }
    assert!(sources.len() >= 16, "expected every kernel, found {}", sources.len());
}
