//! Split GGUF files, as llama.cpp's `gguf-split` writes them.
//!
//! A model split into `N` parts is `N` complete GGUF files named
//! `<prefix>-00001-of-0000N.gguf` … (`%s-%05d-of-%05d.gguf`, llama.cpp `llama_split_path`).
//! Every part carries `split.no` (u16, 0-based), `split.count` (u16, `N`) and
//! `split.tensors.count` (i32, the model's tensor count over all parts); only the first carries
//! the model's other metadata. Each tensor is in exactly one part, with its offset relative to
//! that part's data section; the first part may hold no tensor (`--no-tensor-first-split`).
//!
//! [`SplitInfo::from_metadata`] reads and checks the keys of one part; [`Parts`] checks a
//! sequence of parts against the first (same count and tensor total, parts in order, no
//! tensor twice, none missing at the end); [`part_name`] / [`parse_part_name`] map between
//! a part's index and its file name.

use super::{Error, Metadata, TensorInfo};
use std::collections::HashSet;

/// `split.no`: the part's 0-based index.
pub const KEY_NO: &str = "split.no";
/// `split.count`: the number of parts.
pub const KEY_COUNT: &str = "split.count";
/// `split.tensors.count`: the number of tensors over all parts.
pub const KEY_TENSORS: &str = "split.tensors.count";

/// The split keys of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitInfo {
    /// 0-based index of this part.
    pub no: u16,
    /// Number of parts (at least 1).
    pub count: u16,
    /// Tensors in all parts together.
    pub tensors: u64,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::Split(detail.into())
}

impl SplitInfo {
    /// The split keys of `md`: `None` when the file has none (an unsplit model), an error when
    /// only some are there, one is not a non-negative integer in range, or `split.no` is not
    /// below `split.count`.
    pub fn from_metadata(md: &Metadata) -> Result<Option<SplitInfo>, Error> {
        let (no, count, tensors) = (md.get(KEY_NO), md.get(KEY_COUNT), md.get(KEY_TENSORS));
        if no.is_none() && count.is_none() && tensors.is_none() {
            return Ok(None);
        }
        let int = |key: &str, v: Option<&super::Value>, max: u64| -> Result<u64, Error> {
            let v = v.ok_or_else(|| bad(format!("{key} is missing (the other split keys are there)")))?;
            v.as_u64()
                .filter(|&n| n <= max)
                .ok_or_else(|| bad(format!("{key} = {} is not an integer between 0 and {max}", v.summary())))
        };
        let no = int(KEY_NO, no, u64::from(u16::MAX))? as u16;
        let count = int(KEY_COUNT, count, u64::from(u16::MAX))? as u16;
        let tensors = int(KEY_TENSORS, tensors, i32::MAX as u64)?;
        if count == 0 || no >= count {
            return Err(bad(format!("{KEY_NO} = {no} must be below {KEY_COUNT} = {count}")));
        }
        Ok(Some(SplitInfo { no, count, tensors }))
    }
}

/// The checks across the parts of one model, fed each part's split keys and tensor directory
/// in order.
#[derive(Debug, Default)]
pub struct Parts {
    first: Option<SplitInfo>,
    seen: usize,
    names: HashSet<String>,
}

impl Parts {
    /// Takes the next part (`split` from [`SplitInfo::from_metadata`], `tensors` its directory).
    ///
    /// The first part must be part 0 (or unsplit); each later one must carry the next index,
    /// the same count and tensor total, and no tensor name already seen; the running tensor
    /// count may not exceed the total.
    pub fn add(&mut self, split: Option<SplitInfo>, tensors: &[TensorInfo]) -> Result<(), Error> {
        let index = self.seen;
        match (self.first, split) {
            (None, None) if index == 0 => {}
            (None, Some(s)) if index == 0 => {
                if s.no != 0 {
                    return Err(bad(format!(
                        "this is part {} of {}: load the model from its first part ({})",
                        u32::from(s.no) + 1,
                        s.count,
                        part_name("<model>", 0, s.count)
                    )));
                }
                self.first = Some(s);
            }
            (None, _) => return Err(bad("the first file is not split: it has no further parts")),
            (Some(f), None) => {
                return Err(bad(format!("part {} of {} has no split keys", index + 1, f.count)));
            }
            (Some(f), Some(s)) => {
                if index >= usize::from(f.count) {
                    return Err(bad(format!("more than the {} parts the first part declares", f.count)));
                }
                if usize::from(s.no) != index {
                    return Err(bad(format!("expected part {} of {}, got part {}", index + 1, f.count, u32::from(s.no) + 1)));
                }
                if s.count != f.count || s.tensors != f.tensors {
                    return Err(bad(format!(
                        "part {} says {} parts and {} tensors, the first part {} and {}",
                        index + 1,
                        s.count,
                        s.tensors,
                        f.count,
                        f.tensors
                    )));
                }
            }
        }
        for t in tensors {
            if !self.names.insert(t.name.clone()) {
                return Err(bad(format!("tensor {:?} is in two parts", t.name)));
            }
        }
        if let Some(f) = self.first {
            if self.names.len() as u64 > f.tensors {
                return Err(bad(format!("the parts hold more than the {} tensors {KEY_TENSORS} declares", f.tensors)));
            }
        }
        self.seen += 1;
        Ok(())
    }

    /// The split keys of the first part (`None` for an unsplit model or before any part).
    pub fn split(&self) -> Option<SplitInfo> {
        self.first
    }

    /// Parts taken so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// True when another part must follow the ones taken.
    pub fn wants_more(&self) -> bool {
        self.first.is_some_and(|f| self.seen < usize::from(f.count))
    }

    /// Checks the model is complete: every part taken, every tensor found.
    pub fn finish(&self) -> Result<(), Error> {
        let Some(f) = self.first else { return Ok(()) };
        if self.seen < usize::from(f.count) {
            return Err(bad(format!(
                "the model is split into {} files and only {} were given (the others are named like {})",
                f.count,
                self.seen,
                part_name("<model>", self.seen as u16, f.count)
            )));
        }
        if self.names.len() as u64 != f.tensors {
            return Err(bad(format!("{KEY_TENSORS} = {} but the parts hold {} tensors", f.tensors, self.names.len())));
        }
        Ok(())
    }
}

/// The file name of part `no` (0-based) of `count`: `<prefix>-%05d-of-%05d.gguf`.
pub fn part_name(prefix: &str, no: u16, count: u16) -> String {
    format!("{prefix}-{:05}-of-{:05}.gguf", u32::from(no) + 1, count)
}

/// `(prefix, no, count)` of a file named like a part (`no` 0-based), else `None`.
pub fn parse_part_name(name: &str) -> Option<(&str, u16, u16)> {
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(no) || !digits(count) || prefix.is_empty() {
        return None;
    }
    let (no, count): (u16, u16) = (no.parse().ok()?, count.parse().ok()?);
    (no >= 1 && no <= count).then(|| (prefix, no - 1, count))
}

/// The paths of every part of the model whose part (any of them) is `path`, first to last;
/// `None` when the name is not a part's.
#[cfg(not(target_arch = "wasm32"))]
pub fn part_paths(path: &std::path::Path) -> Option<Vec<std::path::PathBuf>> {
    let name = path.file_name()?.to_str()?;
    let (prefix, _, count) = parse_part_name(name)?;
    Some((0..count).map(|i| path.with_file_name(part_name(prefix, i, count))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value;
    use crate::quant::GgmlType;

    fn md(no: u16, count: u16, tensors: i32) -> Metadata {
        Metadata::from_entries(vec![
            (KEY_NO.into(), Value::U16(no)),
            (KEY_COUNT.into(), Value::U16(count)),
            (KEY_TENSORS.into(), Value::I32(tensors)),
        ])
    }

    fn t(name: &str) -> TensorInfo {
        TensorInfo { name: name.into(), dims: vec![1], ty: GgmlType::F32, offset: 0, n_bytes: 4 }
    }

    fn info(no: u16, count: u16, tensors: i32) -> Option<SplitInfo> {
        SplitInfo::from_metadata(&md(no, count, tensors)).unwrap()
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(part_name("m", 0, 3), "m-00001-of-00003.gguf");
        assert_eq!(parse_part_name("a-b-00002-of-00003.gguf"), Some(("a-b", 1, 3)));
        for bad in ["m-00000-of-00003.gguf", "m-00004-of-00003.gguf", "m-0001-of-00003.gguf", "-00001-of-00001.gguf", "m.gguf", "m-00001-of-00003.bin"] {
            assert_eq!(parse_part_name(bad), None, "{bad}");
        }
        let paths = part_paths(std::path::Path::new("/d/m-00002-of-00002.gguf")).unwrap();
        assert_eq!(paths, [std::path::PathBuf::from("/d/m-00001-of-00002.gguf"), "/d/m-00002-of-00002.gguf".into()]);
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(SplitInfo::from_metadata(&Metadata::default()).unwrap(), None);
        assert_eq!(info(1, 2, 5), Some(SplitInfo { no: 1, count: 2, tensors: 5 }));
        for m in [md(2, 2, 5), md(0, 0, 5), md(0, 2, -1)] {
            assert!(matches!(SplitInfo::from_metadata(&m), Err(Error::Split(_))), "{m:?}");
        }
        let partial = Metadata::from_entries(vec![(KEY_COUNT.into(), Value::U16(2))]);
        assert!(SplitInfo::from_metadata(&partial).is_err());
        let text = Metadata::from_entries(vec![(KEY_NO.into(), Value::String("0".into())), (KEY_COUNT.into(), Value::U16(2)), (KEY_TENSORS.into(), Value::I32(1))]);
        assert!(SplitInfo::from_metadata(&text).is_err());
    }

    #[test]
    fn parts_are_checked_in_order_and_complete() {
        let ok = |p: &mut Parts, s, names: &[&str]| p.add(s, &names.iter().map(|n| t(n)).collect::<Vec<_>>());
        let mut p = Parts::default();
        ok(&mut p, info(0, 3, 3), &["a"]).unwrap();
        assert!(p.wants_more());
        ok(&mut p, info(1, 3, 3), &[]).unwrap();
        assert!(p.finish().is_err(), "a part is missing");
        ok(&mut p, info(2, 3, 3), &["b", "c"]).unwrap();
        assert!(!p.wants_more());
        p.finish().unwrap();
        assert!(ok(&mut p, info(2, 3, 3), &[]).is_err(), "one part too many");

        // Starting anywhere but the first part, parts out of order, counts that disagree,
        // a tensor twice, a tensor missing, too many tensors, an unsplit later part.
        assert!(ok(&mut Parts::default(), info(1, 2, 2), &["a"]).is_err());
        let cases: [(Option<SplitInfo>, &[&str]); 5] = [
            (info(2, 3, 2), &["b"]),
            (info(1, 2, 2), &["b"]),
            (info(1, 3, 9), &["b"]),
            (info(1, 3, 2), &["a"]),
            (None, &["b"]),
        ];
        for (s, names) in cases {
            let mut p = Parts::default();
            ok(&mut p, info(0, 3, 2), &["a"]).unwrap();
            assert!(matches!(ok(&mut p, s, names), Err(Error::Split(_))), "{s:?} {names:?}");
        }
        let mut p = Parts::default();
        ok(&mut p, info(0, 2, 2), &["a"]).unwrap();
        assert!(ok(&mut p, info(1, 2, 2), &["b", "c"]).is_err(), "more tensors than declared");
        let mut p = Parts::default();
        ok(&mut p, info(0, 2, 3), &["a"]).unwrap();
        ok(&mut p, info(1, 2, 3), &["b"]).unwrap();
        assert!(p.finish().unwrap_err().to_string().contains("hold 2 tensors"));
        // Unsplit: one part, done.
        let mut p = Parts::default();
        ok(&mut p, None, &["a"]).unwrap();
        assert!(!p.wants_more());
        p.finish().unwrap();
        assert!(ok(&mut p, None, &["b"]).is_err());
    }
}
