//! Kernel sources, bind-group layouts and the compute-pipeline cache.
//!
//! Each op has one WGSL file, except the weight-reading ops (matvec, matmul, embed): they
//! share `weights.wgsl`, completed by one `dequant_*.wgsl` per block family ([`WEIGHT_KERNELS`]).
//! Each op has a fixed binding signature. Pipelines are specialised with WGSL `override`
//! constants (among them each format's block size and bytes, from `quant`) and cached by a
//! typed [`PipelineKey`].

use super::context::{map_wgpu_error, scoped};
use crate::backend::BackendError;
use crate::quant::GgmlType;
use std::collections::HashMap;

/// A kernel entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Matvec,
    /// The decode matvec with the bias added as it writes (`weights.wgsl`'s `matvec_bias`).
    MatvecBias,
    Matmul,
    Embed,
    RmsNorm,
    Rope,
    /// RoPE with per-pair frequency factors (`rope.wgsl`'s `main_factors`).
    RopeFactors,
    Attention,
    AddAssign,
    Glu,
    Scale,
    Softcap,
    AddBias,
    Copy,
    ArgmaxPartials,
    ArgmaxFinish,
    /// The residual add and the next RMSNorm (`add_rms_norm.wgsl`).
    AddRmsNorm,
    /// RoPE of q and k and the KV-cache store (`rope_kv.wgsl`).
    RopeKv,
    /// 8-bit activations for the integer products (`quantize_q8.wgsl`).
    QuantizeQ8,
    /// The decode matvec with 8-bit activations and integer dots (`weights_q8.wgsl`).
    MatvecQ8,
    /// [`Op::MatvecQ8`] with the bias added as it writes.
    MatvecQ8Bias,
    /// The tiled prefill matmul with 8-bit activations and integer dots.
    MatmulQ8,
}

impl Op {
    /// Every op (the WGSL validation test, `tests/wgsl_validate.rs`, compiles each one's source).
    pub const ALL: &'static [Op] = &[
        Op::Matvec, Op::MatvecBias, Op::Matmul, Op::Embed, Op::RmsNorm, Op::Rope, Op::RopeFactors, Op::Attention,
        Op::AddAssign, Op::Glu, Op::Scale, Op::Softcap, Op::AddBias, Op::Copy, Op::ArgmaxPartials, Op::ArgmaxFinish,
        Op::AddRmsNorm, Op::RopeKv, Op::QuantizeQ8, Op::MatvecQ8, Op::MatvecQ8Bias, Op::MatmulQ8,
    ];

    /// Whether the op reads a quantized weight (its source depends on the block format).
    pub fn reads_weights(self) -> bool {
        matches!(self, Op::Matvec | Op::MatvecBias | Op::Matmul | Op::Embed) || self.integer()
    }

    /// Whether the op is an integer product (8-bit activations; only the formats whose
    /// [`WeightKernel::int8`] is set have one).
    pub fn integer(self) -> bool {
        matches!(self, Op::MatvecQ8 | Op::MatvecQ8Bias | Op::MatmulQ8)
    }
}

/// The WGSL `op` compiles for weight format `ty` (ignored by ops that read no weight), exactly
/// as its pipeline gets it (shared files prepended): `(label, code, entry point)`. For tests
/// that validate every kernel without a GPU.
pub fn kernel_source(op: Op, ty: GgmlType) -> Result<(&'static str, &'static str, &'static str), BackendError> {
    let s = source(PipelineKey { op, ty, variant: 0 })?;
    Ok((s.file, s.code, s.entry))
}

/// What a pipeline is specialised for: the op, the weight block type (F32 for ops without a
/// weight) and an op-specific variant (matvec: its [`MatvecShape::variant`]; glu: GELU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub op: Op,
    pub ty: GgmlType,
    pub variant: u32,
}

/// The launch shape of the decode matvec (`weights.wgsl`'s `WG` and `TPR` overrides): threads
/// per workgroup and threads per row, both powers of two, `4 <= tpr <= wg <= 256`. A
/// workgroup computes `wg / tpr` rows. The per-adapter autotune (`tune.rs`) picks one per
/// block format and row length; every valid shape computes the same products (the workgroup
/// size does not change a row's summation order, the threads per row do: results agree
/// with the scalar reference to rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MatvecShape {
    pub wg: u32,
    pub tpr: u32,
}

impl MatvecShape {
    /// Largest workgroup the kernel's `partial` array holds (and the device limit we ask for).
    pub const MAX_WG: u32 = 256;

    /// The untuned shape: 64 threads, and enough threads per row that each handles about two
    /// of the row's work items (32-element blocks for quantized types, 8-element units for
    /// floats), from 4 to 64.
    pub fn default_for(ty: GgmlType, cols: usize) -> MatvecShape {
        let items = if matches!(ty, GgmlType::F32 | GgmlType::F16) { cols / 8 } else { cols / 32 };
        MatvecShape { wg: 64, tpr: items.div_ceil(2).next_power_of_two().clamp(4, 64) as u32 }
    }

    /// Whether the kernel accepts this shape.
    pub fn valid(self) -> bool {
        self.wg.is_power_of_two() && self.tpr.is_power_of_two() && self.tpr >= 4 && self.tpr <= self.wg && self.wg <= Self::MAX_WG
    }

    /// Rows one workgroup computes.
    pub fn rows_per_group(self) -> usize {
        (self.wg / self.tpr) as usize
    }

    /// The pipeline variant that encodes it.
    pub fn variant(self) -> u32 {
        (self.wg << 16) | self.tpr
    }

    fn from_variant(v: u32) -> MatvecShape {
        MatvecShape { wg: v >> 16, tpr: v & 0xffff }
    }
}

/// How a binding is used by a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The per-call parameters: the uniform ring at a dynamic offset.
    Params,
    /// A read-only storage buffer.
    Read,
    /// A read-write storage buffer.
    Write,
    /// Read-only per-call data (token ids) in the ring, at a dynamic offset.
    RingRead,
}

/// Bindings of each op, as (binding index, slot); binding 0 is always the parameters.
pub fn signature(op: Op) -> &'static [(u32, Slot)] {
    use Slot::*;
    match op {
        Op::Matvec | Op::Matmul => &[(0, Params), (1, Read), (2, Read), (3, Write)],
        Op::MatvecBias => &[(0, Params), (1, Read), (2, Read), (3, Write), (5, Read)],
        Op::Embed => &[(0, Params), (1, Read), (3, Write), (4, RingRead)],
        Op::RmsNorm => &[(0, Params), (1, Read), (2, Read), (3, Write)],
        Op::Rope | Op::Scale | Op::Softcap => &[(0, Params), (1, Write)],
        Op::RopeFactors => &[(0, Params), (1, Write), (2, Read)],
        Op::Attention => &[(0, Params), (1, Read), (2, Read), (3, Read), (4, Write)],
        Op::AddAssign | Op::Glu | Op::AddBias => &[(0, Params), (1, Write), (2, Read)],
        Op::Copy => &[(0, Params), (1, Read), (2, Write)],
        Op::ArgmaxPartials | Op::ArgmaxFinish => &[(0, Params), (1, Read), (2, Write), (3, Write)],
        Op::AddRmsNorm => &[(0, Params), (1, Write), (2, Read), (3, Read), (4, Write)],
        Op::RopeKv => &[(0, Params), (1, Write), (2, Read), (3, Read), (4, Write), (5, Write)],
        Op::QuantizeQ8 => &[(0, Params), (1, Read), (2, Write)],
        Op::MatvecQ8 | Op::MatmulQ8 => &[(0, Params), (1, Read), (6, Read), (3, Write)],
        Op::MatvecQ8Bias => &[(0, Params), (1, Read), (6, Read), (3, Write), (5, Read)],
    }
}

/// Size of the parameter binding (every `Params` struct fits in 64 bytes).
pub const PARAMS_BINDING: u64 = 64;
/// Size of the ring binding for token ids: at most this many tokens per embed dispatch.
pub const TOKENS_PER_DISPATCH: usize = 1024;

struct Source {
    file: &'static str,
    code: &'static str,
    entry: &'static str,
}

/// The kernel source of a weight-reading op for one block family: the shared body
/// `kernels/weights.wgsl` followed by the family's `kernels/dequant_*.wgsl` (see the
/// contract at the top of weights.wgsl). Concatenation is the whole "preprocessor".
macro_rules! weight_kernel {
    ($family:literal) => {
        (
            concat!("weights+dequant_", $family),
            concat!(include_str!("kernels/weights.wgsl"), "\n", include_str!(concat!("kernels/dequant_", $family, ".wgsl"))),
        )
    };
}

/// The integer products' source for one block family: [`weight_kernel`]'s, then
/// `kernels/weights_q8.wgsl` (which calls the family's `qblock`).
macro_rules! int8_kernel {
    ($family:literal) => {
        Some((
            concat!("weights+dequant_", $family, "+weights_q8"),
            concat!(
                include_str!("kernels/weights.wgsl"),
                "\n",
                include_str!(concat!("kernels/dequant_", $family, ".wgsl")),
                "\n",
                include_str!("kernels/weights_q8.wgsl")
            ),
        ))
    };
}

/// A kernel whose shared part lives in another file (WGSL has no includes): `kernels/$common.wgsl`
/// followed by `kernels/$file.wgsl`. The RMS norms share their reduction (so the fused and the
/// plain norm give the same bits), the RoPE kernels their rotation.
macro_rules! with_common {
    ($common:literal, $file:literal) => {
        concat!(include_str!(concat!("kernels/", $common, ".wgsl")), "\n", include_str!(concat!("kernels/", $file, ".wgsl")))
    };
}

/// One block format the weight kernels read: its shader (name, WGSL) and, where two formats
/// share a file, the `override` flag set to `true` for this one. The block's size and bytes
/// come from `quant` (the `BLOCK_ELEMS` and `BLOCK_BYTES` overrides).
pub struct WeightKernel {
    pub ty: GgmlType,
    pub shader: (&'static str, &'static str),
    pub flag: Option<&'static str>,
    /// The integer products' shader (8-bit activations, `dot4I8Packed`), for formats that have one.
    pub int8: Option<(&'static str, &'static str)>,
}

/// Every block format with a GPU kernel, once (the weight upload, the pipelines and the
/// GPU-vs-CPU checks all read this list). Adding one: a `dequant_*.wgsl` file (or a flag in
/// an existing one) and a row here.
pub const WEIGHT_KERNELS: &[WeightKernel] = &[
    WeightKernel { ty: GgmlType::F32, shader: weight_kernel!("float"), flag: None, int8: None },
    WeightKernel { ty: GgmlType::F16, shader: weight_kernel!("float"), flag: Some("F16"), int8: None },
    WeightKernel { ty: GgmlType::Q4_0, shader: weight_kernel!("q4"), flag: None, int8: int8_kernel!("q4") },
    WeightKernel { ty: GgmlType::Q4_1, shader: weight_kernel!("q4"), flag: Some("Q4_1"), int8: int8_kernel!("q4") },
    WeightKernel { ty: GgmlType::Q5_0, shader: weight_kernel!("q5_0"), flag: None, int8: int8_kernel!("q5_0") },
    WeightKernel { ty: GgmlType::Q8_0, shader: weight_kernel!("q8_0"), flag: None, int8: int8_kernel!("q8_0") },
    WeightKernel { ty: GgmlType::Q4_K, shader: weight_kernel!("q4_k"), flag: None, int8: int8_kernel!("q4_k") },
    WeightKernel { ty: GgmlType::Q5_K, shader: weight_kernel!("q4_k"), flag: Some("Q5_K"), int8: int8_kernel!("q4_k") },
    WeightKernel { ty: GgmlType::Q6_K, shader: weight_kernel!("q6_k"), flag: None, int8: int8_kernel!("q6_k") },
];

/// The [`WEIGHT_KERNELS`] row of `ty`, or `None` when no kernel reads that block format.
pub fn weight_kernel(ty: GgmlType) -> Option<&'static WeightKernel> {
    WEIGHT_KERNELS.iter().find(|k| k.ty == ty)
}

fn source(key: PipelineKey) -> Result<Source, BackendError> {
    let family = |entry| -> Result<Source, BackendError> {
        let (file, code) = weight_kernel(key.ty).ok_or(BackendError::UnsupportedType { op: "matmul", ty: key.ty })?.shader;
        Ok(Source { file, code, entry })
    };
    let int8 = |entry| -> Result<Source, BackendError> {
        let (file, code) = weight_kernel(key.ty).and_then(|k| k.int8).ok_or(BackendError::UnsupportedType { op: "matmul (8-bit activations)", ty: key.ty })?;
        Ok(Source { file, code, entry })
    };
    let single = |file, code| Ok(Source { file, code, entry: "main" });
    match key.op {
        Op::Matvec => family("matvec"),
        Op::MatvecBias => family("matvec_bias"),
        Op::Matmul => family("matmul"),
        Op::Embed => family("embed"),
        Op::RmsNorm => single("norm_common+rms_norm", with_common!("norm_common", "rms_norm")),
        Op::Rope => single("rope_common+rope", with_common!("rope_common", "rope")),
        Op::RopeFactors => Ok(Source { file: "rope_common+rope", code: with_common!("rope_common", "rope"), entry: "main_factors" }),
        Op::Attention => single("attention", include_str!("kernels/attention.wgsl")),
        Op::AddAssign => single("add_assign", include_str!("kernels/add_assign.wgsl")),
        Op::Glu => single("glu", include_str!("kernels/glu.wgsl")),
        Op::Scale => single("scale", include_str!("kernels/scale.wgsl")),
        Op::Softcap => single("softcap", include_str!("kernels/softcap.wgsl")),
        Op::AddBias => single("add_bias", include_str!("kernels/add_bias.wgsl")),
        Op::Copy => single("copy", include_str!("kernels/copy.wgsl")),
        Op::ArgmaxPartials => {
            Ok(Source { file: "argmax", code: include_str!("kernels/argmax.wgsl"), entry: "partial_max" })
        }
        Op::ArgmaxFinish => Ok(Source { file: "argmax", code: include_str!("kernels/argmax.wgsl"), entry: "finish" }),
        Op::AddRmsNorm => single("norm_common+add_rms_norm", with_common!("norm_common", "add_rms_norm")),
        Op::RopeKv => single("rope_common+rope_kv", with_common!("rope_common", "rope_kv")),
        Op::QuantizeQ8 => single("quantize_q8", include_str!("kernels/quantize_q8.wgsl")),
        Op::MatvecQ8 => int8("matvec_q8"),
        Op::MatvecQ8Bias => int8("matvec_q8_bias"),
        Op::MatmulQ8 => int8("matmul_q8"),
    }
}

/// The `override` values of a pipeline (names must exist in the kernel file).
fn constants(key: PipelineKey) -> Vec<(&'static str, f64)> {
    let mut c = Vec::new();
    match key.op {
        Op::Matvec | Op::MatvecBias | Op::Matmul | Op::Embed | Op::MatvecQ8 | Op::MatvecQ8Bias | Op::MatmulQ8 => {
            // The layout facts, from quant's table: no block size is written in WGSL.
            c.push(("BLOCK_ELEMS", key.ty.block_size() as f64));
            c.push(("BLOCK_BYTES", key.ty.type_size() as f64));
            if let Some(flag) = weight_kernel(key.ty).and_then(|k| k.flag) {
                c.push((flag, 1.0));
            }
            if matches!(key.op, Op::Matvec | Op::MatvecBias) {
                let m = MatvecShape::from_variant(key.variant);
                c.push(("WG", f64::from(m.wg)));
                c.push(("TPR", f64::from(m.tpr)));
            } else if matches!(key.op, Op::MatvecQ8 | Op::MatvecQ8Bias) {
                // The int8 matvec keeps its built-in 64 threads (not tuned): variant = TPR.
                c.push(("TPR", f64::from(key.variant)));
            }
        }
        Op::Glu => c.push(("GELU", f64::from(key.variant))),
        _ => {}
    }
    c
}

/// Shader modules, layouts and pipelines, created on first use and kept for the device's life.
#[derive(Default)]
pub struct PipelineCache {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<Op, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
}

impl PipelineCache {
    /// Whether the pipeline for `key` exists already.
    pub fn contains(&self, key: PipelineKey) -> bool {
        self.pipelines.contains_key(&key)
    }

    /// The bind-group layout of `op`.
    pub fn layout(&mut self, device: &wgpu::Device, op: Op) -> &wgpu::BindGroupLayout {
        &self
            .layouts
            .entry(op)
            .or_insert_with(|| {
                let entries: Vec<_> = signature(op)
                    .iter()
                    .map(|&(binding, slot)| wgpu::BindGroupLayoutEntry {
                        binding,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: match slot {
                            Slot::Params => wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Uniform,
                                has_dynamic_offset: true,
                                min_binding_size: None,
                            },
                            Slot::Read | Slot::Write | Slot::RingRead => wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Storage { read_only: slot != Slot::Write },
                                has_dynamic_offset: slot == Slot::RingRead,
                                min_binding_size: None,
                            },
                        },
                        count: None,
                    })
                    .collect();
                let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("hearth"),
                    entries: &entries,
                });
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some("hearth"),
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
                (bgl, pl)
            })
            .0
    }

    /// The pipeline for `key`, compiled on first use.
    ///
    /// Errors: [`BackendError::UnsupportedType`] for a block type without a kernel,
    /// [`BackendError::DeviceLost`] when the device rejects the shader (a bug).
    pub fn pipeline(&mut self, device: &wgpu::Device, key: PipelineKey) -> Result<&wgpu::ComputePipeline, BackendError> {
        if !self.pipelines.contains_key(&key) {
            let src = source(key)?;
            self.layout(device, key.op);
            let modules = &mut self.modules;
            let layout = self.layouts.get(&key.op).map(|l| &l.1);
            let consts = constants(key);
            let (pipeline, err) = scoped(device, wgpu::ErrorFilter::Validation, || {
                let module = modules.entry(src.file).or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(src.file),
                        source: wgpu::ShaderSource::Wgsl(src.code.into()),
                    })
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(src.entry),
                    layout,
                    module,
                    entry_point: Some(src.entry),
                    compilation_options: wgpu::PipelineCompilationOptions { constants: &consts, ..Default::default() },
                    cache: None,
                })
            });
            if let Some(e) = err {
                return Err(map_wgpu_error(&e, &format!("pipeline {key:?}"), 0));
            }
            self.pipelines.insert(key, pipeline);
        }
        self.pipelines
            .get(&key)
            .ok_or_else(|| BackendError::DeviceLost(format!("pipeline {key:?} missing from cache")))
    }
}
