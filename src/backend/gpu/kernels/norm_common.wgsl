// Shared by rms_norm.wgsl and add_rms_norm.wgsl (prepended by pipelines.rs): one workgroup
// per row, and the row's sum of squares reduced in one fixed tree order, so the fused and the
// plain norm give the same bits.

override WG: u32 = 64;  // threads per workgroup (≤ 256, power of two)

var<workgroup> partial: array<f32, 256>;

// 1 / sqrt(mean(x²) + eps) of the row, given this thread's partial sum of squares `ss`.
// Every thread of the workgroup must call it (it synchronises the workgroup).
fn inv_rms(lid: u32, ss: f32, dim: u32, eps: f32) -> f32 {
    partial[lid] = ss;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    return inverseSqrt(partial[0] / f32(dim) + eps);
}
