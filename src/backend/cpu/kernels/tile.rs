//! Four tokens' 8-bit activations interleaved block by block: the operand of the prefill tile
//! kernels that read all four tokens through one pointer.
//!
//! Layout of group `g` (tokens `4g..4g + 4`), block `i`: the 32 quantized values of token 0,
//! then of tokens 1, 2, 3 (128 bytes at `qs[128·i..]`), and the four scales `d[4i..4i + 4]`
//! and block sums `s[4i..4i + 4]`. A kernel then loads the four tokens' scales as one vector
//! and needs one bounds check per block instead of four slices' worth of pointers and
//! lengths (which spilled in the `[Q8Slice; 4]` kernels).

use super::q8::{Q8Acts, Q8Slice, Q8_BLOCK};

/// One group of four tokens (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Q8Tile<'a> {
    pub(super) qs: &'a [i8],
    pub(super) d: &'a [f32],
    pub(super) s: &'a [f32],
    /// `qs` widened to i16 (baseline wasm build: SIMD128 multiplies i16 pairs, not bytes).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    pub(super) qw: &'a [i16],
}

impl Q8Tile<'_> {
    /// Whole blocks all three parts cover.
    #[inline(always)]
    pub(super) fn blocks(&self) -> usize {
        (self.qs.len() / (4 * Q8_BLOCK))
            .min(self.d.len() / 4)
            .min(self.s.len() / 4)
    }

    /// Token `k`'s values, scales and sums, de-interleaved (for checks).
    pub fn token(&self, k: usize) -> (Vec<i8>, Vec<f32>, Vec<f32>) {
        let nb = self.blocks();
        let qs = (0..nb)
            .flat_map(|i| {
                self.qs[(4 * i + k) * Q8_BLOCK..(4 * i + k + 1) * Q8_BLOCK]
                    .iter()
                    .copied()
            })
            .collect();
        let d = (0..nb).map(|i| self.d[4 * i + k]).collect();
        let s = (0..nb).map(|i| self.s[4 * i + k]).collect();
        (qs, d, s)
    }
}

/// The four-token tile kernel: row `row` dotted with the four tokens of `x`.
pub type DotQ8TileFn = fn(row: &[u8], x: Q8Tile<'_>) -> [f32; 4];

/// Weight rows per several-row tile ([`DotQ8TileRowsFn`]).
pub const TILE_ROWS: usize = 4;

/// The several-row tile kernel: [`TILE_ROWS`] rows against the four tokens of `x` (result
/// `[row][token]`), the tokens' bytes loaded once for all the rows. Equal to a
/// [`DotQ8TileFn`] call per row up to f32 rounding; same length contract.
pub type DotQ8TileRowsFn = fn(rows: [&[u8]; TILE_ROWS], x: Q8Tile<'_>) -> [[f32; 4]; TILE_ROWS];

/// One token against [`TILE_ROWS`] rows (result `[row]`) with a [`DotQ8TileFn`]'s float
/// operations for each (row, token): equal to that kernel's result bit for bit. Same length
/// contract as [`DotQ8TileFn`].
pub type DotQ8RowsFn = fn(rows: [&[u8]; TILE_ROWS], x: Q8Slice<'_>) -> [f32; TILE_ROWS];

/// Reusable buffer of the groups of one product's activations.
#[derive(Debug, Default, Clone)]
pub struct Q8Tiles {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    qw: Vec<i16>,
    blocks: usize,
    groups: usize,
}

impl Q8Tiles {
    /// Interleaves the first `4·⌊n/4⌋` tokens of `acts` (`n` tokens of `cols` elements);
    /// `false` (and no groups) when `acts` does not hold `n·cols` elements in whole blocks.
    pub fn fill(&mut self, acts: &Q8Acts, n: usize, cols: usize) -> bool {
        self.groups = 0;
        if cols % Q8_BLOCK != 0 || n.checked_mul(cols) != Some(acts.len()) {
            return false;
        }
        let (blocks, groups) = (cols / Q8_BLOCK, n / 4);
        let x = acts.as_slice();
        self.qs.clear();
        self.d.clear();
        self.s.clear();
        self.qs.reserve(groups * 4 * cols);
        for g in 0..groups {
            for i in 0..blocks {
                for t in 4 * g..4 * g + 4 {
                    let b = t * blocks + i;
                    self.qs
                        .extend_from_slice(&x.qs[b * Q8_BLOCK..(b + 1) * Q8_BLOCK]);
                    self.d.push(x.d[b]);
                    self.s.push(x.s[b]);
                }
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
        {
            self.qw.clear();
            self.qw.extend(self.qs.iter().map(|&q| i16::from(q)));
        }
        (self.blocks, self.groups) = (blocks, groups);
        true
    }

    /// Groups of four tokens held.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Group `g`, if held.
    pub fn tile(&self, g: usize) -> Option<Q8Tile<'_>> {
        if g >= self.groups {
            return None;
        }
        let (q, b) = (4 * self.blocks * Q8_BLOCK, 4 * self.blocks);
        Some(Q8Tile {
            qs: &self.qs[g * q..(g + 1) * q],
            d: &self.d[g * b..(g + 1) * b],
            s: &self.s[g * b..(g + 1) * b],
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
            qw: &self.qw[g * q..(g + 1) * q],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_interleaves_whole_groups_and_round_trips() {
        let (n, cols) = (6, 64);
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 37) % 101) as f32 - 50.0)
            .collect();
        let mut acts = Q8Acts::new();
        acts.quantize(&x).unwrap();
        let mut tiles = Q8Tiles::default();
        assert!(tiles.fill(&acts, n, cols));
        assert_eq!(
            tiles.groups(),
            1,
            "tokens 4 and 5 are left to the one-token kernel"
        );
        let tile = tiles.tile(0).unwrap();
        assert_eq!(tile.blocks(), 2);
        for k in 0..4 {
            let want = acts.slice(k * cols, cols).unwrap();
            let (qs, d, s) = tile.token(k);
            assert_eq!(
                (qs.as_slice(), d.as_slice(), s.as_slice()),
                (want.qs, want.d, want.s)
            );
        }
        assert!(tiles.tile(1).is_none());
        assert!(
            !tiles.fill(&acts, n, cols + 32),
            "a length that does not match is refused"
        );
        assert_eq!(tiles.groups(), 0);
    }
}
