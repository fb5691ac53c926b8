// F32 / F16 weights for weights.wgsl. F16 is decoded with unpack2x16float, so no
// shader-f16 extension is needed. Rows are multiples of 8 elements (matvec, embed) or 32
// (matmul), hence 4-byte aligned. A matvec work item is one unit of 8 columns.

override F16: bool = false;    // false: F32 weights, true: F16 weights

const ITEM_UNITS: u32 = 1u;

// Unit u holds columns 8u .. 8u + 8.
fn dequant(row_byte: u32, u: u32) -> Unit {
    if (F16) {
        let i = row_byte / 4u + 4u * u;
        return Unit(vec4<f32>(unpack2x16float(w[i]), unpack2x16float(w[i + 1u])),
                    vec4<f32>(unpack2x16float(w[i + 2u]), unpack2x16float(w[i + 3u])));
    }
    let i = row_byte / 4u + 8u * u;
    return Unit(bitcast<vec4<f32>>(vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u])),
                bitcast<vec4<f32>>(vec4<u32>(w[i + 4u], w[i + 5u], w[i + 6u], w[i + 7u])));
}

fn unit_cols(u: u32) -> vec2<u32> {
    let c = u * 8u;
    return vec2<u32>(c, c + 4u);
}

fn item_dot(row_byte: u32, i: u32, xi: u32) -> f32 {
    return unit_dot(row_byte, i, xi);
}
