//! A mutation fuzzer for the GGUF reader on the stable toolchain, and (`fuzz_model_values`,
//! `fuzz/structure.rs`) a structure-aware fuzzer for every stage after it.
//!
//! Seeds: writer-made files covering every value type, nested arrays and odd layouts, a
//! file shaped like the real model's header (its metadata with short arrays, its tensor
//! directory with small shapes), and the real model's header itself (about 1.8 MB, used for
//! a small share of cases because each costs milliseconds). Mutants come from truncation,
//! bit and byte flips, splices of two inputs, inflated counts and lengths, random byte runs,
//! inserted and deleted ranges. Each mutant goes through `parse_header` and through a
//! `Reader` with random chunking; the two must agree, and neither may panic.
//!
//! Both tests run side by side for `HEARTH_FUZZ_SECS` each, and each asserts a minimum number
//! of executed cases (a fuzzer that silently ran nothing must fail); both print cases/s.
//! The test harness reads (and only it): `HEARTH_FUZZ_SECS` (default 30), `HEARTH_FUZZ_SEED`
//! (default: from the clock; printed), and `HEARTH_FUZZ_REPLAY` with `HEARTH_FUZZ_CASE_SEED`
//! (a saved input and the chunking seed printed with it, to re-run one case).
//! A failing input (a panic or a broken invariant) is saved as
//! `target/fuzz-crash-<seed>-<case>.bin` (the first ten of a run).

mod common;
#[path = "fuzz/structure.rs"]
mod structure;

use hearth::gguf::writer::sample_metadata;
use hearth::gguf::{
    parse_header_with_limit, Error, Event, Header, Reader, Value, ValueType, Writer,
};
use hearth::quant::GgmlType;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: tiny, seedable, good enough to pick mutations.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const HEADER_LIMIT: u64 = hearth::gguf::DEFAULT_MAX_HEADER_BYTES;

/// Fewest byte-level cases per second of fuzzing a run must execute (the 2-core CI machine
/// runs several thousand per second; see the README's Tests section for measured figures).
const MIN_BYTE_CASES_PER_SEC: u64 = 100;
/// Fewest structure-aware cases per second (measured: see the README).
const MIN_STRUCTURE_CASES_PER_SEC: u64 = 2;

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Small files from the writer.
fn small_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (version, align, order) in [
        (3, None, None),
        (2, Some(1), Some(&[2usize, 0, 1][..])),
        (3, Some(64), Some(&[1][..])),
    ] {
        let mut w = Writer::new();
        w.version(version);
        if let Some(a) = align {
            w.alignment(a);
        }
        for (k, v) in sample_metadata() {
            w.kv(&k, v);
        }
        w.tensor("a", &[3, 2], GgmlType::F32, (0..24).collect());
        w.tensor("b", &[64], GgmlType::Q4_1, (0..40).collect());
        w.tensor("e", &[0], GgmlType::F16, vec![]);
        if let Some(o) = order {
            w.data_order(o);
        }
        seeds.push(w.to_bytes());
    }
    let mut w = Writer::new();
    let strings: Vec<Value> = (0..100).map(|i| Value::String(format!("tok{i}"))).collect();
    w.kv(
        "tokenizer.ggml.tokens",
        Value::Array(ValueType::String, strings),
    );
    w.kv(
        "tokenizer.ggml.scores",
        Value::Array(
            ValueType::F32,
            (0..100).map(|i| Value::F32(i as f32)).collect(),
        ),
    );
    for i in 0..20 {
        w.tensor(
            &format!("blk.{i}.w"),
            &[32, 1 + i as u64 % 3],
            GgmlType::Q8_0,
            vec![i as u8; 34 * (1 + i % 3)],
        );
    }
    seeds.push(w.to_bytes());
    // Arrays nested to the depth limit and one past it.
    for depth in [
        hearth::gguf::MAX_ARRAY_DEPTH,
        hearth::gguf::MAX_ARRAY_DEPTH + 1,
    ] {
        let mut v = Value::Array(ValueType::String, vec![Value::String("deep".into())]);
        for _ in 1..depth {
            v = Value::Array(ValueType::Array, vec![v.clone(), v]);
        }
        let mut w = Writer::new();
        w.kv("deep", v);
        seeds.push(w.to_bytes());
    }
    let mut w = Writer::new();
    w.kv(
        "only.nested",
        sample_metadata()
            .pop()
            .map(|(_, v)| v)
            .unwrap_or(Value::U8(0)),
    );
    seeds.push(w.to_bytes());
    seeds
}

/// The real model's metadata (arrays cut to 16 entries) and directory (tiny shapes).
fn model_like_seed(h: &Header) -> Vec<u8> {
    let mut w = Writer::new();
    w.version(h.version);
    for (k, v) in h.metadata.iter() {
        let v = match v {
            Value::Array(t, items) => Value::Array(*t, items.iter().take(16).cloned().collect()),
            other => other.clone(),
        };
        w.kv(k, v);
    }
    for t in &h.tensors {
        let blck = t.ty.block_size() as u64;
        let dims: Vec<u64> = t
            .dims
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { blck } else { 1 })
            .collect();
        w.tensor(&t.name, &dims, t.ty, vec![7; t.ty.type_size()]);
    }
    w.to_bytes()
}

/// Positions that look like u64 length/count fields (small little-endian values).
fn u64_fields(m: &[u8], rng: &mut Rng) -> Vec<usize> {
    let mut found = Vec::new();
    for _ in 0..256 {
        let p = rng.below(m.len().saturating_sub(8));
        if let Some(b) = m.get(p..p + 8) {
            if b[3..].iter().all(|&x| x == 0) && b[..3].iter().any(|&x| x != 0) {
                found.push(p);
            }
        }
    }
    found
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(10) {
            0 => m.truncate(rng.below(len + 1)),
            1 => {
                if len > 0 {
                    m[rng.below(len)] ^= 1 << rng.below(8);
                }
            }
            2 => {
                if len > 0 {
                    let vals = [0u8, 1, 0x7f, 0x80, 0xff, rng.next() as u8];
                    m[rng.below(len)] = vals[rng.below(vals.len())];
                }
            }
            3 => {
                // Splice: a prefix of this input and a suffix of the other.
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            4 | 5 => {
                let fields = u64_fields(&m, rng);
                if let Some(&p) = fields.get(rng.below(fields.len())) {
                    let old = u64::from_le_bytes(m[p..p + 8].try_into().unwrap());
                    let rest = (len - p) as u64;
                    let vals = [
                        u64::MAX,
                        1 << 63,
                        1 << 32,
                        HEADER_LIMIT,
                        HEADER_LIMIT / 13,
                        rest,
                        rest + 1,
                        rest / 8,
                        old + 1,
                        old.saturating_sub(1),
                        old * 2,
                    ];
                    let v = vals[rng.below(vals.len())];
                    m[p..p + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            6 => {
                // A u32 type id / n_dims set to a small or boundary value.
                if len >= 4 {
                    let p = rng.below(len - 3);
                    let vals = [rng.below(16) as u32, rng.below(40) as u32, 9, 5, u32::MAX];
                    let v = vals[rng.below(vals.len())];
                    m[p..p + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            7 => {
                let p = rng.below(len + 1);
                let run: Vec<u8> = (0..1 + rng.below(32)).map(|_| rng.next() as u8).collect();
                if rng.chance(2) {
                    m.splice(p..p, run);
                } else {
                    let end = (p + run.len()).min(len);
                    m.splice(p..end, run);
                }
            }
            8 => {
                let a = rng.below(len + 1);
                let b = (a + 1 + rng.below(64)).min(len);
                m.drain(a..b);
            }
            _ => {
                // Duplicate a range (repeated items, shifted offsets).
                let a = rng.below(len + 1);
                let b = (a + 1 + rng.below(64)).min(len);
                let copy = m[a..b].to_vec();
                m.splice(a..a, copy);
            }
        }
    }
    m
}

/// Checks the invariants of one input; panics (caught by the caller) on a violation.
/// Returns a label for the outcome histogram.
fn check(m: &[u8], case_seed: u64) -> String {
    let mut rng = Rng::new(case_seed);
    let limit = if rng.chance(8) {
        rng.below(m.len() + 64) as u64
    } else {
        HEADER_LIMIT
    };
    let whole = parse_header_with_limit(m, limit);
    let _ = whole.as_ref().map_err(|e| e.to_string());
    if let Ok(h) = &whole {
        assert!(h.alignment.is_power_of_two() && h.data_offset % h.alignment == 0);
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for t in &h.tensors {
            let r = h.tensor_range(t).expect("range of a parsed tensor");
            assert_eq!(t.ty.bytes_for(t.n_elements()), Some(t.n_bytes));
            assert!(t.dims.len() <= 4 && t.offset % h.alignment == 0);
            if t.n_bytes > 0 {
                spans.push((r.start, r.end));
            }
        }
        spans.sort();
        assert!(
            spans.windows(2).all(|w| w[0].1 <= w[1].0),
            "overlap accepted"
        );
    }
    // The same bytes through the reader, in random chunks.
    let max_chunk = match rng.below(5) {
        0 if m.len() < 1 << 16 => 1,
        0 | 1 => 64,
        2 => 4096,
        3 => 1 << 20,
        _ => m.len().max(1),
    };
    let mut r = Reader::with_limits(limit);
    let mut events = Vec::new();
    let mut feed_err = None;
    let mut pos = 0;
    while pos < m.len() {
        let n = 1 + rng.below(max_chunk);
        let end = (pos + n).min(m.len());
        match r.feed(&m[pos..end]) {
            Ok(evs) => events.extend(evs),
            Err(e) => {
                assert_eq!(r.feed(&m[end..]), Err(e.clone()), "errors are sticky");
                feed_err = Some(e);
                break;
            }
        }
        pos = end;
    }
    let finished = r.finish();
    match (&whole, feed_err) {
        (Ok(h), None) => {
            let Some(Event::Header(got)) = events.first() else {
                panic!("no header event")
            };
            // Compared as text: a mutated F32 may be NaN, which is not equal to itself.
            assert_eq!(
                format!("{got:?}"),
                format!("{h:?}"),
                "reader and parse_header disagree"
            );
            let mut seen = vec![false; h.tensors.len()];
            for e in &events[1..] {
                let Event::Tensor { index, bytes } = e else {
                    panic!("second header")
                };
                assert!(
                    !std::mem::replace(&mut seen[*index], true),
                    "tensor emitted twice"
                );
                let r = h.tensor_range(&h.tensors[*index]).unwrap();
                assert!(
                    *bytes == m[r.start as usize..r.end as usize],
                    "wrong tensor bytes"
                );
            }
            let fits = h.check_file_len(m.len() as u64).is_ok();
            assert_eq!(fits, seen.iter().all(|&s| s));
            match finished {
                Ok(()) => assert!(fits),
                Err(Error::Truncated { needed }) => assert!(!fits && needed > m.len() as u64),
                Err(e) => panic!("finish after a good header: {e:?}"),
            }
            if fits {
                "ok".into()
            } else {
                "ok-short-data".into()
            }
        }
        (Ok(_), Some(e)) => panic!("reader failed on a good header: {e:?}"),
        (Err(Error::Truncated { needed }), fe) => {
            assert!(
                *needed > m.len() as u64 && *needed <= limit,
                "needed {needed} of {}",
                m.len()
            );
            assert!(events.is_empty() && fe.is_none(), "reader: {fe:?}");
            assert!(
                matches!(finished, Err(Error::Truncated { .. })),
                "{finished:?}"
            );
            "truncated".into()
        }
        (Err(e), fe) => {
            assert!(events.iter().all(|e| !matches!(e, Event::Header(_))));
            let got =
                fe.unwrap_or_else(|| finished.clone().expect_err("reader accepted a bad header"));
            // The reader may see an impossible total size before the bad item itself.
            assert!(
                got == *e || got == (Error::HeaderTooLarge { limit }),
                "whole: {e:?}, reader: {got:?}"
            );
            let name = format!("{e:?}");
            name.split(['(', ' ', '{'])
                .next()
                .unwrap_or("?")
                .to_string()
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn fuzz_gguf() {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    if let Ok(path) = std::env::var("HEARTH_FUZZ_REPLAY") {
        let m = std::fs::read(&path).unwrap();
        let case_seed = env_u64("HEARTH_FUZZ_CASE_SEED").unwrap_or(1);
        println!("replaying {path}: {}", check(&m, case_seed));
        return;
    }
    let secs = env_u64("HEARTH_FUZZ_SECS").unwrap_or(30);
    let seed = env_u64("HEARTH_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("fuzz_gguf: seed {seed} (HEARTH_FUZZ_SEED), {secs} s (HEARTH_FUZZ_SECS)");
    let mut small = small_seeds();
    let mut big = Vec::new();
    match std::fs::read(model_path()) {
        Ok(file) => {
            let h = hearth::gguf::parse_header(&file).expect("the real model parses");
            small.push(model_like_seed(&h));
            // The header plus the first tensor's first bytes.
            big.push(file[..(h.data_offset as usize + 4096).min(file.len())].to_vec());
        }
        Err(e) => panic!(
            "{}: {e}: run `make models` (the fuzzer needs the real header)",
            model_path().display()
        ),
    }
    for s in small.iter().chain(&big) {
        check(s, 1);
    }
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut cases, mut big_cases) = (0u64, 0u64);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut crashes = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let use_big = !big.is_empty() && rng.chance(50);
        let pool = if use_big { &big } else { &small };
        let input = &pool[rng.below(pool.len())];
        let other = &small[rng.below(small.len())];
        let m = mutate(input, other, &mut rng);
        let case_seed = rng.next();
        match catch_unwind(AssertUnwindSafe(|| check(&m, case_seed))) {
            Ok(label) => *outcomes.entry(label).or_default() += 1,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
                let path = target.join(format!("fuzz-crash-{seed}-{cases}.bin"));
                // Keep the first few: one bug usually fails many mutants.
                if crashes.len() < 10 {
                    let _ = std::fs::write(&path, &m);
                    println!(
                        "FAIL case {cases} (HEARTH_FUZZ_CASE_SEED={case_seed}): {:.300} -> {}",
                        msg.unwrap_or_default(),
                        path.display()
                    );
                }
                crashes.push(path);
            }
        }
        cases += 1;
        big_cases += use_big as u64;
    }
    std::panic::set_hook(hook);
    println!(
        "fuzz_gguf: {cases} cases ({big_cases} from the real header) in {secs} s ({:.0} cases/s), {} panics or broken invariants; outcomes: {outcomes:?}",
        cases as f64 / secs.max(1) as f64,
        crashes.len()
    );
    let saved = &crashes[..crashes.len().min(10)];
    assert!(
        crashes.is_empty(),
        "{} failing inputs; saved: {saved:?}",
        crashes.len()
    );
    assert!(
        cases >= MIN_BYTE_CASES_PER_SEC * secs,
        "only {cases} cases in {secs} s: the fuzzer barely ran"
    );
}

#[test]
fn fuzz_model_values() {
    let secs = env_u64("HEARTH_FUZZ_SECS").unwrap_or(30);
    let seed = env_u64("HEARTH_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 ^ 0x5eed)
            .unwrap_or(1)
    });
    println!("fuzz_model_values: seed {seed} (HEARTH_FUZZ_SEED), {secs} s (HEARTH_FUZZ_SECS)");
    let mut seeds = structure::seeds();
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cases = 0u64;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let which = rng.below(seeds.len());
        let case_seed = rng.next();
        let mut case_rng = Rng::new(case_seed);
        let s = &mut seeds[which];
        match catch_unwind(AssertUnwindSafe(|| structure::run_case(s, &mut case_rng))) {
            Ok(label) => *outcomes.entry(label).or_default() += 1,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("case {cases} (case seed {case_seed}): {msg:.300}"));
                // The panicking case took its seed's metadata with it.
                seeds = structure::seeds();
            }
        }
        cases += 1;
    }
    std::panic::set_hook(hook);
    println!(
        "fuzz_model_values: {cases} cases in {secs} s ({:.1} cases/s), {} panics; outcomes: {outcomes:?}",
        cases as f64 / secs.max(1) as f64,
        failures.len()
    );
    assert!(failures.is_empty(), "{} panics: {:?}", failures.len(), &failures[..failures.len().min(10)]);
    assert!(
        cases >= MIN_STRUCTURE_CASES_PER_SEC * secs,
        "only {cases} cases in {secs} s: the fuzzer barely ran"
    );
    // Every stage was reached: some mutants must load and run end to end.
    assert!(outcomes.keys().any(|k| k.contains(":forward-true")), "no mutant ran a forward pass: {outcomes:?}");
}
