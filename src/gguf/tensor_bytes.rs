//! A tensor's bytes as they streamed in: consecutive pieces, never one growing buffer.
//!
//! Assembling a tensor in one `Vec` that grows as bytes arrive costs a reallocation per
//! doubling, and in wasm each freed step stays in the linear memory (it never shrinks): a
//! 28 MiB tensor left ~60 MiB behind. Pieces are allocated once each, at most [`PIECE`]
//! bytes, so the reader holds the tensor's size plus at most one piece of slack, and a
//! backend can write each piece where it belongs (a GPU buffer) without a contiguous copy.

/// The largest piece: bounds what a bogus tensor size in an untrusted header can make the
/// reader reserve before the bytes arrive.
pub const PIECE: usize = 1 << 20;

/// The bytes of one tensor, in order, as pieces of at most [`PIECE`] bytes.
#[derive(Debug, Clone, Default)]
pub struct TensorBytes {
    pieces: Vec<Vec<u8>>,
    len: usize,
}

impl TensorBytes {
    /// Bytes already split into pieces (of any sizes) by the caller.
    pub fn from_pieces(pieces: Vec<Vec<u8>>) -> TensorBytes {
        let len = pieces.iter().map(Vec::len).sum();
        TensorBytes { pieces, len }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order; their lengths sum to [`len`](Self::len).
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(Vec::as_slice)
    }

    /// The bytes `start..end` (clamped to the tensor) as slices of the pieces, in order.
    pub fn slices(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> {
        let end = end.min(self.len);
        let mut at = 0usize;
        self.pieces.iter().filter_map(move |p| {
            let (lo, hi) = (at, at + p.len());
            at = hi;
            let (a, b) = (start.max(lo), end.min(hi));
            (a < b).then(|| p.get(a - lo..b - lo)).flatten()
        })
    }

    /// The bytes as one `Vec` without a copy when they are a single piece (a tensor of at most
    /// [`PIECE`] bytes); otherwise `self` back.
    pub fn into_single(mut self) -> Result<Vec<u8>, TensorBytes> {
        match self.pieces.len() {
            0 => Ok(Vec::new()),
            1 => Ok(self.pieces.pop().unwrap_or_default()),
            _ => Err(self),
        }
    }

    /// Copies the bytes into one `Vec` (tests and backends that need them contiguous).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        self.pieces().for_each(|p| v.extend_from_slice(p));
        v
    }

    /// Appends `data`, of a tensor whose bytes still expected (including `data`) are `want`:
    /// a new piece reserves `min(want, PIECE)` exactly once, or all of `want` when `whole`
    /// (the caller checked that the tensor lies inside the real file; if that much memory
    /// cannot be reserved, pieces are used).
    pub(super) fn push(&mut self, mut data: &[u8], mut want: u64, whole: bool) {
        while !data.is_empty() {
            let room = self.pieces.last().map_or(0, |p| p.capacity() - p.len());
            if room == 0 {
                let piece = want.min(PIECE as u64).max(1) as usize;
                let mut v = Vec::new();
                let all = usize::try_from(want).ok().filter(|&n| whole && n > piece && v.try_reserve_exact(n).is_ok());
                if all.is_none() {
                    v.reserve_exact(piece);
                }
                self.pieces.push(v);
                continue;
            }
            let n = room.min(data.len());
            if let Some(p) = self.pieces.last_mut() {
                p.extend_from_slice(&data[..n]);
            }
            data = &data[n..];
            want = want.saturating_sub(n as u64);
            self.len += n;
        }
    }
}

/// Equal when the bytes are equal, however they were split into pieces.
impl PartialEq for TensorBytes {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.pieces().flatten().eq(other.pieces().flatten())
    }
}

impl Eq for TensorBytes {}

impl PartialEq<[u8]> for TensorBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.len == other.len() && self.pieces().flatten().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_bounded_and_allocated_once() {
        let data: Vec<u8> = (0..(2 * PIECE + 123)).map(|i| (i * 7) as u8).collect();
        let mut t = TensorBytes::default();
        let mut want = data.len() as u64;
        for c in data.chunks(4096 + 17) {
            t.push(c, want, false);
            want -= c.len() as u64;
        }
        assert_eq!(t.len(), data.len());
        assert_eq!(t.to_vec(), data);
        assert!(t == *data.as_slice());
        let caps: Vec<usize> = t.pieces.iter().map(Vec::capacity).collect();
        assert_eq!(caps, vec![PIECE, PIECE, 123], "each piece reserved once, exactly");
    }

    #[test]
    fn a_one_piece_tensor_is_handed_over_without_a_copy() {
        let data: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut t = TensorBytes::default();
        t.push(&data[..300], 1000, false);
        t.push(&data[300..], 700, false);
        let ptr = t.pieces[0].as_ptr();
        let v = t.into_single().expect("one piece");
        assert_eq!(v, data);
        assert_eq!(v.as_ptr(), ptr, "the same allocation");

        let big: Vec<u8> = (0..PIECE + 5).map(|i| (i % 13) as u8).collect();
        let mut t = TensorBytes::default();
        t.push(&big, big.len() as u64, false);
        let back = t.into_single().expect_err("two pieces");
        assert_eq!(back.to_vec(), big);
        assert_eq!(TensorBytes::default().into_single().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn slices_cover_any_range() {
        let data: Vec<u8> = (0..(PIECE + 50)).map(|i| (i % 251) as u8).collect();
        let mut t = TensorBytes::default();
        t.push(&data, data.len() as u64, false);
        for (a, b) in [(0, 10), (PIECE - 3, PIECE + 5), (PIECE, PIECE + 50), (7, PIECE + 50), (5, 5), (PIECE + 40, usize::MAX)] {
            let got: Vec<u8> = t.slices(a, b).flatten().copied().collect();
            assert_eq!(got, data[a..b.min(data.len())], "{a}..{b}");
        }
    }

    #[test]
    fn equality_ignores_piece_boundaries() {
        let data = [1u8, 2, 3, 4, 5];
        let (mut a, mut b) = (TensorBytes::default(), TensorBytes::default());
        a.push(&data, 5, false);
        b.push(&data[..2], 5, false);
        b.push(&data[2..], 3, false);
        assert_eq!(a, b);
        b.push(&[6], 1, false);
        assert_ne!(a, b);
    }

    #[test]
    fn a_whole_tensor_is_one_allocation_of_its_size() {
        let data: Vec<u8> = (0..3 * PIECE + 17).map(|i| i as u8).collect();
        let mut t = TensorBytes::default();
        for c in data.chunks(PIECE / 3 + 5) {
            let want = (data.len() - t.len()) as u64;
            t.push(c, want, true);
        }
        assert_eq!(t, data[..]);
        let v = t.into_single().expect("one piece");
        assert_eq!(v.capacity(), data.len());
    }
}
