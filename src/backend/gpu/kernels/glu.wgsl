// Gated linear unit of the feed-forward block (Shazeer 2020): gate = act(gate) * up, where
// act is SiLU (SwiGLU) or the tanh approximation of GELU (GeGLU).
override WG: u32 = 256;
override GELU: bool = false;
struct Params { len: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) { return; }
    let g = gate[i];
    var a: f32;
    if (GELU) {
        // tanh saturates long before ±15; clamping avoids inf/inf inside some tanh implementations
        a = 0.5 * g * (1.0 + tanh(clamp(SQRT_2_OVER_PI * (g + 0.044715 * g * g * g), -15.0, 15.0)));
    } else {
        a = g / (1.0 + exp(-g));
    }
    gate[i] = a * up[i];
}
