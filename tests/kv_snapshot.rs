//! The persisted prompt cache on the engine: a restored KV snapshot gives the logits of a fresh
//! prefill, and corrupted, truncated or mismatched snapshots are refused without touching the
//! cache (the caller then rebuilds them).

mod common;

use hearth::backend::cpu::CpuBackend;
use hearth::backend::Backend;
use hearth::engine::{EngineError, GenerateParams, SamplerParams, Session};

const MODEL: &str = "sha256-of-the-default-model";

fn logits(s: &mut Session<CpuBackend>, prompt: &[u32]) -> Vec<f32> {
    let n_vocab = s.config().n_vocab;
    let t = s.prefill(prompt).unwrap();
    s.backend_mut().read(&t, 0, n_vocab).unwrap()
}

/// A ~90-token system prompt and a question after it.
fn prompt(s: &Session<CpuBackend>) -> (Vec<u32>, Vec<u32>) {
    let system = "You are the help desk of a small library. Answer in one short sentence. Opening hours: \
        Monday to Friday 9-18, Saturday 10-14, closed on Sunday. Loans last three weeks and can be renewed twice.";
    let prefix = s.text_tokens(system).unwrap();
    let mut full = prefix.clone();
    full.extend(s.text_tokens(" Question: can I renew a loan a third time? Answer:").unwrap().into_iter().skip(1));
    (prefix, full)
}

#[test]
fn restored_kv_gives_the_logits_of_a_fresh_prefill() {
    let mut a = common::load(CpuBackend::new());
    let (prefix, full) = prompt(&a);
    assert!(prefix.len() > 40 && full.len() > prefix.len());
    // Reference 1: one fresh prefill of the whole prompt.
    let fresh = logits(&mut a, &full);
    // Reference 2: the prefix then the rest, in memory (the same split a restore gives).
    a.reset();
    logits(&mut a, &prefix);
    let in_memory = logits(&mut a, &full);
    let snap = a.export_prefix_blocking(&prefix, MODEL).unwrap();

    let mut b = common::load(CpuBackend::new());
    assert_eq!(b.restore_prefix(&snap, MODEL).unwrap(), prefix.len());
    let restored = logits(&mut b, &full);
    assert_eq!(restored, in_memory, "restored KV must be bitwise the KV it was exported from");
    // Against one prefill of the whole prompt the split costs nothing natively: the CPU's
    // one-token kernels (a prefill's leftovers after its groups of four) compute what the
    // four-token tiles do, bit for bit (tests/prefill_split.rs). Before they did, this split
    // measured cosine 0.99779 on this prompt.
    assert!(restored == fresh, "restored + rest vs one fresh prefill: cosine {:.7}", common::cosine(&restored, &fresh));

    // The usage of a request after a restore counts the restored tokens as cached, and its
    // greedy output is that of a session that never saw a snapshot and prefilled the prefix
    // first (as the browser's prompt cache does on a miss: the same batches).
    let mut c = common::load(CpuBackend::new());
    c.restore_prefix(&snap, MODEL).unwrap();
    let p = GenerateParams { max_tokens: 8, sampler: SamplerParams::greedy(), stop: vec![], constraint: None };
    let with = c.generate(&full, &p, &mut |_| true).unwrap();
    assert_eq!(with.usage.cached_tokens, prefix.len());
    let mut d = common::load(CpuBackend::new());
    d.prefill(&prefix).unwrap();
    let without = d.generate(&full, &p, &mut |_| true).unwrap();
    assert_eq!(with.tokens, without.tokens);
}

#[test]
fn bad_snapshots_are_refused_and_leave_the_session_working() {
    let mut a = common::load(CpuBackend::new());
    let (prefix, full) = prompt(&a);
    logits(&mut a, &prefix);
    let snap = a.export_prefix_blocking(&prefix, MODEL).unwrap();
    // Exporting what the cache does not hold is refused.
    assert!(matches!(a.export_prefix_blocking(&full, MODEL), Err(EngineError::BadRequest(_))));

    let mut b = common::load(CpuBackend::new());
    let expect = logits(&mut b, &full);
    let refused = |b: &mut Session<CpuBackend>, bytes: &[u8], id: &str| {
        let e = b.restore_prefix(bytes, id).unwrap_err();
        assert!(matches!(e, EngineError::Snapshot(_)), "{e}");
        assert_eq!(e.code(), "BAD_REQUEST");
    };
    refused(&mut b, &snap[..], "another model");
    refused(&mut b, &snap[..snap.len() - 1], MODEL);
    refused(&mut b, &snap[..100], MODEL);
    refused(&mut b, &snap[..0], MODEL);
    // Bytes flipped in the header, the tokens, the middle of the payload and the checksum.
    for at in [10, 60, 200, snap.len() / 2, snap.len() - 3] {
        let mut bad = snap.clone();
        bad[at] ^= 0x40;
        refused(&mut b, &bad[..], MODEL);
    }
    // Another context length changes the key (LongRoPE picks factors by it).
    let mut other = common::load_file("SmolLM2-135M-Instruct.Q4_1.gguf", CpuBackend::new(), 256);
    refused(&mut other, &snap[..], MODEL);
    // Nothing reached the cache: the same prompt gives the same logits as before.
    assert_eq!(logits(&mut b, &full), expect);
    let ok = b.restore_prefix(&snap, MODEL);
    assert_eq!(ok.unwrap(), prefix.len());
}
